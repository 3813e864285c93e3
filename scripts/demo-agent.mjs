// The demo's Node.js agent. The demo command (scripts/serve.mjs) starts it when the relay and the
// model are there: it joins the agents' room through the relay, as an agent on another machine
// would, with the same package and wasm as the page.
//
//   node scripts/demo-agent.mjs RELAY_URL MODEL_DIR STATE_DIR
//
// Its identity and memory live in files under STATE_DIR, so it is the same agent after a restart
// and never remembers its facts twice. It joins a council that names it (as the page's agents do)
// and takes part in ordering motions, but asks for none: it endorses nothing and approves
// nothing. It prints one JSON line `{ name, key, beads }` once ready, and exits when its standard
// input closes (the demo server stopped, however it stopped).
import { createHash } from "node:crypto";
import { appendFileSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { WebSocket } from "ws";
import { initializeChrysalis, EmbeddingService, LWWRegister, MemorySystem, SigningKey, SyncNode } from "../pkg/index.js";
import { AGENT_ROOM, MODEL_SHA256, agentName, councilFrom, followCouncil } from "../www/agents.js";

/** What the agent knows when it first starts. */
const FACTS = [
  "I am the Node.js agent the demo command started: the same wasm as this page, with the ws package as my WebSocket.",
  "Every bead is signed with its author's Ed25519 key, so a relay that forwards it cannot forge or alter a memory.",
  "Pages keep the sentence model in Cache Storage after the first download; Node.js agents read it from disk.",
];

const [relayUrl, modelDir, stateDir] = process.argv.slice(2);
if (!stateDir) throw new Error("usage: node scripts/demo-agent.mjs RELAY_URL MODEL_DIR STATE_DIR");
process.stdin.on("end", () => process.exit(0)).resume();
mkdirSync(stateDir, { recursive: true, mode: 0o700 });
const file = (name) => join(stateDir, name);
const describe = (error) => `${error?.code ?? "ERROR"}: ${error?.message ?? error}`;

/** Writes `bytes` to `name` in one step: a temporary file, flushed, renamed over it. */
function replace(name, bytes) {
  writeFileSync(file(`${name}.tmp`), bytes, { mode: 0o600 });
  const fd = openSync(file(`${name}.tmp`), "r+");
  fsyncSync(fd);
  closeSync(fd);
  renameSync(file(`${name}.tmp`), file(name));
}
const read = (name) => (existsSync(file(name)) ? new Uint8Array(readFileSync(file(name))) : undefined);

/**
 * The memory's storage in plain files (this is a demo's agent: a real one would seal them): the
 * engine's snapshot, its journal as length-prefixed records appended and flushed, and the council
 * log. A torn last record (a crash while appending) is cut off on load, and an append that fails
 * is cut back, so later records never land after garbage.
 */
const fileStorage = {
  load() {
    const journal = [];
    const all = read("journal.bin");
    let at = 0;
    while (all && at + 4 <= all.length) {
      const length = new DataView(all.buffer, all.byteOffset + at, 4).getUint32(0, true);
      if (at + 4 + length > all.length) break;
      journal.push(all.slice(at + 4, at + 4 + length));
      at += 4 + length;
    }
    if (all && at < all.length) truncateSync(file("journal.bin"), at);
    return { snapshot: read("store.bin"), journal, council: read("council.bin") };
  },
  write({ kind, entries, bytes }) {
    if (kind === "snapshot") {
      replace("store.bin", bytes);
      rmSync(file("journal.bin"), { force: true });
    } else if (kind === "append") {
      const records = entries.flatMap((entry) => {
        const length = new Uint8Array(4);
        new DataView(length.buffer).setUint32(0, entry.length, true);
        return [length, entry];
      });
      const size = existsSync(file("journal.bin")) ? statSync(file("journal.bin")).size : 0;
      try {
        appendFileSync(file("journal.bin"), Buffer.concat(records), { mode: 0o600 });
        const fd = openSync(file("journal.bin"), "r+");
        fsyncSync(fd);
        closeSync(fd);
      } catch (error) {
        try {
          truncateSync(file("journal.bin"), size);
        } catch {} // a journal the append never created: the append's error is the one to report
        throw error;
      }
    } else replace("council.bin", bytes);
  },
};

/** A model file from disk, checked against its pin (files are input like any other). */
function modelFile(name, pin) {
  const bytes = readFileSync(join(modelDir, name));
  const actual = createHash("sha256").update(bytes).digest("hex");
  if (actual !== pin) throw new Error(`${name} in ${modelDir} has SHA-256 ${actual}, not the pinned ${pin}`);
  return bytes;
}

await initializeChrysalis();
const seed = read("identity.seed");
const identity = seed ? SigningKey.fromSeed(seed) : SigningKey.generate();
if (!seed) replace("identity.seed", identity.exportSeed());
const embedding = await EmbeddingService.create({
  providers: [{ kind: "local", modelBytes: modelFile("model.onnx", MODEL_SHA256.model), tokenizerBytes: modelFile("tokenizer.json", MODEL_SHA256.tokenizer) }],
  workers: 1,
});
const sync = await SyncNode.join({ room: AGENT_ROOM, identity, relayUrl, WebSocket });
const name = agentName(sync.id);
const councilFile = "council.json";
let memory;
/** Opens the memory under `founding` (none: the memory's own council). */
async function open(founding) {
  const closing = memory;
  memory = null;
  await closing?.close();
  memory = await MemorySystem.open({ embedding, sync, storage: fileStorage, council: founding });
}
const stored = read(councilFile);
const council = stored ? councilFrom(JSON.parse(new TextDecoder().decode(stored)), sync.id) : null;
await open(council ?? undefined);
const known = new Set(memory.beads().map((bead) => bead.content));
for (const fact of FACTS) if (!known.has(fact)) await memory.remember(fact, { kind: "fact" });

// The founding council shared in the room (the page's "Form a council"), which any peer of the
// room can write: followed as `followCouncil` decides, each adopted one stored.
const founding = sync.share("council", new LWWRegister(name));
const want = followCouncil(sync.id, council, {
  reopen: async (next) => {
    await open(next ?? undefined);
    if (next) replace(councilFile, new TextEncoder().encode(JSON.stringify(next)));
  },
  onRefused: (error) => console.error(`Node.js agent: council not adopted (${describe(error)})`),
});
sync.on("change", ({ doc }) => doc === "council" && want(founding.get()));

console.log(JSON.stringify({ name, key: sync.id, beads: memory.beads().filter((bead) => bead.author === sync.id).length }));
