// Replication in real headless-Chromium pages through the package's `SyncNode`:
// - three pages join one room through a real relay process on loopback and converge on counter,
//   OR-Set and register edits (and a page that joins late catches up);
// - two pages open a WebRTC data channel (signalling through the relay); the relay is stopped
//   and edits still replicate peer to peer;
// - two tabs replicate over a BroadcastChannel with no relay at all;
// - a hostile page's forged and replayed frames are dropped and counted, and honest pages still
//   converge.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startServer } from "../../scripts/serve.mjs";
import { startRelay } from "../../scripts/relay.mjs";
import { ROOT, launchChromium, openSdkPage } from "./browser.mjs";

let browser;
let server;
let url;
const pages = [];

before(async () => {
  ({ server, url } = await startServer({ mounts: { "/pkg/": join(ROOT, "pkg"), "/": join(ROOT, "tests/e2e/pages") } }));
  browser = await launchChromium();
});

after(async () => {
  for (const page of pages) assert.deepEqual(page.problems.filter((p) => !p.includes("WebSocket")), [], "no console errors");
  await browser?.close();
  server?.close();
});

/** A page with the SDK loaded and a replica of three CRDTs: `window.agent`. */
async function agentPage(context = browser) {
  const page = await openSdkPage(context, url);
  pages.push(page);
  return page;
}

/**
 * Joins `room` in `page` with `options` (relayUrl, webrtc, broadcastChannel) and shares a
 * PNCounter, an ORSet and an LWWRegister; the page's `window.agent.edit(kind, value)` edits and
 * pushes, `window.agent.state()` reads.
 */
function joinRoom(page, name, options) {
  return page.evaluate(
    async ({ name, options }) => {
      const { SyncNode, SigningKey, PNCounter, ORSet, LWWRegister } = window.sdk;
      const identity = SigningKey.generate();
      const node = await SyncNode.join({ ...options, identity, antiEntropyIntervalMs: 300 });
      const docs = {
        counter: node.share("counter", new PNCounter(name)),
        set: node.share("set", new ORSet(name)),
        register: node.share("register", new LWWRegister(name)),
      };
      // Shared natively: the room joins deltas into the CRDTs' state without calling back into
      // these objects, so methods that throw here must change nothing.
      for (const doc of Object.values(docs)) {
        for (const method of ["versionVector", "deltaSince", "applyDelta"]) {
          doc[method] = () => {
            throw new Error(`the room called ${method}() through JS`);
          };
        }
      }
      const events = [];
      for (const type of ["change", "peer-joined", "peer-left", "connection-state"]) {
        node.on(type, (detail) => events.push({ type, ...detail }));
      }
      window.agent = {
        node,
        docs,
        events,
        edit(kind, value) {
          const delta =
            kind === "counter"
              ? value >= 0
                ? docs.counter.increment(value)
                : docs.counter.decrement(-value)
              : kind === "set"
                ? docs.set.add(value)
                : docs.register.set(value);
          node.change(kind, delta);
        },
        state: () => ({
          counter: Number(docs.counter.value),
          set: [...docs.set.values()].sort(),
          register: docs.register.get() ?? null,
        }),
      };
      return node.id;
    },
    { name, options },
  );
}

const state = (page) => page.evaluate(() => window.agent.state());

/** Waits until every page's state deep-equals `expected` (or times out with the last states). */
async function converge(group, expected, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  let states;
  while (Date.now() < deadline) {
    states = await Promise.all(group.map(state));
    if (states.every((s) => JSON.stringify(s) === JSON.stringify(expected))) return Date.now();
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`no convergence: ${JSON.stringify(states)} expected ${JSON.stringify(expected)}`);
}

async function waitFor(page, predicate, arg, timeoutMs = 20_000) {
  await page.waitForFunction(predicate, arg, { timeout: timeoutMs, polling: 50 });
}

test("three pages converge through a real relay; a late page catches up", async () => {
  const relay = await startRelay();
  try {
    const group = [await agentPage(), await agentPage(), await agentPage()];
    const options = { room: "three", relayUrl: relay.url };
    for (const [i, page] of group.entries()) await joinRoom(page, `agent-${i}`, options);
    for (const page of group) await waitFor(page, () => window.agent.node.peers().length === 2);
    await group[0].evaluate(() => {
      window.agent.edit("counter", 5);
      window.agent.edit("set", "from page 0");
    });
    await group[1].evaluate(() => {
      window.agent.edit("counter", -2);
      window.agent.edit("set", "from page 1");
      window.agent.edit("register", "written by page 1");
    });
    await group[2].evaluate(() => window.agent.edit("set", "from page 2"));
    const expected = {
      counter: 3,
      set: ["from page 0", "from page 1", "from page 2"],
      register: "written by page 1",
    };
    await converge(group, expected);
    // Each page heard the others' changes as events, over the relay.
    for (const page of group) {
      const info = await page.evaluate(() => ({
        changes: window.agent.events.filter((e) => e.type === "change").length,
        via: window.agent.node.peers().map((p) => p.via.join()),
        stats: window.agent.node.stats(),
      }));
      assert.ok(info.changes >= 2, JSON.stringify(info));
      assert.deepEqual(info.via, ["relay", "relay"]);
      assert.ok(info.stats.transports.relay.framesReceived > 0);
      assert.equal(info.stats.dropped - (info.stats.drops.REPLAYED ?? 0), 0, JSON.stringify(info.stats.drops));
    }
    // A page that joins late gets everything by anti-entropy.
    const late = await agentPage();
    await joinRoom(late, "agent-late", options);
    await converge([late, ...group], expected);
    const health = await (await fetch(`${relay.httpUrl}/health`)).json();
    assert.equal(health.connections, 4);
    assert.ok(health.framesForwarded > 0);
  } finally {
    await relay.stop();
  }
});

