// Runs the benchmark page (www/bench/) in headless Chromium and writes docs/benchmarks.md.
// `node scripts/bench.mjs sync` runs only the replication benchmark and rewrites its section.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { join } from "node:path";
import { startServer } from "./serve.mjs";
import { SYNC_BENCH, runSyncBench, timeRatio } from "./bench-sync.mjs";
import { ROOT, launchChromium, openPage } from "../tests/e2e/browser.mjs";
import { embeddingCharts, fmt, knnChart, primitivesChart, replicationChart } from "./charts.mjs";

const size = (name) => {
  const wasm = readFileSync(join(ROOT, `pkg/${name}_bg.wasm`));
  const kb = (n) => `${(n / 1024).toFixed(0)} KiB`;
  return `\`${name}_bg.wasm\` ${kb(wasm.length)} (${kb(gzipSync(wasm, { level: 9 }).length)} gzip -9)`;
};
const cpu = execFileSync("sh", ["-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], { encoding: "utf8" }).trim();
const ops = (n) => (n >= 100 ? Math.round(n).toLocaleString("en-US") : n.toFixed(1));
const mbps = (n, bytes) =>
  bytes ? ` (${((n * bytes) / 1e6).toFixed(1)} MB/s)` : n < 1000 ? ` (${(1000 / n).toFixed(1)} ms)` : "";

/**
 * Ends a run once its document and charts are written. Anything still open would keep Node alive
 * (`bash scripts/bench.sh` once sat idle after writing docs/benchmarks.md until killed): name it,
 * then exit.
 */
function finish() {
  const open = process.getActiveResourcesInfo().filter((kind) => kind !== "TTYWrap");
  if (open.length) console.log(`still open when the run ended (closed by exiting): ${open.join(", ")}`);
  process.exit(0);
}

/** The relays' load section of docs/benchmarks.md from crates/relay/tests/cluster_load.rs's report. */
function relaySection() {
  const load = JSON.parse(readFileSync(join(ROOT, "target/bench/relay-load.json"), "utf8"));
  const row = (r) =>
    `| ${r.label} | ${r.connections.toLocaleString("en-US")} | ${r.rooms} | ${Math.round(r.framesPerSecond).toLocaleString("en-US")} | ${r.lost} of ${r.expected.toLocaleString("en-US")} | ${fmt(r.p50Ms, 2)} | ${fmt(r.p99Ms, 2)} | ${fmt(r.maxMs, 1)} | ${fmt(r.rssPerConnectionKiB, 1)} | ${fmt(r.rssTotalMiB, 1)} | ${fmt(r.connectSeconds, 1)} |`;
  return [
    "## Relays on Redis (`bash scripts/bench.sh relay`, `crates/relay/tests/cluster_load.rs`)",
    "",
    `${load.clustered.connections.toLocaleString("en-US")} authenticated connections (Ed25519 challenge) from ${load.clustered.connections / 10} loopback addresses, in rooms of 10;`,
    "with three relays peer *i* is on relay *i* mod 3, so every room spans all three and most frames",
    `cross Redis pub/sub. Each peer sends one 64-byte frame a second to its room for ${load.clustered.seconds} s, spread over the`,
    "second; every frame must reach the nine others (lost counts deliveries that never came).",
    "Latency is from send to receipt, measured in the one test process that plays every client (so",
    "it includes the client side on the same two cores). Memory is the relays' resident set after",
    "connecting less before, per connection; the total is all relay processes (not Redis). Release",
    "builds, redis-server 7.0 from Debian, all on loopback.",
    "",
    "| Setup | Connections | Rooms | Frames/s in | Lost | p50 (ms) | p99 (ms) | max (ms) | RSS per connection (KiB) | RSS total (MiB) | Connect all (s) |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    row(load.clustered),
    row(load.alone),
    "",
    ...busSection(),
  ];
}

/** Pub/sub against streams for the frames that cross relays (`pub_sub_against_streams_for_live_frames`). */
function busSection() {
  const bus = JSON.parse(readFileSync(join(ROOT, "target/bench/relay-bus.json"), "utf8"));
  const kib = (bytes) => `${Math.round(bytes / 1024).toLocaleString("en-US")} KiB`;
  return [
    `Why frames cross relays by pub/sub: ${bus.messages.toLocaleString("en-US")} messages of ${bus.payload.toLocaleString("en-US")} bytes in one second over ${bus.rooms} rooms, one writer`,
    "and one reader, same Redis. Streams store every message (a log that must be trimmed, as y-redis's",
    "worker does); pub/sub stores nothing and delivers in one hop. Chrysalis peers repair what a",
    "dropped message loses by anti-entropy, so only the optional archive uses a stream.",
    "",
    "| Mechanism | p50 (ms) | p99 (ms) | Redis memory growth (used_memory) |",
    "|---|---:|---:|---:|",
    `| PUBLISH / SUBSCRIBE | ${fmt(bus.pubsub.p50Ms, 2)} | ${fmt(bus.pubsub.p99Ms, 2)} | ${kib(bus.pubsub.heldBytes)} |`,
    `| XADD / XREAD BLOCK on ${bus.rooms} streams | ${fmt(bus.streams.p50Ms, 2)} | ${fmt(bus.streams.p99Ms, 2)} | ${kib(bus.streams.heldBytes)} |`,
    "",
  ];
}

/**
 * Replaces the section of docs/benchmarks.md that starts at `heading` (up to the next `## `
 * heading, or `until` if that comes first) with `lines`, keeping a blank line before the next
 * heading; a section not there yet goes before `before`. Prints the section.
 */
function rewriteSection(heading, lines, { until, before = "## Replication (" } = {}) {
  const path = join(ROOT, "docs/benchmarks.md");
  const doc = readFileSync(path, "utf8");
  const section = lines.join("\n");
  let start = doc.indexOf(heading);
  let stop;
  if (start < 0) {
    start = stop = doc.indexOf(before);
  } else {
    const stops = [doc.indexOf("\n## ", start + 1) + 1, until ? doc.indexOf(until, start) : -1].filter((i) => i > start);
    stop = stops.length ? Math.min(...stops) : doc.length;
  }
  const next = doc.startsWith("## ", stop) || (until && doc.startsWith(until, stop));
  const gap = next && !section.endsWith("\n\n") ? "\n" : "";
  writeFileSync(path, doc.slice(0, start) + section + gap + doc.slice(stop));
  console.log(section);
}

if (process.argv[2] === "relay") {
  rewriteSection("## Relays on Redis (", relaySection());
  finish();
}

const { server, url } = await startServer();
const browser = await launchChromium();
/** Runs one benchmark page to the end and returns its `window.benchResults`. */
async function runPage(path) {
  const page = await openPage(browser, `${url}${path}`);
  page.setDefaultTimeout(10 * 60_000);
  page.on("console", (message) => {
    if (message.type() === "log") console.log(message.text());
  });
  const out = await page.evaluate(() => window.benchResults);
  if (page.problems.length) throw new Error(`${path} reported problems:\n${page.problems.join("\n")}`);
  await page.close();
  return out;
}
/** Runs `work` (the subcommand's pages), then closes the browser and the server whatever happened. */
async function alone(work) {
  try {
    return await work();
  } finally {
    await browser.close();
    server.close();
  }
}
if (process.argv[2] === "sync") {
  const sync = await alone(() => runSyncBench(browser, url));
  replicationMoves(sync);
  rewriteSection("## Replication (", replicationSection(sync), { until: "Reading the numbers:" });
  replicationChart(sync);
  finish();
}
if (process.argv[2] === "embedding") {
  const embedding = await alone(() => runPage("bench/embedding.html?auto"));
  rewriteSection("## Sentence embeddings (", embeddingSection(embedding));
  embeddingCharts(embedding);
  finish();
}
if (process.argv[2] === "primitives") {
  const results = await alone(() => runPage("bench/?auto"));
  primitiveMoves(results);
  rewriteSection("# Benchmarks", primitivesSection(results), { until: "## Native CRDT" });
  primitivesChart(results);
  finish();
}
let results;
let embedding;
let knn;
let sync;
try {
  results = await runPage("bench/?auto");
  embedding = await runPage("bench/embedding.html?auto");
  knn = await runPage("bench/knn.html?auto");
  sync = await runSyncBench(browser, url);
} finally {
  await browser.close();
  server.close();
}
const agreement = JSON.parse(readFileSync(join(ROOT, "target/bench/agreement.json"), "utf8"));
/** The replication section of docs/benchmarks.md from `runSyncBench` rows. */
function replicationSection(sync) {
  const row = (library, label) => sync.find((r) => r.library === library && r.label === label);
  const before = sync.some((r) => r.library === "chrysalis-before");
  const n = (x) => x.toLocaleString("en-US");
  return [
    `## Replication (${SYNC_BENCH.PAGES} pages, ${n(SYNC_BENCH.EDITS)} edits; \`scripts/bench-sync.mjs\`)`,
    "",
    `Headless-Chromium pages join one room; each adds its share of ${n(SYNC_BENCH.EDITS)} unique keys to a shared set (every`,
    "page at once) and the run ends when every page holds them all. Chrysalis: `SyncNode` (ORSet) over",
    "the relay of `crates/relay` (or WebRTC data channels, the relay signalling), every frame",
    "Ed25519-signed. Yjs: a Y.Map over y-websocket 2.1 and its reference server (`bin/utils`),",
    "unauthenticated. *Each edit*: every edit its own change (Yjs: its own transaction), all made in",
    "one task, which Chrysalis sends as one frame (changes made in one task go out together, at its",
    "end). *A task each*: every edit its own change in a task of its own (the page yields with a",
    "message between edits), so every Chrysalis change is its own signed frame. *Batched*: one Yjs",
    "transaction; for Chrysalis the same as *each edit*. Bytes = WebSocket (and data channel) payload",
    "bytes sent plus received by all pages, from the first edit to convergence; time = first edit to",
    "the last page complete, on a clock the pages share; every page starts editing at one given time.",
    `${SYNC_BENCH.ROUNDS} rounds, each case's two libraries one after the other (which goes first alternating round by`,
    "round). In the cases where Chrysalis converges in about 70 ms",
    `(${SYNC_BENCH.CASES.filter((c) => c.repeats > 1).map((c) => `*${c.label}*`).join(", ")}), where a few ms of scheduling on 2 cores is a tenth of it,`,
    `a round's pages join ${SYNC_BENCH.REPEATS + 1} fresh rooms in turn (leaving the last) and edit in each, the first to warm up`,
    `in: the time is the median of the ${SYNC_BENCH.ROUNDS * SYNC_BENCH.REPEATS} rooms measured, bytes and messages the medians of the rounds'.`,
    "The time ratio is the median of the rounds' own ratios (each round's time, Chrysalis's over Yjs's in",
    "the same round), with the middle half of them in brackets (the times shown are each library's",
    "median, so their quotient can differ from the ratio a little). The reference server's",
    "documents are dropped after each Yjs run (it keeps every room's otherwise).",
    "**Ratio = Chrysalis ÷ Yjs: below 1 means Chrysalis sends less or converges sooner.**",
    "",
    "| Case | Chrysalis time | Yjs time | Time ratio (middle half) | Chrysalis bytes | Yjs bytes | Bytes ratio | Chrysalis messages | Yjs messages |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ...SYNC_BENCH.CASES.map(({ label }) => {
      const [ours, theirs] = [row("chrysalis", label), row("yjs", label)];
      const { ratio, low, high } = timeRatio(ours, theirs);
      return `| ${label} | ${Math.round(ours.ms)} ms | ${Math.round(theirs.ms)} ms | ${fmt(ratio, 2)}× (${fmt(low, 2)}–${fmt(high, 2)}) | ${n(ours.bytes)} | ${n(theirs.bytes)} | ${fmt(ours.bytes / theirs.bytes, 2)}× | ${n(ours.messages)} | ${n(theirs.messages)} |`;
    }),
    "",
    "![Replication time and bytes against Yjs](charts/replication.svg)",
    "",
    `Each round's (median) time (ms), Chrysalis against Yjs, in the order run: ${SYNC_BENCH.CASES.map(({ label }) => `${label} ${row("chrysalis", label).rounds.map(Math.round).join("/")} against ${row("yjs", label).rounds.map(Math.round).join("/")}`).join("; ")}.`,
    "The 8 pages share this machine's 2 cores, so a round's time moves with what else runs: the",
    "driver awaits a promise in each page rather than polling them (it polled every 20 ms until",
    "2026-12-03, which took cores the pages needed). *Each edit, WebRTC*: Chrysalis over data channels",
    "(the relay only signalling); Yjs has no WebRTC provider here and runs it as *each edit*.",
    "",
    "Where the bytes go, per Chrysalis frame (frame version 6; sizes asserted in `crates/sync/tests/frame.rs`",
    "and `crates/relay-protocol`): 1 byte of relay header on the way up (`0x00` to everyone) and 1 byte",
    "of sender handle on each copy down (LEB128: the first 128 peers of a room); version 1, kind 1,",
    "sequence number 8, Ed25519 signature 64; then the gossip payload: hops 1, reply number 1, document",
    "count 1, document name 1 + its bytes, delta length 1–3; then the OR-Set delta: type tag and",
    "encoding version 2, the replica table (count 1 + each replica id as a varint, up to 10), per",
    "element its length, bytes, dot count, replica index and counter (about 4 bytes beyond the",
    "element), and the causal context (about 3 bytes per replica). A frame goes up once and down to",
    "each other page: 8 pages make 8 copies. *Each edit* pays the 74-byte frame once per page per task;",
    "*a task each* pays it per edit, which is where the remaining bytes of that row go. Yjs updates",
    "carry no identity or signature: any peer of a y-websocket room can write as anyone. Beyond the",
    "pushes, anti-entropy: a digest to two random peers a second, answered with what the asker lacks;",
    "a digest sent while pushes were still in flight was answered with them again (the batched row",
    "ranged 87–221 kB), so a round now waits until pushes stop growing the state (one interval at most).",
    "",
    "The agent runtime's issue, before and after, as measured on 2026-12-01 (the package at `da38283`,",
    "before the Room, in the same rounds as the build of that day and Yjs; `da38283` speaks relay",
    "protocol 1, which today's relay refuses, so it no longer runs here): each edit 2.09× → 1.69× Yjs's",
    "time and 6.95× → 6.61× its bytes; batched 1.89× → 1.56× and 2.62× → 2.54×. Since then: frame",
    "version 6 (74 bytes around a payload, was 110), the changes of one task in one frame, one-pass",
    "delta joins at the flush and anti-entropy that waits for pushes to settle (2026-12-03).",
    "",
    ...(before ? beforeAndAfter(row) : []),
  ];
}

