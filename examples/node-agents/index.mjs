// Two agents in Node.js 20 share a memory through a relay: Alice remembers, Bob recalls by meaning.
// Usage: node index.mjs ws://127.0.0.1:8787 /path/to/all-MiniLM-L6-v2
// (the relay: `cargo run --release -p chrysalis-relay -- --listen 127.0.0.1:8787`; the model
// directory holds model.onnx and tokenizer.json, e.g. ~/.cache/chrysalis/models/all-MiniLM-L6-v2).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { WebSocket } from "ws";
import { initializeChrysalis, EmbeddingService, SigningKey, SyncNode, MemorySystem } from "chrysalis-sdk";

const relayUrl = process.argv[2] ?? "ws://127.0.0.1:8787";
const modelDir = process.argv[3] ?? process.env.CHRYSALIS_MODEL_DIR ?? "all-MiniLM-L6-v2";
await initializeChrysalis();
const embedding = await EmbeddingService.create({ providers: [{ kind: "local",
  modelBytes: readFileSync(join(modelDir, "model.onnx")), tokenizerBytes: readFileSync(join(modelDir, "tokenizer.json")) }] });
const agent = async () => MemorySystem.open({ embedding, persist: false,
  sync: await SyncNode.join({ room: "getting-started", identity: SigningKey.generate(), relayUrl, WebSocket }) });
const [alice, bob] = [await agent(), await agent()];
const arrived = new Promise((resolve) => bob.on("change", resolve));
await alice.remember("The staging database is rebuilt from scratch every Sunday night.");
await arrived;
const [hit] = await bob.recall("When is staging wiped?");

console.log(JSON.stringify({ recalled: hit.bead.content, author: hit.bead.authorId, alice: alice.agentId, similarity: hit.similarity }));
for (const memory of [alice, bob]) await memory.close();
embedding.close();
process.exit(0);
