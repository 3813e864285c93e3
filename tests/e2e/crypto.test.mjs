// The crypto API through the built package in headless Chromium: Wycheproof and BLAKE3 vectors,
// errors, SecureBuffer wiping, scryptAsync slicing and abort, and openssl-made certificate chains.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer } from "../../scripts/serve.mjs";
import { ROOT, launchChromium, openPage } from "./browser.mjs";

let browser;
let server;
let page;

before(async () => {
  ({ server } = await startServer({
    mounts: {
      "/pkg/": join(ROOT, "pkg"),
      "/vectors/": join(ROOT, "crates/crypto/tests/vectors"),
      "/": join(ROOT, "tests/e2e/pages"),
    },
  }).then(async (started) => {
    browser = await launchChromium();
    page = await openPage(browser, started.url);
    await page.evaluate(async () => {
      window.sdk = await import("/pkg/index.js");
      window.wasmExports = await window.sdk.default();
    });
    return started;
  }));
});

after(async () => {
  assert.deepEqual(page?.problems ?? [], [], "no console errors on the test page");
  await browser?.close();
  server?.close();
});

test("Wycheproof AES-GCM through the JS API: 96-bit nonces give the expected result, others BAD_LENGTH", async () => {
  const counts = await page.evaluate(async () => {
    const { aesGcmEncrypt, aesGcmDecrypt } = window.sdk;
    const hex = (s) => Uint8Array.from(s.match(/../g) ?? [], (b) => parseInt(b, 16));
    const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
    const code = (fn) => {
      try {
        fn();
        return "no error";
      } catch (error) {
        return error.code;
      }
    };
    const doc = await (await fetch("/vectors/wycheproof/aes_gcm_test.json")).json();
    const counts = { total: 0, valid: 0, authFailed: 0, badLength: 0, wrong: [] };
    for (const group of doc.testGroups) {
      for (const t of group.tests) {
        counts.total++;
        const [key, iv, aad, msg] = [hex(t.key), hex(t.iv), hex(t.aad), hex(t.msg)];
        const ctTag = hex(t.ct + t.tag);
        if (group.ivSize !== 96) {
          const ok = code(() => aesGcmEncrypt(key, iv, msg, aad)) === "BAD_LENGTH" && code(() => aesGcmDecrypt(key, iv, ctTag, aad)) === "BAD_LENGTH";
          if (ok) counts.badLength++;
          else counts.wrong.push(t.tcId);
        } else if (t.result === "valid") {
          if (same(aesGcmEncrypt(key, iv, msg, aad), ctTag) && same(aesGcmDecrypt(key, iv, ctTag, aad), msg)) counts.valid++;
          else counts.wrong.push(t.tcId);
        } else if (code(() => aesGcmDecrypt(key, iv, ctTag, aad)) === "AUTH_FAILED") counts.authFailed++;
        else counts.wrong.push(t.tcId);
      }
    }
    return counts;
  });
  console.log(`Wycheproof AES-GCM in Chromium: ${counts.total} vectors: ${counts.valid} valid, ${counts.authFailed} AUTH_FAILED, ${counts.badLength} BAD_LENGTH`);
  assert.deepEqual(counts.wrong, []);
  assert.equal(counts.total, 316);
  assert.equal(counts.valid + counts.authFailed + counts.badLength, 316);
});

