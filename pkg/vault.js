// `SecurityContext.isolated(options)`: a vault in a worker realm of its own (vault-worker.js). Its
// keys and the authorized request never enter the page's realm: a script of the page that reads
// every wasm memory it can reach, or patches fetch, Headers or Request after the package was
// imported, finds no key. The page asks by message and gets back only what the worker's
// `VaultWorker` answers (crates/wasm/src/vault_worker.rs): no key, and no way to seal the vault
// under another passphrase or to send keys to another origin than those given to `open`.

// Captured when the package is imported (a script that runs before the import is out of reach).
const { apply, construct } = Reflect;
const WorkerClass = globalThis.Worker;
const workerMethods = typeof WorkerClass === "function" ? WorkerClass.prototype : undefined;
const { postMessage, addEventListener, terminate } = workerMethods ?? {};
// Node.js (no Worker global): worker_threads.
const threads = workerMethods ? undefined : globalThis.process?.getBuiltinModule?.("node:worker_threads");
const WORKER_URL = new URL("./vault-worker.js", import.meta.url);
const ResponseClass = globalThis.Response;
const HeadersClass = globalThis.Headers;
const headersEntries = HeadersClass?.prototype.entries;
const ErrorClass = Error;
const MapClass = Map;
const { get: mapGet, set: mapSet, delete: mapDelete, values: mapValues, clear: mapClear } = Map.prototype;
const NULL_BODY = [101, 204, 205, 304];

function codedError(code, message) {
  const error = new ErrorClass(message);
  if (code) error.code = code;
  return error;
}

/** A `SecurityContext` in a worker: its calls return promises; no `getApiKey` and no `allowApiOrigin` (origins are fixed at `open`). */
export class IsolatedSecurityContext {
  #worker;
  #pending = construct(MapClass, []);
  #next = 0;