/** Today's build against an earlier one (scripts/bench-before.sh) and Yjs, from the same rounds. */
function beforeAndAfter(row) {
  const revision = readFileSync(join(ROOT, "target/bench-build/before/pkg/REVISION"), "utf8").trim().split(" ")[0];
  const labels = SYNC_BENCH.CASES.map((c) => c.label).filter((label) => row("chrysalis-before", label));
  return [
    `Before and after: the package as built at \`${revision}\` ran in the same rounds as today's build and Yjs.`,
    "",
    "| Case | Build | Time | Time ratio to Yjs | Bytes | Bytes ratio to Yjs |",
    "|---|---|---:|---:|---:|---:|",
    ...labels.flatMap((label) => {
      const yjs = row("yjs", label);
      return [
        ["chrysalis-before", `before (${revision})`],
        ["chrysalis", "after"],
      ].map(([library, build]) => {
        const r = row(library, label);
        return `| ${label} | ${build} | ${Math.round(r.ms)} ms | ${fmt(timeRatio(r, yjs).ratio, 2)}× | ${r.bytes.toLocaleString("en-US")} | ${fmt(r.bytes / yjs.bytes, 2)}× |`;
      });
    }),
    "",
  ];
}

/** The embedding section of docs/benchmarks.md from `www/bench/embedding.html`'s results. */
function embeddingSection(embedding) {
  const ours = embedding.rows.filter((r) => r.ours);
  const anchors = embedding.rows.filter((r) => !r.ours);
  return [
    "## Sentence embeddings (all-MiniLM-L6-v2, `www/bench/embedding.html`)",
    "",
    `The same ONNX file (int8 weights dequantised in the graph) in every engine, one after the other in one`,
    `page (cross-origin isolated, ${embedding.cores} cores): Chrysalis in the page's thread (tract in wasm, simd128) and with`,
    "`EmbeddingService`'s default pool of workers; onnxruntime-web's wasm backend (inputs tokenised by",
    "transformers.js, mean pooling in JS) on one thread and on one per core; the transformers.js",
    "feature-extraction pipeline on one thread. Cold start = fetch the files from localhost + build the",
    "session (or start the pool) + embed a first sentence. Short sentence = 100 different 8–20-word",
    "sentences one at a time. Batch = 100 such sentences in one call. Wasm memory = the size of every",
    "wasm memory the engine created, at the end (memories only grow); the pool's counts the page's",
    "instance of the module and each worker's, as the workers report them.",
    "",
    "| Engine | Cold start (ms) | Short p50 (ms) | Short p99 (ms) | Batch of 100 (ms) | Texts/s | Wasm memory (MiB) |",
    "|---|---:|---:|---:|---:|---:|---:|",
    ...embedding.rows.map(
      (r) => `| ${r.engine} | ${fmt(r.coldMs, 0)} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${fmt(r.batchMs, 0)} | ${fmt(100_000 / r.batchMs, 0)} | ${fmt(r.memoryMiB, 0)} |`,
    ),
    "",
    "**Ratio = Chrysalis ÷ anchor: below 1 means Chrysalis is faster (or uses less memory).**",
    "",
    "| Chrysalis | Anchor | Cold start | Short p50 | Short p99 | Batch of 100 | Wasm memory |",
    "|---|---|---:|---:|---:|---:|---:|",
    ...ours.flatMap((o) =>
      anchors.map(
        (a) =>
          `| ${o.engine} | ${a.engine} | ${fmt(o.coldMs / a.coldMs, 2)}× | ${fmt(o.p50 / a.p50, 2)}× | ${fmt(o.p99 / a.p99, 2)}× | ${fmt(o.batchMs / a.batchMs, 2)}× | ${fmt(o.memoryMiB / a.memoryMiB, 2)}× |`,
      ),
    ),
    "",
    "![Short sentence, p50 and p99 per engine](charts/embedding.svg)",
    "![Batch of 100 per engine](charts/embedding-batch.svg)",
    "",
  "What was tried on the local model: the gather-before-dequantise graph rewrite (kept: a short",
  "sentence went from ~48 to ~8 ms natively); simd128 (kept: tract's wasm SIMD kernels); relaxed SIMD",
  "(a second build with fused multiply-add: ~5% faster on batches, 24.5 against 25.8 ms per short sentence;",
  "dropped: its results differ by machine, where simd128 gives the same bits in every engine, and it",
  "doubled the package's slowest build); `opt-level = 3` for `tract-core`",
  "and `tract-linalg` (kept) and also for `tract-data`, `tract-onnx-opl`, `ndarray` and `tokenizers` (no",
  "measurable gain for +0.6 MB: dropped); reusing tract's run state between calls (kept, no measurable",
  "change); `wasm-opt -Oz` and `-O2` (dropped for the embedding builds: inference ~30% slower, 23.6 →",
  "30.9 ms per short sentence, for 9% less gzip); one GELU node instead of the exporter's five, and a",
  "plan with the batch axis fixed at one row, each text run on its own (kept: 30.2 → 23.7 ms per short",
  "sentence in one thread, 27.3 → 21.5 ms with the pool); tract's 4×4 and 4×16 wasm kernels instead of",
  "its 8×8 (no change: the matrix products stay at 87% of a run); products on the int8 weights in",
  "integers with `i32x4.dot_i16x8_s` (kept: 23.7 → 11.8 ms per short sentence in one thread, 159 → 97",
  "MiB). The pool moves inference off the page's main thread",
  "and onto every core (`docs/architecture.md`).",
  "",
  ];
}

