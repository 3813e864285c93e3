// The demo page: everything runs through the `chrysalis-sdk` package served at /pkg/.
import { initializeChrysalis, Hasher } from "/pkg/index.js";

const $ = (id) => document.getElementById(id);
const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
const CHUNK = 1 << 20;

function hashText() {
  const hasher = new Hasher($("hash-algorithm").value);
  try {
    $("hash-output").textContent = hex(hasher.update(new TextEncoder().encode($("hash-text").value)).digest());
  } finally {
    hasher.free();
  }
}

/** Hashes a file in chunks, yielding to the page between chunks and showing progress. */
async function hashFile(file) {
  const progress = $("file-progress");
  progress.hidden = false;
  progress.value = 0;
  const hasher = new Hasher($("hash-algorithm").value);
  try {
    for (let offset = 0; offset < file.size; offset += CHUNK) {
      const chunk = new Uint8Array(await file.slice(offset, offset + CHUNK).arrayBuffer());
      hasher.update(chunk);
      progress.value = Math.min(1, (offset + chunk.length) / file.size);
    }
    progress.value = 1;
    $("file-output").textContent = `${file.name} (${file.size} bytes), ${hasher.algorithm}: ${hex(hasher.digest())}`;
  } finally {
    hasher.free();
  }
}

async function main() {
  const status = $("sdk-status");
  try {
    const { version } = await initializeChrysalis();
    status.textContent = `chrysalis-sdk ${version} is running in this page.`;
    status.dataset.status = "ready";
  } catch (error) {
    status.textContent = `Failed to load the SDK: ${error}`;
    status.dataset.status = "error";
    throw error;
  }

  $("hash-algorithm").addEventListener("change", hashText);
  $("hash-text").addEventListener("input", hashText);
  hashText();

  $("hash-file").addEventListener("change", (event) => {
    const [file] = event.target.files;
    if (file) hashFile(file);
  });
  const drop = $("file-drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    const [file] = event.dataTransfer.files;
    if (file) hashFile(file);
  });
}

main();
