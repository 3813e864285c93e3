// Relays in real headless-Chromium pages and Node.js, through the package's `SyncNode`:
// - three relays on one Redis: pages and Node.js agents spread over them converge; one relay is
//   SIGKILLed mid-run and its peers move to the others and converge;
// - pages given several relay URLs move to another when theirs is killed, and converge;
// - a room that requires a capability: tokens issued with `issueCapability`, a read-only page
//   catches up but its writes reach nobody, an expired token is refused with its code.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startServer } from "../../scripts/serve.mjs";
import { readFileSync } from "node:fs";
import { WebSocket } from "ws";
import * as sdk from "chrysalis-sdk";
import { startRelay } from "../../scripts/relay.mjs";
import { startRedis } from "../../scripts/redis.mjs";
import { ROOT, launchChromium, openSdkPage } from "./browser.mjs";

await sdk.initializeChrysalis({ moduleOrPath: readFileSync(new URL(import.meta.resolve("chrysalis-sdk/chrysalis_wasm_bg.wasm"))) });

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

/** A page with the SDK loaded (`window.sdk`). */
async function sdkPage() {
  const page = await openSdkPage(browser, url);
  pages.push(page);
  return page;
}

/**
 * Joins a room in `page` with `options` (seeded identity `seed`, relayUrl, capability) and
 * shares an ORSet "set": `window.agent.add(value)`, `window.agent.values()`, `window.agent.events`.
 * Returns the node's id.
 */
function joinRoom(page, seed, options) {
  return page.evaluate(
    async ({ seed, options }) => {
      const { SyncNode, SigningKey, ORSet } = window.sdk;
      const identity = SigningKey.fromSeed(new Uint8Array(32).fill(seed));
      const node = await SyncNode.join({ ...options, identity, antiEntropyIntervalMs: 300 });
      const set = node.share("set", new ORSet(`agent-${seed}`));
      const events = [];
      node.on("connection-state", (detail) => events.push(detail));
      window.agent = {
        node,
        events,
        add: (value) => node.change("set", set.add(value)),
        values: () => [...set.values()].sort(),
      };
      return node.id;
    },
    { seed, options },
  );
}

const values = (page) => page.evaluate(() => window.agent.values());

