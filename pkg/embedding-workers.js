// The worker host of `EmbeddingService`: it starts the workers the pool in wasm asks for (Web
// Workers in a page, `worker_threads` in Node.js), posts what the pool gives it and hands back
// what they answer, or `null` when one died. It decides nothing (crates/wasm/src/embedding_pool.rs).

const threads = globalThis.process?.getBuiltinModule?.("node:worker_threads");
/** Workers not yet terminated. */
const live = new WeakSet();

/** @type {import("./chrysalis_embedding.js").EmbeddingWorkerHost} */
export const embeddingWorkerHost = {
  cores() {
    return globalThis.navigator?.hardwareConcurrency ?? globalThis.process?.getBuiltinModule?.("node:os")?.availableParallelism?.() ?? 1;
  },
  spawn(id, module, listen) {
    // Nothing is reported of a worker once the pool terminated it (its listener may be gone).
    const report = (message) => live.has(worker) && listen(id, message);
    let worker;
    if (threads) {
      worker = new threads.Worker(new URL("./embedding-worker.js", import.meta.url));
      worker.on("message", report);
      worker.on("error", () => report(null));
      worker.on("exit", () => report(null));
    } else {
      worker = new Worker(new URL("./embedding-worker.js", import.meta.url), { type: "module" });
      worker.addEventListener("message", (event) => report(event.data));
      worker.addEventListener("error", () => report(null));
      worker.addEventListener("messageerror", () => report(null));
    }
    live.add(worker);
    worker.postMessage({ module });
    return worker;
  },
  post(worker, message) {
    worker.ref?.(); // Node.js: a busy worker keeps the process alive
    worker.postMessage(message);
  },
  idle(worker) {
    worker.unref?.();
  },
  terminate(worker) {
    live.delete(worker);
    worker.terminate();
  },
};
