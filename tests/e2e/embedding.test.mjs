// EmbeddingService in headless Chromium.
// - The local model (all-MiniLM-L6-v2, tract in wasm) against onnxruntime's vectors for
//   tests/embedding/texts.json (computed by tests/embedding/reference.py in the test setup).
// - OpenAI and Nomic providers against a loopback server that speaks their wire formats over
//   real HTTP: API keys from a vault the page only unlocks, batching, 429 + Retry-After, 500 then
//   success, 401 → next provider, malformed JSON, timeout, abort.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { DEMO_MOUNTS, startServer } from "../../scripts/serve.mjs";
import { ROOT, launchChromium, openPage } from "./browser.mjs";

const OPENAI = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789WXYZ";
const NOMIC = "nk-abcdefghijklmnopqrstuvwxyz0123456789";
const MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6";
const TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037";
const LOCAL = {
  kind: "local",
  modelUrl: "/models/all-MiniLM-L6-v2/model.onnx",
  modelSha256: MODEL_SHA256,
  tokenizerUrl: "/models/all-MiniLM-L6-v2/tokenizer.json",
  tokenizerSha256: TOKENIZER_SHA256,
};

let browser;
let server;
let page;
let provider; // the mock OpenAI + Nomic server
let providerUrl;
let chromiumVectors; // the local model's vectors in Chromium, compared with Node.js's

/** A deterministic vector for `text` (the mock's "model"), the same in Node and in the answers. */
function fakeVector(text, dims) {
  let h = 2166136261;
  for (const byte of Buffer.from(text)) h = Math.imul(h ^ byte, 16777619) >>> 0;
  return Array.from({ length: dims }, (_, i) => ((Math.imul(h + i, 2654435761) >>> 0) / 2 ** 32) - 0.5);
}

/**
 * The mock provider: `plan` holds what the next requests get ("ok" when empty): `{ status,
 * retryAfter, body }`, `"malformed"` or `{ delay }`; `requests` records what arrived.
 */
function startProvider() {
  const mock = { plan: [], requests: [] };
  const cors = {
    "access-control-allow-origin": "*",
    "access-control-allow-headers": "authorization, content-type",
    "access-control-allow-methods": "POST",
    "access-control-expose-headers": "retry-after",
  };
  mock.server = createServer(async (req, res) => {
    if (req.method === "OPTIONS") return res.writeHead(204, cors).end();
    let raw = "";
    for await (const chunk of req) raw += chunk;
    const body = JSON.parse(raw);
    mock.requests.push({ path: req.url, auth: req.headers.authorization, body, at: performance.now() });
    const step = mock.plan.shift() ?? "ok";
    if (step.delay) await new Promise((r) => setTimeout(r, step.delay));
    if (step === "malformed") return res.writeHead(200, { ...cors, "content-type": "application/json" }).end('{"data": [{"index": 0, "embedding": [0.1,');
    if (step.status) {
      const headers = { ...cors, "content-type": "application/json" };
      if (step.retryAfter) headers["retry-after"] = step.retryAfter;
      return res.writeHead(step.status, headers).end(JSON.stringify(step.body ?? { error: { message: `status ${step.status}` } }));
    }
    let answer;
    if (req.url === "/v1/embeddings") {
      const dims = body.dimensions ?? 1536;
      answer = {
        object: "list",
        // Answered in reverse order: the client must sort by index.
        data: body.input.map((text, index) => ({ object: "embedding", index, embedding: fakeVector(text, dims) })).reverse(),
        model: body.model,
        usage: { prompt_tokens: body.input.length * 3, total_tokens: body.input.length * 3 },
      };
    } else if (req.url === "/v1/embedding/text") {
      const dims = body.dimensionality ?? 768;
      answer = { embeddings: body.texts.map((t) => fakeVector(t, dims)), model: body.model, usage: { prompt_tokens: 5, total_tokens: 5 } };
    } else {
      return res.writeHead(404, cors).end();
    }
    res.writeHead(200, { ...cors, "content-type": "application/json" }).end(JSON.stringify(answer));
  });
  return new Promise((resolve) => mock.server.listen(0, "127.0.0.1", () => resolve(mock)));
}

