// CRDTs through the JS API in two headless-Chromium pages: each page is a replica with its own
// wasm instance; they diverge, exchange deltas as bytes (through this test, like a network), and
// converge to byte-identical states.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startServer } from "../../scripts/serve.mjs";
import { ROOT, launchChromium, openPage } from "./browser.mjs";

let browser;
let server;
let pages;

before(async () => {
  let url;
  ({ server, url } = await startServer({ mounts: { "/pkg/": join(ROOT, "pkg"), "/": join(ROOT, "tests/e2e/pages") } }));
  browser = await launchChromium();
  pages = [await openPage(browser, url), await openPage(browser, url)];
  for (const [i, page] of pages.entries()) {
    await page.evaluate(async (name) => {
      const sdk = await import("/pkg/index.js");
      await sdk.default();
      window.sdk = sdk;
      window.replica = {
        counter: new sdk.PNCounter(name),
        set: new sdk.ORSet(name),
        lww: new sdk.LWWRegister(name),
        mv: new sdk.MVRegister(name),
      };
      window.b64 = (bytes) => btoa(String.fromCharCode(...bytes));
      window.unb64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
    }, `agent-${i}`);
  }
});

after(async () => {
  for (const page of pages ?? []) assert.deepEqual(page.problems, [], "no console errors");
  await browser?.close();
  server?.close();
});

/** Runs `fn(replica)` in page `i`; returns what it returns. */
const inPage = (i, fn, arg) => pages[i].evaluate(`(${fn})(window.replica, ${JSON.stringify(arg)})`);

/** Ships page `from`'s delta for page `to`'s version vector; returns the delta sizes. */
async function sync(from, to) {
  const sizes = {};
  for (const type of ["counter", "set", "lww", "mv"]) {
    const vv = await inPage(to, (r, t) => b64(r[t].versionVector()), type);
    const delta = await inPage(from, (r, [t, vv]) => b64(r[t].deltaSince(unb64(vv))), [type, vv]);
    await inPage(to, (r, [t, d]) => r[t].applyDelta(unb64(d)), [type, delta]);
    sizes[type] = Buffer.from(delta, "base64").length;
  }
  return sizes;
}

const snapshot = (i) =>
  inPage(i, (r) => ({
    bytes: Object.fromEntries(Object.entries(r).map(([k, v]) => [k, b64(v.toBytes())])),
    counter: r.counter.value,
    set: r.set.values().map((v) => (typeof v === "string" ? v : `bytes:${Array.from(v)}`)),
    lww: r.lww.get(),
    mv: r.mv.values().map((v) => JSON.stringify(v)).sort(),
  }));

test("two page replicas diverge, exchange deltas as bytes, and converge", async () => {
  // Shared start, then concurrent edits.
  await inPage(0, (r) => {
    r.set.add("shared");
    r.set.add(new Uint8Array([1, 2, 3]));
  });
  await sync(0, 1);
  await inPage(0, (r) => {
    r.counter.increment(5);
    r.set.add("from-0");
    r.set.remove("shared"); // concurrent with page 1's re-add: add wins
    r.lww.set({ title: "zero" }, 1000);
    r.mv.set("zero");
  });
  await inPage(1, (r) => {
    r.counter.decrement(2);
    r.counter.increment(10);
    r.set.add("shared");
    r.set.add("from-1");
    r.set.remove(new Uint8Array([1, 2, 3]));
    r.lww.set({ title: "one" }, 2000);
    r.mv.set("one");
  });
  const diverged = [await snapshot(0), await snapshot(1)];
  assert.notDeepEqual(diverged[0].bytes, diverged[1].bytes);

  const sizes = await sync(0, 1);
  await sync(1, 0);
  const [a, b] = [await snapshot(0), await snapshot(1)];
  assert.deepEqual(a.bytes, b.bytes, "byte-identical states");
  assert.equal(a.counter, 13);
  assert.deepEqual(a.set, ["from-0", "from-1", "shared"], "add wins over the concurrent remove");
  assert.deepEqual(a.lww, { title: "one" }, "the later write wins");
  assert.deepEqual(a.mv, ['"one"', '"zero"'], "concurrent writes are both kept");
  console.log(`delta sizes page 0 -> 1: ${JSON.stringify(sizes)} bytes`);

  // Once in sync, deltaSince is empty-ish and a later write collapses the MV siblings.
  const again = await sync(0, 1);
  assert.ok(Object.values(again).every((n) => n <= 8), `empty deltas are a few header bytes: ${JSON.stringify(again)}`);
  await inPage(1, (r) => r.mv.set("settled"));
  await sync(1, 0);
  assert.deepEqual((await snapshot(0)).mv, ['"settled"']);
});

