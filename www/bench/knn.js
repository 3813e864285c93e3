// Vector search benchmarks: the same random vectors and queries in Chrysalis's VectorIndex,
// hnswlib-wasm, voy-search and @orama/orama, one after the other in this page. Published as
// `window.benchResults` for scripts/bench.mjs.
import { initializeChrysalis, VectorIndex } from "/pkg/index.js";
import { loadHnswlib } from "hnswlib-wasm";
import { create, insertMultiple, search } from "@orama/orama";
import * as voyBindings from "voy-search/voy_search_bg.js";
import { appendRow, publishResults } from "./table.js";

const DIMS = 384;
const K = 10;
const QUERIES = 100;
/** HNSW parameters, the same for Chrysalis and hnswlib (Chrysalis's defaults). */
const M = 16;
const EF_CONSTRUCTION = 100;
const EF_SEARCH = 128;
const CHUNK = 1000;

/** Seeded random numbers (mulberry32): `uniform()` in (0, 1), `gaussian()` standard normal. */
function random(seed) {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 1) / 4294967297;
  };
  return { uniform, gaussian: () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform()) };
}

function normalise(v) {
  let norm = 0;
  for (const x of v) norm += x * x;
  norm = Math.sqrt(norm);
  for (let i = 0; i < v.length; i++) v[i] /= norm;
  return v;
}

/**
 * `count` unit vectors clustered like sentence embeddings (the recall tests' data): one random
 * centre per 100 vectors, each vector its centre plus Gaussian noise of the same norm. Returns
 * them end to end in one Float32Array.
 */
function clustered(count, centres, seed) {
  const { uniform, gaussian } = random(seed);
  const scale = 1 / Math.sqrt(DIMS);
  const out = new Float32Array(count * DIMS);
  for (let i = 0; i < count; i++) {
    const centre = centres[Math.floor(uniform() * centres.length)];
    const v = out.subarray(i * DIMS, (i + 1) * DIMS);
    for (let d = 0; d < DIMS; d++) v[d] = centre[d] + scale * gaussian();
    normalise(v);
  }
  return out;
}

function dataset(count) {
  const { gaussian } = random(1);
  const centres = Array.from({ length: count / 100 }, () => normalise(Float32Array.from({ length: DIMS }, gaussian)));
  return { count, data: clustered(count, centres, 42), queries: clustered(QUERIES, centres, 7) };
}

const row = (flat, i) => flat.subarray(i * DIMS, (i + 1) * DIMS);

/** The exact top K of every query (a plain scan), as sets of keys. */
function groundTruth({ count, data, queries }) {
  return Array.from({ length: QUERIES }, (_, q) => {
    const query = row(queries, q);
    const best = []; // [score, key], ascending, at most K
    for (let i = 0; i < count; i++) {
      const v = row(data, i);
      let dot = 0;
      for (let d = 0; d < DIMS; d++) dot += query[d] * v[d];
      if (best.length < K || dot > best[0][0]) {
        best.push([dot, i]);
        best.sort((a, b) => a[0] - b[0]);
        if (best.length > K) best.shift();
      }
    }
    return new Set(best.map(([, key]) => key));
  });
}

const pct = (values, q) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(q * values.length))];
const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

/**
 * Times one engine on one dataset: `build(set)` indexes every vector (keys 0…count-1) and returns
 * `{ search(query) → keys, free() }`.
 */
async function measure(engine, set, truth, build) {
  const t0 = performance.now();
  const index = await build(set);
  const buildMs = performance.now() - t0;
  const times = [];
  let hits = 0;
  for (let q = 0; q < QUERIES; q++) {
    const query = row(set.queries, q);
    // Browsers round performance.now() to 0.1 ms here: a fast search is repeated until 2 ms
    // have passed, and its time is the mean.
    let keys;
    let repeats = 0;
    const t = performance.now();
    do {
      keys = await index.search(query);
      repeats++;
    } while (performance.now() - t < 2);
    times.push((performance.now() - t) / repeats);
    if (keys.length !== K) throw new Error(`${engine} returned ${keys.length} of ${K} neighbours`);
    hits += keys.filter((key) => truth[q].has(key)).length;
  }
  index.free();
  return { engine, count: set.count, buildMs, p50: pct(times, 0.5), p95: pct(times, 0.95), recall: hits / (K * QUERIES) };
}

