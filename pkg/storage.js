// Storage for hosted memories: IndexedDB (every record sealed with the page's `SecurityContext`,
// bound to what it is) or the page's memory. It writes what the engine asks, in one durable
// transaction each, and decides nothing; Node.js callers pass their own `{ load(), write(write) }`.
import { SigningKey } from "./chrysalis_wasm.js";

const encoder = new TextEncoder();
export const storageError = (code, message) => Object.assign(new Error(message), { code });
const request = (req) => new Promise((resolve, reject) => ((req.onsuccess = () => resolve(req.result)), (req.onerror = () => reject(req.error))));

function openDatabase(name) {
  const req = indexedDB.open(`chrysalis-memory:${name}`, 1);
  req.onupgradeneeded = () => (req.result.createObjectStore("state"), req.result.createObjectStore("journal", { autoIncrement: true }));
  return request(req);
}

/** Runs `fill(stores)` in one durable transaction; resolves once it committed. */
function transaction(db, names, fill) {
  return new Promise((resolve, reject) => {
    const tx = db.transaction(names, "readwrite", { durability: "strict" });
    tx.oncomplete = () => resolve();
    tx.onerror = tx.onabort = () => reject(tx.error ?? storageError("ABORTED", "the IndexedDB transaction was aborted"));
    fill(Object.fromEntries(names.map((n) => [n, tx.objectStore(n)])));
  });
}

/**
 * Storage in IndexedDB database `database`, sealed with `security` (a `SecurityContext`, or an
 * isolated one whose calls return promises: a write's records are sealed before its transaction
 * opens, and writes commit in the order they were asked).
 */
export async function indexedDbStorage(database, security) {
  const db = await openDatabase(database);
  const aad = (what) => encoder.encode(`chrysalis-memory:${database}:${what}`);
  const seal = (bytes, what) => security.encryptForStorage(bytes, aad(what));
  const open = (sealed, what) => sealed && security.decryptFromStorage(sealed, aad(what));
  let last = Promise.resolve();
  /** Seals `records`, then runs `fill(stores, sealed)` in one transaction over `names`, after the writes before it. */
  const write = (names, records, fill) => {
    const sealed = Promise.all(records);
    last = last.catch(() => {}).then(() => sealed).then((done) => transaction(db, names, (stores) => fill(stores, done)));
    return last;
  };
  return {
    async load() {
      const tx = db.transaction(["state", "journal"]);
      const [store, journal, council] = await Promise.all([request(tx.objectStore("state").get("store")), request(tx.objectStore("journal").getAll()), request(tx.objectStore("state").get("council"))]);
      const [snapshot, sealedCouncil, ...entries] = await Promise.all([open(store, "store"), open(council, "council"), ...journal.map((e) => open(e, "journal"))]);
      return { snapshot, journal: entries, council: sealedCouncil };
    },
    write({ kind, entries, bytes }) {
      if (kind === "append") return write(["journal"], entries.map((e) => seal(e, "journal")), ({ journal }, records) => records.forEach((r) => journal.add(r)));
      if (kind === "snapshot") return write(["state", "journal"], [seal(bytes, "store")], ({ state, journal }, [record]) => (state.put(record, "store"), journal.clear()));
      return write(["state"], [seal(bytes, "council")], ({ state }, [record]) => state.put(record, "council"));
    },
    close: () => db.close(),
  };
}

/** Storage that lasts as long as the page (`persist: false`). */
export const memoryStorage = () => ({ load: () => ({}), write: () => undefined });

/** The identity stored in IndexedDB database `database`, created on first use; its seed sealed with `security`. */
export async function storedIdentity(security, database) {
  const db = await openDatabase(database);
  try {
    const aad = encoder.encode(`chrysalis-memory:${database}:identity`);
    const stored = await request(db.transaction("state").objectStore("state").get("identity"));
    if (stored) return SigningKey.fromSeed(await security.decryptFromStorage(stored, aad));
    const identity = SigningKey.generate();
    const sealed = await security.encryptForStorage(identity.exportSeed(), aad);
    await transaction(db, ["state"], ({ state }) => state.put(sealed, "identity"));
    return identity;
  } finally {
    db.close();
  }
}