/** Criterion's mean time (ns) of a native benchmark. */
const criterionNs = (id) => JSON.parse(readFileSync(join(ROOT, "target/criterion", id, "new/estimates.json"), "utf8")).mean.point_estimate;
const native = [
  ["gcounter_merge_8_replicas", "GCounter merge (8 replicas each)", "goal ≥ 1,000,000 merges/s; the seed's bar 10,000/s"],
  ["orset_merge_5k_into_5k", "OR-Set merge of two 5k-element states", ""],
  ["orset_apply_add_delta_to_10k", "OR-Set: apply one add delta to a 10k-element set", ""],
].map(([id, label, note]) => {
  const ns = criterionNs(id);
  const time = ns < 1000 ? `${ns.toFixed(0)} ns` : ns < 1e6 ? `${(ns / 1e3).toFixed(2)} µs` : `${(ns / 1e6).toFixed(2)} ms`;
  return `| ${label} | ${time} | ${Math.round(1e9 / ns).toLocaleString("en-US")} /s | ${note} |`;
});


/** The top of docs/benchmarks.md: how the primitives are measured, the machine, and their table and chart. */
function primitivesSection(results) {
  return [
    "# Benchmarks",
    "",
    "Generated by `bash scripts/bench.sh` (do not edit by hand). Each row runs Chrysalis and one anchor",
    "interleaved in the same headless-Chromium page: nine rounds of ~200 ms each (longer, up to 1 s, until",
    "a round holds 40 operations of the slower side), the two alternating which runs first; the ratio",
    "is the median of the rounds' own ratios (each from two neighbouring",
    "measurements, so a slow moment of the machine slows both), with the middle half of them in",
    "brackets. A case whose bracket is wider than a tenth of its ratio runs 8 more rounds, up to 25",
    "(the count is then shown). **Ratio = Chrysalis ÷ anchor: above 1 means Chrysalis is faster.** The",
    "machine is shared and noisy; compare ratios, not absolute numbers.",
    "",
    `- Date: ${new Date().toISOString().slice(0, 10)}`,
    `- Browser: ${results.userAgent}`,
    `- CPU: ${cpu} (${execFileSync("nproc", { encoding: "utf8" }).trim()} cores)`,
    `- Package modules: core ${size("chrysalis_wasm")}; loaded on demand: certificates ${size("chrysalis_x509")}, embeddings ${size("chrysalis_embedding")}`,
    "",
    "| Case | Input | Chrysalis ops/s | Anchor | Anchor ops/s | Ratio (middle half) |",
    "|---|---|---:|---|---:|---:|",
    ...results.rows.map(
      (r) =>
        `| ${r.case} | ${r.input} | ${ops(r.oursOps)}${mbps(r.oursOps, r.bytes)} | ${r.anchor} | ${ops(r.anchorOps)}${mbps(r.anchorOps, r.bytes)} | ${r.ratio.toFixed(2)}× (${r.low.toFixed(2)}–${r.high.toFixed(2)}${r.rounds > 9 ? `, ${r.rounds} rounds` : ""}) |`,
    ),
    "",
    "![Every case as a ratio against its anchor](charts/primitives.svg)",
    "",
  ];
}

