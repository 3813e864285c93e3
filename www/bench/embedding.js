// Embedding benchmarks: the same model file in Chrysalis (in this thread and in its worker pool),
// onnxruntime-web (one thread, and one per core when the page is cross-origin isolated) and
// transformers.js, one after the other in this page. Published as `window.benchResults` for scripts/bench.mjs.
import { EmbeddingService, initializeChrysalis } from "/pkg/index.js";
import * as ort from "onnxruntime-web/wasm";
// A second, separate onnxruntime-web (its thread count is fixed when its wasm starts).
import * as ortThreaded from "/node_modules/onnxruntime-web/dist/ort.wasm.min.mjs";
import { env, pipeline, AutoTokenizer } from "@huggingface/transformers";
import { appendRow, publishResults } from "./table.js";

const MODEL = "/models/all-MiniLM-L6-v2/model.onnx";
const TOKENIZER = "/models/all-MiniLM-L6-v2/tokenizer.json";
const SHORT_RUNS = 100;

// Wasm memories each engine creates, found by watching instantiation (they only ever grow, so
// the size at the end is the peak).
const memories = new Map();
let loading = "";
for (const name of ["instantiate", "instantiateStreaming"]) {
  const original = WebAssembly[name];
  WebAssembly[name] = async function (...args) {
    const result = await original.apply(this, args);
    const instance = result.instance ?? result;
    const owner = loading;
    const imported = [args[1]?.env?.memory, args[1]?.a?.a, args[1]?.wbg?.memory].filter((m) => m instanceof WebAssembly.Memory);
    const exported = Object.values(instance.exports ?? {}).filter((m) => m instanceof WebAssembly.Memory);
    for (const memory of [...imported, ...exported]) memories.set(memory, owner);
    return result;
  };
}
const wasmMiB = (engine) =>
  [...memories].filter(([, owner]) => owner === engine).reduce((sum, [m]) => sum + m.buffer.byteLength, 0) / 2 ** 20;

const WORDS = "agent memory page vault signal replica gossip sentence model browser token vector cache search peer merge".split(" ");
/** `count` distinct sentences of 8–20 words (deterministic). */
function sentences(count, seed) {
  let x = seed;
  const next = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) % 1000;
  return Array.from({ length: count }, (_, i) => {
    const n = 8 + (next() % 13);
    return `${i}: ` + Array.from({ length: n }, () => WORDS[next() % WORDS.length]).join(" ") + ".";
  });
}

const pct = (values, q) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(q * values.length))];

/** Times one engine: `load()` returns `embed(texts) → Promise<vectors>`. */
async function measure(engine, load) {
  loading = engine;
  const t0 = performance.now();
  const embed = await load();
  await embed(["The first sentence warms nothing up: it is part of the cold start."]);
  const coldMs = performance.now() - t0;
  loading = "";
  const short = [];
  for (const text of sentences(SHORT_RUNS, 7)) {
    const t = performance.now();
    await embed([text]);
    short.push(performance.now() - t);
  }
  const batch = sentences(100, 99);
  const tb = performance.now();
  const vectors = await embed(batch);
  const batchMs = performance.now() - tb;
  if (vectors.length !== 100) throw new Error(`${engine} returned ${vectors.length} vectors`);
  const memoryMiB = wasmMiB(engine) + ((await embed.extraMemoryBytes?.()) ?? 0) / 2 ** 20;
  return { engine, coldMs, p50: pct(short, 0.5), p99: pct(short, 0.99), batchMs, memoryMiB, sample: Array.from(vectors[0].slice(0, 8)) };
}

const bytes = async (url) => new Uint8Array(await (await fetch(url)).arrayBuffer());

/** The embedding module (`chrysalis_embedding.js`) in this thread. */
async function chrysalis() {
  await initializeChrysalis();
  const module = await import("/pkg/chrysalis_embedding.js");
  await module.default();
  const service = await module.EmbeddingService.create({
    providers: [{ kind: "local", modelBytes: await bytes(MODEL), tokenizerBytes: await bytes(TOKENIZER) }],
    cache: 0, // every text is really embedded
  });
  return (texts) => service.embedBatch(texts);
}

