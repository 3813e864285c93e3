// Node 20 smoke test of the built package, imported by its npm name as users do.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import * as sdk from "chrysalis-sdk";
import { ROOT, hex } from "./browser.mjs";

const wasmBytes = readFileSync(new URL(import.meta.resolve("chrysalis-sdk/chrysalis_wasm_bg.wasm")));
const info = await sdk.initializeChrysalis({ moduleOrPath: wasmBytes });

test("initializeChrysalis loads once and reports the package version", async () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, "pkg/package.json"), "utf8"));
  assert.equal(info.version, pkg.version);
  assert.equal(sdk.version(), pkg.version);
  assert.equal(await sdk.initializeChrysalis(), info, "a second call returns the same result");
});

test("one-shot hashes agree with node:crypto on random inputs", () => {
  const pairs = [
    [sdk.sha256, "sha256"],
    [sdk.sha384, "sha384"],
    [sdk.sha512, "sha512"],
    [sdk.sha3_256, "sha3-256"],
    [sdk.sha3_512, "sha3-512"],
  ];
  for (const size of [0, 1, 55, 56, 64, 1000, 100_000]) {
    const data = randomBytes(size);
    for (const [ours, name] of pairs) {
      assert.equal(hex(ours(data)), createHash(name).update(data).digest("hex"), `${name} of ${size} bytes`);
    }
  }
});

test("Hasher.update chains and streaming equals one-shot", () => {
  const data = randomBytes(5000);
  const hasher = new sdk.Hasher("blake3");
  assert.equal(hasher.update(data.subarray(0, 1234)), hasher, "update returns the hasher itself");
  hasher.update(data.subarray(1234, 4000)).update(data.subarray(4000));
  assert.equal(hex(hasher.digest()), hex(sdk.blake3(data)));
  hasher[Symbol.dispose]();
});

test("errors are Error objects with a stable code and a helpful message", () => {
  assert.throws(() => new sdk.Hasher("md5"), (error) => {
    assert.ok(error instanceof Error);
    assert.equal(error.code, "UNKNOWN_ALGORITHM");
    assert.match(error.message, /"md5"/);
    return true;
  });
  assert.throws(() => sdk.blake3(new Uint8Array(1), 0), { code: "BAD_LENGTH" });
  assert.throws(() => sdk.blake3Keyed(new Uint8Array(16), new Uint8Array(1)), {
    code: "BAD_LENGTH",
    message: "BLAKE3 key must be 32 bytes, got 16",
  });
});

test("the certificate module loads from bytes in Node and reports typed errors", async () => {
  const x509Bytes = readFileSync(new URL(import.meta.resolve("chrysalis-sdk/chrysalis_x509_bg.wasm")));
  const module = await sdk.loadX509(x509Bytes);
  assert.equal(typeof module.validateCertChain, "function");
  await assert.rejects(sdk.validateCertChain([], []), { code: "CERT_EMPTY_CHAIN" });
  await assert.rejects(sdk.validateCertChain("not a certificate", []), (error) => {
    assert.equal(error.code, "BAD_FORMAT");
    assert.equal(error.index, 0);
    return true;
  });
  await assert.rejects(sdk.validateCertChain(42, []), { code: "BAD_ARGUMENT" });
});

