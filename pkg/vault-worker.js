// The worker of an isolated vault (`SecurityContext.isolated`): it instantiates the core module in
// its own realm and hands every request of the page to `VaultWorker.handle`, posting back the
// result or the error's code and message. What a page may ask is decided in Rust
// (crates/wasm/src/vault_worker.rs); this file only wires messages, and an abort to its fetch.
import init, { VaultWorker } from "./chrysalis_wasm.js";

const threads = globalThis.process?.getBuiltinModule?.("node:worker_threads");
const port = threads?.parentPort ?? globalThis;
// Node.js has no fetch of file URLs: the module's bytes are read next to this file.
const bytes = threads && globalThis.process.getBuiltinModule("node:fs").readFileSync(new URL("./chrysalis_wasm_bg.wasm", import.meta.url));
const vault = init(bytes ? { module_or_path: bytes } : undefined).then(() => new VaultWorker());
const aborts = new Map();

async function receive({ id, op, args }) {
  if (!Array.isArray(args)) args = [];
  if (op === "abort") return aborts.get(args[0])?.abort();
  try {
    if (op === "fetch") {
      const controller = new AbortController();
      aborts.set(id, controller);
      args[2] = { ...args[2], signal: controller.signal };
    }
    port.postMessage({ id, value: await (await vault).handle(op, args) });
  } catch (error) {
    port.postMessage({ id, error: { code: error?.code, message: String(error?.message ?? error) } });
  } finally {
    aborts.delete(id);
  }
}

if (threads) port.on("message", receive);
else globalThis.addEventListener("message", (event) => receive(event.data));