/** The package's `EmbeddingService` with its default pool of workers (one per core, at most 4). */
async function chrysalisPool() {
  const service = await EmbeddingService.create({
    providers: [{ kind: "local", modelBytes: await bytes(MODEL), tokenizerBytes: await bytes(TOKENIZER) }],
    cache: 0,
  });
  const embed = (texts) => service.embedBatch(texts);
  // The workers' memories are not seen from this page: they report them. The page's own
  // instance of the module is the single-thread engine's, counted there and here.
  const main = [...memories].filter(([, owner]) => owner === ENGINES[0][0]).reduce((sum, [m]) => sum + m.buffer.byteLength, 0);
  embed.extraMemoryBytes = () => service.telemetry()[0].workersMemoryBytes + main;
  return embed;
}

function meanPool(hidden, mask, dims) {
  const [batch, seq, width] = dims;
  return Array.from({ length: batch }, (_, b) => {
    const out = new Float32Array(width);
    let count = 0;
    for (let s = 0; s < seq; s++) {
      if (!mask[b * seq + s]) continue;
      count++;
      const base = (b * seq + s) * width;
      for (let d = 0; d < width; d++) out[d] += hidden[base + d];
    }
    let norm = 0;
    for (let d = 0; d < width; d++) norm += (out[d] /= count) ** 2;
    norm = Math.sqrt(norm);
    for (let d = 0; d < width; d++) out[d] /= norm;
    return out;
  });
}

async function onnxruntimeWeb(ort, threads) {
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.wasmPaths = "/node_modules/onnxruntime-web/dist/";
  const tokenizer = await AutoTokenizer.from_pretrained("all-MiniLM-L6-v2");
  const model = new Uint8Array(await (await fetch(MODEL)).arrayBuffer());
  const session = await ort.InferenceSession.create(model, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
  return async (texts) => {
    const enc = tokenizer(texts, { padding: true, truncation: true, max_length: 256 });
    const feeds = {};
    for (const name of session.inputNames) feeds[name] = new ort.Tensor("int64", enc[name].data, enc[name].dims);
    const out = await session.run(feeds);
    const hidden = out[session.outputNames[0]];
    return meanPool(hidden.data, enc.attention_mask.data, hidden.dims);
  };
}

async function transformersJs() {
  const extractor = await pipeline("feature-extraction", "all-MiniLM-L6-v2", { dtype: "fp32", device: "wasm" });
  return async (texts) => {
    const out = await extractor(texts, { pooling: "mean", normalize: true });
    return out.tolist().map((v) => Float32Array.from(v));
  };
}

function addRow(r) {
  appendRow("#results", [r.engine, r.coldMs.toFixed(0), r.p50.toFixed(1), r.p99.toFixed(1), r.batchMs.toFixed(0), (100_000 / r.batchMs).toFixed(0), r.memoryMiB.toFixed(0)]);
}

const cores = navigator.hardwareConcurrency;
/** [engine, load, ours]: measured in this order. */
const ENGINES = [
  ["Chrysalis (tract, 1 thread)", chrysalis, true],
  [`Chrysalis (${Math.min(cores, 4)} workers)`, chrysalisPool, true],
  ["onnxruntime-web (1 thread)", () => onnxruntimeWeb(ort, 1), false],
  ...(crossOriginIsolated ? [[`onnxruntime-web (${cores} threads)`, () => onnxruntimeWeb(ortThreaded, cores), false]] : []),
  ["@huggingface/transformers", transformersJs, false],
];

async function run() {
  const status = document.getElementById("bench-status");
  status.dataset.status = "running";
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = "/models/hf/";
  env.backends.onnx.wasm.numThreads = 1;
  env.backends.onnx.wasm.wasmPaths = "/node_modules/@huggingface/transformers/node_modules/onnxruntime-web/dist/";
  const rows = [];
  for (const [engine, load, ours] of ENGINES) {
    status.textContent = `${engine}…`;
    const row = { ...(await measure(engine, load)), ours };
    rows.push(row);
    addRow(row);
    console.log(`${engine}: cold ${row.coldMs.toFixed(0)} ms, p50 ${row.p50.toFixed(1)} ms, p99 ${row.p99.toFixed(1)} ms, batch ${row.batchMs.toFixed(0)} ms, ${row.memoryMiB.toFixed(0)} MiB`);
  }
  status.textContent = "Done.";
  status.dataset.status = "ready";
  return { userAgent: navigator.userAgent, cores, crossOriginIsolated, rows };
}

publishResults(run);
