// `MemorySystem`: an agent's memory in a page — beads remembered with the page's embedding
// service, recalled by meaning and keywords, replicated through a `SyncNode`, persisted to
// IndexedDB encrypted with the page's `SecurityContext`.
//
// Durability: every delta (local or from a peer) is appended to a journal in IndexedDB, one
// transaction each, before a local change resolves or is sent to peers. Opening replays the
// journal on top of the last snapshot; every `compactEvery` entries the snapshot is rewritten
// and the journal cleared in one transaction. A crash at any point leaves either the old
// snapshot and its journal or the new snapshot, which replay to the same memory (deltas are
// idempotent).
import { MemoryEngine, SigningKey } from "./chrysalis_wasm.js";

const encoder = new TextEncoder();

function memoryError(code, message) {
  return Object.assign(new Error(message), { code });
}

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function openDatabase(name) {
  const req = indexedDB.open(`chrysalis-memory:${name}`, 1);
  req.onupgradeneeded = () => {
    req.result.createObjectStore("state");
    req.result.createObjectStore("journal", { autoIncrement: true });
  };
  return request(req);
}

/** Runs `fill(stores)` in one transaction; resolves when it has committed. */
function transaction(db, names, fill) {
  return new Promise((resolve, reject) => {
    const tx = db.transaction(names, "readwrite", { durability: "strict" });
    const stores = Object.fromEntries(names.map((n) => [n, tx.objectStore(n)]));
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? memoryError("ABORTED", "the IndexedDB transaction was aborted"));
    fill(stores);
  });
}

export class MemorySystem extends EventTarget {
  #engine;
  #db;
  #security;
  #embedding;
  #sync;
  #name;
  #database;
  #journalLength;
  #compactEvery;
  #unsubscribe;
  #writes = Promise.resolve();

  /**
   * The agent identity stored for memory `name` (a `SigningKey`), created on first use. Its
   * seed is kept in IndexedDB encrypted with `security.encryptForStorage`.
   */
  static async loadIdentity({ security, name = "memory", database = name }) {
    if (!security) throw memoryError("BAD_ARGUMENT", "loadIdentity needs a SecurityContext");
    const db = await openDatabase(database);
    try {
      const aad = encoder.encode(`chrysalis-memory:${database}:identity`);
      const stored = await request(db.transaction("state").objectStore("state").get("identity"));
      if (stored) return SigningKey.fromSeed(security.decryptFromStorage(stored, aad));
      const identity = SigningKey.generate();
      const sealed = security.encryptForStorage(identity.exportSeed(), aad);
      await transaction(db, ["state"], ({ state }) => state.put(sealed, "identity"));
      return identity;
    } finally {
      db.close();
    }
  }