before(async () => {
  provider = await startProvider();
  providerUrl = `http://127.0.0.1:${provider.server.address().port}`;
  let url;
  ({ server, url } = await startServer({
    mounts: {
      "/pkg/": join(ROOT, "pkg"),
      "/models/": DEMO_MOUNTS["/models/"],
      "/": join(ROOT, "tests/e2e/pages"),
    },
  }));
  browser = await launchChromium();
  page = await openPage(browser, url);
  if (process.env.DEBUG_PAGE) page.on("console", (m) => console.log(`page: ${m.text()}`));
  // The user's vault, made once (here in a first page life); after the reload the page only
  // unlocks it and never handles a key.
  const vault = await page.evaluate(async ({ OPENAI, NOMIC }) => {
    const sdk = await import("/pkg/index.js");
    await sdk.default();
    const ctx = new sdk.SecurityContext();
    ctx.storeApiKey("openai", OPENAI);
    ctx.storeApiKey("nomic", NOMIC);
    const vault = Array.from(ctx.exportVault("passphrase", { logN: 10 }));
    ctx.free();
    return vault;
  }, { OPENAI, NOMIC });
  await page.reload();
  await page.evaluate(async ({ vault, providerUrl }) => {
    window.sdk = await import("/pkg/index.js");
    await window.sdk.default();
    window.ctx = window.sdk.SecurityContext.unlock(new Uint8Array(vault), "passphrase");
    window.ctx.allowApiOrigin("openai", providerUrl);
    window.ctx.allowApiOrigin("nomic", providerUrl);
  }, { vault, providerUrl });
});

after(async () => {
  // The mock's error statuses, timeouts and aborts are expected; nothing else may fail.
  const unexpected = (page?.problems ?? []).filter(
    (p) => !p.includes(providerUrl) && !p.startsWith("console: Failed to load resource"),
  );
  assert.deepEqual(unexpected, [], "no unexpected console errors on the test page");
  await browser?.close();
  server?.close();
  provider?.server.close();
});

const cosine = (a, b) => {
  let dot = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) { dot += a[i] * b[i]; aa += a[i] * a[i]; bb += b[i] * b[i]; }
  return dot / Math.sqrt(aa * bb);
};

test("the local model in Chromium matches onnxruntime on every reference text (cosine ≥ 0.9999)", async () => {
  const file = process.env.CHRYSALIS_EMBEDDING_REFERENCE;
  assert.ok(file, "CHRYSALIS_EMBEDDING_REFERENCE is set (scripts/test.sh computes the reference vectors)");
  const reference = JSON.parse(readFileSync(file, "utf8"));
  const texts = reference.embeddings.map((e) => e.text);
  assert.ok(texts.length >= 20 && texts.includes("") && reference.embeddings.some((e) => e.tokens === 256));
  const out = await page.evaluate(async ({ LOCAL, texts }) => {
    const progress = [];
    const started = performance.now();
    window.local = await window.sdk.EmbeddingService.create({ providers: [LOCAL] }, { onProgress: (p) => progress.push(p) });
    const loadMs = performance.now() - started;
    const embedProgress = [];
    const vectors = await window.local.embedBatch(texts, { onProgress: (p) => embedProgress.push(p) });
    const single = await window.local.embed(texts[2]);
    const { cosineSimilarity } = window.sdk;
    const [food, bread, horse] = await window.local.embedBatch(texts.slice(2, 6).filter((_, i) => i !== 2));
    return {
      loadMs,
      progress,
      embedProgress,
      vectors: vectors.map((v) => Array.from(v)),
      tags: [vectors[0].model, vectors[0].dims, vectors[0] instanceof Float32Array],
      singleEqualsBatch: cosineSimilarity(single, vectors[2]),
      related: cosineSimilarity(food, bread),
      unrelated: cosineSimilarity(food, horse),
      telemetry: window.local.telemetry(),
    };
  }, { LOCAL, texts });
  let worst = 1;
  reference.embeddings.forEach((expected, i) => {
    const c = cosine(out.vectors[i], expected.vector);
    worst = Math.min(worst, c);
    assert.ok(c >= 0.9999, `cosine ${c} for ${JSON.stringify(expected.text.slice(0, 40))}`);
  });
  console.log(`local model: loaded in ${out.loadMs.toFixed(0)} ms; worst cosine vs onnxruntime over ${texts.length} texts: ${worst.toFixed(6)}`);
  assert.deepEqual(out.tags, ["all-MiniLM-L6-v2", 384, true]);
  assert.ok(out.singleEqualsBatch > 0.99999);
  assert.ok(out.related > out.unrelated + 0.2, `related ${out.related} vs unrelated ${out.unrelated}`);
  for (const file of ["model", "tokenizer"]) {
    const steps = out.progress.filter((p) => p.phase === "download" && p.file === file);
    const last = steps.at(-1);
    assert.ok(steps.length >= 2 && last.loaded === last.total && last.total > 0 && last.cached === false, file);
  }
  assert.equal(out.progress.at(-1).phase, "load");
  assert.deepEqual(out.embedProgress.at(-1), { phase: "embed", done: texts.length, total: texts.length });
  // The single text and the three comparison texts were embedded before: cache hits.
  assert.deepEqual([out.telemetry[0].texts, out.telemetry[0].cacheHits], [texts.length, 4]);
  assert.ok(out.telemetry[0].latencyP50Ms > 0);
  chromiumVectors = { texts, vectors: out.vectors };
});