test("Wycheproof Ed25519 through the JS API, singly and in batches", async () => {
  const counts = await page.evaluate(async () => {
    const { ed25519Verify, ed25519VerifyBatch } = window.sdk;
    const hex = (s) => Uint8Array.from(s.match(/../g) ?? [], (b) => parseInt(b, 16));
    const doc = await (await fetch("/vectors/wycheproof/ed25519_test.json")).json();
    const counts = { total: 0, valid: 0, rejected: 0, wrong: [] };
    const good = { keys: [], msgs: [], sigs: [] };
    for (const group of doc.testGroups) {
      const pk = hex(group.publicKey.pk);
      for (const t of group.tests) {
        counts.total++;
        const ok = ed25519Verify(pk, hex(t.msg), hex(t.sig));
        if (ok !== (t.result === "valid")) counts.wrong.push(t.tcId);
        else if (ok) {
          counts.valid++;
          good.keys.push(pk);
          good.msgs.push(hex(t.msg));
          good.sigs.push(hex(t.sig));
        } else counts.rejected++;
      }
    }
    counts.batchOfValid = ed25519VerifyBatch(good.keys, good.msgs, good.sigs);
    const tampered = good.sigs.map((s) => s.slice());
    tampered[3][10] ^= 1;
    counts.batchWithOneBad = ed25519VerifyBatch(good.keys, good.msgs, tampered);
    return counts;
  });
  console.log(`Wycheproof Ed25519 in Chromium: ${counts.total} vectors: ${counts.valid} valid, ${counts.rejected} rejected`);
  assert.deepEqual(counts.wrong, []);
  assert.equal(counts.total, 151);
  assert.equal(counts.batchOfValid, true);
  assert.equal(counts.batchWithOneBad, false);
});

test("official BLAKE3 vectors through the JS API (hash, keyed, derive-key, extended output)", async () => {
  const result = await page.evaluate(async () => {
    const { blake3, blake3Keyed, blake3DeriveKey, Hasher } = window.sdk;
    const toHex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    const doc = await (await fetch("/vectors/blake3/test_vectors.json")).json();
    const key = new TextEncoder().encode(doc.key);
    const wrong = [];
    for (const c of doc.cases) {
      const input = Uint8Array.from({ length: c.input_len }, (_, i) => i % 251);
      const hashLen = c.hash.length / 2;
      const streamed = new Hasher("blake3");
      for (let i = 0; i < input.length; i += 1000) streamed.update(input.subarray(i, i + 1000));
      const ok =
        toHex(blake3(input, hashLen)) === c.hash &&
        toHex(blake3(input)) === c.hash.slice(0, 64) &&
        toHex(streamed.digest()) === c.hash.slice(0, 64) &&
        toHex(blake3Keyed(key, input)) === c.keyed_hash.slice(0, 64) &&
        toHex(blake3DeriveKey(doc.context_string, input)) === c.derive_key.slice(0, 64);
      streamed.free();
      if (!ok) wrong.push(c.input_len);
    }
    return { cases: doc.cases.length, wrong };
  });
  console.log(`BLAKE3 official vectors in Chromium: ${result.cases} cases`);
  assert.deepEqual(result.wrong, []);
  assert.equal(result.cases, 35);
});

test("seal/open, HMAC, HKDF, scrypt, random bytes and constant-time compare", async () => {
  const r = await page.evaluate(() => {
    const sdk = window.sdk;
    const toHex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    const key = sdk.randomBytes(32);
    const sealed = sdk.seal(key, new TextEncoder().encode("hello"), new Uint8Array([1, 2]));
    const codeOf = (fn) => {
      try {
        fn();
      } catch (error) {
        return `${error.code}: ${error.message}`;
      }
    };
    sealed[20] ^= 0x80;
    return {
      sealedLength: sealed.length,
      tampered: codeOf(() => sdk.open(key, sealed, new Uint8Array([1, 2]))),
      wrongAad: codeOf(() => sdk.open(key, sdk.seal(key, new Uint8Array(3), new Uint8Array([1])), new Uint8Array([2]))),
      roundTrip: new TextDecoder().decode(sdk.open(key, sdk.seal(key, new TextEncoder().encode("round trip")))),
      badKey: codeOf(() => sdk.seal(new Uint8Array(10), new Uint8Array(1))),
      // RFC 4231 test case 2
      hmac: toHex(sdk.hmacSha256(new TextEncoder().encode("Jefe"), new TextEncoder().encode("what do ya want for nothing?"))),
      // RFC 5869 test case 1
      hkdf: toHex(sdk.hkdfSha256(new Uint8Array(22).fill(0x0b), Uint8Array.from({ length: 13 }, (_, i) => i), Uint8Array.from({ length: 10 }, (_, i) => 0xf0 + i), 42)),
      // RFC 7914 vector 2 (N = 1024, r = 8, p = 16)
      scrypt: toHex(sdk.scrypt("password", "NaCl", { logN: 10, r: 8, p: 16, dkLen: 64 })),
      scryptBad: codeOf(() => sdk.scrypt("pw", "salt", { logN: 40 })),
      randomDiffers: toHex(sdk.randomBytes(16)) !== toHex(sdk.randomBytes(16)),
      ctEqual: [sdk.constantTimeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2])), sdk.constantTimeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 3])), sdk.constantTimeEqual(new Uint8Array([1]), new Uint8Array([1, 1]))],
    };
  });
  assert.equal(r.sealedLength, 12 + 5 + 16);
  assert.match(r.tampered, /^AUTH_FAILED: /);
  assert.match(r.wrongAad, /^AUTH_FAILED: /);
  assert.equal(r.roundTrip, "round trip");
  assert.equal(r.badKey, "BAD_LENGTH: AES-GCM key must be 16, 24 or 32 bytes, got 10");
  assert.equal(r.hmac, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  assert.equal(r.hkdf, "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
  assert.equal(r.scrypt, "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640");
  assert.match(r.scryptBad, /^BAD_PARAMS: bad parameter logN/);
  assert.equal(r.randomDiffers, true);
  assert.deepEqual(r.ctEqual, [true, false, false]);
});

