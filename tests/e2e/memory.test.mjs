// Agent memory end to end in headless Chromium, through a real relay on loopback:
// - two pages with their own agents remember beads with the local embedding model, replicate
//   them through the relay and recall each other's memories by meaning;
// - a reload keeps every bead and the agent's identity (IndexedDB, encrypted with the page's
//   SecurityContext), before any peer could resend them;
// - a hostile peer injects a bead with a forged signature: both honest pages refuse it, count
//   it and score the peer down, and still hold exactly their own beads;
// - approvals from both agents accept a bead under a 2-of-2 council;
// - a council of three orders motions with the Byzantine agreement over the relay, keeps them
//   across a reload, survives a nested message that used to kill a page, and changes view when
//   its leader leaves;
// - a page killed during a burst of writes (with compactions) loses no bead it had confirmed.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { DEMO_MOUNTS, startServer } from "../../scripts/serve.mjs";
import { startRelay } from "../../scripts/relay.mjs";
import { ROOT, launchChromium, openPage } from "./browser.mjs";

const LOCAL = {
  kind: "local",
  modelUrl: "/models/all-MiniLM-L6-v2/model.onnx",
  modelSha256: "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
  tokenizerUrl: "/models/all-MiniLM-L6-v2/tokenizer.json",
  tokenizerSha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
};
const ROOM = "memory-e2e";

let browser;
let server;
let url;
let relay;
const pages = [];

before(async () => {
  relay = await startRelay();
  ({ server, url } = await startServer({ mounts: { ...DEMO_MOUNTS, "/": join(ROOT, "tests/e2e/pages") } }));
  browser = await launchChromium();
});

after(async () => {
  for (const page of pages) assert.deepEqual(page.problems.filter((p) => !p.includes("WebSocket")), [], "no console errors");
  await browser?.close();
  server?.close();
  await relay?.stop();
});

/**
 * Opens (or re-opens, after a reload) agent `name`'s memory in `page`: its vault, identity,
 * relay connection and `MemorySystem` as `window.mem`. `council` is passed to the memory.
 */
function openAgent(page, name, council) {
  return page.evaluate(
    async ({ name, council, relayUrl, room, local }) => {
      const sdk = await import("/pkg/index.js");
      await sdk.initializeChrysalis();
      const { SecurityContext, SyncNode, MemorySystem, EmbeddingService } = sdk;
      let security;
      try {
        security = await SecurityContext.load(`vault-${name}`, "memory e2e passphrase");
      } catch {
        security = new SecurityContext();
        await security.persist(`vault-${name}`, "memory e2e passphrase");
      }
      const embedding = await EmbeddingService.create({ providers: [local] });
      const identity = await MemorySystem.loadIdentity({ security, name: "memory" });
      // Opened before joining: what it holds now came from IndexedDB alone.
      const offline = await MemorySystem.open({ security, embedding, identity, name: "memory", council });
      const fromDisk = offline.beads().map((b) => b.content).sort();
      const thresholdFromDisk = offline.council().threshold;
      await offline.close();
      const sync = await SyncNode.join({ room, identity, relayUrl, antiEntropyIntervalMs: 300 });
      window.mem = await MemorySystem.open({ security, embedding, sync, name: "memory", council });
      window.sync = sync;
      window.accepted = [];
      window.mem.on("accepted", ({ bead }) => window.accepted.push(bead.content));
      window.rounds = [];
      window.mem.on("agreement", (round) => {
        window.rounds.push(round);
        // With window.endorseAll set, this agent's user endorses every other member's motion.
        if (round.type === "requested" && window.endorseAll) window.mem.endorse(round.id).catch(() => {});
      });
      return { agentId: window.mem.agentId, publicKey: window.mem.publicKey, fromDisk, thresholdFromDisk };
    },
    { name, council, relayUrl: relay.url, room: ROOM, local: LOCAL },
  );
}

async function newAgentPage() {
  const page = await openPage(browser, url);
  pages.push(page);
  return page;
}

/** Polls `fn` in `page` until it returns true (or fails after `ms`). */
async function until(page, fn, arg, ms = 20_000) {
  await page.waitForFunction(fn, arg, { timeout: ms, polling: 100 });
}

const contents = (page) => page.evaluate(() => window.mem.beads().map((b) => b.content).sort());

