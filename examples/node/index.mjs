// Chrysalis from Node.js 20 ESM: load the wasm bytes from the installed package and
// instantiate synchronously with initSync.
import { readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { initSync, sha256, Hasher, version } from "chrysalis-sdk";

const wasmUrl = new URL(import.meta.resolve("chrysalis-sdk/chrysalis_wasm_bg.wasm"));
initSync({ module: readFileSync(wasmUrl) });

const message = new TextEncoder().encode(process.argv[2] ?? "hello from node");
const ours = Buffer.from(sha256(message)).toString("hex");
const nodes = createHash("sha256").update(message).digest("hex");
const streamed = Buffer.from(
  new Hasher("sha256").update(message.subarray(0, 3)).update(message.subarray(3)).digest(),
).toString("hex");

console.log(JSON.stringify({ version: version(), sha256: ours, nodeCrypto: nodes, streamed }));
if (ours !== nodes || streamed !== nodes) {
  console.error("mismatch between chrysalis-sdk and node:crypto");
  process.exit(1);
}