test("every text embeds to the same bits in Node.js as in Chromium (simd128 wasm is deterministic)", async () => {
  assert.ok(chromiumVectors, "the Chromium test ran first");
  const sdk = await import("chrysalis-sdk");
  const bytes = (file) => readFileSync(new URL(import.meta.resolve(`chrysalis-sdk/${file}`)));
  await sdk.initializeChrysalis({ moduleOrPath: bytes("chrysalis_wasm_bg.wasm") });
  await sdk.loadEmbedding(bytes("chrysalis_embedding_bg.wasm"));
  const dir = process.env.CHRYSALIS_MODEL_DIR;
  assert.ok(dir, "CHRYSALIS_MODEL_DIR is set (scripts/test.sh fetches the model)");
  const service = await sdk.EmbeddingService.create({
    providers: [{ kind: "local", modelBytes: readFileSync(join(dir, "model.onnx")), tokenizerBytes: readFileSync(join(dir, "tokenizer.json")) }],
    cache: 0,
  });
  const vectors = await service.embedBatch(chromiumVectors.texts);
  vectors.forEach((v, i) => assert.deepEqual(Array.from(v), chromiumVectors.vectors[i], `text ${i}`));
});

test("model files come from Cache Storage the second time; a wrong pin is INTEGRITY_MISMATCH", async () => {
  const out = await page.evaluate(async ({ LOCAL }) => {
    const progress = [];
    const again = await window.sdk.EmbeddingService.create({ providers: [LOCAL] }, { onProgress: (p) => progress.push(p) });
    const vector = await again.embed("cached model");
    again.free();
    const errors = [];
    for (const bad of [{ modelSha256: "00".repeat(32) }, { modelSha256: undefined }, { kind: "llama" }]) {
      await window.sdk.EmbeddingService.create({ providers: [{ ...LOCAL, ...bad }] }).catch((e) => errors.push(e.code));
    }
    await window.sdk.EmbeddingService.create({ providers: [] }).catch((e) => errors.push(e.code));
    return { cached: progress.filter((p) => p.phase === "download").every((p) => p.cached), dims: vector.dims, errors };
  }, { LOCAL });
  assert.equal(out.cached, true);
  assert.equal(out.dims, 384);
  assert.deepEqual(out.errors, ["INTEGRITY_MISMATCH", "BAD_ARGUMENT", "BAD_ARGUMENT", "BAD_INPUT"]);
});