test("Ed25519 keys: RFC 8032 seed, sign/verify, no secret in toString/JSON", async () => {
  const r = await page.evaluate(() => {
    const { SigningKey, ed25519Verify } = window.sdk;
    const toHex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    const seed = Uint8Array.from("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60".match(/../g), (b) => parseInt(b, 16));
    const key = SigningKey.fromSeed(seed);
    const sig = key.sign(new Uint8Array());
    const fresh = SigningKey.generate();
    const msg = new TextEncoder().encode("agents sign their memories");
    const out = {
      publicKey: toHex(key.publicKey()),
      sig: toHex(sig),
      verifies: ed25519Verify(key.publicKey(), new Uint8Array(), sig),
      freshVerifies: ed25519Verify(fresh.publicKey(), msg, fresh.sign(msg)),
      crossFails: ed25519Verify(key.publicKey(), msg, fresh.sign(msg)),
      text: `${key} ${JSON.stringify({ key })}`,
      seedHex: toHex(seed),
    };
    key.free();
    fresh[Symbol.dispose]();
    return out;
  });
  assert.equal(r.publicKey, "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
  assert.equal(r.sig.slice(0, 16), "e5564300c360ac72");
  assert.equal(r.verifies, true);
  assert.equal(r.freshVerifies, true);
  assert.equal(r.crossFails, false);
  assert.ok(!r.text.includes(r.seedHex), r.text);
  assert.ok(r.text.includes(r.publicKey), r.text);
});

test("SecureBuffer, ApiKey and SigningKey: wiped from wasm memory on free(), never printed", async () => {
  const r = await page.evaluate(() => {
    const { SecureBuffer, ApiKey, validateApiKeyFormat } = window.sdk;
    const find = window.wasmMemoryContains;
    const secret = crypto.getRandomValues(new Uint8Array(32));
    const buffer = new SecureBuffer(secret);
    const before = find(secret);
    const printed = `${buffer} ${JSON.stringify({ buffer })} ${String(buffer)}`;
    const equals = buffer.equals(secret) && !buffer.equals(new Uint8Array(32));
    buffer.free();
    const after = find(secret);

    const body = Array.from(crypto.getRandomValues(new Uint8Array(24)), (b) => "abcdefghijklmnopqrstuvwxyz0123456789"[b % 36]).join("");
    const keyText = `sk-proj-${body}`;
    const keyBytes = new TextEncoder().encode(body);
    const apiKey = ApiKey.parse(keyText);
    const keyBefore = find(keyBytes);
    const apiPrinted = `${apiKey} ${JSON.stringify(apiKey)} ${apiKey.redacted()} ${apiKey.provider}`;
    let parseError = "";
    try {
      ApiKey.parse(`${keyText} with spaces`);
    } catch (error) {
      parseError = `${error.code} ${error.message}`;
    }
    apiKey.free();
    const keyAfter = find(keyBytes);

    const seed = crypto.getRandomValues(new Uint8Array(32));
    const signingKey = window.sdk.SigningKey.fromSeed(seed);
    signingKey.sign(new Uint8Array(8));
    const seedBefore = find(seed);
    signingKey.free();
    const seedAfter = find(seed);
    return {
      before, after, printed, equals, keyBefore, keyAfter, apiPrinted, parseError, body, seedBefore, seedAfter,
      validation: [validateApiKeyFormat(keyText, "openai"), validateApiKeyFormat(keyText, "anthropic")],
    };
  });
  assert.equal(r.before, true, "the secret is in wasm memory while the SecureBuffer lives");
  assert.equal(r.after, false, "free() wiped it");
  assert.equal(r.equals, true);
  assert.equal(r.printed, 'SecureBuffer(32 bytes, redacted) {"buffer":"[REDACTED]"} SecureBuffer(32 bytes, redacted)');
  assert.equal(r.keyBefore, true);
  assert.equal(r.keyAfter, false, "no copy of the API key is left in wasm memory");
  assert.equal(r.seedBefore, true, "the Ed25519 seed is in wasm memory while the key lives");
  assert.equal(r.seedAfter, false, "free() wiped the Ed25519 seed");
  assert.ok(!r.apiPrinted.includes(r.body) && !r.parseError.includes(r.body.slice(0, 8)), `${r.apiPrinted} / ${r.parseError}`);
  assert.match(r.apiPrinted, /^ApiKey\(openai, sk-proj-\.\.\.[a-z0-9]{4}\) \{"provider":"openai","key":"sk-proj-\.\.\.[a-z0-9]{4}"\}/);
  assert.match(r.parseError, /^BAD_FORMAT /);
  assert.deepEqual(r.validation, [
    { valid: true, provider: "openai" },
    { valid: false, reason: 'Anthropic keys start with "sk-ant-"' },
  ]);
});

test("scryptAsync yields to the page (no long task), reports progress and aborts", async () => {
  const r = await page.evaluate(async () => {
    const { scryptAsync, scrypt } = window.sdk;
    const toHex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    const opts = { logN: 14, r: 8, p: 1, dkLen: 64 };
    const progress = [];
    let last = performance.now();
    let maxGap = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
    }, 4);
    const started = performance.now();
    const key = await scryptAsync("pleaseletmein", "SodiumChloride", opts, { onProgress: (f) => progress.push(f) });
    const elapsed = performance.now() - started;
    clearInterval(timer);

    const controller = new AbortController();
    let abortedWith = "";
    const pending = scryptAsync("pw", "salt", { logN: 16 }, {
      signal: controller.signal,
      onProgress: (f) => f > 0.05 && controller.abort(),
    }).catch((error) => (abortedWith = `${error.code}: ${error.message}`));
    await pending;
    return {
      key: toHex(key),
      sameAsSync: toHex(scrypt("pleaseletmein", "SodiumChloride", opts)) === toHex(key),
      progress,
      maxGap,
      elapsed,
      abortedWith,
    };
  });
  console.log(`scryptAsync N=2^14: ${r.elapsed.toFixed(0)} ms in ${r.progress.length} slices; longest gap between 4 ms timer ticks ${r.maxGap.toFixed(1)} ms`);
  assert.equal(r.key, "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887");
  assert.equal(r.sameAsSync, true);
  assert.ok(r.progress.length >= 2, "progress was reported more than once");
  assert.deepEqual([...r.progress].sort((a, b) => a - b), r.progress, "progress only grows");
  assert.equal(r.progress.at(-1), 1);
  assert.ok(r.maxGap < 60, `the page was blocked for ${r.maxGap} ms`);
  assert.equal(r.abortedWith, "ABORTED: the operation was aborted by its AbortSignal");
});

