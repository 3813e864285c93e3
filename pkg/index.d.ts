export * from "./chrysalis_wasm.js";
export { default } from "./chrysalis_wasm.js";
import type { InitInput } from "./chrysalis_wasm.js";

/** Options for {@link initializeChrysalis}. */
export interface InitializeOptions {
  /** Where to load the wasm module from; defaults to `chrysalis_wasm_bg.wasm` next to the package entry. */
  moduleOrPath?: InitInput | Promise<InitInput>;
}

/** What {@link initializeChrysalis} resolves to once the SDK is ready. */
export interface ChrysalisInfo {
  /** The SDK version, e.g. `"0.1.0"`. */
  version: string;
}

/** Loads the Chrysalis wasm module once; later calls return the same promise. */
export function initializeChrysalis(options?: InitializeOptions): Promise<ChrysalisInfo>;
