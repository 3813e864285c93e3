// IndexedDB access for SecurityContext.persist / SecurityContext.load (a wasm-bindgen snippet).
// Only sealed vault bytes ever pass through here. Each store name is its own database with one
// object store holding the vault under the key "vault".
const OBJECT_STORE = "chrysalis-vault";

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function openDatabase(name) {
  if (typeof indexedDB === "undefined") {
    const error = new Error("IndexedDB is not available in this environment");
    error.code = "NOT_SUPPORTED";
    throw error;
  }
  const open = indexedDB.open(name, 1);
  open.onupgradeneeded = () => open.result.createObjectStore(OBJECT_STORE);
  return request(open);
}

/** Stores `bytes` as the vault of database `name`, replacing any previous one. */
export async function idbPutVault(name, bytes) {
  const db = await openDatabase(name);
  try {
    const tx = db.transaction(OBJECT_STORE, "readwrite");
    tx.objectStore(OBJECT_STORE).put(bytes, "vault");
    await new Promise((resolve, reject) => {
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted"));
    });
  } finally {
    db.close();
  }
}

/**
 * What database `name` holds as its vault, as stored (`undefined` when nothing): any script of the
 * origin can write there, so wasm checks it is bytes of a bounded size before reading it.
 */
export async function idbGetVault(name) {
  const db = await openDatabase(name);
  try {
    return await request(db.transaction(OBJECT_STORE, "readonly").objectStore(OBJECT_STORE).get("vault"));
  } finally {
    db.close();
  }
}