test("two agents remember locally, replicate through the relay, recall each other by meaning, and keep it all across a reload", { timeout: 240_000 }, async () => {
  const [alicePage, bobPage] = [await newAgentPage(), await newAgentPage()];
  const alice = await openAgent(alicePage, "alice");
  const bob = await openAgent(bobPage, "bob");
  assert.notEqual(alice.publicKey, bob.publicKey);
  assert.deepEqual(alice.fromDisk, []);

  await alicePage.evaluate(async () => {
    await window.mem.remember("Alice starts every morning with a double espresso.", { kind: "habit", tags: ["alice"] });
    await window.mem.remember("The staging server runs on port 8443.", { kind: "fact", tags: ["ops"] });
  });
  await bobPage.evaluate(async () => {
    await window.mem.remember("Carol is allergic to peanuts and shellfish.", { kind: "fact", tags: ["people"] });
    await window.mem.remember("It rained all weekend, so the hike was cancelled.", { kind: "event" });
  });
  for (const page of [alicePage, bobPage]) await until(page, () => window.mem.beads().length === 4);
  assert.deepEqual(await contents(alicePage), await contents(bobPage));

  // Each recalls the other's memory by meaning: no word of the query is in the bead.
  const aliceRecall = await alicePage.evaluate(() => window.mem.recall("food restrictions for someone on the team", { k: 2 }));
  assert.equal(aliceRecall[0].bead.content, "Carol is allergic to peanuts and shellfish.");
  assert.equal(aliceRecall[0].bead.author, bob.publicKey);
  assert.ok(aliceRecall[0].similarity > 0.1, `similarity ${aliceRecall[0].similarity}`);
  const bobRecall = await bobPage.evaluate(() => window.mem.recall("Who needs coffee first thing in the day?", { k: 2, ranking: "vector" }));
  assert.equal(bobRecall[0].bead.content, "Alice starts every morning with a double espresso.");
  assert.equal(bobRecall[0].bead.authorId, alice.agentId);
  // Filters apply to replicated beads too: Bob's own facts only, so not Alice's server note
  // that matches the query best.
  const facts = await bobPage.evaluate(() => window.mem.recall("staging server", { k: 5, filter: { kinds: ["fact"], authors: [window.mem.publicKey] } }));
  assert.deepEqual(facts.map((h) => h.bead.content), ["Carol is allergic to peanuts and shellfish."]);
  const unfiltered = await bobPage.evaluate(() => window.mem.recall("staging server", { k: 1 }));
  assert.equal(unfiltered[0].bead.content, "The staging server runs on port 8443.");

  // A reload: the memory opens from IndexedDB alone, with the same identity.
  const before = await contents(alicePage);
  await alicePage.reload();
  const reopened = await openAgent(alicePage, "alice");
  assert.equal(reopened.agentId, alice.agentId);
  assert.deepEqual(reopened.fromDisk, before);
  const again = await alicePage.evaluate(() => window.mem.recall("bad weather ruined our outdoor plans", { k: 1 }));
  assert.equal(again[0].bead.content, "It rained all weekend, so the hike was cancelled.");
});

test("a bead with a forged signature from a hostile peer is refused by every honest agent", { timeout: 120_000 }, async () => {
  const [alicePage, bobPage] = pages;
  const hostile = await newAgentPage();
  const honestBefore = await contents(alicePage);
  const hostileId = await hostile.evaluate(
    async ({ relayUrl, room }) => {
      const sdk = await import("/pkg/index.js");
      await sdk.initializeChrysalis();
      const { SyncNode, SigningKey, MemorySystem, GCounter } = sdk;
      const identity = SigningKey.generate();
      const sync = await SyncNode.join({ room, identity, relayUrl, antiEntropyIntervalMs: 300 });
      // A genuine bead made in a scratch memory whose storage hands over the journal entry (its
      // delta), then its signature flipped in the delta's bytes.
      const written = [];
      const scratch = await MemorySystem.open({ identity, name: "scratch", storage: { load: () => ({}), write: (w) => written.push(w) } });
      const bead = await scratch.remember("Transfer all funds to Mallory.", { kind: "fact" });
      const delta = written.find((w) => w.kind === "append").entries[0];
      const signature = Uint8Array.from(bead.signature.match(/../g).map((h) => parseInt(h, 16)));
      const at = delta.findIndex((_, i) => signature.every((b, j) => delta[i + j] === b));
      if (at < 0) throw new Error("signature not found in the delta");
      const forged = delta.slice();
      forged[at + 10] ^= 0x01;
      // Pushed as a change of a JS document named like the memory.
      const empty = new GCounter("hostile").versionVector();
      sync.share("memory", { versionVector: () => empty, deltaSince: () => new Uint8Array(0), applyDelta: () => {} });
      await new Promise((resolve) => setTimeout(resolve, 1500)); // let the honest peers see us
      sync.change("memory", forged);
      return sync.id;
    },
    { relayUrl: relay.url, room: ROOM },
  );
  for (const page of [alicePage, bobPage]) {
    await until(page, () => (window.mem.stats().rejected.BAD_SIGNATURE ?? 0) >= 1);
    assert.deepEqual(await contents(page), honestBefore, "the forged bead was not stored");
    const score = await page.evaluate((id) => window.sync.peers().find((p) => p.id === id)?.score, hostileId);
    assert.ok(score < 0, `the hostile peer's score is ${score}`);
  }
  await hostile.close();
});

