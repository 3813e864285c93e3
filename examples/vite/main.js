import { initializeChrysalis, blake3, sha256 } from "chrysalis-sdk";

/** @param {Uint8Array} bytes */
const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

/** @param {string} id */
function byId(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`missing #${id}`);
  return element;
}

const result = byId("result");
try {
  const { version } = await initializeChrysalis();
  const input = new TextEncoder().encode(byId("input").textContent ?? "");
  result.textContent = JSON.stringify(
    { version, blake3: hex(blake3(input)), sha256: hex(sha256(input)) },
    null,
    2,
  );
  result.dataset.status = "ok";
} catch (error) {
  result.textContent = String(error);
  result.dataset.status = "error";
}
