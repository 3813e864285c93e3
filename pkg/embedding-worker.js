// One worker of an `EmbeddingService` pool: its first message is the compiled embedding module,
// which it instantiates; every later message goes to `EmbeddingWorker.handle`, whose reply it
// posts back (the vectors' buffer transferred). The model files arrive as `Blob`s, read into
// bytes here (off the page's thread). It decides nothing.
import init, { EmbeddingWorker } from "./chrysalis_embedding.js";

const port = globalThis.process?.getBuiltinModule?.("node:worker_threads")?.parentPort;
const send = (reply) => (port ?? globalThis).postMessage(reply, reply.vectors ? [reply.vectors.buffer] : []);
let worker;

/** `message` with each `Blob` field replaced by its bytes. */
async function withBytes(message) {
  if (!message || typeof message !== "object") return message;
  const fields = await Promise.all(Object.entries(message).map(async ([name, value]) => [name, value instanceof Blob ? new Uint8Array(await value.arrayBuffer()) : value]));
  return Object.fromEntries(fields);
}

async function receive(message) {
  if (!worker) {
    worker = init({ module_or_path: message.module }).then(() => new EmbeddingWorker());
    return;
  }
  try {
    send((await worker).handle(await withBytes(message)));
  } catch (error) {
    // A trap leaves the instance unusable: die (the pool replaces this worker and runs its texts once more).
    if (error instanceof WebAssembly.RuntimeError) setTimeout(() => { throw error; });
    else send({ type: message?.type === "load" ? "load-failed" : "failed", chunk: message?.chunk, code: error?.code ?? "MODEL_ERROR", message: String(error?.message ?? error) });
  }
}

if (port) port.on("message", receive);
else globalThis.addEventListener("message", (event) => receive(event.data));