test("a download cut midway or failing after its last byte (an Error or undefined thrown), or a forged copy in Cache Storage, leaves nothing in the cache: the next load downloads afresh", async () => {
  const model = readFileSync(join(DEMO_MOUNTS["/models/"], "all-MiniLM-L6-v2/model.onnx"));
  // A server of the model whose /cut/ copy stops after 1 MiB of the announced length.
  const files = createServer((req, res) => {
    res.writeHead(200, { "access-control-allow-origin": "*", "content-length": String(model.length) });
    if (req.url.startsWith("/stalled/")) return res.write(model.subarray(0, 1 << 20)); // the rest never comes
    if (!req.url.startsWith("/cut/")) return res.end(model);
    res.write(model.subarray(0, 1 << 20));
    setTimeout(() => res.destroy(), 50);
  });
  await new Promise((resolve) => files.listen(0, "127.0.0.1", resolve));
  const base = `http://127.0.0.1:${files.address().port}`;
  try {
    const out = await page.evaluate(async ({ LOCAL, base }) => {
      const cacheName = "chrysalis-test-cut";
      const cache = await caches.open(cacheName);
      const load = (modelUrl) =>
        window.sdk.EmbeddingService.create({ providers: [{ ...LOCAL, modelUrl, cacheName }] }).then((service) => (service.free(), "ok"), (error) => error.code);
      const held = async (path) => (await cache.match(`${base}${path}`)) !== undefined;
      const cut = await load(`${base}/cut/model.onnx`);
      const cutHeld = await held("/cut/model.onnx");
      // A failure after the last byte arrived (here the page's progress callback throws): the
      // cache's copy completed, and is removed once it has.
      const thrown = await window.sdk.EmbeddingService.create(
        { providers: [{ ...LOCAL, modelUrl: `${base}/late/model.onnx`, cacheName }] },
        { onProgress: (p) => { if (p.file === "model" && p.loaded > 0 && p.loaded === p.total) throw new Error("the page's callback failed"); } },
      ).then(() => "loaded", (error) => error.message);
      // The same with `undefined` thrown (once read as no failure at all).
      const thrownUndefined = await window.sdk.EmbeddingService.create(
        { providers: [{ ...LOCAL, modelUrl: `${base}/undefined/model.onnx`, cacheName }] },
        { onProgress: (p) => { if (p.file === "model" && p.loaded > 0 && p.loaded === p.total) throw undefined; } },
      ).then(() => "loaded", (error) => error?.code);
      const settled = async (path) => {
        let still = true;
        for (let i = 0; i < 50 && still; i++) (still = await held(path)) && (await new Promise((r) => setTimeout(r, 100)));
        return still;
      };
      const lateHeld = await settled("/late/model.onnx");
      const undefinedHeld = await settled("/undefined/model.onnx");
      await cache.put(`${base}/whole/model.onnx`, new Response("not the model")); // another script of the origin
      const forged = await load(`${base}/whole/model.onnx`);
      const forgedHeld = await held("/whole/model.onnx");
      // Fields a script puts on Object.prototype are not read as the download's result.
      Object.defineProperty(Object.prototype, "failed", { value: true, configurable: true });
      const fresh = await load(`${base}/whole/model.onnx`).finally(() => delete Object.prototype.failed);
      const freshHeld = await held("/whole/model.onnx");
      const notAName = await window.sdk.EmbeddingService.create({ providers: [{ ...LOCAL, modelUrl: `${base}/whole/model.onnx`, cacheName: 42 }] })
        .then(() => "loaded", (error) => error.code);
      // A download the page's signal aborts midway, or before it starts, is ABORTED (not the
      // browser's AbortError) and leaves nothing in the cache.
      const controller = new AbortController();
      const aborted = await window.sdk.EmbeddingService.create(
        { providers: [{ ...LOCAL, modelUrl: `${base}/stalled/model.onnx`, cacheName }] },
        { signal: controller.signal, onProgress: (p) => p.file === "model" && p.loaded > 0 && controller.abort() },
      ).then(() => "loaded", (error) => error?.code);
      const abortedHeld = await settled("/stalled/model.onnx");
      const abortedBefore = await window.sdk.EmbeddingService.create({ providers: [{ ...LOCAL, modelUrl: `${base}/stalled/model.onnx`, cacheName }] }, { signal: controller.signal })
        .then(() => "loaded", (error) => error?.code);
      // A cache that cannot be opened costs the caching, not the load.
      const openCache = CacheStorage.prototype.open;
      CacheStorage.prototype.open = () => Promise.reject(new DOMException("storage is blocked", "SecurityError"));
      const noCache = await load(`${base}/no-cache/model.onnx`).finally(() => (CacheStorage.prototype.open = openCache));
      const noCacheHeld = await held("/no-cache/model.onnx");
      const match = Cache.prototype.match;
      Cache.prototype.match = () => Promise.reject(new DOMException("the cache cannot be read", "UnknownError"));
      const noMatch = await load(`${base}/no-match/model.onnx`).finally(() => (Cache.prototype.match = match));
      await caches.delete(cacheName);
      return { noCache, noCacheHeld, noMatch, cut, cutHeld, thrown, thrownUndefined, lateHeld, undefinedHeld, forged, forgedHeld, fresh, freshHeld, notAName, aborted, abortedHeld, abortedBefore };
    }, { LOCAL, base });
    assert.deepEqual(out, {
      noCache: "ok",
      noCacheHeld: false,
      noMatch: "ok",
      cut: "DOWNLOAD_FAILED",
      cutHeld: false,
      thrown: "the page's callback failed",
      thrownUndefined: "DOWNLOAD_FAILED",
      lateHeld: false,
      undefinedHeld: false,
      forged: "INTEGRITY_MISMATCH",
      forgedHeld: false,
      fresh: "ok",
      freshHeld: true,
      notAName: "BAD_ARGUMENT",
      aborted: "ABORTED",
      abortedHeld: false,
      abortedBefore: "ABORTED",
    });
  } finally {
    files.close();
    files.closeAllConnections();
  }
  page.problems = page.problems.filter((p) => !p.includes(base)); // the cut download is expected
});