test("two pages keep replicating over WebRTC after the relay stops", async () => {
  const relay = await startRelay();
  const group = [await agentPage(), await agentPage()];
  const options = { room: "direct", relayUrl: relay.url, webrtc: true };
  const ids = [];
  for (const [i, page] of group.entries()) ids.push(await joinRoom(page, `rtc-${i}`, options));
  for (const page of group) {
    await waitFor(page, () => window.agent.node.peers().some((p) => p.via.includes("webrtc")));
  }
  await group[0].evaluate(() => window.agent.edit("set", "before the relay stopped"));
  await converge(group, { counter: 0, set: ["before the relay stopped"], register: null });
  await relay.stop();
  for (const page of group) {
    await waitFor(page, () => window.agent.node.stats().relay !== "open");
  }
  await group[0].evaluate(() => window.agent.edit("set", "after, peer to peer"));
  await group[1].evaluate(() => {
    window.agent.edit("counter", 7);
    window.agent.edit("register", "direct");
  });
  await converge(group, { counter: 7, set: ["after, peer to peer", "before the relay stopped"], register: "direct" });
  const traffic = await group[1].evaluate(() => window.agent.node.stats().transports);
  assert.ok(traffic.webrtc.framesReceived > 0 && traffic.webrtc.framesSent > 0, JSON.stringify(traffic));
  for (const page of group) await page.evaluate(() => window.agent.node.close());
});

test("two tabs replicate over a BroadcastChannel with no relay", async () => {
  const context = await browser.newContext();
  try {
    const tabs = [await agentPage(context), await agentPage(context)];
    for (const [i, tab] of tabs.entries()) await joinRoom(tab, `tab-${i}`, { room: "tabs", broadcastChannel: true });
    for (const tab of tabs) await waitFor(tab, () => window.agent.node.peers().length === 1);
    await tabs[0].evaluate(() => window.agent.edit("set", "tab 0"));
    await tabs[1].evaluate(() => {
      window.agent.edit("set", "tab 1");
      window.agent.edit("counter", 2);
    });
    await converge(tabs, { counter: 2, set: ["tab 0", "tab 1"], register: null });
    const via = await tabs[0].evaluate(() => window.agent.node.peers()[0].via);
    assert.deepEqual(via, ["broadcast"]);
    // A tab that closes is gone for the other.
    await tabs[1].evaluate(() => window.agent.node.close());
    await waitFor(tabs[0], () => window.agent.node.peers().length === 0);
  } finally {
    await context.close();
  }
});

test("a hostile script of the origin cannot say goodbye for a tab, replay its hello or get it banned", async () => {
  const context = await browser.newContext();
  try {
    const tabs = [await agentPage(context), await agentPage(context)];
    for (const [i, tab] of tabs.entries()) await joinRoom(tab, `tab-${i}`, { room: "tabs-hostile", broadcastChannel: true });
    for (const tab of tabs) await waitFor(tab, () => window.agent.node.peers().length === 1);
    const victim = await tabs[1].evaluate(() => window.agent.node.id);
    // A third page of the origin records the channel, then attacks: a goodbye in the victim's
    // name (its signed hellos relabelled, or unsigned), replayed hellos, 50 invented peers, the
    // victim's frames replayed, and frames forged in the victim's name.
    const hostile = await agentPage(context);
    await hostile.evaluate(
      async ({ victim }) => {
        // Messages are `kind ‖ from(32) ‖ body`: 0 hello, 1 goodbye (signed presence frames),
        // 2 a frame for every tab, 3 a frame for one tab (`peer(32) ‖ frame`).
        const channel = new BroadcastChannel("chrysalis-sync/v6:tabs-hostile");
        const heard = [];
        channel.onmessage = ({ data }) => data instanceof Uint8Array && heard.push(data);
        await new Promise((r) => setTimeout(r, 2500));
        const unhex = (t) => Uint8Array.from(t.match(/../g), (h) => parseInt(h, 16));
        const envelope = (kind, body) => Uint8Array.of(kind, ...body);
        // A goodbye in the victim's name: its own signed hellos relabelled as goodbyes, an
        // unsigned body naming it, and its hellos replayed.
        for (const m of heard.filter((m) => m[0] === 0)) {
          channel.postMessage(envelope(1, m.subarray(1)));
          channel.postMessage(m);
        }
        channel.postMessage(envelope(1, unhex(victim)));
        // 50 invented peers, the victim's frames replayed, and frames forged in its name.
        for (let i = 0; i < 50; i++) channel.postMessage(envelope(0, unhex(`${i}`.padStart(64, "0"))));
        for (const m of heard.filter((m) => m[0] === 2 || m[0] === 3)) channel.postMessage(m);
        for (let i = 0; i < 200; i++) {
          const forged = new Uint8Array(10 + 64); // version ‖ kind ‖ seq(8) ‖ signature
          forged[0] = 6; // the frame version
          forged[1] = 5;
          forged[2] = i;
          forged[9] = 0x7f; // a sequence number far above the victim's
          channel.postMessage(envelope(2, [...unhex(victim), ...forged]));
        }
      },
      { victim },
    );
    // The victim is still a peer in good standing, and the tabs still replicate.
    await tabs[0].evaluate(() => window.agent.edit("set", "after the attack"));
    await converge(tabs, { counter: 0, set: ["after the attack"], register: null });
    const seen = await tabs[0].evaluate(() => ({ peers: window.agent.node.peers(), drops: window.agent.node.stats().drops }));
    assert.equal(seen.peers.length, 1, "no invented peer, and the victim stays");
    assert.equal(seen.peers[0].id, victim);
    assert.ok(seen.peers[0].score >= 0, `the victim's score ${seen.peers[0].score}`);
    assert.ok((seen.drops.BAD_SIGNATURE ?? 0) >= 200, JSON.stringify(seen.drops));
  } finally {
    await context.close();
  }
});