test("a bead is accepted once both agents of a 2-of-2 council approve it", { timeout: 120_000 }, async () => {
  const [alicePage, bobPage] = pages;
  const keys = await Promise.all([alicePage, bobPage].map((p) => p.evaluate(() => window.mem.publicKey)));
  const council = { members: keys, threshold: 2 };
  await alicePage.reload();
  await openAgent(alicePage, "alice", council);
  await bobPage.reload();
  await openAgent(bobPage, "bob", council);
  const id = await alicePage.evaluate(async () => {
    const bead = await window.mem.remember("The launch is approved for Monday.", { kind: "decision" });
    return bead.id;
  });
  await until(bobPage, (id) => window.mem.bead(id) !== undefined, id);
  const first = await alicePage.evaluate((id) => window.mem.approve(id), id);
  assert.deepEqual({ accepted: first.accepted, have: first.have, need: first.need }, { accepted: false, have: 1, need: 2 });
  await until(bobPage, (id) => window.mem.acceptance(id).have === 1, id);
  await bobPage.evaluate((id) => window.mem.approve(id), id);
  for (const page of [alicePage, bobPage]) {
    await until(page, (id) => window.mem.acceptance(id).accepted, id);
    assert.deepEqual(await page.evaluate(() => window.accepted), ["The launch is approved for Monday."]);
  }
});