/**
 * Prints the ratios of `what` that moved by more than 20% since the run recorded in
 * docs/benchmarks.md (which keeps only the latest): `now` maps a row's key to its ratio, and
 * `recorded(cells)` reads a recorded table row's `[key, ratio]` (or a falsy value).
 */
function reportMoves(what, now, recorded) {
  const before = new Map();
  for (const line of readFileSync(join(ROOT, "docs/benchmarks.md"), "utf8").split("\n")) {
    const [key, ratio] = recorded(line.split("|").map((c) => c.trim())) || [];
    if (key && ratio > 0) before.set(key, ratio);
  }
  const moved = [...now].filter(([key, ratio]) => before.has(key) && Math.abs(ratio / before.get(key) - 1) > 0.2);
  console.log(`${what} ratios moved by more than 20% since the recorded run: ${moved.length} of ${now.size}`);
  for (const [key, ratio] of moved) console.log(`  ${key}: ${before.get(key).toFixed(2)}× → ${ratio.toFixed(2)}×`);
}

/** The leading number of a ratio cell (`3.41× (3.20–3.60)`). */
function ratioCell(cell) {
  return Number(cell?.match(/^([\d.]+)×/)?.[1]);
}

function primitiveMoves(results) {
  reportMoves(
    "primitive",
    new Map(results.rows.map((r) => [`${r.case} ${r.input} vs ${r.anchor}`, r.ratio])),
    (cells) => cells.length >= 8 && [`${cells[1]} ${cells[2]} vs ${cells[4]}`, ratioCell(cells[6])],
  );
}