test("forged and replayed frames from a hostile page are dropped; honest pages converge", async () => {
  const relay = await startRelay();
  try {
    const group = [await agentPage(), await agentPage()];
    const options = { room: "hostile", relayUrl: relay.url };
    const ids = [];
    for (const [i, page] of group.entries()) ids.push(await joinRoom(page, `honest-${i}`, options));
    for (const page of group) await waitFor(page, () => window.agent.node.peers().length === 1);
    // The hostile page speaks the relay protocol by hand with its own valid identity: it
    // captures page 0's frames and replays them, flips signature bits, and sends garbage.
    const hostile = await agentPage();
    await hostile.evaluate(
      async ({ relayUrl, victim }) => {
        const { SigningKey } = window.sdk;
        const key = SigningKey.generate();
        const hex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
        const unhex = (t) => Uint8Array.from(t.match(/../g), (h) => parseInt(h, 16));
        const socket = new WebSocket(relayUrl);
        socket.binaryType = "arraybuffer";
        window.captured = [];
        let to; // the victim's handle in the room (one byte: the room is small)
        await new Promise((resolve) => {
          socket.onmessage = ({ data }) => {
            if (typeof data !== "string") {
              window.captured.push(new Uint8Array(data).slice(1)); // `handle ‖ frame`
              return;
            }
            const m = JSON.parse(data);
            if (m.type === "challenge") {
              const msg = new Uint8Array([...new TextEncoder().encode("chrysalis-relay auth v1"), ...unhex(m.nonce), ...new TextEncoder().encode("hostile")]);
              socket.send(JSON.stringify({ type: "auth", version: 2, room: "hostile", peer: hex(key.publicKey()), signature: hex(key.sign(msg)) }));
            }
            if (m.type === "welcome") {
              to = m.peers.find((p) => p.peer === victim).handle;
              resolve();
            }
          };
        });
        window.attack = () => {
          const send = (frame) => socket.send(new Uint8Array([1, to, ...frame]));
          for (const frame of window.captured) {
            send(frame); // another peer's frame, relayed as the hostile page's: it does not verify under its key
            const flipped = frame.slice();
            flipped[flipped.length - 1] ^= 1;
            send(flipped); // BAD_SIGNATURE
          }
          send(new Uint8Array(300).fill(7)); // garbage
        };
      },
      { relayUrl: relay.url, victim: ids[1] },
    );
    await group[0].evaluate(() => window.agent.edit("set", "honest"));
    await converge(group, { counter: 0, set: ["honest"], register: null });
    await waitFor(hostile, () => window.captured.length > 0);
    await hostile.evaluate(() => window.attack());
    await waitFor(group[1], () => (window.agent.node.stats().drops.BAD_SIGNATURE ?? 0) > 0);
    await group[0].evaluate(() => window.agent.edit("set", "still honest"));
    await converge(group, { counter: 0, set: ["honest", "still honest"], register: null });
    // A frame counts only under the key of the peer the relay names: page 0's frames sent as
    // the hostile page's do not verify, and nothing the hostile page sent cost page 0 a point.
    const seen = await group[1].evaluate(() => ({ drops: window.agent.node.stats().drops, peers: window.agent.node.peers() }));
    assert.ok(seen.drops.BAD_SIGNATURE > 0, JSON.stringify(seen.drops));
    const honest = seen.peers.find((p) => p.id === ids[0]);
    assert.ok(honest && honest.score >= 0, JSON.stringify(seen.peers));
  } finally {
    await relay.stop();
  }
});