  /**
   * Starts the worker and opens its vault: `{ vault, passphrase }` (an exported vault),
   * `{ store, passphrase }` (persisted in IndexedDB) or `{ passphrase }` / `{}` (a new one);
   * `origins: { provider: [origin, …] }` are the origins its keys may also go to.
   */
  static async open(options = {}) {
    const context = new IsolatedSecurityContext();
    if (threads) {
      const worker = new threads.Worker(WORKER_URL);
      worker.on("message", (message) => context.#settle(message));
      worker.on("error", () => context.#fail("the vault's worker failed"));
      worker.on("exit", () => context.#fail("the vault's worker stopped"));
      context.#worker = worker;
    } else {
      const worker = construct(WorkerClass, [WORKER_URL, { type: "module" }]);
      apply(addEventListener, worker, ["message", (event) => context.#settle(event.data)]);
      apply(addEventListener, worker, ["error", () => context.#fail("the vault's worker failed")]);
      apply(addEventListener, worker, ["messageerror", () => context.#fail("a message from the vault's worker was lost")]);
      context.#worker = worker;
    }
    const { vault, store, passphrase, origins } = options;
    try {
      await context.#call("open", [{ vault, store, passphrase, origins }]);
    } catch (error) {
      context.close();
      throw error;
    }
    return context;
  }

  #post(message) {
    if (threads) this.#worker.postMessage(message);
    else apply(postMessage, this.#worker, [message]);
  }

  #settle({ id, value, error }) {
    const waiting = apply(mapGet, this.#pending, [id]);
    apply(mapDelete, this.#pending, [id]);
    if (this.#pending.size === 0) this.#worker?.unref?.(); // Node.js: an idle vault does not keep the process alive
    if (waiting) error ? waiting.reject(codedError(error.code, error.message)) : waiting.resolve(value);
  }

  #fail(message) {
    const waiting = [...apply(mapValues, this.#pending, [])];
    apply(mapClear, this.#pending, []);
    for (const { reject } of waiting) reject(codedError("WORKER_FAILED", message));
  }

  #call(op, args, id = this.#next++) {
    return new Promise((resolve, reject) => {
      if (!this.#worker) return reject(codedError("LOCKED", "the isolated vault is closed"));
      apply(mapSet, this.#pending, [id, { resolve, reject }]);
      this.#worker.ref?.();
      try {
        this.#post({ id, op, args });
      } catch (error) {
        apply(mapDelete, this.#pending, [id]);
        reject(codedError("BAD_ARGUMENT", `the request cannot be sent to the vault: ${error?.message}`));
      }
    });
  }

  /** Stores (or replaces) the API key of `provider` (the key crosses the page once, here). */
  storeApiKey(provider, key) {
    return this.#call("storeApiKey", [provider, key]);
  }
  /** Whether an API key is stored for `provider`. */
  hasApiKey(provider) {
    return this.#call("hasApiKey", [provider]);
  }
  /** Removes the API key of `provider`; resolves with whether there was one. */
  removeApiKey(provider) {
    return this.#call("removeApiKey", [provider]);
  }
  /** The providers with a stored API key. */
  listProviders() {
    return this.#call("listProviders", []);
  }
  /** The redacted API key of `provider` (`sk-...abcd`). */
  redactedApiKey(provider) {
    return this.#call("redactedApiKey", [provider]);
  }
  /** The vault sealed under the passphrase it was opened with (`{ logN }`). */
  exportVault(options) {
    return this.#call("exportVault", [options]);
  }
  /** Persists the vault, sealed under the passphrase it was opened with, in IndexedDB store `store`. */
  persist(store) {
    return this.#call("persist", [store]);
  }
  /** Encrypts `plaintext` into a storage envelope under the newest storage key (bound to `aad`). */
  encryptForStorage(plaintext, aad) {
    return this.#call("encryptForStorage", [plaintext, aad]);
  }
  /** Decrypts a storage envelope (bound to `aad`). */
  decryptFromStorage(envelope, aad) {
    return this.#call("decryptFromStorage", [envelope, aad]);
  }

  /**
   * `fetch(url, init)` made in the worker with the key of `provider` (see
   * `SecurityContext.authorizedFetch`); resolves to a `Response` built here from its status,
   * headers and body. `init` may hold `method`, `headers`, a string `body` and a `signal` (an
   * abort rejects at once with `ABORTED` and cancels the request in the worker).
   */
  async authorizedFetch(provider, url, init = {}) {
    const { signal, method, headers, body } = init;
    if (signal?.aborted) throw codedError("ABORTED", "aborted");
    const plain = {};
    if (headers !== undefined) {
      const entries = apply(headersEntries, construct(HeadersClass, [headers]), []);
      for (const [name, value] of entries) plain[name] = value;
    }
    const id = this.#next++;
    const reply = this.#call("fetch", [provider, String(url), { method, headers: plain, body }], id);
    let abort;
    const aborted = new Promise((_, reject) => {
      abort = () => {
        this.#worker && this.#post({ id: -1, op: "abort", args: [id] });
        reject(codedError("ABORTED", "aborted"));
      };
      signal?.addEventListener("abort", abort, { once: true });
    });
    try {
      const answer = await Promise.race([reply, aborted]);
      const content = NULL_BODY.includes(answer.status) ? null : answer.body;
      return construct(ResponseClass, [content, { status: answer.status, statusText: answer.statusText, headers: answer.headers }]);
    } finally {
      signal?.removeEventListener("abort", abort);
    }
  }

  /** Stops the worker (its keys go with it); calls under way reject with `LOCKED`. */
  close() {
    const worker = this.#worker;
    this.#worker = undefined;
    if (worker) threads ? worker.terminate() : apply(terminate, worker, []);
    const waiting = [...apply(mapValues, this.#pending, [])];
    apply(mapClear, this.#pending, []);
    for (const { reject } of waiting) reject(codedError("LOCKED", "the isolated vault was closed"));
  }
}
