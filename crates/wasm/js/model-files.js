// Downloading model files for EmbeddingService (a wasm-bindgen snippet): streamed with progress,
// kept in Cache Storage under their URL. Integrity (SHA-256) is checked in wasm before
// `cacheModelFile` stores anything, and a cached file that fails the check is evicted.

async function openCache(name) {
  return typeof caches === "undefined" ? undefined : caches.open(name);
}

/** The bytes at `url` (from the cache when `cacheName` is set and has them), reporting progress. */
export async function fetchModelFile(url, cacheName, file, onProgress, signal) {
  const cache = cacheName ? await openCache(cacheName) : undefined;
  let response = cache ? await cache.match(url) : undefined;
  const cached = response !== undefined;
  if (!cached) {
    response = await fetch(url, { signal });
    if (!response.ok) {
      const error = new Error(`downloading ${file} from ${url}: HTTP ${response.status}`);
      error.code = "DOWNLOAD_FAILED";
      throw error;
    }
  }
  const total = Number(response.headers.get("content-length")) || 0;
  const report = (loaded) => onProgress?.({ phase: "download", file, loaded, total: total || loaded, cached });
  const reader = response.body.getReader();
  const chunks = [];
  let loaded = 0;
  report(0);
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    report(loaded);
  }
  const bytes = new Uint8Array(loaded);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  return { bytes, cached };
}

/** Stores verified bytes under `url`. */
export async function cacheModelFile(url, cacheName, bytes) {
  const cache = await openCache(cacheName);
  await cache?.put(url, new Response(bytes, { headers: { "content-length": String(bytes.length) } }));
}

/** Removes `url` from the cache (after a failed integrity check). */
export async function evictModelFile(url, cacheName) {
  const cache = await openCache(cacheName);
  await cache?.delete(url);
}
