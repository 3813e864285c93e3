// Side-by-side benchmarks: Chrysalis against anchor libraries, in one page, interleaved round by
// round.
//
// Open /bench/ and press "Run", or open /bench/?auto to start at once; the results are also
// published as `window.benchResults` (a promise) for scripts/bench.mjs.
import { initializeChrysalis, sha256, blake3, SigningKey, ed25519Verify, AesGcm, scrypt, SecurityContext } from "/pkg/index.js";
import { createSHA256, createBLAKE3, scrypt as hashWasmScrypt } from "hash-wasm";
import { sha256 as nobleSha256 } from "@noble/hashes/sha2.js";
import { blake3 as nobleBlake3 } from "@noble/hashes/blake3.js";
import { scrypt as nobleScrypt } from "@noble/hashes/scrypt.js";
import { ed25519 as nobleEd25519 } from "@noble/curves/ed25519.js";
import sodium from "libsodium-wrappers";
import { median, pairedRatio } from "./stats.js";
import { crdtCases } from "./crdt-cases.js";
import { appendRow, publishResults } from "./table.js";

/**
 * Rounds per comparison (odd: a median is one of them), and each side's time per round; a noisy
 * case (the middle half of its rounds' ratios wider than a tenth of the median) runs more rounds,
 * eight at a time, up to MAX_ROUNDS.
 */
const ROUNDS = 9;
const MAX_ROUNDS = 25;
const ROUND_MS = 200;
const NOISY = 0.1;
/** Operations of the slower side a round holds at least, within MAX_ROUND_MS. */
const MIN_OPS = 40;
const MAX_ROUND_MS = 1000;

function input(size) {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + 7) & 0xff;
  return bytes;
}

/** Operations per second of `fn` over about `ms` milliseconds (after a short warm-up). */
async function opsPerSecond(fn, ms) {
  const isAsync = fn() instanceof Promise;
  let iterations = 0;
  let batch = 1;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < ms) {
    for (let i = 0; i < batch; i++) {
      if (isAsync) await fn();
      else fn();
    }
    iterations += batch;
    elapsed = performance.now() - start;
    if (elapsed < ms / 10) batch *= 2;
  }
  return (iterations * 1000) / elapsed;
}

/**
 * Interleaves rounds of ours and the anchor's, alternating which runs first, so that noise hits
 * both alike; the ratio is the median of the rounds' own ratios (each from two neighbouring
 * measurements), with the middle half of them (`low`, `high`) to show its spread.
 */
async function compare(ours, anchor) {
  const a = [];
  const b = [];
  // Warm-up long enough for a JIT to settle (@noble's Ed25519 signed 30% slower in early rounds).
  const warm = Math.min(await opsPerSecond(ours, 2 * ROUND_MS), await opsPerSecond(anchor, 2 * ROUND_MS));
  // A round holds at least MIN_OPS operations of the slower side (a 12 ms merge held 16 in 200 ms).
  const roundMs = Math.min(MAX_ROUND_MS, Math.max(ROUND_MS, (MIN_OPS * 1000) / warm));
  const spread = () => pairedRatio(a, b);
  for (let round = 0; round < MAX_ROUNDS; round++) {
    if (round >= ROUNDS && round % 8 === ROUNDS % 8) {
      const { ratio, low, high } = spread();
      if (high - low <= NOISY * ratio) break;
    }
    if (round % 2 === 0) {
      a.push(await opsPerSecond(ours, roundMs));
      b.push(await opsPerSecond(anchor, roundMs));
    } else {
      b.push(await opsPerSecond(anchor, roundMs));
      a.push(await opsPerSecond(ours, roundMs));
    }
    await new Promise((resolve) => setTimeout(resolve, 0)); // let the page breathe
  }
  return { ours: median(a), anchor: median(b), rounds: a.length, ...spread() };
}

const HASH_SIZES = [
  ["32 B", 32],
  ["1 KB", 1024],
  ["1 MB", 1 << 20],
];
const AES_SIZES = [
  ["64 B", 64],
  ["1 KB", 1024],
  ["4 KB", 4096],
  ["1 MB", 1 << 20],
];

