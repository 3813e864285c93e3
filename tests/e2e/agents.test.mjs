// Agents on servers and in pages, in one room through a real relay on loopback: a Node.js agent
// (Node 20 with the `ws` package, its memory in a caller-given storage) and headless Chromium
// pages (IndexedDB) run the same wasm runtime.
// - each remembers beads in a `MemorySystem` and recalls the other's;
// - the Node.js agent and two pages form a council and decide a motion.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { getEventListeners } from "node:events";
import { join } from "node:path";
import { WebSocket } from "ws";
import * as sdk from "chrysalis-sdk";
import { DEMO_MOUNTS, startServer } from "../../scripts/serve.mjs";
import { startRelay } from "../../scripts/relay.mjs";
import { ROOT, launchChromium, openPage } from "./browser.mjs";

await sdk.initializeChrysalis({ moduleOrPath: readFileSync(new URL(import.meta.resolve("chrysalis-sdk/chrysalis_wasm_bg.wasm"))) });

let browser;
let server;
let url;
let relay;
const pages = [];
const closers = [];

before(async () => {
  relay = await startRelay();
  ({ server, url } = await startServer({ mounts: { ...DEMO_MOUNTS, "/": join(ROOT, "tests/e2e/pages") } }));
  browser = await launchChromium();
});

after(async () => {
  for (const close of closers) await close();
  for (const page of pages) assert.deepEqual(page.problems.filter((p) => !p.includes("WebSocket")), [], "no console errors");
  await browser?.close();
  server?.close();
  await relay?.stop();
});

/** Polls `check` until it holds (or fails after `ms`). */
async function until(check, what, ms = 30_000) {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 100))) if (await check()) return;
  assert.fail(`timed out: ${what}`);
}

/** A Node.js agent in `room`: its SyncNode over the `ws` package and its memory in a Map-backed storage. */
async function nodeAgent(room, council) {
  const identity = sdk.SigningKey.generate();
  const sync = await sdk.SyncNode.join({ room, identity, relayUrl: relay.url, WebSocket, antiEntropyIntervalMs: 300 });
  const disk = { journal: [] };
  const storage = {
    load: () => ({ ...disk, journal: [...disk.journal] }),
    write: ({ kind, entries, bytes }) => {
      if (kind === "append") disk.journal.push(...entries.map((e) => e.slice()));
      else if (kind === "snapshot") Object.assign(disk, { snapshot: bytes.slice(), journal: [] });
      else disk.council = bytes.slice();
    },
  };
  const memory = await sdk.MemorySystem.open({ sync, name: "memory", storage, council: council?.(sync.id) });
  closers.push(async () => (await memory.close(), sync.close()));
  return { sync, memory, disk };
}

/** A page agent in `room` (`window.mem`, `window.sync`); `members` is the council (or none). */
async function pageAgent(room, council) {
  const page = await openPage(browser, url);
  pages.push(page);
  const id = await page.evaluate(
    async ({ relayUrl, room }) => {
      const sdk = await import("/pkg/index.js");
      await sdk.initializeChrysalis();
      window.sdk = sdk;
      const identity = sdk.SigningKey.generate();
      window.sync = await sdk.SyncNode.join({ room, identity, relayUrl, antiEntropyIntervalMs: 300 });
      return window.sync.id;
    },
    { relayUrl: relay.url, room },
  );
  const open = (members) =>
    page.evaluate(async (council) => {
      const security = new window.sdk.SecurityContext();
      window.mem = await window.sdk.MemorySystem.open({ security, sync: window.sync, name: "memory", database: `memory-${window.sync.id}`, council });
      window.rounds = [];
      window.mem.on("agreement", (round) => {
        window.rounds.push(round);
        if (round.type === "requested") window.mem.endorse(round.id).catch(() => {});
      });
    }, members);
  if (!council) await open(undefined);
  return { page, id, open };
}