  /**
   * Opens memory `name` (the document shared with the room): loads what IndexedDB database
   * `database` (default `name`) holds, replicates through `sync` (a joined `SyncNode`) if
   * given, and embeds with `embedding` (an `EmbeddingService`) if given.
   * `identity` defaults to the sync node's, then to {@link MemorySystem.loadIdentity}.
   * `council: { members, threshold }` sets who may accept beads (default: this agent, 1).
   * `persist: false` keeps everything in memory (then `security` may be omitted).
   */
  static async open(options = {}) {
    const { security, embedding, sync, name = "memory", database = name, council = {}, hnsw = {}, persist = true, compactEvery = 200 } = options;
    if (persist && !security) throw memoryError("BAD_ARGUMENT", "a persisted memory needs a SecurityContext (or persist: false)");
    const identity = options.identity ?? sync?.identity ?? (await MemorySystem.loadIdentity({ security, database }));
    const system = new MemorySystem();
    system.#security = security;
    system.#embedding = embedding;
    system.#name = name;
    system.#database = database;
    system.#compactEvery = compactEvery;
    let snapshot = null;
    let journal = [];
    if (persist) {
      system.#db = await openDatabase(database);
      const tx = system.#db.transaction(["state", "journal"]);
      const [sealed, entries] = await Promise.all([
        request(tx.objectStore("state").get("store")),
        request(tx.objectStore("journal").getAll()),
      ]);
      if (sealed) snapshot = security.decryptFromStorage(sealed, system.#aad("store"));
      journal = entries.map((entry) => security.decryptFromStorage(entry, system.#aad("journal")));
    }
    system.#engine = new MemoryEngine(identity, snapshot, { ...hnsw, members: council.members, threshold: council.threshold });
    for (const delta of journal) system.#engine.applyDelta(delta);
    system.#engine.takeJournal();
    system.#engine.takeChanges();
    system.#journalLength = journal.length;
    if (journal.length > 0) await system.#compact();
    if (sync) {
      system.#sync = sync;
      sync.share(name, system.#engine);
      system.#unsubscribe = sync.on("change", ({ doc }) => {
        if (doc === name) system.#settle(false);
      });
    }
    return system;
  }

  /** This agent's short printable id. */
  get agentId() {
    return this.#engine.agentId;
  }

  /** This agent's public key (hex). */
  get publicKey() {
    return this.#engine.publicKey;
  }

  /** Subscribes `handler(detail)` to `"change"` (`{ changes }`) or `"accepted"` (`{ id, bead }`); returns an unsubscribe function. */
  on(type, handler) {
    const listener = (event) => handler(event.detail);
    this.addEventListener(type, listener);
    return () => this.removeEventListener(type, listener);
  }

  /** Remembers `text` (embedded with the page's embedding service); resolves with the bead once it is durable. */
  async remember(text, { kind, tags } = {}) {
    const vector = this.#embedding ? await this.#embedding.embed(text) : null;
    const bead = this.#engine.remember(text, { kind, tags }, vector, Date.now());
    await this.#settle(true);
    return bead;
  }

  /**
   * The beads best matching `query`: `{ bead, score, similarity, keyword }[]`, best first.
   * `k` (default 5), `filter` (`kinds`, `tags`, `authors`, `after`, `before`), `ranking`
   * (`"hybrid"` by default, `"vector"`, `"keyword"`, `"rrf"`); `hybrid: false` ranks by meaning only.
   */
  async recall(query, { k = 5, filter, ranking, hybrid } = {}) {
    const vector = this.#embedding ? await this.#embedding.embed(query) : null;
    const chosen = ranking ?? (hybrid === false ? "vector" : undefined);
    return this.#engine.recall(query, vector, { k, filter, ranking: chosen });
  }

  /** Forgets a bead everywhere; resolves with whether it was here. */
  async forget(id) {
    const found = this.#engine.forget(id);
    await this.#settle(true);
    return found;
  }

  /** Signs this agent's approval of a bead; resolves with its acceptance. */
  async approve(id) {
    this.#engine.approve(id, Date.now());
    await this.#settle(true);
    return this.#engine.acceptance(id);
  }

  /** Whether the council accepted a bead: `{ accepted, have, need, approvers }`. */
  acceptance(id) {
    return this.#engine.acceptance(id);
  }

  /** A bead by id, or undefined. */
  bead(id) {
    return this.#engine.bead(id);
  }

  /** Every bead. */
  beads() {
    return this.#engine.beads();
  }

  /** `{ beads, model, dims, otherModel, rejected, journal }`. */
  stats() {
    return { ...this.#engine.stats(), journal: this.#journalLength };
  }

  /** Waits for pending writes, stops replicating and closes the database. */
  async close() {
    await this.#writes;
    this.#unsubscribe?.();
    this.#sync?.unshare(this.#name);
    this.#db?.close();
    this.#engine.free();
  }

  #aad(what) {
    return encoder.encode(`chrysalis-memory:${this.#database}:${what}`);
  }

  /** Persists the engine's new deltas (then, for local ones, sends them) and emits events. */
  #settle(local) {
    const deltas = this.#engine.takeJournal();
    const changes = this.#engine.takeChanges();
    const written = (this.#writes = this.#writes.then(() => this.#append(deltas)));
    if (changes.length > 0) {
      this.dispatchEvent(new CustomEvent("change", { detail: { changes } }));
      for (const c of changes.filter((c) => c.type === "accepted")) {
        this.dispatchEvent(new CustomEvent("accepted", { detail: { id: c.id, bead: this.#engine.bead(c.id) } }));
      }
    }
    if (!local) return written;
    return written.then(() => {
      for (const delta of deltas) this.#sync?.change(this.#name, delta);
    });
  }

  async #append(deltas) {
    if (!this.#db || deltas.length === 0) return;
    const sealed = deltas.map((d) => this.#security.encryptForStorage(d, this.#aad("journal")));
    await transaction(this.#db, ["journal"], ({ journal }) => sealed.forEach((s) => journal.add(s)));
    this.#journalLength += deltas.length;
    if (this.#journalLength >= this.#compactEvery) await this.#compact();
  }

  async #compact() {
    const sealed = this.#security.encryptForStorage(this.#engine.toBytes(), this.#aad("store"));
    await transaction(this.#db, ["state", "journal"], ({ state, journal }) => {
      state.put(sealed, "store");
      journal.clear();
    });
    this.#journalLength = 0;
  }
}
