// Downloading model files for EmbeddingService (a wasm-bindgen snippet that moves bytes; the
// policy is wasm's, crates/wasm/src/embedding.rs `model_file`): streamed with progress, and, when
// given a cache, copied into Cache Storage under their URL while they download (the browser
// copies the bytes, not this thread). Wasm passes the cache and the size limits, checks every
// file's SHA-256 and decides what to evict: a failure here is returned, not thrown, with what it
// left in the cache.

const fileError = (code, message) => Object.assign(new Error(message), { code });
/** A result record without a prototype: nothing a script puts on `Object.prototype` reads as one of its fields. */
const record = (fields) => Object.assign(Object.create(null), fields);

async function openCache(name) {
  return typeof caches === "undefined" ? undefined : caches.open(name);
}

/**
 * The bytes at `url` (from the cache `cacheName` when it has them, else downloaded and, with a
 * cache, copied into it), reporting progress. `preallocateAtMost`: the largest announced length
 * read into one buffer as it arrives; `maxBytes`: the largest file read. Resolves to `{ bytes,
 * cached, stored }`, where `stored` is the promise of the cache's copy of a download, or on
 * failure to `{ failed: true, error, cachedCopy }`: `cachedCopy` is `"unreadable"` when the
 * cached copy failed to read, or the promise of a failed download's copy (ended by our abort, but
 * it may have completed), for the caller to settle and evict; `{ failed: true, error,
 * cacheUnavailable: true }` when the cache could not be opened or searched (nothing was fetched).
 */
export async function fetchModelFile(url, cacheName, file, preallocateAtMost, maxBytes, onProgress, signal) {
  const limits = { preallocateAtMost, maxBytes };
  let cache;
  let hit;
  try {
    cache = cacheName ? await openCache(cacheName) : undefined;
    hit = cache ? await cache.match(url) : undefined;
  } catch (error) {
    return record({ failed: true, error, cacheUnavailable: true });
  }
  const report = (cached, total) => (loaded) => onProgress?.({ phase: "download", file, loaded, total: total || loaded, cached });
  if (hit) {
    try {
      return record({ bytes: await readAll(hit.body, 0, file, limits, report(true, 0)), cached: true });
    } catch (error) {
      return record({ failed: true, error, cachedCopy: "unreadable" });
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
      stored.catch(() => {}); // settled by the caller
    }
    return record({ bytes: await readAll(body, total, file, limits, report(false, total)), cached: false, stored });
  } catch (error) {
    controller.abort();
    return record({ failed: true, error, cachedCopy: stored });
  } finally {
    signal?.removeEventListener?.("abort", abort);
  }
}

/**
 * Reads `body` whole (at most `limits.maxBytes`): into one buffer of the announced `total` as it
 * arrives (no long copy at the end), what goes beyond it in parts joined at the end.
 */
async function readAll(body, total, file, limits, report) {
  const buffer = new Uint8Array(total <= limits.preallocateAtMost ? total : 0);
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
    if (loaded > limits.maxBytes) {
      reader.cancel().catch(() => {});
      throw fileError("DOWNLOAD_FAILED", `${file} is larger than ${limits.maxBytes} bytes`);
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

/** Removes `url` from the cache `cacheName`. */
export async function evictModelFile(url, cacheName) {
  const cache = await openCache(cacheName);
  await cache?.delete(url);
}
