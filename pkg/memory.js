// `MemorySystem`: an agent's memory, hosted by its room's engine (`RoomEngine`: the store, index,
// council, journal, snapshots and the council's agreement all decide in wasm). This file embeds
// text, calls the engine through the `SyncNode` pump, and keeps the storage the engine writes to:
// IndexedDB encrypted with the page's `SecurityContext`, memory, or the caller's adapter.
import { SigningKey } from "./chrysalis_wasm.js";
import { indexedDbStorage, memoryStorage, storageError as memoryError, storedIdentity } from "./storage.js";
import { Emitter, SyncNode, drive, emit, openMemory } from "./sync.js";

export class MemorySystem extends Emitter {
  #sync;
  #own;
  #name;
  #embedding;
  #storage;
  /** Local writes not yet durable (write id → `{ resolve, reject }`), this agent's motions (id → `{ resolve, reject, at, motion }`). */
  #saving = new Map();
  #motions = new Map();
  #unsubscribe = [];

  /** The agent identity stored for memory `name` (a `SigningKey`), created on first use; its seed is sealed with `security`. */
  static async loadIdentity({ security, name = "memory", database = name }) {
    if (!security) throw memoryError("BAD_ARGUMENT", "loadIdentity needs a SecurityContext");
    return storedIdentity(security, database);
  }

