// Downloading model files for EmbeddingService (a wasm-bindgen snippet): streamed with progress,
// and stored in Cache Storage under their URL while they download (the browser copies the bytes,
// not this thread). Integrity (SHA-256) is checked in wasm on every load, from the network or the
// cache: a file that fails the check is evicted (after its store finished) and never used.

/** The largest announced length read into one buffer as it arrives. */
const PREALLOCATE_AT_MOST = 512 << 20;

async function openCache(name) {
  return typeof caches === "undefined" ? undefined : caches.open(name);
}

/**
 * The bytes at `url` (from the cache when `cacheName` is set and has them), reporting progress:
 * `{ bytes, cached, stored }`, where `stored` is the promise of the cache's copy of a download.
 */
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
  let body = response.body;
  let stored;
  if (cache && !cached) {
    const [mine, theirs] = body.tee();
    body = mine;
    stored = cache.put(url, new Response(theirs, { headers: total ? { "content-length": String(total) } : {} }));
    stored.catch(() => {}); // awaited (and reported) once the bytes are checked
  }
  const report = (loaded) => onProgress?.({ phase: "download", file, loaded, total: total || loaded, cached });
  const reader = body.getReader();
  // Copied as they arrive into one buffer of the announced length (no long copy at the end);
  // what goes beyond it (or beyond a sane size) is kept in parts and joined at the end.
  const buffer = new Uint8Array(total <= PREALLOCATE_AT_MOST ? total : 0);
  const extra = [];
  let filled = 0; // bytes in `buffer`
  let loaded = 0;
  report(0);
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (extra.length === 0 && filled + value.length <= buffer.length) buffer.set(value, filled), (filled += value.length);
    else extra.push(value);
    loaded += value.length;
    report(loaded);
  }
  const bytes = extra.length === 0 ? buffer.subarray(0, filled) : join([buffer.subarray(0, filled), ...extra], loaded);
  return { bytes, cached, stored };
}

/** `parts` (of `length` bytes in all) as one array. */
function join(parts, length) {
  const whole = new Uint8Array(length);
  let at = 0;
  for (const part of parts) whole.set(part, at), (at += part.length);
  return whole;
}

/** Removes `url` from the cache (after a failed integrity check). */
export async function evictModelFile(url, cacheName) {
  const cache = await openCache(cacheName);
  await cache?.delete(url);
}