/** Every case: { name, input, bytes (for MB/s, optional), ours, anchors: [[name, fn]...] }. */
async function cases() {
  await sodium.ready;
  const hw256 = await createSHA256();
  const hwBlake3 = await createBLAKE3();
  const list = [];
  for (const [label, size] of HASH_SIZES) {
    const data = input(size);
    list.push({
      name: "SHA-256",
      input: label,
      bytes: size,
      ours: () => sha256(data),
      anchors: [
        ["crypto.subtle.digest", () => crypto.subtle.digest("SHA-256", data)],
        ["hash-wasm", () => hw256.init().update(data).digest("binary")],
        ["@noble/hashes", () => nobleSha256(data)],
      ],
    });
  }
  for (const [label, size] of HASH_SIZES) {
    const data = input(size);
    list.push({
      name: "BLAKE3",
      input: label,
      bytes: size,
      ours: () => blake3(data),
      anchors: [
        ["hash-wasm", () => hwBlake3.init().update(data).digest("binary")],
        ["@noble/hashes", () => nobleBlake3(data)],
      ],
    });
  }

  const seed = input(32);
  const message = input(64);
  const key = SigningKey.fromSeed(seed);
  const publicKey = key.publicKey();
  const signature = key.sign(message);
  const sodiumKeys = sodium.crypto_sign_seed_keypair(seed);
  list.push({
    name: "Ed25519 sign",
    input: "64 B message",
    ours: () => key.sign(message),
    anchors: [
      ["@noble/curves", () => nobleEd25519.sign(message, seed)],
      ["libsodium-wrappers", () => sodium.crypto_sign_detached(message, sodiumKeys.privateKey)],
    ],
  });
  list.push({
    name: "Ed25519 verify",
    input: "64 B message",
    ours: () => ed25519Verify(publicKey, message, signature),
    anchors: [
      ["@noble/curves", () => nobleEd25519.verify(signature, message, publicKey)],
      ["libsodium-wrappers", () => sodium.crypto_sign_verify_detached(signature, message, publicKey)],
    ],
  });

  const aesKey = input(32);
  const nonce = input(12);
  const ours = new AesGcm(aesKey);
  const webKey = await crypto.subtle.importKey("raw", aesKey, "AES-GCM", false, ["encrypt"]);
  for (const [label, size] of AES_SIZES) {
    const data = input(size);
    list.push({
      name: "AES-256-GCM encrypt",
      input: label,
      bytes: size,
      ours: () => ours.encrypt(nonce, data),
      anchors: [["WebCrypto", () => crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce }, webKey, data)]],
    });
  }

  const password = new TextEncoder().encode("correct horse battery staple");
  const salt = input(16);
  list.push({
    name: "scrypt",
    input: "N=2^14, r=8, p=1",
    ours: () => scrypt(password, salt, { logN: 14, r: 8, p: 1, dkLen: 32 }),
    anchors: [
      ["hash-wasm", () => hashWasmScrypt({ password, salt, costFactor: 1 << 14, blockSize: 8, parallelism: 1, hashLength: 32, outputType: "binary" })],
      ["@noble/hashes", () => nobleScrypt(password, salt, { N: 1 << 14, r: 8, p: 1, dkLen: 32 })],
    ],
  });

  // SecurityContext: storage envelopes (1 KB) and vault unlock at the default cost.
  const ctx = new SecurityContext();
  ctx.storeApiKey("openai", "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789WXYZ");
  const record = input(1024);
  const storageKey = await crypto.subtle.importKey("raw", input(32), "AES-GCM", false, ["encrypt", "decrypt"]);
  list.push({
    name: "encryptForStorage",
    input: "1 KB",
    bytes: 1024,
    ours: () => ctx.encryptForStorage(record),
    anchors: [["WebCrypto AES-GCM, non-extractable key", () => crypto.subtle.encrypt({ name: "AES-GCM", iv: crypto.getRandomValues(new Uint8Array(12)) }, storageKey, record)]],
  });
  const passphrase = "correct horse battery staple";
  const vault = ctx.exportVault(passphrase);
  const vaultSalt = input(16);
  const sealedVault = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce }, webKey, input(200)));
  list.push({
    name: "Vault unlock",
    input: "scrypt N=2^15, r=8, p=1 (default)",
    ours: () => SecurityContext.unlock(vault, passphrase).free(),
    anchors: [
      [
        "hash-wasm scrypt + WebCrypto AES-GCM",
        async () => {
          const key = await hashWasmScrypt({ password: passphrase, salt: vaultSalt, costFactor: 1 << 15, blockSize: 8, parallelism: 1, hashLength: 32, outputType: "binary" });
          const aes = await crypto.subtle.importKey("raw", key, "AES-GCM", false, ["decrypt"]);
          await crypto.subtle.decrypt({ name: "AES-GCM", iv: nonce }, aes, sealedVault).catch(() => null);
        },
      ],
    ],
  });
  return list;
}

function format(ops) {
  return ops >= 100 ? Math.round(ops).toLocaleString("en-US") : ops.toFixed(1);
}

function addRow(row) {
  appendRow("#results", [row.case, row.input, format(row.oursOps), row.anchor, format(row.anchorOps), `${row.ratio.toFixed(2)}× (${row.low.toFixed(2)}–${row.high.toFixed(2)})`]);
}

function addSizeRow(row) {
  appendRow("#sizes", [row.case, row.oursBytes.toLocaleString("en-US"), row.anchor, row.anchorBytes.toLocaleString("en-US"), `${row.ratio.toFixed(2)}×`]);
}

async function run() {
  const status = document.getElementById("bench-status");
  status.dataset.status = "running";
  document.getElementById("run").disabled = true;
  document.querySelector("#results tbody").replaceChildren();
  await initializeChrysalis();
  const rows = [];
  status.textContent = "Preparing the CRDT workloads…";
  const crdt = await crdtCases();
  const sizes = crdt.sizes.flatMap(({ name, ours, anchors }) =>
    anchors.map(([anchor, bytes]) => ({ case: name, oursBytes: ours, anchor, anchorBytes: bytes, ratio: bytes / ours })),
  );
  for (const row of sizes) addSizeRow(row);
  for (const { name, input: label, bytes, ours, anchors } of [...(await cases()), ...crdt.throughput]) {
    for (const [anchorName, anchor] of anchors) {
      status.textContent = `${name} ${label} vs ${anchorName}…`;
      const { ours: oursOps, anchor: anchorOps, ratio, low, high, rounds } = await compare(ours, anchor);
      const row = { case: name, input: label, bytes, oursOps, anchor: anchorName, anchorOps, ratio, low, high, rounds };
      rows.push(row);
      addRow(row);
    }
  }
  status.textContent = `Done: ${rows.length} comparisons.`;
  status.dataset.status = "ready";
  document.getElementById("run").disabled = false;
  return { userAgent: navigator.userAgent, rows, sizes };
}

publishResults(run);