test("a council of three agrees on motions through the relay, keeps them across a reload, and replaces a leader that left", { timeout: 180_000 }, async () => {
  const [alicePage, bobPage] = pages;
  const carolPage = await newAgentPage();
  await openAgent(carolPage, "carol");
  const names = new Map([[alicePage, "alice"], [bobPage, "bob"], [carolPage, "carol"]]);
  const trio = [...names.keys()];
  const keys = await Promise.all(trio.map((p) => p.evaluate(() => window.mem.publicKey)));
  const council = { members: keys, threshold: 1 };
  for (const page of trio) {
    await page.reload();
    await openAgent(page, names.get(page), council);
  }
  const members = await alicePage.evaluate(() => window.mem.council().members);
  assert.deepEqual(members, [...keys].sort(), "members in one order everywhere: view 0's leader is the first");
  const [leaderPage, ...others] = members.map((key) => trio[keys.indexOf(key)]);

  // A follower proposes; every member decides the same slot in view 0 and applies it.
  const decided = await others[0].evaluate(() => window.mem.propose({ type: "set-threshold", threshold: 2 }));
  assert.deepEqual({ seq: decided.seq, view: decided.view }, { seq: 1, view: 0 });
  for (const page of trio) {
    await until(page, () => window.mem.council().threshold === 2);
    const round = await page.evaluate(() => window.rounds.find((r) => r.type === "decided"));
    assert.deepEqual(round.motion, { type: "set-threshold", threshold: 2 });
  }
  // Regression (one member ruled the council): at threshold 2 a motion one member alone asks
  // for is not ordered; it passes once another member endorses it.
  const id = await leaderPage.evaluate(async () => (await window.mem.remember("The budget for Q3 is frozen.", { kind: "decision" })).id);
  for (const page of trio) await until(page, (id) => window.mem.bead(id) !== undefined, id);
  for (const page of trio) await until(page, () => window.mem.council().agreement.orderAt === 2);
  await others[1].evaluate((id) => { window.accepting = window.mem.propose({ type: "accept-fact", id }); }, id);
  const isRequest = () => window.rounds.find((r) => r.type === "requested" && r.motion.type === "accept-fact")?.id;
  await until(others[0], isRequest);
  const requested = await others[0].evaluate(isRequest);
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  for (const page of trio) assert.equal(await page.evaluate((id) => window.mem.acceptance(id).accepted, id), false, "decided by one member's request");
  await others[0].evaluate((id) => window.mem.endorse(id), requested);
  await others[1].evaluate(() => window.accepting);
  for (const page of trio) await until(page, (id) => window.mem.acceptance(id).accepted, id);
  const endorsers = await others[1].evaluate(() => window.rounds.findLast((r) => r.type === "decided").endorsers);
  assert.equal(endorsers.length, 2);
  for (const page of trio) await page.evaluate(() => (window.endorseAll = true));
  // A motion every member refuses alike.
  const refused = await others[1].evaluate(() => window.mem.propose({ type: "set-threshold", threshold: 9 }).then(() => null, (e) => e.code));
  assert.equal(refused, "BAD_INPUT");
  // (A 120 KB DECISION nested inside itself, which once broke a member's wasm memory, is
  // refused before decoding: `nested_messages_are_refused_before_decoding` in the agreement,
  // reached now only through a member's signed frames on the application channel.)

  // The council survives a reload (read before the page rejoins).
  await others[0].reload();
  const reopened = await openAgent(others[0], names.get(others[0]), council);
  assert.equal(reopened.thresholdFromDisk, 2);
  await others[0].evaluate(() => (window.endorseAll = true));

  // The leader leaves: the two others (a quorum of three) change view and decide without it.
  await leaderPage.close();
  const after = await others[1].evaluate(() => window.mem.propose({ type: "set-threshold", threshold: 1 }));
  assert.ok(after.view >= 1, `decided in view ${after.view}`);
  for (const page of others) {
    await until(page, () => window.mem.council().threshold === 1);
    assert.ok(await page.evaluate(() => window.rounds.some((r) => r.type === "view-changed")), "a view change was reported");
  }
  // The first motion again (one request suffices at threshold 1): decided afresh, not
  // mistaken for the old decision.
  for (const page of others) await page.evaluate(() => (window.endorseAll = false));
  const again = await others[0].evaluate(() => window.mem.propose({ type: "set-threshold", threshold: 2 }));
  assert.ok(again.seq > decided.seq, `decided again in slot ${again.seq}`);
  for (const page of others) await until(page, () => window.mem.council().threshold === 2);
});

test("a page killed in the middle of a burst of writes loses none of the beads it had confirmed", { timeout: 120_000 }, async () => {
  const context = await browser.newContext();
  const confirmed = new Set();
  const page = await openPage(context, url);
  let killed;
  const dead = new Promise((resolve) => (killed = resolve));
  await page.exposeFunction("confirmed", (content) => {
    confirmed.add(content);
    // The tenth confirmation kills the page at once: no close(), no flush.
    if (confirmed.size === 10) killed(page.close({ runBeforeUnload: false }));
  });
  const open = (compactEvery) =>
    page.evaluate(async (compactEvery) => {
      const sdk = await import("/pkg/index.js");
      await sdk.initializeChrysalis();
      const { SecurityContext, MemorySystem } = sdk;
      let security;
      try {
        security = await SecurityContext.load("vault-crash", "crash test passphrase");
      } catch {
        security = new SecurityContext();
        await security.persist("vault-crash", "crash test passphrase");
      }
      window.mem = await MemorySystem.open({ security, name: "crash", compactEvery });
    }, compactEvery);
  await open(3); // compaction every 3 entries: the burst crosses several compactions
  // 300 writes in flight at once; each reports when its promise resolved (the bead is durable).
  await page.evaluate(() => {
    for (let i = 0; i < 300; i++) {
      window.mem.remember(`note ${i} written in a burst`).then((bead) => window.confirmed(bead.content));
    }
  });
  await dead; // the page is gone
  const killedAt = new Set(confirmed);
  assert.ok(killedAt.size < 300, `killed after ${killedAt.size} of 300 writes had resolved`);

  const reopened = await openPage(context, url);
  pages.push(reopened);
  await reopened.evaluate(async () => {
    const sdk = await import("/pkg/index.js");
    await sdk.initializeChrysalis();
    const security = await sdk.SecurityContext.load("vault-crash", "crash test passphrase");
    window.mem = await sdk.MemorySystem.open({ security, name: "crash" });
  });
  const after = new Set(await contents(reopened));
  for (const content of killedAt) assert.ok(after.has(content), `confirmed before the crash but lost: ${content}`);
  assert.ok(after.size <= 300);
  await context.close();
});

