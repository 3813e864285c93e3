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

/** Storage in IndexedDB database `database`, sealed with `security`. */
export async function indexedDbStorage(database, security) {
  const db = await openDatabase(database);
  const aad = (what) => encoder.encode(`chrysalis-memory:${database}:${what}`);
  const seal = (bytes, what) => security.encryptForStorage(bytes, aad(what));
  const open = (sealed, what) => sealed && security.decryptFromStorage(sealed, aad(what));
  return {
    async load() {
      const tx = db.transaction(["state", "journal"]);
      const [store, journal, council] = await Promise.all([request(tx.objectStore("state").get("store")), request(tx.objectStore("journal").getAll()), request(tx.objectStore("state").get("council"))]);
      return { snapshot: open(store, "store"), journal: journal.map((e) => open(e, "journal")), council: open(council, "council") };
    },
    write({ kind, entries, bytes }) {
      if (kind === "append") return transaction(db, ["journal"], ({ journal }) => entries.forEach((e) => journal.add(seal(e, "journal"))));
      if (kind === "snapshot") return transaction(db, ["state", "journal"], ({ state, journal }) => (state.put(seal(bytes, "store"), "store"), journal.clear()));
      return transaction(db, ["state"], ({ state }) => state.put(seal(bytes, "council"), "council"));
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
    if (stored) return SigningKey.fromSeed(security.decryptFromStorage(stored, aad));
    const identity = SigningKey.generate();
    await transaction(db, ["state"], ({ state }) => state.put(security.encryptForStorage(identity.exportSeed(), aad), "identity"));
    return identity;
  } finally {
    db.close();
  }
}