async function chrysalis({ count, data }) {
  const index = new VectorIndex(DIMS, { m: M, efConstruction: EF_CONSTRUCTION, efSearch: EF_SEARCH });
  for (let start = 0; start < count; start += CHUNK) {
    const keys = Uint32Array.from({ length: Math.min(CHUNK, count - start) }, (_, i) => start + i);
    index.addMany(keys, data.subarray(start * DIMS, (start + keys.length) * DIMS));
    await tick();
  }
  return { search: (query) => Array.from(index.search(query, K).keys), free: () => index.free() };
}

let hnswlib;
async function hnswlibWasm({ count, data }) {
  hnswlib ??= await loadHnswlib();
  const index = new hnswlib.HierarchicalNSW("cosine", DIMS, "");
  index.initIndex(count, M, EF_CONSTRUCTION, 100);
  index.setEfSearch(EF_SEARCH);
  for (let start = 0; start < count; start += CHUNK) {
    const end = Math.min(count, start + CHUNK);
    const points = Array.from({ length: end - start }, (_, i) => row(data, start + i));
    index.addPoints(points, points.map((_, i) => start + i), false);
    await tick();
  }
  return { search: (query) => index.searchKnn(query, K, undefined).neighbors, free: () => index.delete?.() };
}

let voyReady;
async function voy({ count, data }) {
  voyReady ??= (async () => {
    const { instance } = await WebAssembly.instantiateStreaming(fetch("/node_modules/voy-search/voy_search_bg.wasm"), {
      "./voy_search_bg.js": voyBindings,
    });
    voyBindings.__wbg_set_wasm(instance.exports);
  })();
  await voyReady;
  const index = new voyBindings.Voy();
  for (let start = 0; start < count; start += CHUNK) {
    const end = Math.min(count, start + CHUNK);
    const embeddings = Array.from({ length: end - start }, (_, i) => ({
      id: String(start + i),
      title: "",
      url: "",
      embeddings: Array.from(row(data, start + i)),
    }));
    index.add({ embeddings });
    await tick();
  }
  return { search: (query) => index.search(query, K).neighbors.map((n) => Number(n.id)), free: () => index.free() };
}

async function orama({ count, data }) {
  const db = create({ schema: { embedding: `vector[${DIMS}]` } });
  for (let start = 0; start < count; start += CHUNK) {
    const end = Math.min(count, start + CHUNK);
    const docs = Array.from({ length: end - start }, (_, i) => ({ id: String(start + i), embedding: Array.from(row(data, start + i)) }));
    await insertMultiple(db, docs, CHUNK);
    await tick();
  }
  return {
    // The neighbours' cosine is about 0.5 and the other clusters' about 0: a threshold of 0.2
    // keeps every true neighbour and spares Orama sorting the whole collection.
    search: async (query) => {
      const found = await search(db, { mode: "vector", vector: { value: query, property: "embedding" }, similarity: 0.2, limit: K });
      return found.hits.map((hit) => Number(hit.id));
    },
    free: () => {},
  };
}

async function run() {
  const status = document.getElementById("bench-status");
  status.dataset.status = "running";
  await initializeChrysalis();
  const rows = [];
  const engines = [
    ["Chrysalis VectorIndex", chrysalis, true],
    ["hnswlib-wasm", hnswlibWasm, false],
    ["voy-search", voy, false],
    ["@orama/orama", orama, false],
  ];
  for (const count of [10_000, 100_000]) {
    status.textContent = `${count} vectors: generating and scanning exactly…`;
    await tick();
    const set = dataset(count);
    const truth = groundTruth(set);
    for (const [engine, build, ours] of engines) {
      status.textContent = `${count} vectors: ${engine}…`;
      await tick();
      const r = { ...(await measure(engine, set, truth, build)), ours };
      rows.push(r);
      appendRow("#results", [count.toLocaleString("en-US"), engine, r.buildMs.toFixed(0), r.p50.toFixed(2), r.p95.toFixed(2), r.recall.toFixed(3)]);
      console.log(`${count} × ${DIMS}, ${engine}: build ${r.buildMs.toFixed(0)} ms, p50 ${r.p50.toFixed(2)} ms, p95 ${r.p95.toFixed(2)} ms, recall@10 ${r.recall.toFixed(3)}`);
    }
  }
  status.textContent = "Done.";
  status.dataset.status = "ready";
  return { userAgent: navigator.userAgent, dims: DIMS, k: K, queries: QUERIES, m: M, efConstruction: EF_CONSTRUCTION, efSearch: EF_SEARCH, rows };
}

publishResults(run);
