// Public entry of `chrysalis-sdk`.
//
// It re-exports the bindings that wasm-bindgen generates (`chrysalis_wasm.js`) and adds the few
// JS-side conveniences that wasm-bindgen cannot express: chaining `Hasher.update` and the
// `initializeChrysalis()` loader.
import init, { Hasher, version } from "./chrysalis_wasm.js";

export * from "./chrysalis_wasm.js";
export { default } from "./chrysalis_wasm.js";

const absorb = Hasher.prototype.update;
Hasher.prototype.update = function update(chunk) {
  absorb.call(this, chunk);
  return this;
};

let ready;

/**
 * Loads the Chrysalis wasm module once (later calls return the same promise).
 * @param {{ moduleOrPath?: RequestInfo | URL | Response | BufferSource | WebAssembly.Module }} [options]
 * @returns {Promise<{ version: string }>}
 */
export function initializeChrysalis(options = {}) {
  ready ??= init(
    options.moduleOrPath === undefined ? undefined : { module_or_path: options.moduleOrPath },
  ).then(() => ({ version: version() }));
  return ready;
}