  /**
   * Opens memory `name` from its storage (IndexedDB database `database`, sealed with `security`;
   * `persist: false` keeps it in memory; `storage` is any `{ load(), write(write) }`), replicates
   * it through `sync` (a joined `SyncNode`, whose identity it signs with) and embeds with `embedding`.
   */
  static async open(options = {}) {
    const { security, embedding, sync, name = "memory", database = name, council = {}, agreement = {}, hnsw = {}, persist = true, compactEvery = 200 } = options;
    if (persist && !security && !options.storage) throw memoryError("BAD_ARGUMENT", "a persisted memory needs a SecurityContext (or persist: false, or a storage)");
    const hex = (key) => Array.from(key.publicKey(), (b) => b.toString(16).padStart(2, "0")).join("");
    if (sync && options.identity && hex(options.identity) !== sync.id) throw memoryError("BAD_ARGUMENT", "a replicated memory signs with its sync node's identity");
    const system = new MemorySystem();
    const identity = sync?.identity ?? options.identity ?? (persist ? await MemorySystem.loadIdentity({ security, database }) : SigningKey.generate());
    system.#own = !sync;
    system.#sync = sync ?? new SyncNode({ room: `local/${name}`, identity });
    system.#name = name;
    system.#embedding = embedding;
    system.#storage = options.storage ?? (persist ? await indexedDbStorage(database, security) : memoryStorage());
    const on = (type, fn) => system.#unsubscribe.push(system.#sync.on(type, (detail) => detail.memory === name && fn(detail)));
    on("memory-change", ({ change }) => system.#changed(change));
    on("saved", ({ write }) => (system.#saving.get(write)?.resolve(), system.#saving.delete(write)));
    on("storage-error", (detail) => (emit(system, "storage-error", detail), system.#fail(memoryError("STORAGE_FAILED", detail.message))));
    on("council", ({ round }) => system.#round(round));
    try {
      await openMemory(system.#sync, name, { ...hnsw, ...agreement, members: council.members, threshold: council.threshold, compactEvery }, system.#storage);
    } catch (error) {
      // Refused (a bad council, damaged storage): nothing of this opening stays subscribed or open.
      system.#unsubscribe.forEach((off) => off());
      if (system.#own) system.#sync.close();
      system.#storage.close?.();
      throw error;
    }
    return system;
  }

  /** This agent's short printable id. */
  get agentId() {
    return this.#call((e) => e.agentId);
  }
  /** This agent's public key (hex). */
  get publicKey() {
    return this.#call((e) => e.id);
  }

  /** Remembers `text` (embedded if there is an embedding service); resolves with the bead once it is durable. */
  async remember(text, { kind, tags } = {}) {
    const vector = this.#embedding ? await this.#embedding.embed(text) : null;
    return (await this.#write((e, now) => e.remember(now, this.#name, text, { kind, tags }, vector))).bead;
  }
  /** The beads best matching `query`: `{ bead, score, similarity, keyword }[]`, best first (`k`, `filter`, `ranking`; `hybrid: false` ranks by meaning only). */
  async recall(query, { k = 5, filter, ranking, hybrid } = {}) {
    const vector = this.#embedding ? await this.#embedding.embed(query) : null;
    return this.#call((e) => e.recall(this.#name, query, vector, { k, filter, ranking: ranking ?? (hybrid === false ? "vector" : undefined) }));
  }
  /** Forgets a bead this agent wrote, everywhere and for good; resolves with whether it was here. */
  async forget(id) {
    return (await this.#write((e, now) => e.forget(now, this.#name, id))).found;
  }
  /** Signs this agent's approval of a bead; resolves with its acceptance once durable. */
  async approve(id) {
    await this.#write((e, now) => e.approve(now, this.#name, id));
    return this.acceptance(id);
  }
  acceptance(id) {
    return this.#call((e) => e.acceptance(this.#name, id));
  }
  bead(id) {
    return this.#call((e) => e.bead(this.#name, id));
  }
  beads() {
    return this.#call((e) => e.beads(this.#name));
  }
  /** The council and, for a member, its agreement. */
  council() {
    return this.#call((e) => e.council(this.#name));
  }
  /** Counters of the memory, its journal and its writes in flight. */
  stats() {
    return this.#call((e) => e.memoryStats(this.#name));
  }

  /** Proposes a council motion (`set-threshold` or `accept-fact`); resolves with `{ seq, view, motion, ms }` once decided, applied and logged here. */
  propose(motion) {
    return this.#motion("proposed", (e, now) => [e.propose(now, this.#name, motion), motion]);
  }
  /** Endorses another member's pending motion (the `id` of its `"requested"` round); resolves like `propose`. */
  endorse(id) {
    return this.#motion("endorsed", (e, now) => [id, e.endorse(now, this.#name, id)]);
  }

  /** Waits for pending writes, stops hosting the memory and closes its storage. */
  async close() {
    await this.#sync.flushed();
    this.#unsubscribe.forEach((off) => off());
    if (this.#own) this.#sync.close();
    else this.#call((e) => e.closeMemory(this.#name));
    this.#fail(memoryError("CLOSED", "the memory was closed"));
    this.#storage.close?.();
  }
  /** Rejects every local change and motion still waiting (the memory stopped). */
  #fail(error) {
    for (const pending of [this.#saving, this.#motions]) pending.forEach(({ reject }) => reject(error)), pending.clear();
  }

  #call(fn) {
    return drive(this.#sync, fn);
  }

  /** A local change: resolves with what the engine returned once its write is durable (and sent). */
  #write(fn) {
    const out = this.#call(fn);
    return new Promise((resolve, reject) => this.#saving.set(out.write, { resolve: () => resolve(out), reject }));
  }

  #motion(type, fn) {
    return new Promise((resolve, reject) => {
      const [id, motion] = this.#call(fn);
      this.#motions.set(id, { motion, at: performance.now(), resolve, reject });
      emit(this, "agreement", { type, id, motion });
    });
  }

  #changed(change) {
    emit(this, "change", { changes: [change] });
    if (change.type === "accepted") emit(this, "accepted", { id: change.id, bead: this.bead(change.id) });
  }

  #round(round) {
    if (round.type !== "decided") return emit(this, "agreement", round);
    const mine = this.#motions.get(round.id);
    this.#motions.delete(round.id);
    const ms = mine && Math.round(performance.now() - mine.at);
    emit(this, "agreement", { ...round, motion: round.motion ?? mine?.motion ?? null, mine: !!mine, ms, refused: round.refused ?? undefined });
    if (round.refused) mine?.reject(memoryError(round.refused.code, round.refused.message));
    else mine?.resolve({ seq: round.seq, view: round.view, motion: round.motion, ms });
  }
}
