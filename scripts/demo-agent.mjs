// The demo's Node.js agent. The demo command (scripts/serve.mjs) starts it when the relay and the
// model are there: it joins the agents' room through the relay, as an agent on another machine
// would, with the same package and wasm as the page.
//
//   node scripts/demo-agent.mjs RELAY_URL MODEL_DIR STATE_DIR
//
// Its identity and memory live in files under STATE_DIR, so it is the same agent after a restart
// and never remembers its facts twice. It joins a council that names it and endorses the motions
// it is asked to. It prints one JSON line `{ name, key, beads }` once ready, and exits when its
// standard input closes (the demo server stopped, however it stopped).
import { appendFileSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { WebSocket } from "ws";
import { initializeChrysalis, EmbeddingService, LWWRegister, MemorySystem, SigningKey, SyncNode } from "../pkg/index.js";
import { AGENT_ROOM, agentName } from "../www/agents.js";

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
 * log. A torn last record (a crash while appending) is left out on load.
 */
const fileStorage = {
  load() {
    const journal = [];
    const all = read("journal.bin");
    for (let at = 0; all && at + 4 <= all.length; ) {
      const length = new DataView(all.buffer, all.byteOffset + at, 4).getUint32(0, true);
      if (at + 4 + length > all.length) break;
      journal.push(all.slice(at + 4, at + 4 + length));
      at += 4 + length;
    }
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
      appendFileSync(file("journal.bin"), Buffer.concat(records), { mode: 0o600 });
      const fd = openSync(file("journal.bin"), "r+");
      fsyncSync(fd);
      closeSync(fd);
    } else replace("council.bin", bytes);
  },
};

await initializeChrysalis();
const seed = read("identity.seed");
const identity = seed ? SigningKey.fromSeed(seed) : SigningKey.generate();
if (!seed) replace("identity.seed", identity.exportSeed());
const embedding = await EmbeddingService.create({
  providers: [{ kind: "local", modelBytes: readFileSync(join(modelDir, "model.onnx")), tokenizerBytes: readFileSync(join(modelDir, "tokenizer.json")) }],
  workers: 1,
});
const sync = await SyncNode.join({ room: AGENT_ROOM, identity, relayUrl, WebSocket });
const name = agentName(sync.id);
const councilFile = "council.json";
let memory;
/** Opens the memory under `founding` (none: the memory's own council), endorsing what it is asked to. */
async function open(founding) {
  const closing = memory;
  memory = null;
  await closing?.close();
  memory = await MemorySystem.open({ embedding, sync, storage: fileStorage, council: founding });
  memory.on("agreement", (round) => round.type === "requested" && memory?.endorse(round.id).catch(() => {}));
}
const stored = read(councilFile);
let council = stored ? JSON.parse(new TextDecoder().decode(stored)) : undefined;
await open(council);
const known = new Set(memory.beads().map((bead) => bead.content));
for (const fact of FACTS) if (!known.has(fact)) await memory.remember(fact, { kind: "fact" });

// A founding council shared in the room (the page's "Form a council") that names this agent: one
// council change at a time. Any peer of the room can write it: one the memory refuses leaves the
// agent under the council it had.
const founding = sync.share("council", new LWWRegister(name));
let adopting = Promise.resolve();
sync.on("change", ({ doc }) => {
  const next = doc === "council" && founding.get();
  if (!Array.isArray(next?.members) || !next.members.includes(sync.id) || JSON.stringify(next) === JSON.stringify(council)) return;
  adopting = adopting.then(async () => {
    try {
      await open(next);
      council = next;
      replace(councilFile, new TextEncoder().encode(JSON.stringify(council)));
    } catch (error) {
      console.error(`Node.js agent: council not adopted (${error.code ?? "ERROR"}: ${error.message})`);
      await open(council);
    }
  }).catch((error) => console.error(`Node.js agent: memory not reopened (${error.code ?? "ERROR"}: ${error.message})`));
});

console.log(JSON.stringify({ name, key: sync.id, beads: memory.beads().filter((bead) => bead.author === sync.id).length }));