test("mutator deltas ship on their own, in any order, duplicated", async () => {
  const deltas = await inPage(0, () => {
    const set = new window.sdk.ORSet("writer");
    const out = [set.add("a"), set.add("b"), set.remove("a"), set.add("c")].map(b64);
    window.expected = b64(set.toBytes());
    return out;
  });
  const result = await inPage(1, (r, deltas) => {
    const set = new window.sdk.ORSet("reader");
    for (const d of [...deltas].reverse().concat(deltas)) set.applyDelta(unb64(d));
    return { values: set.values(), bytes: b64(set.toBytes()) };
  }, deltas);
  assert.deepEqual(result.values, ["b", "c"]);
  assert.equal(result.bytes, await pages[0].evaluate(() => window.expected));
});

test("bad input gives typed errors, and states round-trip through bytes", async () => {
  const r = await inPage(0, (r) => {
    const { ORSet, GCounter, compareVersionVectors } = window.sdk;
    const codeOf = (fn) => {
      try {
        fn();
        return "no error";
      } catch (error) {
        return `${error.code}: ${error.message}`;
      }
    };
    const counter = new GCounter(7);
    counter.increment(3);
    const copy = GCounter.fromBytes(counter.toBytes(), 8);
    copy.increment();
    counter.merge(copy);
    return {
      garbage: codeOf(() => r.set.applyDelta(new Uint8Array([4, 1, 255, 255, 255]))),
      wrongType: codeOf(() => ORSet.fromBytes(counter.toBytes(), "x")),
      badReplica: codeOf(() => new GCounter("")),
      badItem: codeOf(() => r.set.add(42)),
      badJson: codeOf(() => r.lww.set(() => 1)),
      counter: counter.value,
      relation: compareVersionVectors(counter.versionVector(), copy.versionVector()),
    };
  });
  assert.match(r.garbage, /^BAD_FORMAT: bad format of ORSetDelta/);
  assert.match(r.wrongType, /^BAD_FORMAT: bad format of ORSet: type tag 0x01, expected 0x03/);
  assert.match(r.badReplica, /^BAD_ARGUMENT/);
  assert.match(r.badItem, /^BAD_ARGUMENT: ORSet items are strings or Uint8Arrays/);
  assert.match(r.badJson, /^BAD_ARGUMENT: register values must be JSON-serialisable/);
  assert.equal(r.counter, 4);
  assert.equal(r.relation, "equal");
});

test("skills, episodes and a Merkle DAG replicate between the two pages", async () => {
  const setup = (r, name) => {
    const { SkillAccumulator, EpisodeMemory, MerkleDag } = window.sdk;
    r.skills = new SkillAccumulator(name);
    r.episodes = new EpisodeMemory(name);
    r.dag = new MerkleDag();
  };
  await inPage(0, setup, "agent-0");
  await inPage(1, setup, "agent-1");
  await inPage(0, (r) => {
    r.skills.raise("rust", 0.4);
    r.skills.raise("search", 0.9);
    r.episodes.record("boot", "woke up", [], 1000);
    r.episodes.record("greet", "said hello", ["boot"], 2000);
    r.dag.append(new TextEncoder().encode("genesis"));
  });
  await inPage(1, (r) => {
    r.skills.raise("rust", 0.7);
    r.episodes.record("plan", "made a plan", ["greet"], 1500);
  });
  // Skills and episodes: deltas by version vector, both ways.
  for (const [from, to] of [[0, 1], [1, 0]]) {
    for (const type of ["skills", "episodes"]) {
      const vv = await inPage(to, (r, t) => b64(r[t].versionVector()), type);
      const delta = await inPage(from, (r, [t, vv]) => b64(r[t].deltaSince(unb64(vv))), [type, vv]);
      await inPage(to, (r, [t, d]) => r[t].applyDelta(unb64(d)), [type, delta]);
    }
  }
  // The DAG: page 1 asks for what it lacks by its heads, then both append concurrently and swap.
  const sendMissing = async (from, to) => {
    const heads = await inPage(to, (r) => r.dag.heads());
    const nodes = await inPage(from, (r, heads) => b64(r.dag.missing(heads)), heads);
    return inPage(to, (r, n) => r.dag.insertNodes(unb64(n)), nodes);
  };
  assert.equal(await sendMissing(0, 1), 1);
  await inPage(0, (r) => r.dag.append(new TextEncoder().encode("left")));
  await inPage(1, (r) => r.dag.append(new TextEncoder().encode("right")));
  assert.equal(await sendMissing(0, 1), 1);
  assert.equal(await sendMissing(1, 0), 1);
  const view = (i) =>
    inPage(i, (r) => ({
      skills: r.skills.skills(),
      skillBytes: b64(r.skills.toBytes()),
      ordered: r.episodes.ordered(),
      plan: r.episodes.get("plan"),
      heads: r.dag.heads().length,
      order: r.dag.topologicalOrder(),
      genesis: new TextDecoder().decode(r.dag.payload(r.dag.topologicalOrder()[0])),
      forged: (() => {
        try {
          r.dag.insertNodes(new Uint8Array([11, 1, 1, 0, 1, 120]));
          return "inserted";
        } catch (error) {
          return error.code;
        }
      })(),
    }));
  const [a, b] = [await view(0), await view(1)];
  assert.deepEqual(a, b);
  assert.deepEqual(a.skills, [{ skill: "rust", level: 0.7 }, { skill: "search", level: 0.9 }]);
  assert.deepEqual(a.ordered, ["boot", "greet", "plan"], "plan follows greet although recorded earlier");
  assert.deepEqual(a.plan.links, ["greet"]);
  assert.equal(a.heads, 2, "two concurrent heads");
  assert.equal(a.genesis, "genesis");
  assert.equal(a.order.length, 3);
});