test("certificate chains made by openssl get the right verdicts in the browser", async () => {
  const dir = mkdtempSync(join(tmpdir(), "chrysalis-chains-"));
  try {
    execFileSync("bash", [join(ROOT, "tests/certs/make-chains.sh"), dir], { stdio: "ignore" });
    const pem = (name) => readFileSync(join(dir, `${name}.pem`), "utf8");
    const der = (name) => new Uint8Array(execFileSync("openssl", ["x509", "-in", join(dir, `${name}.pem`), "-outform", "DER"]));
    const cases = [
      ["valid, PEM bundle + hostname", pem("leaf-good") + pem("inter-rsa"), [pem("root-p256")], { hostname: "api.example.com" }, null],
      ["valid, DER list", [der("leaf-pss"), der("inter-rsa")], der("root-p256"), {}, null],
      ["valid, P-384", pem("leaf-p384"), pem("root-p384"), {}, null],
      ["valid, Ed25519 root", pem("leaf-ed"), pem("root-ed25519"), {}, null],
      ["expired", [pem("leaf-expired"), pem("inter-rsa")], pem("root-p256"), {}, ["CERT_EXPIRED", 0]],
      ["expired at a later atTime", [pem("leaf-good"), pem("inter-rsa")], pem("root-p256"), { atTime: Date.now() + 5 * 365 * 864e5 }, ["CERT_EXPIRED", 0]],
      ["wrong issuer", [pem("leaf-other"), pem("inter-rsa")], pem("root-p256"), {}, ["CERT_ISSUER_MISMATCH", 0]],
      ["bad signature", [pem("leaf-forged"), pem("inter-rsa")], pem("root-p256"), {}, ["CERT_BAD_SIGNATURE", 0]],
      ["not-a-CA intermediate", [pem("leaf-under-noca"), pem("inter-noca")], pem("root-p256"), {}, ["CERT_NOT_CA", 1]],
      ["hostname mismatch", [pem("leaf-good"), pem("inter-rsa")], pem("root-p256"), { hostname: "evil.example.net" }, ["CERT_HOSTNAME_MISMATCH", 0]],
      ["path length", [pem("leaf-deep"), pem("inter-deep"), pem("inter-pathlen0")], pem("root-p256"), {}, ["CERT_PATH_TOO_LONG", 2]],
      ["untrusted", [pem("leaf-good"), pem("inter-rsa")], pem("root-p384"), {}, ["CERT_UNTRUSTED", 1]],
      ["garbage leaf", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", pem("root-p256"), {}, ["BAD_FORMAT", 0]],
      ["garbage intermediate", [pem("leaf-good"), new Uint8Array([0x30, 0x03, 0x02, 0x01])], pem("root-p256"), {}, ["BAD_FORMAT", 1]],
    ];
    const results = await page.evaluate(async (cases) => {
      const loadedBefore = performance.getEntriesByType("resource").some((e) => e.name.includes("chrysalis_x509"));
      const revive = (x) => (Array.isArray(x) ? x.map(revive) : x && typeof x === "object" ? new Uint8Array(Object.values(x)) : x);
      const results = [];
      for (const [name, chain, anchors, options] of cases) {
        try {
          const info = await window.sdk.validateCertChain(revive(chain), revive(anchors), options);
          results.push({ name, ok: true, leaf: info.leafSubject, notAfterIsDate: info.notAfter instanceof Date, loadedBefore });
        } catch (error) {
          results.push({ name, ok: false, code: error.code, index: error.index, message: error.message, loadedBefore });
        }
      }
      return results;
    }, cases);
    assert.equal(results[0].loadedBefore, false, "the certificate module is fetched only when first used");
    for (const [i, [name, , , , expected]] of cases.entries()) {
      const got = results[i];
      if (expected === null) {
        assert.equal(got.ok, true, `${name}: ${got.message}`);
        assert.equal(got.leaf, "CN=api.example.com");
        assert.equal(got.notAfterIsDate, true);
      } else {
        assert.deepEqual([got.code, got.index], expected, `${name}: ${got.message}`);
        assert.ok(got.message.length > 20, got.message);
      }
    }
    console.log(`certificate chains in Chromium: ${cases.length} cases gave the right verdict`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
