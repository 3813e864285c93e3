// Compiles a wasm module off the page's thread: its one message is the module's URL; it posts
// back `{ module }` (a `WebAssembly.Module`, which the page instantiates without compiling again)
// or `{ error }`. It decides nothing.
addEventListener("message", async ({ data: url }) => {
  try {
    let module;
    try {
      module = await WebAssembly.compileStreaming(fetch(url));
    } catch {
      module = await WebAssembly.compile(await (await fetch(url)).arrayBuffer()); // served without application/wasm
    }
    postMessage({ module });
  } catch (error) {
    postMessage({ error: String(error?.message ?? error) });
  }
});
