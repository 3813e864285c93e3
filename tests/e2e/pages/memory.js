// Test helper: whether `needle` (bytes) occurs anywhere in the SDK's wasm linear memory.
// The tests set `window.wasmExports` to the exports `init()` resolved to.
window.wasmMemoryContains = (needle) => {
  const hay = new Uint8Array(window.wasmExports.memory.buffer);
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
};