test("a batch of 100 texts and 20 recalls in the worker pool leave the page's main thread free (no long task)", async () => {
  const out = await page.evaluate(async ({ LOCAL }) => {
    const { EmbeddingService, MemorySystem } = window.sdk;
    const texts = Array.from({ length: 100 }, (_, i) => `note ${i}: the agent filed report number ${i * 7} about the ${["harbour", "forest", "market", "archive"][i % 4]}`);
    /** Long tasks (PerformanceObserver) while `work` runs. */
    const longTasks = async (work) => {
      const tasks = [];
      const observer = new PerformanceObserver((list) => tasks.push(...list.getEntries().map((e) => Math.round(e.duration))));
      observer.observe({ type: "longtask" });
      const started = performance.now();
      await work();
      const ms = performance.now() - started;
      await new Promise((r) => setTimeout(r, 100));
      observer.disconnect();
      return { tasks, ms };
    };
    const pooled = await EmbeddingService.create({ providers: [LOCAL], cache: 0 });
    const memory = await MemorySystem.open({ embedding: pooled, persist: false, name: "pool" });
    for (const text of ["the harbour report was filed", "bread rises in the oven", "the forest is quiet at night"]) await memory.remember(text);
    const progress = [];
    const pool = await longTasks(async () => {
      await pooled.embedBatch(texts, { onProgress: (p) => progress.push(p.done) });
      for (let i = 0; i < 20; i++) await memory.recall(i % 2 ? "baking bread" : "a report from the port");
    });
    const top = (await memory.recall("baking bread", { k: 1 }))[0].bead.content;
    const telemetry = pooled.telemetry()[0];
    // The same batch in this thread: the observer does see long tasks when there are some.
    const inThread = await EmbeddingService.create({ providers: [LOCAL], cache: 0, workers: 0 });
    const here = await longTasks(() => inThread.embedBatch(texts.slice(0, 16)));
    inThread.free();
    await memory.close();
    pooled.close();
    const closed = await pooled.embed("after close").then(() => "resolved", (e) => e.code);
    return { pool, progress, top, telemetry, here, closed, cores: navigator.hardwareConcurrency };
  }, { LOCAL });
  console.log(`pool of ${out.telemetry.workers} workers: 100 texts and 20 recalls in ${out.pool.ms.toFixed(0)} ms, long tasks ${JSON.stringify(out.pool.tasks)}; in-thread long tasks ${JSON.stringify(out.here.tasks)}`);
  assert.equal(out.telemetry.workers, Math.min(out.cores, 4));
  assert.deepEqual(out.pool.tasks.filter((ms) => ms > 50), [], "no task over 50 ms on the main thread");
  assert.ok(out.here.tasks.some((ms) => ms > 50), "in this thread the same work is seen as long tasks");
  assert.ok(out.progress.length >= 100 / 8 && out.progress.at(-1) === 100, `progress ${out.progress}`);
  assert.equal(out.top, "bread rises in the oven");
  assert.equal(out.closed, "ABORTED");
});

test("a worker that dies mid-batch is replaced and its texts run once more; vectors keep their order", async () => {
  const out = await page.evaluate(async ({ LOCAL }) => {
    const texts = Array.from({ length: 40 }, (_, i) => `sentence ${i} about ${i % 3 ? "cats" : "markets"}`);
    const reference = await window.local.embedBatch(texts); // the in-page service of the first test
    const workers = [];
    const post = Worker.prototype.postMessage;
    Worker.prototype.postMessage = function (message, transfer) {
      if (!workers.includes(this)) workers.push(this);
      // The first chunk sent: its worker crashes (an uncaught error in the worker).
      if (message?.type === "embed" && !window.crashed) {
        window.crashed = true;
        post.call(this, message, transfer);
        return setTimeout(() => this.dispatchEvent(new ErrorEvent("error", { message: "simulated crash" })), 5);
      }
      return post.call(this, message, transfer);
    };
    try {
      const pooled = await window.sdk.EmbeddingService.create({ providers: [LOCAL], cache: 0, workers: 2 });
      const vectors = await pooled.embedBatch(texts);
      const telemetry = pooled.telemetry()[0];
      pooled.close();
      return {
        same: vectors.every((v, i) => v.every((x, j) => x === reference[i][j])),
        telemetry,
        spawned: workers.length,
      };
    } finally {
      Worker.prototype.postMessage = post;
    }
  }, { LOCAL });
  assert.ok(out.same, "every vector equals the in-page model's, in order");
  assert.equal(out.telemetry.workersReplaced, 1);
  assert.equal(out.spawned, 3, "two workers and one replacement");
});