test("a Node.js agent and a page remember in one room through the relay and recall each other's beads", { timeout: 120_000 }, async () => {
  const room = "agents-memory";
  const server = await nodeAgent(room);
  const { page } = await pageAgent(room);
  await until(() => server.sync.peers().length === 1, "the Node.js agent sees the page");
  await server.memory.remember("The nightly backup runs on the storage server at two.", { kind: "fact", tags: ["ops"] });
  await page.evaluate(() => window.mem.remember("Dana prefers green tea with her breakfast.", { kind: "habit" }));
  await until(() => server.memory.beads().length === 2, "the page's bead reached the Node.js agent");
  await until(() => page.evaluate(() => window.mem.beads().length === 2), "the Node.js agent's bead reached the page");
  const [fromPage] = await server.memory.recall("green tea breakfast", { k: 1 });
  assert.equal(fromPage.bead.content, "Dana prefers green tea with her breakfast.");
  assert.equal(fromPage.bead.author, await page.evaluate(() => window.mem.publicKey));
  const [fromNode] = await page.evaluate(() => window.mem.recall("nightly backup storage", { k: 1 }));
  assert.equal(fromNode.bead.content, "The nightly backup runs on the storage server at two.");
  assert.equal(fromNode.bead.author, server.memory.publicKey);
  // The Node.js agent's storage holds its own bead and the page's, durable before acknowledged.
  assert.equal(server.disk.journal.length, 2);
  assert.equal(server.memory.stats().writes, 0);
});

test("a Node.js agent and two pages form a council and decide a motion", { timeout: 120_000 }, async () => {
  const room = "agents-council";
  const pagesIn = [await pageAgent(room, true), await pageAgent(room, true)];
  const server = await nodeAgent(room, (id) => ({ members: [id, ...pagesIn.map((p) => p.id)], threshold: 2 }));
  const members = server.memory.council().members;
  for (const p of pagesIn) await p.open({ members, threshold: 2 });
  await until(() => server.sync.peers().length === 2, "the Node.js agent sees both pages");
  for (const p of pagesIn) await until(() => p.page.evaluate(() => window.sync.peers().length === 2), "each page sees the others");
  const rounds = [];
  server.memory.on("agreement", (round) => rounds.push(round));
  // The Node.js agent proposes; the pages endorse when asked (two endorsements at threshold 2).
  const decided = await server.memory.propose({ type: "set-threshold", threshold: 3 });
  assert.equal(decided.seq, 1);
  assert.deepEqual(decided.motion, { type: "set-threshold", threshold: 3 });
  assert.equal(server.memory.council().threshold, 3);
  for (const p of pagesIn) await until(() => p.page.evaluate(() => window.mem.council().threshold === 3), "each page applied the motion");
  const round = rounds.find((r) => r.type === "decided");
  assert.ok(round.endorsers.length >= 2, `endorsed by ${round.endorsers.length}`);
  for (const endorser of round.endorsers) assert.ok(members.includes(endorser));
});

test("a Node.js agent whose storage fails stops that memory: waiting and later changes reject, nothing after is written", async () => {
  const writes = [];
  let failing = false;
  const storage = {
    load: () => ({ journal: [] }),
    write: async (write) => {
      if (failing) throw Object.assign(new Error("the disk is full"), { code: "QUOTA_EXCEEDED" });
      writes.push(write.kind);
    },
  };
  const memory = await sdk.MemorySystem.open({ name: "failing", storage, persist: false });
  const errors = [];
  memory.on("storage-error", (detail) => errors.push(detail));
  await memory.remember("Written before the disk filled up.");
  const written = writes.length;
  failing = true;
  const outcomes = await Promise.allSettled(["one", "two", "three"].map((text) => memory.remember(`Lost ${text}.`)));
  assert.deepEqual(outcomes.map((o) => o.reason?.code), ["STORAGE_FAILED", "STORAGE_FAILED", "STORAGE_FAILED"]);
  assert.deepEqual(errors, [{ memory: "failing", code: "QUOTA_EXCEEDED", message: "the disk is full" }]);
  failing = false;
  await assert.rejects(memory.remember("Refused until reopened."), { code: "STORAGE_FAILED" });
  await memory.close();
  assert.equal(writes.length, written, "no write was carried out after the failure");
});

test("a memory the engine refuses to open (a council that names no key) leaves nothing subscribed on its sync node", async () => {
  const sync = new sdk.SyncNode({ room: "refused-councils", identity: sdk.SigningKey.generate() });
  const listening = () => ["memory-change", "saved", "storage-error", "council"].map((type) => getEventListeners(sync, type).length);
  let closed = 0;
  const storage = { load: () => ({ journal: [] }), write: () => undefined, close: () => (closed += 1) };
  for (let i = 0; i < 3; i++) {
    await assert.rejects(sdk.MemorySystem.open({ sync, storage, council: { members: ["not a key", sync.id], threshold: 1 } }), { code: "BAD_ARGUMENT" });
  }
  assert.deepEqual(listening(), [0, 0, 0, 0], "refused openings leave no listener");
  assert.equal(closed, 3, "and close the storage they were given");
  const memory = await sdk.MemorySystem.open({ sync, storage });
  assert.deepEqual(listening(), [1, 1, 1, 1]);
  await memory.close();
  sync.close();
});
