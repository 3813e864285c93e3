// The replication benchmark: headless-Chromium pages in one room add unique set keys (all pages
// at once) until every page holds them all. Chrysalis (`SyncNode` over the relay in
// crates/relay, or over WebRTC data channels with the relay for signalling) side by side with
// Yjs (a Y.Map over y-websocket and its reference server). Cases: 8 pages and 1,000 edits with
// every edit its own change made in one task ("each"), every edit its own change in a task of
// its own ("tasks"), and each page's edits as one change ("batched"); 32 pages each editing in
// one task; and 8 pages over WebRTC. Bytes on the wire are WebSocket and data channel payload
// bytes counted in the pages (sent + received, all pages), until convergence.
//
// With an earlier build of the package in target/bench-build/before/pkg (`bash
// scripts/bench-before.sh REV` puts one there), it runs as "chrysalis-before" in the same rounds
// of the 8-page relay cases.
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
const ROUNDS = 5;
/** The cases, in the order of the table: `pages`, edit `mode`, and whether Chrysalis uses WebRTC. */
const CASES = [
  { pages: PAGES, mode: "each", label: "each edit" },
  { pages: PAGES, mode: "tasks", label: "each edit, a task each" },
  { pages: PAGES, mode: "batched", label: "batched" },
  { pages: 32, mode: "each", label: "each edit, 32 pages" },
  { pages: PAGES, mode: "each", webrtc: true, label: "each edit, WebRTC" },
];

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
  // Without persistence the reference server keeps every room's document (and its awareness
  // timer) for good: dropped after each run, so later rounds do not run beside earlier rooms.
  const { docs } = require("y-websocket/bin/utils");
  const forget = () => {
    for (const doc of docs.values()) doc.destroy();
    docs.clear();
  };
  return {
    url: `ws://127.0.0.1:${http.address().port}`,
    forget,
    stop: () =>
      new Promise((resolve) => {
        for (const client of wss.clients) client.terminate();
        forget();
        wss.close();
        http.close(resolve);
      }),
  };
}

/** One run: fresh pages and room; returns time to converge and bytes on the wire. */
async function runOnce(browser, pageUrl, { library, url, pages: count, mode, webrtc = false, label, round }) {
  // Named by case, not by how the library runs it: Yjs runs the WebRTC case like "each edit",
  // and its server keeps a room's document, so a shared name made that run start converged.
  const room = `bench-${library}-${label.replace(/[^a-z0-9]+/gi, "-")}-${round}`;
  const perPage = Math.round(EDITS / count);
  const expected = perPage * count;
  const pages = [];
  try {
    for (let i = 0; i < count; i += 1) {
      const page = await openPage(browser, pageUrl);
      await page.waitForFunction(() => window.benchReady === true);
      pages.push(page);
      await page.evaluate((o) => window.setup(o), { library, url, room, name: `page-${i}`, webrtc, expected });
    }
    for (const page of pages) await page.waitForFunction((n) => window.peerCount() >= n, count - 1, { timeout: 60_000 });
    // Let joining settle, then count only the edits' traffic.
    await new Promise((r) => setTimeout(r, 500));
    const before = await Promise.all(pages.map((p) => p.evaluate(() => ({ ...window.wire }))));
    const starts = await Promise.all(pages.map((p, i) => p.evaluate((o) => window.edit(o), { count: perPage, prefix: `p${i}`, mode })));
    let timer;
    const timeout = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${library} ${label}: no convergence in 120 s`)), 120_000)));
    const dones = await Promise.race([Promise.all(pages.map((p) => p.evaluate(() => window.finished))), timeout]).finally(() => clearTimeout(timer));
    const after = await Promise.all(pages.map((p) => p.evaluate(() => ({ ...window.wire }))));
    const sizes = await Promise.all(pages.map((p) => p.evaluate(() => window.size())));
    if (sizes.some((s) => s !== expected)) throw new Error(`${library}: sizes ${sizes}`);
    const bytes = after.reduce((sum, a, i) => sum + a.sent - before[i].sent + a.received - before[i].received, 0);
    const messages = after.reduce(
      (sum, a, i) => sum + a.messagesSent - before[i].messagesSent + a.messagesReceived - before[i].messagesReceived,
      0,
    );
    for (const page of pages) {
      if (page.problems.length) throw new Error(`${library} page problems: ${page.problems.join("\n")}`);
    }
    return { ms: Math.max(...dones) - Math.min(...starts), bytes, messages, edits: expected };
  } finally {
    for (const page of pages) await page.close();
  }
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/**
 * Chrysalis's time against Yjs's from the rounds (each pair ran one after the other): the median
 * of the rounds' own ratios, with the middle half of them (`low`, `high`).
 */
export function pairedRatio(ours, theirs) {
  const ratios = ours.rounds.map((ms, i) => ms / theirs.rounds[i]).sort((a, b) => a - b);
  const quarter = Math.floor(ratios.length / 4);
  return { ratio: median(ratios), low: ratios[quarter], high: ratios[ratios.length - 1 - quarter] };
}

/**
 * Runs every case ROUNDS times, each case's libraries one after the other (first one, then the
 * other first, round by round), and returns the median rows (`label`, `library`, `ms`, `bytes`,
 * `messages`) with each round's time (`rounds`).
 */
export async function runSyncBench(browser, baseUrl) {
  await buildYjsBundle();
  // Every page connects from 127.0.0.1: the per-address room limit (16 by default) would turn
  // away the 32-page case.
  const relay = await startRelay({ args: ["--max-room-connections-per-address", "64"] });
  const yjs = await startYjsServer();
  const pageUrl = `${baseUrl}bench/sync.html`;
  const before = existsSync(join(ROOT, "target/bench-build/before/pkg/index.js"));
  const groups = CASES.map((c) => {
    const libraries = before && c.pages === PAGES && !c.webrtc ? ["chrysalis", "chrysalis-before", "yjs"] : ["chrysalis", "yjs"];
    return libraries.map((library) => ({ ...c, library, url: library === "yjs" ? yjs.url : relay.url, webrtc: library !== "yjs" && !!c.webrtc, results: [] }));
  });
  const runs = groups.flat();
  try {
    for (let round = 0; round < ROUNDS; round += 1) {
      for (const group of groups) {
        for (const r of round % 2 === 0 ? group : [...group].reverse()) {
          const result = await runOnce(browser, pageUrl, { ...r, round });
          if (r.library === "yjs") yjs.forget();
          console.log(`sync ${r.library} ${r.label} round ${round}: ${result.ms} ms, ${result.bytes} bytes`);
          r.results.push(result);
        }
      }
    }
  } finally {
    await relay.stop();
    await yjs.stop();
  }
  return runs.map((r) => ({
    label: r.label,
    library: r.library,
    pages: r.pages,
    edits: r.results[0].edits,
    ms: median(r.results.map((x) => x.ms)),
    bytes: median(r.results.map((x) => x.bytes)),
    messages: median(r.results.map((x) => x.messages)),
    rounds: r.results.map((x) => x.ms),
  }));
}

export const SYNC_BENCH = { PAGES, EDITS, ROUNDS, CASES };