test("ConflictResolver settles claims deterministically, with JS callbacks and a review queue", async () => {
  const r = await inPage(0, () => {
    const { ConflictResolver, MVRegister } = window.sdk;
    const claims = [
      { value: { city: "Paris" }, at: 3, replica: "a" },
      { value: { city: "Lyon" }, at: 1, replica: "b" },
      { value: { city: "Paris" }, at: 2, replica: "c" },
    ];
    const verdict = (strategy) => new ConflictResolver(strategy).resolveClaims("home", claims);
    const semantic = new ConflictResolver("semantic-merge");
    semantic.setSemanticMerge((values) => ({ cities: values.map((v) => v.city) }));
    const givesUp = new ConflictResolver("semantic-merge");
    givesUp.setSemanticMerge(() => undefined);
    givesUp.setStrategy("merge-failure", "manual-review");
    const failed = givesUp.resolveClaims("home", claims);
    const queue = givesUp.reviewQueue();
    const left = new MVRegister("left");
    const right = new MVRegister("right");
    left.set("tea");
    right.set("coffee");
    left.merge(right);
    let badStrategy = "";
    try {
      new ConflictResolver("coin-flip");
    } catch (error) {
      badStrategy = error.code;
    }
    return {
      agree: new ConflictResolver().resolveClaims("k", [{ value: 1, at: 1, replica: "a" }, { value: 1, at: 2, replica: "b" }]),
      lww: verdict("last-writer-wins"),
      fww: verdict("first-writer-wins"),
      majority: verdict("majority-vote"),
      semantic: semantic.resolveClaims("home", claims),
      failed,
      queue,
      taken: givesUp.takeReviewed(0) && givesUp.reviewQueue().length === 0,
      register: new ConflictResolver("first-writer-wins").resolveRegister("drink", left),
      badStrategy,
    };
  });
  assert.equal(r.agree, undefined);
  assert.deepEqual(r.lww, { kind: "direct-contradiction", value: { city: "Paris" } });
  assert.deepEqual(r.fww, { kind: "direct-contradiction", value: { city: "Lyon" } });
  assert.deepEqual(r.majority, { kind: "direct-contradiction", value: { city: "Paris" } });
  assert.deepEqual(r.semantic, { kind: "direct-contradiction", value: { cities: ["Lyon", "Paris", "Paris"] } });
  assert.deepEqual(r.failed, { kind: "merge-failure", queued: 0 });
  assert.deepEqual(r.queue, [{ key: "home", kind: "merge-failure", values: [{ city: "Lyon" }, { city: "Paris" }, { city: "Paris" }] }]);
  assert.equal(r.taken, true);
  assert.equal(r.register.kind, "direct-contradiction");
  assert.ok(["tea", "coffee"].includes(r.register.value));
  assert.equal(r.badStrategy, "BAD_ARGUMENT");
});
