// Downloading model files for EmbeddingService (a wasm-bindgen snippet): streamed with progress,
// and stored in Cache Storage under their URL while they download (the browser copies the bytes,
// not this thread). Integrity (SHA-256) is checked in wasm on every load, from the network or the
// cache: a file that fails the check is evicted (after its store settled) and never used. A
// download that fails midway aborts the cache's copy too, and a cached copy that cannot be read
// is evicted, so nothing unread or unchecked stays in the cache to fail the next load.

/** The largest announced length read into one buffer as it arrives (a larger or lying one is read in parts). */
const PREALLOCATE_AT_MOST = 64 << 20;
/** The largest model file read at all. */
const MAX_FILE = 1 << 30;

const fileError = (code, message) => Object.assign(new Error(message), { code });

async function openCache(name) {
  return typeof caches === "undefined" ? undefined : caches.open(name);
}

/**
 * The bytes at `url` (from the cache when `cacheName` is set and has them), reporting progress:
 * `{ bytes, cached, stored }`, where `stored` is the promise of the cache's copy of a download.
 */
export async function fetchModelFile(url, cacheName, file, onProgress, signal) {
  const cache = cacheName ? await openCache(cacheName) : undefined;
  const report = (cached, total) => (loaded) => onProgress?.({ phase: "download", file, loaded, total: total || loaded, cached });
  const hit = cache ? await cache.match(url) : undefined;
  if (hit) {
    try {
      return { bytes: await readAll(hit.body, 0, file, report(true, 0)), cached: true };
    } catch (error) {
      await cache.delete(url).catch(() => {});
      throw error;
    }
  }
  // Our own abort, so that a failure of ours also ends the cache's copy of the stream.
  const controller = new AbortController();
  const abort = () => controller.abort(signal?.reason);
  if (signal?.aborted) abort();
  signal?.addEventListener?.("abort", abort, { once: true });
  let stored;
  try {
    const response = await fetch(url, { signal: controller.signal });
    if (!response.ok) throw fileError("DOWNLOAD_FAILED", `downloading ${file} from ${url}: HTTP ${response.status}`);
    const length = response.headers.get("content-length") ?? "";
    const total = /^\d{1,12}$/.test(length) ? Number(length) : 0;
    let body = response.body;
    if (cache && body) {
      const [mine, theirs] = body.tee();
      body = mine;
      stored = cache.put(url, new Response(theirs)); // no length header: a cached read takes what is there
      stored.catch(() => {}); // best effort; awaited once the bytes are checked
    }
    return { bytes: await readAll(body, total, file, report(false, total)), cached: false, stored };
  } catch (error) {
    controller.abort();
    stored?.finally(() => cache.delete(url)).catch(() => {}); // in case the copy completed
    throw error;
  } finally {
    signal?.removeEventListener?.("abort", abort);
  }
}

/**
 * Reads `body` whole (at most 1 GiB): into one buffer of the announced `total` as it arrives (no
 * long copy at the end), what goes beyond it in parts joined at the end.
 */
async function readAll(body, total, file, report) {
  const buffer = new Uint8Array(total <= PREALLOCATE_AT_MOST ? total : 0);
  const extra = [];
  let filled = 0; // bytes in `buffer`
  let loaded = 0;
  const reader = body?.getReader();
  report(0);
  while (reader) {
    const { done, value } = await reader.read().catch((error) => {
      if (error?.name === "AbortError") throw error;
      throw fileError("DOWNLOAD_FAILED", `reading ${file}: ${error?.message ?? error}`); // cut midway
    });
    if (done) break;
    loaded += value.length;
    if (loaded > MAX_FILE) {
      reader.cancel().catch(() => {});
      throw fileError("DOWNLOAD_FAILED", `${file} is larger than ${MAX_FILE >> 20} MiB`);
    }
    if (extra.length === 0 && filled + value.length <= buffer.length) buffer.set(value, filled), (filled += value.length);
    else extra.push(value);
    report(loaded);
  }
  const head = filled === buffer.length ? buffer : buffer.slice(0, filled);
  return extra.length === 0 ? head : join([head, ...extra], loaded);
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
