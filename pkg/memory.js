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
//
// The council: k-of-n approvals accept beads; motions (a new threshold, a fact accepted by
// vote) are ordered by the Byzantine agreement (`AgreementEngine`, PBFT) among the council's
// members. Its signed messages ride on the `SyncNode` as deltas of a second document,
// `<name>/council`, whose version never grows (the agreement retransmits by itself). Each
// decided motion is applied and persisted before it is reported.
import { AgreementEngine, GCounter, MemoryEngine, SigningKey } from "./chrysalis_wasm.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const toHex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const fromHex = (text) => Uint8Array.from(text.match(/../g) ?? [], (h) => parseInt(h, 16));
/**
 * Random bytes before each proposed motion: the agreement decides a value once, and the same
 * motion may rightly be proposed again later (a threshold set back to an earlier value).
 */
const NONCE_BYTES = 8;
/** Other members' pending motions remembered for `endorse` (the oldest is forgotten first). */
const MAX_REQUESTED = 64;
/** The format of the stored council log (`[motion hex, endorser keys]` entries since 2). */
const DECIDED_VERSION = 2;

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
  #identity;
  #agreement = null;
  #agreementTimer;
  /**
   * What was decided so far: the founding council, the last slot applied and every applied
   * motion as `[motion hex, endorser keys]`.
   */
  #decided;
  /** The endorsements the agreement orders at: the council's, which change with motions. */
  #orderAt = 0;
  /** Motions proposed here, by hex value: `{ motion, at, resolve, reject }`. */
  #proposals = new Map();
  /** Other members' pending motions (hex value → value), for `endorse`. */
  #requested = new Map();
  /** Agreement messages the sync layer refused to send, by code. */
  #unsent = {};

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
    const { security, embedding, sync, name = "memory", database = name, council = {}, agreement = {}, hnsw = {}, persist = true, compactEvery = 200 } = options;
    if (persist && !security) throw memoryError("BAD_ARGUMENT", "a persisted memory needs a SecurityContext (or persist: false)");
    const identity = options.identity ?? sync?.identity ?? (await MemorySystem.loadIdentity({ security, database }));
    const system = new MemorySystem();
    system.#security = security;
    system.#embedding = embedding;
    system.#name = name;
    system.#database = database;
    system.#compactEvery = compactEvery;
    system.#identity = identity;
    let snapshot = null;
    let journal = [];
    let decided = null;
    if (persist) {
      system.#db = await openDatabase(database);
      const tx = system.#db.transaction(["state", "journal"]);
      const [sealed, entries, sealedCouncil] = await Promise.all([
        request(tx.objectStore("state").get("store")),
        request(tx.objectStore("journal").getAll()),
        request(tx.objectStore("state").get("council")),
      ]);
      if (sealed) snapshot = security.decryptFromStorage(sealed, system.#aad("store"));
      journal = entries.map((entry) => security.decryptFromStorage(entry, system.#aad("journal")));
      if (sealedCouncil) decided = JSON.parse(decoder.decode(security.decryptFromStorage(sealedCouncil, system.#aad("council"))));
    }
    system.#engine = new MemoryEngine(identity, snapshot, { ...hnsw, members: council.members, threshold: council.threshold });
    // Motions decided earlier count only for the council they were decided in.
    const founding = JSON.stringify(system.#engine.council());
    system.#decided = decided?.founding === founding && decided.version === DECIDED_VERSION ? decided : { version: DECIDED_VERSION, founding, lastSeq: 0, motions: [] };
    // Replayed with their endorsers, so the council checks them again as when decided.
    for (const [motion, endorsers] of system.#decided.motions) system.#engine.applyMotion(fromHex(motion), endorsers);
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
    system.#startAgreement(agreement);
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

  /**
   * Subscribes `handler(detail)` to `"change"` (`{ changes }`), `"accepted"` (`{ id, bead }`) or
   * `"agreement"` (the council's rounds: `{ type: "proposed", motion }`, `{ type: "decided",
   * seq, view, motion, mine, ms, refused? }`, `{ type: "view-changed", view, leader }`); returns
   * an unsubscribe function.
   */
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

  /** Forgets a bead this agent wrote, everywhere and for good; resolves with whether it was here (rejects with `NOT_AUTHOR` for another agent's bead). */
  async forget(id) {
    const found = this.#engine.forget(id, Date.now());
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

  /**
   * Proposes a council motion (`{ type: "set-threshold", threshold }` or `{ type:
   * "accept-fact", id }`) to the council's agreement; resolves with `{ seq, view, motion, ms }`
   * once it is decided, applied and persisted here. Only members propose; a council of more
   * than one needs `sync`. Rejects with the council's error when the decided motion is refused
   * alike by every member (e.g. a threshold above the member count).
   */
  propose(motion) {
    if (motion?.type === "admit" || motion?.type === "remove") {
      return Promise.reject(
        memoryError("NOT_SUPPORTED", "membership changes are not proposed from JS yet: open every member with the new council"),
      );
    }
    const encoded = MemoryEngine.encodeMotion(motion);
    const value = new Uint8Array(NONCE_BYTES + encoded.length);
    crypto.getRandomValues(value.subarray(0, NONCE_BYTES));
    value.set(encoded, NONCE_BYTES);
    return this.#request(value, motion, "proposed");
  }

  /**
   * Endorses another member's motion (the `id` of its `"requested"` agreement event): a motion
   * is ordered only once the council's threshold of members asked for it
   * (`council().motionEndorsements`: the threshold, at least f + 1 and at most n − f), and
   * every member refuses one decided with fewer. Resolves like `propose`.
   */
  endorse(id) {
    const value = this.#requested.get(id);
    if (!value) return Promise.reject(memoryError("BAD_INPUT", "no pending motion of another member has this id"));
    return this.#request(value, MemoryEngine.decodeMotion(value.subarray(NONCE_BYTES)), "endorsed");
  }

  #request(value, motion, type) {
    if (!this.#agreement) {
      return Promise.reject(memoryError("NOT_MEMBER", "only a council member with a running agreement proposes (a council of more than one needs sync)"));
    }
    const key = toHex(value);
    let out;
    try {
      out = this.#agreement.propose(Date.now(), value);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      this.#proposals.set(key, { motion, at: performance.now(), resolve, reject });
      this.#emit("agreement", { type, id: key, motion });
      this.#drive(out);
    });
  }

  /**
   * The council and its agreement: `{ members, threshold, applied, epoch, member, agreement }`
   * where `agreement` (null when this agent is not a running member) is `{ view, leader,
   * executed, pending, stats }` (`leader` as a public key).
   */
  council() {
    const a = this.#agreement;
    const council = this.#engine.council();
    return {
      ...council,
      member: council.members.includes(this.publicKey),
      agreement: a && { view: a.view, leader: a.members[a.leader], executed: a.executed, pending: a.pending, endorsements: a.endorsements, orderAt: a.orderAt, stats: a.stats() },
    };
  }

  /** `{ beads, model, dims, otherModel, rejected, journal }`. */
  stats() {
    return { ...this.#engine.stats(), journal: this.#journalLength, unsentAgreement: { ...this.#unsent } };
  }

  /** Waits for pending writes, stops replicating and closes the database. */
  async close() {
    await this.#writes;
    this.#unsubscribe?.();
    this.#sync?.unshare(this.#name);
    clearTimeout(this.#agreementTimer);
    if (this.#agreement) {
      this.#sync?.unshare(this.#councilDoc);
      this.#agreement.free();
      this.#agreement = null;
    }
    for (const { reject } of this.#proposals.values()) reject(memoryError("CLOSED", "the memory was closed"));
    this.#db?.close();
    this.#engine.free();
  }

  get #councilDoc() {
    return `${this.#name}/council`;
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** Runs the council's agreement when this agent is a member (over `sync` if there is one). */
  #startAgreement(options) {
    const { members, epoch } = this.#engine.council();
    if (!members.includes(this.publicKey) || (members.length > 1 && !this.#sync)) return;
    // The scope binds the council's messages to this room and document.
    const scope = `${this.#sync?.room ?? ""}/${this.#name}`;
    this.#agreement = new AgreementEngine(this.#identity, members, { ...options, epoch, scope }, Date.now());
    // The council document's version: always the empty version vector (a fresh CRDT's).
    const fresh = new GCounter("council");
    const noVersion = fresh.versionVector();
    fresh.free();
    // A member's messages arrive as deltas of the council document. They are handled after
    // the sync node's call returns (the handler sends, and the node is busy until then).
    this.#sync?.share(this.#councilDoc, {
      versionVector: () => noVersion,
      deltaSince: () => new Uint8Array(0),
      applyDelta: (bytes) => queueMicrotask(() => this.#agreement && this.#drive(this.#agreement.handleMessage(Date.now(), bytes))),
    });
    this.#drive(this.#agreement.handleTick(Date.now()));
  }

  /** Sends the agreement's messages, applies what it decided, and sets its timer. */
  #drive(out) {
    for (const t of out.transmits) {
      // A message the sync layer refuses (too big for a frame) is lost like a dropped one: the
      // agreement retransmits, and the events below must still be handled.
      try {
        this.#sync?.change(this.#councilDoc, t.bytes);
      } catch (error) {
        this.#unsent[error.code ?? "ERROR"] = (this.#unsent[error.code ?? "ERROR"] ?? 0) + 1;
      }
    }
    for (const event of out.events) {
      if (event.type === "view-changed") {
        this.#emit("agreement", { type: "view-changed", view: event.view, leader: this.#agreement.members[event.leader] });
      } else if (event.type === "requested") {
        this.#requestedFrom(event);
      } else if (event.seq > this.#decided.lastSeq) {
        this.#decide(event);
      }
    }
    // What a motion needs is the agreement's ordering policy; a motion may have changed it.
    const { motionEndorsements } = this.#engine.council();
    if (this.#agreement && motionEndorsements !== this.#orderAt) {
      this.#orderAt = motionEndorsements;
      this.#drive(this.#agreement.setOrderAt(Date.now(), motionEndorsements));
      return;
    }
    clearTimeout(this.#agreementTimer);
    this.#agreementTimer = setTimeout(() => {
      if (this.#agreement) this.#drive(this.#agreement.handleTick(Date.now()));
    }, Math.max(0, out.wakeAt - Date.now()));
  }

  /** Another member asked for a motion: report it, so that this agent's user may endorse it. */
  #requestedFrom({ value, by }) {
    let motion;
    try {
      motion = MemoryEngine.decodeMotion(value.subarray(NONCE_BYTES));
    } catch {
      return; // not a motion: nothing a user could endorse
    }
    const id = toHex(value);
    if (this.#requested.size >= MAX_REQUESTED) this.#requested.delete(this.#requested.keys().next().value);
    this.#requested.set(id, value);
    this.#emit("agreement", { type: "requested", id, motion, by: this.#agreement.members[by] });
  }

  /** Applies a decided motion (every member refuses a bad one alike), persists, then reports it. */
  #decide({ seq, view, value, endorsers }) {
    const key = toHex(value);
    this.#requested.delete(key);
    const proposal = this.#proposals.get(key);
    this.#proposals.delete(key);
    const by = endorsers.map((i) => this.#agreement.members[i]);
    let motion;
    let refused;
    try {
      const encoded = value.subarray(NONCE_BYTES);
      motion = this.#engine.applyMotion(encoded, by);
      this.#decided.motions.push([toHex(encoded), by]);
    } catch (error) {
      refused = error;
    }
    this.#decided.lastSeq = seq;
    const decided = structuredClone(this.#decided);
    const written = (this.#writes = this.#writes.then(() => this.#saveCouncil(decided)));
    written.then(() => {
      const ms = proposal && Math.round(performance.now() - proposal.at);
      this.#emit("agreement", { type: "decided", seq, view, motion: motion ?? proposal?.motion ?? null, mine: !!proposal, ms, endorsers: by, refused: refused && { code: refused.code, message: refused.message } });
      if (refused) proposal?.reject(refused);
      else proposal?.resolve({ seq, view, motion, ms });
    });
    this.#settle(false);
  }

  async #saveCouncil(decided) {
    if (!this.#db) return;
    const sealed = this.#security.encryptForStorage(encoder.encode(JSON.stringify(decided)), this.#aad("council"));
    await transaction(this.#db, ["state"], ({ state }) => state.put(sealed, "council"));
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
      this.#emit("change", { changes });
      for (const c of changes.filter((c) => c.type === "accepted")) {
        this.#emit("accepted", { id: c.id, bead: this.#engine.bead(c.id) });
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