async function converge(group, expected, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  let states;
  while (Date.now() < deadline) {
    states = await Promise.all(group.map(values));
    if (states.every((s) => JSON.stringify(s) === JSON.stringify(expected))) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(`no convergence: ${JSON.stringify(states)} expected ${JSON.stringify(expected)}`);
}

const relayUrl = (page) => page.evaluate(() => window.agent.node.stats().relayUrl);

/** A Node.js agent like the pages' (`agent.add`, `agent.values()`, `agent.node`). */
async function nodeAgent(seed, options) {
  const identity = sdk.SigningKey.fromSeed(new Uint8Array(32).fill(seed));
  const node = await sdk.SyncNode.join({ ...options, identity, WebSocket, antiEntropyIntervalMs: 300 });
  const set = node.share("set", new sdk.ORSet(`agent-${seed}`));
  return { node, add: (value) => node.change("set", set.add(value)), values: () => [...set.values()].sort() };
}

/** Waits until `read()` is true (polling), or fails with `what`. */
async function until(read, what, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await read()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail(what);
}

test("pages and Node.js agents spread over three relays on one Redis converge, and again after one relay is killed", async () => {
  const redis = await startRedis();
  const relays = [];
  const agents = [];
  try {
    for (let i = 0; i < 3; i++) relays.push(await startRelay({ args: ["--redis", redis.url] }));
    const urls = relays.map((r) => r.url);
    // Each agent lists the relays in another order; each starts at one drawn at random.
    const order = (i) => [...urls.slice(i % 3), ...urls.slice(0, i % 3)];
    const pagesIn = [await sdkPage(), await sdkPage()];
    for (const [i, page] of pagesIn.entries()) await joinRoom(page, 31 + i, { room: "cluster", relayUrl: order(i) });
    for (let i = 0; i < 2; i++) agents.push(await nodeAgent(41 + i, { room: "cluster", relayUrl: order(i + 2) }));
    const readers = [...pagesIn.map((page) => () => values(page)), ...agents.map((agent) => async () => agent.values())];
    const peersOf = [...pagesIn.map((page) => () => page.evaluate(() => window.agent.node.peers().length)), ...agents.map((agent) => async () => agent.node.peers().length)];
    await until(async () => (await Promise.all(peersOf.map((read) => read()))).every((n) => n === 3), "every agent sees the three others");
    for (const [i, page] of pagesIn.entries()) await page.evaluate((i) => window.agent.add(`page ${i}`), i);
    agents.forEach((agent, i) => agent.add(`node ${i}`));
    const everything = ["node 0", "node 1", "page 0", "page 1"];
    const converged = async (expected) => (await Promise.all(readers.map((read) => read()))).every((v) => JSON.stringify(v) === JSON.stringify(expected));
    await until(() => converged(everything), "convergence over three relays");
    const health = await Promise.all(relays.map(async (r) => (await fetch(`${r.httpUrl}/health`)).json()));
    assert.ok(health.every((h) => h.redis === "up"), JSON.stringify(health));
    assert.equal(health.reduce((n, h) => n + h.connections, 0), 4);

    // Kill (SIGKILL) the relay that holds the most agents; they move to the others.
    const where = [...(await Promise.all(pagesIn.map(relayUrl))), ...agents.map((a) => a.node.stats().relayUrl)];
    const victim = urls.reduce((best, u) => (where.filter((w) => w === u).length > where.filter((w) => w === best).length ? u : best));
    relays[urls.indexOf(victim)].process.kill("SIGKILL");
    await until(async () => {
      const now = [...(await Promise.all(pagesIn.map((p) => p.evaluate(() => window.agent.node.stats())))), ...agents.map((a) => a.node.stats())];
      return now.every((s) => s.relay === "open" && s.relayUrl !== victim);
    }, "every agent on a live relay");
    for (const [i, page] of pagesIn.entries()) await page.evaluate((i) => window.agent.add(`page ${i} after`), i);
    agents.forEach((agent, i) => agent.add(`node ${i} after`));
    const after = [...everything, "node 0 after", "node 1 after", "page 0 after", "page 1 after"].sort();
    await until(() => converged(after), "convergence after the kill");
  } finally {
    for (const agent of agents) agent.node.close();
    for (const relay of relays) await relay.stop();
    await redis.stop();
  }
});

test("an agent that wrote alone and left is caught up from the archive by a page that joins later", async () => {
  const redis = await startRedis();
  const relays = [];
  let writer;
  try {
    for (let i = 0; i < 2; i++) relays.push(await startRelay({ args: ["--redis", redis.url, "--archive"] }));
    // A Node.js agent alone in the room writes and leaves.
    writer = await nodeAgent(51, { room: "archived", relayUrl: relays[0].url });
    await until(async () => writer.node.stats().relay === "open", "the writer is connected");
    writer.add("written alone");
    writer.add("and again"); // one push: changes of one task go out together
    await until(async () => (await (await fetch(`${relays[0].httpUrl}/health`)).json()).archived >= 1, "the push is archived");
    writer.node.close();
    // A page joins the empty room through the other relay: the archive catches it up.
    const page = await sdkPage();
    await joinRoom(page, 52, { room: "archived", relayUrl: relays[1].url });
    await converge([page], ["and again", "written alone"]);
    const stats = await page.evaluate(() => window.agent.node.stats());
    assert.ok(stats.archivedApplied >= 1, JSON.stringify(stats));
    assert.equal(await page.evaluate(() => window.agent.node.peers().length), 0, "nobody else is there");
  } finally {
    writer?.node.close();
    for (const relay of relays) await relay.stop();
    await redis.stop();
  }
});

test("pages with several relays move to another when theirs is killed, and converge", async () => {
  const relays = [await startRelay(), await startRelay()];
  try {
    // Every page lists both and starts on one drawn at random; without Redis the two relays
    // do not share rooms, so pages replicate only once they are all on one.
    const urls = relays.map((r) => r.url);
    const group = [await sdkPage(), await sdkPage(), await sdkPage()];
    for (const [i, page] of group.entries()) await joinRoom(page, 11 + i, { room: "failover", relayUrl: urls });
    for (const page of group) await page.waitForFunction(() => window.agent.node.stats().relay === "open", null, { timeout: 20_000, polling: 50 });
    const before = await Promise.all(group.map(relayUrl));
    for (const u of before) assert.ok(urls.includes(u), u);
    // Kill the relay that holds the most pages (two or three of them); they must move.
    const victim = urls.find((u) => before.filter((b) => b === u).length >= 2);
    const survivor = urls.find((u) => u !== victim);
    relays[urls.indexOf(victim)].process.kill("SIGKILL");
    for (const page of group) {
      await page.waitForFunction((u) => window.agent.node.stats().relay === "open" && window.agent.node.stats().relayUrl === u, survivor, {
        timeout: 20_000,
        polling: 50,
      });
    }
    for (const [i, page] of group.entries()) await page.evaluate((i) => window.agent.add(`after the kill ${i}`), i);
    await converge(group, ["after the kill 0", "after the kill 1", "after the kill 2"]);
    const states = await Promise.all(group.map((p) => p.evaluate(() => window.agent.events.filter((e) => e.transport === "relay").map((e) => e.state))));
    for (const [i, page] of states.entries()) assert.equal(page.includes("reconnecting"), before[i] === victim, JSON.stringify(page));
  } finally {
    for (const relay of relays) await relay.stop();
  }
});

test("a room that requires a capability, over two relays on Redis: a read-only page catches up, its writes reach nobody, an expired token is refused", async () => {
  const issuerPage = await sdkPage();
  const now = Math.floor(Date.now() / 1000);
  // The application's server side: an issuer key, and one token per peer.
  const { issuer, tokens } = await issuerPage.evaluate((now) => {
    const { SigningKey, issueCapability } = window.sdk;
    const issuer = SigningKey.fromSeed(new Uint8Array(32).fill(100));
    const peer = (seed) => [...SigningKey.fromSeed(new Uint8Array(32).fill(seed)).publicKey()].map((b) => b.toString(16).padStart(2, "0")).join("");
    const token = (seed, access, expiresAt) => issueCapability(issuer, { room: "team-a", peer: peer(seed), access, expiresAt });
    let badAccess;
    try {
      token(21, "admin", now + 60);
    } catch (error) {
      badAccess = error.code;
    }
    return {
      issuer: [...issuer.publicKey()].map((b) => b.toString(16).padStart(2, "0")).join(""),
      tokens: { writer: token(21, "write", now + 600), reader: token(22, "read", now + 600), expired: token(23, "write", now - 1), badAccess },
    };
  }, now);
  assert.equal(tokens.badAccess, "BAD_ARGUMENT");
  const redis = await startRedis();
  const relays = [];
  try {
    // The writer on one relay, the reader on the other: the refusal holds across Redis.
    for (let i = 0; i < 2; i++) relays.push(await startRelay({ args: ["--redis", redis.url, "--trust-issuer", issuer, "--capability-rooms", "team-"] }));
    const [relay, other] = relays;
    const [writer, reader, expired, none] = [await sdkPage(), await sdkPage(), await sdkPage(), await sdkPage()];
    const options = { room: "team-a", relayUrl: relay.url };
    await joinRoom(writer, 21, { ...options, capability: tokens.writer });
    await joinRoom(reader, 22, { ...options, relayUrl: other.url, capability: tokens.reader });
    await joinRoom(expired, 23, { ...options, capability: tokens.expired });
    await joinRoom(none, 24, options);
    for (const [page, code] of [
      [expired, "CAPABILITY_EXPIRED"],
      [none, "CAPABILITY_REQUIRED"],
    ]) {
      await page.waitForFunction((code) => window.agent.events.some((e) => e.state === "error" && e.code === code), code, { timeout: 20_000, polling: 50 }).catch(async (e) => assert.fail(JSON.stringify(await page.evaluate(() => window.agent.events))));
    }
    await writer.evaluate(() => window.agent.add("from the writer"));
    await converge([writer, reader], ["from the writer"]);
    assert.equal(await reader.evaluate(() => window.agent.node.stats().mayWrite), false);
    assert.equal(await writer.evaluate(() => window.agent.node.stats().mayWrite), true);
    await reader.evaluate(() => window.agent.add("from the reader"));
    // Several anti-entropy rounds (300 ms) later, the writer still has only its own.
    await new Promise((r) => setTimeout(r, 3000));
    assert.deepEqual(await values(reader), ["from the reader", "from the writer"]);
    assert.deepEqual(await values(writer), ["from the writer"]);
    // The writer still hears the reader catching up (its digests pass).
    const heard = await writer.evaluate(() => window.agent.node.peers().length);
    assert.equal(heard, 1);
    const health = await (await fetch(`${relay.httpUrl}/health`)).json();
    assert.equal(health.connections, 1, JSON.stringify(health)); // the writer; the refused hold none
    assert.equal((await (await fetch(`${other.httpUrl}/health`)).json()).connections, 1); // the reader
    assert.ok(health.refused.CAPABILITY_EXPIRED >= 1 && health.refused.CAPABILITY_REQUIRED >= 1, JSON.stringify(health.refused));
  } finally {
    for (const relay of relays) await relay.stop();
    await redis.stop();
  }
});