function replicationMoves(sync) {
  const row = (library, label) => sync.find((r) => r.library === library && r.label === label);
  const labels = SYNC_BENCH.CASES.map((c) => c.label).filter((label) => row("chrysalis", label) && row("yjs", label));
  reportMoves(
    "replication time",
    new Map(labels.map((label) => [label, timeRatio(row("chrysalis", label), row("yjs", label)).ratio])),
    (cells) => cells.length === 11 && labels.includes(cells[1]) && [cells[1], ratioCell(cells[4])],
  );
}

const lines = [
  ...primitivesSection(results),
  "## Native CRDT merges (Criterion, `cargo bench -p chrysalis-crdt`)",
  "",
  "| Case | Mean time | Rate | Note |",
  "|---|---:|---:|---|",
  ...native,
  "",
  "## Encoded sizes",
  "",
  "The same seeded operations on every library; each library's own full-state encoding (Yjs: the",
  "smaller of update v1 and v2; Automerge: `save`; Loro: snapshot). **Ratio = anchor ÷ Chrysalis:",
  "above 1 means Chrysalis is smaller.**",
  "",
  "| Case | Chrysalis bytes | Anchor | Anchor bytes | Ratio |",
  "|---|---:|---|---:|---:|",
  ...results.sizes.map(
    (r) => `| ${r.case} | ${r.oursBytes.toLocaleString("en-US")} | ${r.anchor} | ${r.anchorBytes.toLocaleString("en-US")} | ${r.ratio.toFixed(2)}× |`,
  ),
  "",
  ...embeddingSection(embedding),
  "## Vector search (k = 10 over 384-d vectors, `www/bench/knn.html`)",
  "",
  `The same vectors and ${knn.queries} queries in four engines, one after the other in one page. The vectors are`,
  "random but clustered like sentence embeddings (one random centre per 100 vectors, each vector its",
  "centre plus Gaussian noise of the same norm; the recall tests' data): on vectors uniform on the",
  "sphere no graph index beats a scan (`docs/architecture.md`). Chrysalis `VectorIndex` and",
  `hnswlib-wasm 0.8.2 are both HNSW with M ${knn.m}, efConstruction ${knn.efConstruction}, efSearch ${knn.efSearch}; voy-search 0.6.3 is a k-d tree`,
  "(exact); @orama/orama 3.1.18 scans in JS (exact; `similarity: 0.2`, which keeps every true",
  `neighbour). Build = adding every vector, ${1000} per call; a query's time is the mean of repeats`,
  "over at least 2 ms (the page's clock ticks in 0.1 ms). Recall@10 is against an exact scan.",
  "",
  "| Vectors | Engine | Build (ms) | Query p50 (ms) | Query p95 (ms) | Recall@10 |",
  "|---:|---|---:|---:|---:|---:|",
  ...knn.rows.map(
    (r) =>
      `| ${r.count.toLocaleString("en-US")} | ${r.engine} | ${Math.round(r.buildMs).toLocaleString("en-US")} | ${fmt(r.p50, 2)} | ${fmt(r.p95, 2)} | ${fmt(r.recall, 3)} |`,
  ),
  "",
  "**Ratio = Chrysalis ÷ anchor: below 1 means Chrysalis is faster.**",
  "",
  "| Vectors | Anchor | Build | Query p50 | Query p95 |",
  "|---:|---|---:|---:|---:|",
  ...knn.rows
    .filter((r) => !r.ours)
    .map((a) => {
      const o = knn.rows.find((r) => r.ours && r.count === a.count);
      return `| ${a.count.toLocaleString("en-US")} | ${a.engine} | ${fmt(o.buildMs / a.buildMs, 2)}× | ${fmt(o.p50 / a.p50, 3)}× | ${fmt(o.p95 / a.p95, 3)}× |`;
    }),
  "",
  "![Query time against index size](charts/knn.svg)",
  "",
  "## Council agreement (PBFT, fault-free simulation; `cargo test --release -p chrysalis-memory --test agreement fault_free_latency`)",
  "",
  `${agreement.rows[0].runs} seeded runs per council size: every agent honest, default timeouts, every message delivered`,
  `once after 1–${agreement.delayMs} ms (uniform), each agent proposing 1–3 motions in the first 5 s. Latency = a`,
  "proposal until every agent has decided it (request to the leader, pre-prepare, prepare,",
  "commit: four one-way delays). Messages per decision counts every signed message sent (a",
  "broadcast once per recipient), checkpoints and status included. The adversarial runs (faults,",
  "partitions, Twins) are in the README's simulation section.",
  "",
  "| Agents (n) | Tolerated faults (f) | Decisions | Latency p50 (ms) | p95 (ms) | max (ms) | Messages per decision |",
  "|---:|---:|---:|---:|---:|---:|---:|",
  ...agreement.rows.map(
    (r) => `| ${r.n} | ${Math.floor((r.n - 1) / 3)} | ${r.decisions.toLocaleString("en-US")} | ${r.p50} | ${r.p95} | ${r.max} | ${fmt(r.messagesPerDecision, 1)} |`,
  ),
  "",
  ...relaySection(),
  ...replicationSection(sync),
  "Reading the numbers: WebCrypto runs AES-GCM and SHA-256 on the CPU's AES-NI / SHA instructions,",
  "which WebAssembly cannot reach; it wins on large inputs and loses on small ones, where its",
  "asynchronous call costs more than the work. Chrysalis's AES is the constant-time bitsliced",
  "software AES of the RustCrypto `aes` crate.",
  "",
];
primitiveMoves(results);
replicationMoves(sync);
writeFileSync(join(ROOT, "docs/benchmarks.md"), lines.join("\n"));
console.log(lines.join("\n"));
primitivesChart(results);
replicationChart(sync);
embeddingCharts(embedding);
knnChart(knn);
finish();
