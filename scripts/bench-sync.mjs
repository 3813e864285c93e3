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
import { median, pairedRatio } from "../www/bench/stats.js";

const PAGES = 8;
const EDITS = 1000;
const ROUNDS = 5;
/** Rooms one run's pages join in turn in a fast case (`repeats`), editing in each, after one
 * more room to warm up in: Chrysalis converges there in about 70 ms, where a few ms of
 * scheduling on 2 cores is a tenth of it. */
const REPEATS = 8;
/** The cases, in the order of the table: `pages`, edit `mode`, whether Chrysalis uses WebRTC,
 * and how many rooms a run's pages edit in. */
const CASES = [
  { pages: PAGES, mode: "each", label: "each edit", repeats: REPEATS },
  { pages: PAGES, mode: "tasks", label: "each edit, a task each", repeats: 1 },
  { pages: PAGES, mode: "batched", label: "batched", repeats: REPEATS },
  { pages: 32, mode: "each", label: "each edit, 32 pages", repeats: 1 },
  { pages: PAGES, mode: "each", webrtc: true, label: "each edit, WebRTC", repeats: REPEATS },
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

/**
 * One run: fresh pages that join a fresh room `repeats` times (leaving the last; one more
 * first to warm up in when `repeats` > 1) and edit in it. Returns each room's time to converge
 * (`times`) and the medians of the rooms' time, bytes and messages on the wire.
 */
async function runOnce(browser, pageUrl, { library, url, pages: count, mode, webrtc = false, label, repeats: rooms, round }) {
  // Named by case, not by how the library runs it: Yjs runs the WebRTC case like "each edit",
  // and its server keeps a room's document, so a shared name made that run start converged.
  const room = `bench-${library}-${label.replace(/[^a-z0-9]+/gi, "-")}-${round}`;
  const perPage = Math.round(EDITS / count);
  const expected = perPage * count;
  const pages = [];
  const all = (fn, arg) => Promise.all(pages.map((p, i) => p.evaluate(fn, typeof arg === "function" ? arg(i) : arg)));
  const measured = [];
  try {
    for (let i = 0; i < count; i += 1) {
      const page = await openPage(browser, pageUrl);
      await page.waitForFunction(() => window.benchReady === true);
      pages.push(page);
    }
    const warmUp = rooms > 1 ? 1 : 0;
    for (let repeat = 0; repeat < warmUp + rooms; repeat += 1) {
      // One page at a time: 32 connecting at once overrun the relay's pending connections per address.
      for (const [i, page] of pages.entries()) {
        await page.evaluate((o) => window.setup(o), { library, url, room: `${room}-${repeat}`, name: `page-${i}`, webrtc, expected });
      }
      for (const page of pages) await page.waitForFunction((n) => window.peerCount() >= n, count - 1, { timeout: 60_000 });
      // Let joining settle, then count only the edits' traffic.
      await new Promise((r) => setTimeout(r, 500));
      const before = await all(() => ({ ...window.wire }));
      // Every page starts editing at one time, a little ahead of now (10 ms per page to reach them).
      const at = (await pages[0].evaluate(() => window.now())) + 10 * count;
      const starts = await all((o) => window.edit(o), (i) => ({ count: perPage, prefix: `p${i}`, mode, at }));
      let timer;
      const timeout = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${library} ${label}: no convergence in 120 s`)), 120_000)));
      const dones = await Promise.race([all(() => window.finished), timeout]).finally(() => clearTimeout(timer));
      const after = await all(() => ({ ...window.wire }));
      const sizes = await all(() => window.size());
      if (sizes.some((s) => s !== expected)) throw new Error(`${library}: sizes ${sizes}`);
      const sum = (key) => after.reduce((total, a, i) => total + a[key] - before[i][key], 0);
      if (repeat >= warmUp) measured.push({
        ms: Math.round((Math.max(...dones) - Math.min(...starts)) * 10) / 10,
        bytes: sum("sent") + sum("received"),
        messages: sum("messagesSent") + sum("messagesReceived"),
      });
    }
    for (const page of pages) {
      if (page.problems.length) throw new Error(`${library} page problems: ${page.problems.join("\n")}`);
    }
    const middle = (key) => median(measured.map((r) => r[key]));
    return { ms: middle("ms"), times: measured.map((r) => r.ms), bytes: middle("bytes"), messages: middle("messages"), edits: expected };
  } finally {
    for (const page of pages) await page.close();
  }
}

/**
 * Runs every case ROUNDS times, each case's libraries one after the other (first one, then the
 * other first, round by round), and returns the rows (`label`, `library`, `ms`: the median of
 * every room's time in every round, `bytes` and `messages`: the medians of the rounds'), with
 * each round's median time (`rounds`).
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
          console.log(`sync ${r.library} ${r.label} round ${round}: ${result.ms} ms (${result.times.join("/")}), ${result.bytes} bytes`);
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
    ms: median(r.results.flatMap((x) => x.times)),
    bytes: median(r.results.map((x) => x.bytes)),
    messages: median(r.results.map((x) => x.messages)),
    rounds: r.results.map((x) => x.ms),
  }));
}

export const SYNC_BENCH = { PAGES, EDITS, ROUNDS, REPEATS, CASES };

/**
 * One library's time against another's in a case (two rows of `runSyncBench`): the median of the
 * rounds' own ratios (each round's time over the other library's in the same round), with the
 * middle half of them (`low`, `high`). The table, the chart and the check for moved ratios read
 * this one statistic.
 */
export const timeRatio = (ours, theirs) => pairedRatio(ours.rounds, theirs.rounds);
