// The timer sliced and retried work waits with (scrypt, vault loading, model hashing, the
// embedding service's backoff), a wasm-bindgen snippet: `setTimeout` and `Promise` are captured
// when the module is imported, so a script that replaces them later cannot stall that work or
// cut a backoff short.
const setTimeoutAtImport = globalThis.setTimeout?.bind(globalThis);
const PromiseAtImport = Promise;

/** Resolves after `ms` milliseconds, or at once when `signal` aborts. */
export function sleep(ms, signal) {
  return new PromiseAtImport((resolve, reject) => {
    if (!setTimeoutAtImport) return reject(new Error("this environment has no setTimeout"));
    setTimeoutAtImport(resolve, ms);
    signal?.addEventListener?.("abort", resolve, { once: true });
  });
}

/** Resolves on the next macrotask, so the page can paint and handle input in between. */
export const nextTurn = () => sleep(0);