test("the Node example prints matching digests", () => {
  const out = execFileSync(process.execPath, [join(ROOT, "examples/node/index.mjs"), "abc"], { encoding: "utf8" });
  const result = JSON.parse(out);
  assert.equal(result.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  assert.equal(result.streamed, result.sha256);
});

test("the embedding module runs in Node 20 on model bytes", async () => {
  await sdk.loadEmbedding(readFileSync(new URL(import.meta.resolve("chrysalis-sdk/chrysalis_embedding_bg.wasm"))));
  const dir = process.env.CHRYSALIS_MODEL_DIR;
  assert.ok(dir, "CHRYSALIS_MODEL_DIR is set (scripts/test.sh fetches the model)");
  const service = await sdk.EmbeddingService.create({
    providers: [{ kind: "local", modelBytes: readFileSync(join(dir, "model.onnx")), tokenizerBytes: readFileSync(join(dir, "tokenizer.json")) }],
  });
  const [cat, kitten, bond] = await service.embedBatch(["A cat sits on the mat.", "A kitten rests on a rug.", "Bond yields rose sharply."]);
  assert.equal(cat.dims, 384);
  assert.ok(sdk.cosineSimilarity(cat, kitten) > sdk.cosineSimilarity(cat, bond) + 0.2);
  // The model ran in worker_threads (idle ones do not keep the process alive: this file exits).
  assert.equal(service.telemetry()[0].workers, Math.min(availableParallelism(), 4));
});

test("in Node.js a worker that exits mid-batch is replaced and its texts run once more", async () => {
  const dir = process.env.CHRYSALIS_MODEL_DIR;
  const local = { kind: "local", modelBytes: readFileSync(join(dir, "model.onnx")), tokenizerBytes: readFileSync(join(dir, "tokenizer.json")) };
  const texts = Array.from({ length: 24 }, (_, i) => `text ${i} about ${i % 2 ? "rivers" : "engines"}`);
  const inThread = await sdk.EmbeddingService.create({ providers: [local], cache: 0, workers: 0 });
  const expected = await inThread.embedBatch(texts);
  inThread.free();
  const post = Worker.prototype.postMessage;
  let crashed = false;
  Worker.prototype.postMessage = function (message, transfer) {
    const sent = post.call(this, message, transfer);
    if (message?.type === "embed" && !crashed) {
      crashed = true;
      this.terminate();
    }
    return sent;
  };
  try {
    const service = await sdk.EmbeddingService.create({ providers: [local], cache: 0, workers: 2 });
    const vectors = await service.embedBatch(texts);
    vectors.forEach((v, i) => assert.deepEqual(Array.from(v), Array.from(expected[i]), `text ${i}`));
    assert.deepEqual([service.telemetry()[0].workers, service.telemetry()[0].workersReplaced], [2, 1]);
    service.close();
    await assert.rejects(service.embed("closed"), { code: "ABORTED" });
  } finally {
    Worker.prototype.postMessage = post;
  }
});

test("in Node.js an isolated vault runs in worker_threads and answers without handing out keys", async () => {
  const unsealable = await sdk.SecurityContext.isolated();
  await assert.rejects(unsealable.exportVault({ logN: 10 }), { code: "NO_PASSPHRASE" });
  unsealable.close();
  const vault = await sdk.SecurityContext.isolated({ passphrase: "node passphrase" });
  await vault.storeApiKey("openai", "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789WXYZ");
  assert.deepEqual([await vault.hasApiKey("openai"), await vault.listProviders()], [true, ["openai"]]);
  assert.match(await vault.redactedApiKey("openai"), /^sk-.*WXYZ$/);
  assert.deepEqual([vault.getApiKey, vault.allowApiOrigin], [undefined, undefined]);
  await assert.rejects(sdk.SecurityContext.isolated({ origins: { openai: ["http://example.com"] } }), { code: "INSECURE_ORIGIN" });
  const sealed = await vault.exportVault({ logN: 10 });
  vault.close();
  await assert.rejects(vault.hasApiKey("openai"), { code: "LOCKED" });
  const reopened = await sdk.SecurityContext.isolated({ vault: sealed, passphrase: "node passphrase" });
  assert.equal(await reopened.hasApiKey("openai"), true);
  await assert.rejects(sdk.SecurityContext.isolated({ vault: sealed, passphrase: "wrong" }), { code: "AUTH_FAILED" });
  reopened.close();
});

test("Node.js agents join a room through the real relay with the ws package, converge, and reconnect", { timeout: 60_000 }, async () => {
  const { WebSocket } = await import("ws");
  const { startRelay } = await import("../../scripts/relay.mjs");
  let relay = await startRelay();
  const port = new URL(relay.url).port;
  const nodes = [];
  try {
    for (const name of ["node-a", "node-b"]) {
      const node = await sdk.SyncNode.join({ room: "node-room", identity: sdk.SigningKey.generate(), relayUrl: relay.url, WebSocket });
      nodes.push({ node, counter: node.share("count", new sdk.GCounter(name)) });
    }
    const until = async (check, what) => {
      for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(check(), what);
    };
    await until(() => nodes.every(({ node }) => node.peers().length === 1), "each node sees the other");
    assert.deepEqual(nodes[0].node.peers()[0].via, ["relay"]);
    for (const [i, { node, counter }] of nodes.entries()) node.change("count", counter.increment(i + 1));
    await until(() => nodes.every(({ counter }) => counter.value === 3), "both counters reach 3");
    // The relay restarts on the same port: the nodes reconnect on their own and keep replicating.
    await relay.stop();
    await until(() => nodes.every(({ node }) => node.stats().relay === "reconnecting"), "both notice the relay left");
    relay = await startRelay({ listen: `127.0.0.1:${port}` });
    await until(() => nodes.every(({ node }) => node.stats().relay === "open" && node.peers().length === 1), "both reconnect");
    nodes[1].node.change("count", nodes[1].counter.increment(4));
    await until(() => nodes[0].counter.value === 7, "a change after the reconnection arrives");
  } finally {
    for (const { node } of nodes) node.close();
    await relay.stop();
  }
});
