// Relays in real headless-Chromium pages and Node.js, through the package's `SyncNode`:
// - pages given several relay URLs move to another when theirs is killed, and converge;
// - a room that requires a capability: tokens issued with `issueCapability`, a read-only page
//   catches up but its writes reach nobody, an expired token is refused with its code.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startServer } from "../../scripts/serve.mjs";
import { startRelay } from "../../scripts/relay.mjs";
import { ROOT, launchChromium, openPage } from "./browser.mjs";

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
  const page = await openPage(browser, url);
  pages.push(page);
  await page.evaluate(async () => {
    const sdk = await import("/pkg/index.js");
    await sdk.initializeChrysalis();
    window.sdk = sdk;
  });
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

test("a room that requires a capability: a read-only page catches up, its writes reach nobody, an expired token is refused", async () => {
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
  const relay = await startRelay({ args: ["--trust-issuer", issuer, "--capability-rooms", "team-"] });
  try {
    const [writer, reader, expired, none] = [await sdkPage(), await sdkPage(), await sdkPage(), await sdkPage()];
    const options = { room: "team-a", relayUrl: relay.url };
    await joinRoom(writer, 21, { ...options, capability: tokens.writer });
    await joinRoom(reader, 22, { ...options, capability: tokens.reader });
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
    assert.equal(health.connections, 2, JSON.stringify(health));
    assert.ok(health.refused.CAPABILITY_EXPIRED >= 1 && health.refused.CAPABILITY_REQUIRED >= 1, JSON.stringify(health.refused));
  } finally {
    await relay.stop();
  }
});
