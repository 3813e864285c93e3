// The timer sliced work yields with (scrypt, vault loading, model hashing), a wasm-bindgen
// snippet: `setTimeout` is captured when the module is imported, so a script that replaces it
// later cannot stall that work.
const setTimeoutAtImport = globalThis.setTimeout.bind(globalThis);

/** Resolves on the next macrotask, so the page can paint and handle input in between. */
export const nextTurn = () => new Promise((resolve) => setTimeoutAtImport(resolve, 0));