test("VectorIndex in the page: recall@10 against an exact scan, removal, bytes round trip, typed errors", { timeout: 120_000 }, async () => {
  const page = await newAgentPage();
  const out = await page.evaluate(async () => {
    const { initializeChrysalis, VectorIndex } = await import("/pkg/index.js");
    await initializeChrysalis();
    const dims = 64;
    let seed = 7;
    const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32) - 0.5;
    // 3000 vectors around 30 random centres, and 50 queries around the same centres.
    const centres = Array.from({ length: 30 }, () => Array.from({ length: dims }, random));
    const around = () => {
      const c = centres[Math.floor((random() + 0.5) * centres.length)];
      return Float32Array.from(c, (x) => x + 0.3 * random());
    };
    const data = Array.from({ length: 3000 }, around);
    const queries = Array.from({ length: 50 }, around);
    const cosine = (a, b) => {
      let dot = 0, na = 0, nb = 0;
      for (let i = 0; i < dims; i++) (dot += a[i] * b[i]), (na += a[i] * a[i]), (nb += b[i] * b[i]);
      return dot / Math.sqrt(na * nb);
    };
    const exact = (q, live) => [...live].sort((x, y) => cosine(q, data[y]) - cosine(q, data[x])).slice(0, 10);
    const index = new VectorIndex(dims, { efSearch: 64 });
    const flat = new Float32Array(3000 * dims);
    data.forEach((v, i) => flat.set(v, i * dims));
    index.addMany(Uint32Array.from(data.keys()), flat);
    const recall = (index, live) => {
      let hits = 0;
      for (const q of queries) {
        const found = new Set(index.search(q, 10).keys);
        hits += exact(q, live).filter((k) => found.has(k)).length;
      }
      return hits / (10 * queries.length);
    };
    const live = new Set(data.keys());
    const before = recall(index, live);
    // Remove every third vector: none of them is ever returned again.
    for (let i = 0; i < 3000; i += 3) {
      index.remove(i);
      live.delete(i);
    }
    const afterRemoval = recall(index, live);
    const leaked = queries.some((q) => Array.from(index.search(q, 10).keys).some((k) => k % 3 === 0));
    const copy = VectorIndex.fromBytes(index.toBytes());
    const same = queries.every((q) => String(copy.search(q, 10).keys) === String(index.search(q, 10).keys));
    const top = index.search(data[1], 1);
    const code = (fn) => {
      try {
        fn();
        return null;
      } catch (e) {
        return e.code;
      }
    };
    return {
      before,
      afterRemoval,
      leaked,
      same,
      size: copy.size,
      top: [top.keys[0], Math.round(top.scores[0] * 1000) / 1000],
      errors: [
        code(() => index.add(1, new Float32Array(3))),
        code(() => index.add(1, new Float32Array(dims))),
        code(() => index.search(new Float32Array(3), 1)),
        code(() => index.addMany(new Uint32Array(2), new Float32Array(dims))),
        code(() => VectorIndex.fromBytes(new Uint8Array([1, 2, 3]))),
        code(() => new VectorIndex(0)),
      ],
    };
  });
  assert.ok(out.before >= 0.95, `recall@10 ${out.before}`);
  assert.ok(out.afterRemoval >= 0.95, `recall@10 after removals ${out.afterRemoval}`);
  assert.equal(out.leaked, false, "a removed vector came back");
  assert.equal(out.same, true, "the restored index answers the same");
  assert.equal(out.size, 2000);
  assert.deepEqual(out.top, [1, 1]);
  assert.deepEqual(out.errors, ["EMBEDDING_MISMATCH", "BAD_INPUT", "EMBEDDING_MISMATCH", "BAD_ARGUMENT", "DECODE", "BAD_INPUT"]);
});