test("an isolated vault: a hostile script that reads every wasm memory and patches fetch, Headers and Request finds no key, and the remote call succeeds", async () => {
  // The user's vault, made elsewhere (here in Node.js) around a known master key.
  const sdk = await import("chrysalis-sdk");
  await sdk.initializeChrysalis({ moduleOrPath: readFileSync(new URL(import.meta.resolve("chrysalis-sdk/chrysalis_wasm_bg.wasm"))) });
  const master = Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff);
  const made = sdk.SecurityContext.fromMasterKey(new Uint8Array(master));
  made.storeApiKey("openai", OPENAI);
  const vault = Array.from(made.exportVault("isolated passphrase", { logN: 10 }));
  made.free();
  const hostile = await openPage(browser, new URL(page.url()).origin + "/");
  try {
    provider.requests.length = 0;
    const out = await hostile.evaluate(async ({ vault, master, key, providerUrl }) => {
      // The hostile script runs first: it keeps every wasm memory the page creates or imports.
      const memories = new Set();
      const keep = (value) => value instanceof WebAssembly.Memory && memories.add(value);
      const watch = (instance, imports) => {
        for (const value of Object.values(instance?.exports ?? {})) keep(value);
        for (const module of Object.values(imports ?? {})) for (const value of Object.values(module ?? {})) keep(value);
      };
      for (const name of ["instantiate", "instantiateStreaming"]) {
        const original = WebAssembly[name];
        WebAssembly[name] = async function (source, imports) {
          const result = await original.call(this, source, imports);
          watch(result.instance ?? result, imports);
          return result;
        };
      }
      const OriginalInstance = WebAssembly.Instance;
      WebAssembly.Instance = function (module, imports) {
        const instance = new OriginalInstance(module, imports);
        watch(instance, imports);
        return instance;
      };
      WebAssembly.Instance.prototype = OriginalInstance.prototype; // loaders still recognise instances
      const found = (needle) => {
        for (const memory of memories) {
          const bytes = new Uint8Array(memory.buffer);
          for (let i = bytes.indexOf(needle[0]); i >= 0; i = bytes.indexOf(needle[0], i + 1)) {
            let j = 1;
            while (j < needle.length && bytes[i + j] === needle[j]) j++;
            if (j === needle.length) return true;
          }
        }
        return false;
      };
      const keyBytes = new TextEncoder().encode(key);
      const masterBytes = new Uint8Array(master);
      const sdk = await import("/pkg/index.js");
      await sdk.initializeChrysalis();
      const isolated = await sdk.SecurityContext.isolated({ vault: new Uint8Array(vault), passphrase: "isolated passphrase", origins: { openai: [providerUrl] } });
      // Then it patches the request path and records what passes through it.
      const seen = [];
      const record = (...args) => seen.push(JSON.stringify(args, (_, v) => (v instanceof Headers ? [...v] : v)));
      const { fetch: realFetch, Headers: RealHeaders, Request: RealRequest } = window;
      window.fetch = function (...args) { record("fetch", ...args); return realFetch.apply(this, args); };
      window.Headers = class extends RealHeaders { constructor(...args) { record("Headers", ...args); super(...args); } set(...args) { record("set", ...args); return super.set(...args); } };
      window.Request = class extends RealRequest { constructor(...args) { record("Request", ...args); super(...args); } };
      const embedding = await sdk.EmbeddingService.create({ providers: [{ kind: "openai", baseUrl: providerUrl, dimensions: 8 }], security: isolated });
      const vector = await embedding.embed("an isolated call");
      const redacted = await isolated.redactedApiKey("openai");
      const getApiKey = [typeof isolated.getApiKey, typeof isolated.allowApiOrigin].join();
      // Whatever passphrase the page names, the vault comes out sealed under the one it was opened with.
      const exported = await isolated.exportVault("attacker", { logN: 10 });
      const resealed = await Promise.resolve().then(() => sdk.SecurityContext.unlock(exported, "attacker")).then(() => "opened", (e) => e.code);
      const after = { key: found(keyBytes), master: found(masterBytes), memories: memories.size, leaked: seen.filter((s) => s.includes(key) || s.includes("Bearer")) };
      // A memory persisted in IndexedDB, sealed by the isolated vault, and opened again.
      const memory = await sdk.MemorySystem.open({ security: isolated, name: "isolated-memory" });
      await memory.remember("kept by an isolated vault");
      await memory.close();
      const again = await sdk.MemorySystem.open({ security: isolated, name: "isolated-memory" });
      const kept = again.beads().map((b) => b.content);
      await again.close();
      isolated.close();
      // The same vault unlocked in the page: the scanner does find its master key there.
      const inPage = sdk.SecurityContext.unlock(new Uint8Array(vault), "isolated passphrase");
      const baseline = found(masterBytes);
      inPage.free();
      return { ...after, dims: vector.dims, redacted, getApiKey, baseline, kept, resealed };
    }, { vault, master, key: OPENAI, providerUrl });
    assert.equal(out.dims, 8, "the remote call succeeded");
    assert.equal(provider.requests.at(-1).auth, `Bearer ${OPENAI}`, "the provider got the key");
    assert.ok(out.memories >= 2, `the scanner saw the page's wasm memories (${out.memories})`);
    assert.deepEqual([out.key, out.master, out.leaked], [false, false, []], "no key in the page's realm");
    assert.equal(out.baseline, true, "an in-page vault's master key is found by the same scan");
    assert.equal(out.getApiKey, "undefined,undefined");
    assert.equal(out.resealed, "AUTH_FAILED");
    assert.match(out.redacted, /^sk-/);
    assert.deepEqual(out.kept, ["kept by an isolated vault"], "MemorySystem stores through the isolated vault");
  } finally {
    await hostile.close();
  }
});

