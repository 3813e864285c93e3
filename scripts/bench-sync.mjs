// The replication benchmark: 8 headless-Chromium pages in one room, 1,000 edits (125 unique set
// keys added per page, all pages at once), until every page holds all 1,000. Chrysalis
// (`SyncNode` over the relay in crates/relay) side by side with Yjs (a Y.Map over y-websocket and
// its reference server), each in two modes: every edit its own change, and each page's 125 edits
// batched (Chrysalis: `flushDelayMs: 20`; Yjs: one transaction). Bytes on the wire are WebSocket
// payload bytes counted in the pages (sent + received, all pages), until convergence.
//
// With an earlier build of the package in target/bench-build/before/pkg (`bash
// scripts/bench-before.sh REV` puts one there), it runs as "chrysalis-before" in the same rounds.
//
//   import { runSyncBench } from "./bench-sync.mjs"; const rows = await runSyncBench(browser, url);
import { existsSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { createRequire } from "node:module";
import { build } from "vite";
import { WebSocketServer } from "ws";
import { startRelay } from "./relay.mjs";
import { openPage, ROOT } from "../tests/e2e/browser.mjs";

const PAGES = 8;
const EDITS = 1000;
const ROUNDS = 3;

/** Bundles yjs + y-websocket for the page into target/bench-build/yjs-sync.js. */
export async function buildYjsBundle() {
  const entry = join(ROOT, "target/bench-build/yjs-entry.js");
  const { mkdirSync, writeFileSync } = await import("node:fs");
  mkdirSync(join(ROOT, "target/bench-build"), { recursive: true });
  writeFileSync(entry, 'export * as Y from "yjs";\nexport { WebsocketProvider } from "y-websocket";\n');
  await build({
    configFile: false,
    logLevel: "warn",
    root: ROOT,
    build: {
      lib: { entry, formats: ["es"], fileName: () => "yjs-sync.js" },
      outDir: join(ROOT, "target/bench-build"),
      emptyOutDir: false,
      minify: true,
    },
  });
}

/** y-websocket's reference server (its bin/utils setupWSConnection) on a free loopback port. */
async function startYjsServer() {
  const require = createRequire(import.meta.url);
  const { setupWSConnection } = require("y-websocket/bin/utils");
  const http = createServer((_, res) => res.writeHead(200).end("ok"));
  const wss = new WebSocketServer({ server: http });
  wss.on("connection", (socket, request) => setupWSConnection(socket, request, { gc: true }));
  await new Promise((resolve) => http.listen(0, "127.0.0.1", resolve));
  return {
    url: `ws://127.0.0.1:${http.address().port}`,
    stop: () =>
      new Promise((resolve) => {
        for (const client of wss.clients) client.terminate();
        wss.close();
        http.close(resolve);
      }),
  };
}

/** One run: fresh pages and room; returns time to converge and bytes on the wire. */
async function runOnce(browser, pageUrl, { library, url, batched, round }) {
  const room = `bench-${library}-${batched ? "batched" : "each"}-${round}`;
  const pages = [];
  try {
    for (let i = 0; i < PAGES; i += 1) {
      const page = await openPage(browser, pageUrl);
      await page.waitForFunction(() => window.benchReady === true);
      pages.push(page);
      await page.evaluate((o) => window.setup(o), {
        library,
        url,
        room,
        name: `page-${i}`,
        flushDelayMs: batched ? 20 : 0,
        expected: EDITS,
      });
    }
    for (const page of pages) await page.waitForFunction((n) => window.peerCount() >= n, PAGES - 1, { timeout: 30_000 });
    // Let joining settle, then count only the edits' traffic.
    await new Promise((r) => setTimeout(r, 500));
    const before = await Promise.all(pages.map((p) => p.evaluate(() => ({ ...window.wire }))));
    const starts = await Promise.all(
      pages.map((p, i) => p.evaluate((o) => window.edit(o), { count: EDITS / PAGES, prefix: `p${i}`, batched })),
    );
    for (const page of pages) await page.waitForFunction(() => window.done !== null, null, { timeout: 120_000, polling: 20 });
    const dones = await Promise.all(pages.map((p) => p.evaluate(() => window.done)));
    const after = await Promise.all(pages.map((p) => p.evaluate(() => ({ ...window.wire }))));
    const sizes = await Promise.all(pages.map((p) => p.evaluate(() => window.size())));
    if (sizes.some((s) => s !== EDITS)) throw new Error(`${library}: sizes ${sizes}`);
    const bytes = after.reduce((sum, a, i) => sum + a.sent - before[i].sent + a.received - before[i].received, 0);
    const messages = after.reduce(
      (sum, a, i) => sum + a.messagesSent - before[i].messagesSent + a.messagesReceived - before[i].messagesReceived,
      0,
    );
    for (const page of pages) {
      if (page.problems.length) throw new Error(`${library} page problems: ${page.problems.join("\n")}`);
    }
    return { ms: Math.max(...dones) - Math.min(...starts), bytes, messages };
  } finally {
    for (const page of pages) await page.close();
  }
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/** Runs every case ROUNDS times (interleaved) and returns the median rows. */
export async function runSyncBench(browser, baseUrl) {
  await buildYjsBundle();
  const relay = await startRelay();
  const yjs = await startYjsServer();
  const pageUrl = `${baseUrl}bench/sync.html`;
  const cases = [];
  const before = existsSync(join(ROOT, "target/bench-build/before/pkg/index.js"));
  const libraries = before ? ["chrysalis", "chrysalis-before", "yjs"] : ["chrysalis", "yjs"];
  for (const batched of [false, true]) {
    for (const library of libraries) cases.push({ library, batched, url: library === "yjs" ? yjs.url : relay.url, runs: [] });
  }
  try {
    for (let round = 0; round < ROUNDS; round += 1) {
      for (const c of cases) {
        const run = await runOnce(browser, pageUrl, { ...c, round });
        console.log(`sync ${c.library} ${c.batched ? "batched" : "each edit"} round ${round}: ${run.ms} ms, ${run.bytes} bytes`);
        c.runs.push(run);
      }
    }
  } finally {
    await relay.stop();
    await yjs.stop();
  }
  return cases.map((c) => ({
    library: c.library,
    batched: c.batched,
    ms: median(c.runs.map((r) => r.ms)),
    bytes: median(c.runs.map((r) => r.bytes)),
    messages: median(c.runs.map((r) => r.messages)),
  }));
}

export const SYNC_BENCH = { PAGES, EDITS, ROUNDS };