/** Runs `body` in the page with `remote(kind, extra)` building provider options for the mock. */
function inPage(body, args = {}) {
  return page.evaluate(
    async ({ body, providerUrl, args }) => {
      const remote = (kind, extra = {}) => ({ kind, baseUrl: providerUrl, dimensions: 8, ...extra });
      const create = (providers, extra = {}) =>
        window.sdk.EmbeddingService.create({ providers, security: window.ctx, ...extra });
      const codeOf = (promise) => promise.then(() => "resolved", (e) => ({ code: e.code, message: e.message }));
      return new Function("remote", "create", "codeOf", "args", `return (async () => { ${body} })()`)(remote, create, codeOf, args);
    },
    { body, providerUrl, args },
  );
}

test("OpenAI provider: key from the vault, batches split, order kept, cache, telemetry, cost", async () => {
  provider.requests.length = 0;
  const texts = Array.from({ length: 10 }, (_, i) => `text number ${i}`);
  const out = await inPage(`
    const svc = await create([remote("openai", { batchSize: 4 })], { concurrency: 2 });
    const vectors = await svc.embedBatch(args.texts);
    await svc.embedBatch(args.texts);
    return {
      vectors: vectors.map((v) => Array.from(v)),
      tag: [vectors[0].model, vectors[0].dims],
      telemetry: svc.telemetry(),
      cost: svc.estimateCost(["abcdefgh", "a"]),
    };`, { texts });
  assert.deepEqual(provider.requests.map((r) => r.body.input.length).sort(), [2, 4, 4]);
  assert.ok(provider.requests.every((r) => r.auth === `Bearer ${OPENAI}` && r.path === "/v1/embeddings"));
  assert.ok(provider.requests.every((r) => r.body.model === "text-embedding-3-small" && r.body.dimensions === 8));
  out.vectors.forEach((v, i) => v.forEach((x, j) => assert.ok(Math.abs(x - fakeVector(texts[i], 8)[j]) < 1e-6)));
  assert.deepEqual(out.tag, ["text-embedding-3-small", 8]);
  const t = out.telemetry[0];
  assert.deepEqual([t.provider, t.calls, t.texts, t.tokens, t.cacheHits, t.fatalErrors], ["openai", 3, 10, 30, 10, 0]);
  assert.deepEqual(out.cost[0].tokens, 3);
  assert.ok(Math.abs(out.cost[0].usd - 3 * 0.02 / 1e6) < 1e-15);
});

test("429 with Retry-After waits that long; 500 then success retries with backoff", async () => {
  provider.requests.length = 0;
  provider.plan.push({ status: 429, retryAfter: "1" });
  const rateLimited = await inPage(`const svc = await create([remote("openai")]); await svc.embed("rate limited"); return svc.telemetry()[0];`);
  assert.equal(provider.requests.length, 2);
  const waited = provider.requests[1].at - provider.requests[0].at;
  assert.ok(waited >= 950, `waited ${waited} ms after Retry-After: 1`);
  assert.deepEqual([rateLimited.retryableErrors, rateLimited.calls], [1, 1]);

  provider.requests.length = 0;
  provider.plan.push({ status: 500 }, { status: 503 });
  const flaky = await inPage(`const svc = await create([remote("nomic")]); const v = await svc.embed("flaky"); return [svc.telemetry()[0], v.model, v.dims];`);
  assert.equal(provider.requests.length, 3);
  assert.ok(provider.requests.every((r) => r.auth === `Bearer ${NOMIC}` && r.body.task_type === "search_document"));
  assert.deepEqual([flaky[0].retryableErrors, flaky[0].calls, flaky[1], flaky[2]], [2, 1, "nomic-embed-text-v1.5", 8]);
});

test("401 falls back to the next provider at once; errors never carry the key", async () => {
  provider.requests.length = 0;
  const echo = { error: { message: `Incorrect API key provided: ${OPENAI}.`, type: "invalid_request_error" } };
  provider.plan.push({ status: 401, body: echo });
  const out = await inPage(`
    const svc = await create([remote("openai"), remote("nomic")]);
    const v = await svc.embed("fallback");
    return { model: v.model, telemetry: svc.telemetry() };`);
  assert.deepEqual(provider.requests.map((r) => r.path), ["/v1/embeddings", "/v1/embedding/text"]);
  assert.equal(out.model, "nomic-embed-text-v1.5");
  assert.deepEqual([out.telemetry[0].fatalErrors, out.telemetry[0].retryableErrors, out.telemetry[1].calls], [1, 0, 1]);
  provider.plan.push({ status: 401, body: echo });
  const refused = await inPage(`const s = await create([remote("openai")]); return codeOf(s.embed("refused again"));`);
  assert.equal(refused.code, "PROVIDER_AUTH");
  assert.ok(refused.message.includes("sk-proj-...WXYZ") && !refused.message.includes(OPENAI), refused.message);
  assert.ok(!JSON.stringify(out).includes(OPENAI));
});

test("malformed JSON, timeout, abort, and a key refused for an origin are typed errors", async () => {
  provider.requests.length = 0;
  provider.plan.push("malformed", { delay: 1500 }, { delay: 1500 });
  const out = await inPage(`
    const one = { retry: { maxAttempts: 1 } };
    const malformed = await codeOf((await create([remote("openai")], one)).embed("bad json"));
    const timeout = await codeOf((await create([remote("openai", { timeoutMs: 300 })], one)).embed("slow"));
    const controller = new AbortController();
    const slow = await create([remote("openai")], one);
    setTimeout(() => controller.abort(), 100);
    const aborted = await codeOf(slow.embed("aborted", { signal: controller.signal }));
    const elsewhere = await codeOf((await create([remote("openai", { baseUrl: args.other })])).embed("x"));
    const noSecurity = await codeOf((await window.sdk.EmbeddingService.create({ providers: [remote("openai")] })).embed("x"));
    const mixed = await (async () => {
      const a = await (await create([remote("openai")])).embed("mix");
      const b = await (await create([remote("nomic")])).embed("mix");
      try { window.sdk.cosineSimilarity(a, b); return "compared"; } catch (e) { return e.code; }
    })();
    return { malformed, timeout, aborted, elsewhere, noSecurity, mixed };`, { other: providerUrl.replace("127.0.0.1", "localhost") });
  assert.equal(out.malformed.code, "MALFORMED_RESPONSE");
  assert.equal(out.timeout.code, "TIMEOUT");
  assert.equal(out.aborted.code, "ABORTED");
  assert.equal(out.elsewhere.code, "NO_CREDENTIALS");
  assert.match(out.elsewhere.message, /ORIGIN_NOT_ALLOWED/);
  assert.equal(out.noSecurity.code, "NO_CREDENTIALS");
  assert.equal(out.mixed, "MODEL_MISMATCH");
  // The refused origin never got a request: only the three planned ones and the two "mix" ones arrived.
  assert.equal(provider.requests.length, 5);
});
