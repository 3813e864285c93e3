// SecurityContext in headless Chromium: vault export, IndexedDB persistence across a page reload,
// wrong passphrases, key rotation, no key left in wasm memory after lock() / free(), and
// authorizedFetch against a page script that patches fetch and its helpers after init.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { join } from "node:path";
import { startServer } from "../../scripts/serve.mjs";
import { ROOT, launchChromium, openPage } from "./browser.mjs";

const OPENAI = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789WXYZ";
const NOMIC = "nk-abcdefghijklmnopqrstuvwxyz0123456789";

let browser;
let server;
let page;

async function loadSdk() {
  await page.evaluate(async () => {
    window.sdk = await import("/pkg/index.js");
    window.wasmExports = await window.sdk.default();
  });
}

before(async () => {
  let url;
  ({ server, url } = await startServer({ mounts: { "/pkg/": join(ROOT, "pkg"), "/": join(ROOT, "tests/e2e/pages") } }));
  browser = await launchChromium();
  page = await openPage(browser, url);
  await loadSdk();
});

after(async () => {
  assert.deepEqual(page?.problems ?? [], [], "no console errors on the test page");
  await browser?.close();
  server?.close();
});

test("keys survive export, IndexedDB and a page reload; wrong passphrase fails; rotation keeps old envelopes", async () => {
  const before = await page.evaluate(async ({ OPENAI, NOMIC }) => {
    const { SecurityContext } = window.sdk;
    const ctx = new SecurityContext();
    ctx.storeApiKey("openai", OPENAI);
    ctx.storeApiKey("nomic", NOMIC);
    const oldEnvelope = ctx.encryptForStorage(new TextEncoder().encode("written before rotation"), new Uint8Array([7]));
    const newKeyId = ctx.rotateStorageKey();
    const newEnvelope = ctx.encryptForStorage(new TextEncoder().encode("written after rotation"));
    const session0 = ctx.sessionEncrypt("chat", new TextEncoder().encode("generation 0"));
    ctx.rotateSessionKey("chat");
    const vault = ctx.exportVault("correct horse battery staple", { logN: 12 });
    await ctx.persist("chrysalis-test-vault");
    const b64 = (bytes) => btoa(String.fromCharCode(...bytes));
    const out = { vault: b64(vault), oldEnvelope: b64(oldEnvelope), newEnvelope: b64(newEnvelope), session0: b64(session0), newKeyId, providers: ctx.listProviders() };
    ctx.free();
    return out;
  }, { OPENAI, NOMIC });
  assert.deepEqual(before.providers, ["openai", "nomic"]);
  assert.equal(before.newKeyId, 2);

  await page.reload();
  await loadSdk();

  const afterReload = await page.evaluate(async (saved) => {
    const { SecurityContext } = window.sdk;
    const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const text = (b) => new TextDecoder().decode(b);
    const codeOf = async (fn) => {
      try {
        await fn();
        return "no error";
      } catch (error) {
        return error.code;
      }
    };
    const ctx = await SecurityContext.load("chrysalis-test-vault", "correct horse battery staple");
    const out = {
      providers: ctx.listProviders(),
      redacted: [ctx.redactedApiKey("openai"), ctx.redactedApiKey("nomic")],
      openai: ctx.getApiKey("openai"),
      oldEnvelope: text(ctx.decryptFromStorage(bytes(saved.oldEnvelope), new Uint8Array([7]))),
      newEnvelope: text(ctx.decryptFromStorage(bytes(saved.newEnvelope))),
      session0: text(ctx.sessionDecrypt("chat", bytes(saved.session0))),
      keyId: ctx.currentStorageKeyId,
      reencryptedKeyId: ctx.reencrypt(bytes(saved.oldEnvelope), new Uint8Array([7]))[8],
      wrongPassphrase: await codeOf(() => SecurityContext.load("chrysalis-test-vault", "Correct horse battery staple")),
      wrongPassphraseBytes: await codeOf(() => SecurityContext.unlock(bytes(saved.vault), "nope")),
      truncated: await codeOf(() => SecurityContext.unlock(bytes(saved.vault).slice(0, 50), "correct horse battery staple")),
      missingStore: await codeOf(() => SecurityContext.load("no-such-store", "x")),
      unknownProvider: await codeOf(() => ctx.storeApiKey("acme", "sk-whatever-1234567890abcdefghij")),
      badKeyFormat: await codeOf(() => ctx.storeApiKey("anthropic", "sk-proj-abcdefghijklmnopqrstuvwxyz")),
      noKey: await codeOf(() => ctx.getApiKey("google")),
      badLogN: await codeOf(() => ctx.exportVault("pw", { logN: 30 })),
      // A blob asking for scrypt logN 21, r = 4, p = 16 (1 GiB, ~40 s) is refused before scrypt.
      costlyVault: await codeOf(() => {
        const costly = bytes(saved.vault);
        costly.set([21, 0, 0, 0, 4, 0, 0, 0, 16], 10);
        return SecurityContext.unlock(costly, "correct horse battery staple");
      }),
      insecureOrigin: await codeOf(() => ctx.allowApiOrigin("openai", "http://proxy.example")),
      fromExport: SecurityContext.unlock(bytes(saved.vault), "correct horse battery staple").listProviders(),
    };
    // load() runs scrypt in slices: progress only grows to 1, a 4 ms timer keeps ticking
    // (longest gap measured), and an aborted signal rejects with ABORTED.
    await ctx.persist("chrysalis-test-vault-sliced", "correct horse battery staple"); // the default cost, logN 15
    const progress = [];
    const ticks = [];
    const timer = setInterval(() => ticks.push(performance.now()), 4);
    const started = performance.now();
    await SecurityContext.load("chrysalis-test-vault-sliced", "correct horse battery staple", { onProgress: (f) => progress.push(f) });
    clearInterval(timer);
    const gaps = [started, ...ticks].map((t, i, all) => (i === 0 ? 0 : t - all[i - 1]));
    out.sliced = { progress, maxGap: Math.max(...gaps), elapsed: performance.now() - started };
    const controller = new AbortController();
    const aborted = SecurityContext.load("chrysalis-test-vault-sliced", "correct horse battery staple", {
      signal: controller.signal,
      onProgress: () => controller.abort(),
    });
    out.abortedWith = await codeOf(() => aborted);
    // persist() without a passphrase re-seals with the key from load().
    ctx.removeApiKey("nomic");
    await ctx.persist("chrysalis-test-vault");
    out.afterRepersist = (await SecurityContext.load("chrysalis-test-vault", "correct horse battery staple")).listProviders();
    // A script that replaces setTimeout after the import cannot stall a sliced load: the package
    // yields with the timer it captured.
    const realSetTimeout = window.setTimeout;
    window.setTimeout = () => 0;
    out.withReplacedTimer = await Promise.race([
      SecurityContext.load("chrysalis-test-vault", "correct horse battery staple").then((c) => c.listProviders(), (e) => e.code),
      new Promise((resolve) => realSetTimeout(() => resolve("stalled"), 20_000)),
    ]).finally(() => (window.setTimeout = realSetTimeout));
    // What another script of the origin stores in a vault's place is refused before any copy:
    // a number (read as a length, it would allocate 2 GiB), a string, bytes over 16 MiB.
    const storeRaw = (name, value) =>
      new Promise((resolve, reject) => {
        const open = indexedDB.open(name, 1);
        open.onupgradeneeded = () => open.result.createObjectStore("chrysalis-vault");
        open.onerror = () => reject(open.error);
        open.onsuccess = () => {
          const tx = open.result.transaction("chrysalis-vault", "readwrite");
          tx.objectStore("chrysalis-vault").put(value, "vault");
          tx.oncomplete = () => (open.result.close(), resolve());
          tx.onerror = () => reject(tx.error);
        };
      });
    out.hostileStored = [];
    for (const value of [2 ** 31 - 1, "CHRYSVLT", new Uint8Array((16 << 20) + 1)]) {
      await storeRaw("chrysalis-test-vault-hostile", value);
      out.hostileStored.push(await codeOf(() => SecurityContext.load("chrysalis-test-vault-hostile", "correct horse battery staple")));
    }
    // The same checks in an isolated vault's worker.
    await storeRaw("chrysalis-test-vault-hostile", 2 ** 31 - 1);
    out.hostileIsolated = await codeOf(() => SecurityContext.isolated({ store: "chrysalis-test-vault-hostile", passphrase: "correct horse battery staple" }));
    // And in what a page hands an isolated vault (a wrong type used to open a new, empty vault).
    out.isolatedGiven = [
      await codeOf(() => SecurityContext.isolated({ vault: new Uint16Array(64), passphrase: "correct horse battery staple" })),
      await codeOf(() => SecurityContext.isolated({ vault: new Uint8Array((16 << 20) + 1), passphrase: "correct horse battery staple" })),
    ];
    return out;
  }, before);
  assert.deepEqual(afterReload.providers, ["openai", "nomic"]);
  assert.deepEqual(afterReload.redacted, ["sk-proj-...WXYZ", "nk-...6789"]);
  assert.equal(afterReload.openai, OPENAI);
  assert.equal(afterReload.oldEnvelope, "written before rotation");
  assert.equal(afterReload.newEnvelope, "written after rotation");
  assert.equal(afterReload.session0, "generation 0");
  assert.equal(afterReload.keyId, 2);
  assert.equal(afterReload.reencryptedKeyId, 2);
  assert.equal(afterReload.wrongPassphrase, "AUTH_FAILED");
  assert.equal(afterReload.wrongPassphraseBytes, "AUTH_FAILED");
  assert.equal(afterReload.truncated, "BAD_FORMAT");
  assert.equal(afterReload.missingStore, "NOT_FOUND");
  assert.equal(afterReload.unknownProvider, "UNKNOWN_PROVIDER");
  assert.equal(afterReload.badKeyFormat, "BAD_FORMAT");
  assert.equal(afterReload.noKey, "NO_API_KEY");
  assert.equal(afterReload.badLogN, "BAD_PARAMS");
  assert.equal(afterReload.costlyVault, "BAD_KDF_PARAMS");
  const { progress, maxGap, elapsed } = afterReload.sliced;
  console.log(`SecurityContext.load: ${elapsed.toFixed(0)} ms in ${progress.length} slices; longest gap between 4 ms timer ticks ${maxGap.toFixed(1)} ms`);
  assert.ok(progress.length >= 2, "progress was reported more than once");
  assert.deepEqual([...progress].sort((a, b) => a - b), progress, "progress only grows");
  assert.equal(progress.at(-1), 1);
  assert.ok(maxGap < 60, `the page was blocked for ${maxGap} ms`);
  assert.equal(afterReload.abortedWith, "ABORTED");
  assert.equal(afterReload.insecureOrigin, "INSECURE_ORIGIN");
  assert.deepEqual(afterReload.fromExport, ["openai", "nomic"]);
  assert.deepEqual(afterReload.afterRepersist, ["openai"]);
  assert.deepEqual(afterReload.hostileStored, ["BAD_FORMAT", "BAD_FORMAT", "TOO_LARGE"]);
  assert.deepEqual(afterReload.withReplacedTimer, ["openai"]);
  assert.equal(afterReload.hostileIsolated, "BAD_FORMAT");
  assert.deepEqual(afterReload.isolatedGiven, ["BAD_FORMAT", "TOO_LARGE"]);
});

test("session keys retire after the configured number of rotations", async () => {
  const r = await page.evaluate(() => {
    const ctx = new window.sdk.SecurityContext({ retainedSessionKeys: 1 });
    const g0 = ctx.sessionEncrypt("s", new Uint8Array([1]));
    ctx.rotateSessionKey("s");
    const stillOk = ctx.sessionDecrypt("s", g0)[0];
    ctx.rotateSessionKey("s");
    try {
      ctx.sessionDecrypt("s", g0);
      return { stillOk, error: "none" };
    } catch (error) {
      return { stillOk, error: `${error.code}: ${error.message}` };
    } finally {
      ctx.free();
    }
  });
  assert.equal(r.stillOk, 1);
  assert.equal(r.error, 'KEY_RETIRED: session "s" key generation 0 is retired (oldest kept: 1)');
});

test("lock() and free() leave neither the master key nor the API key in wasm memory", async () => {
  const r = await page.evaluate((OPENAI) => {
    const { SecurityContext } = window.sdk;
    const find = window.wasmMemoryContains;
    const apiKeyBytes = new TextEncoder().encode(OPENAI);
    const results = {};
    for (const ending of ["lock", "free"]) {
      const master = crypto.getRandomValues(new Uint8Array(32));
      const ctx = SecurityContext.fromMasterKey(master);
      ctx.storeApiKey("openai", OPENAI);
      const viaGet = ctx.getApiKey("openai"); // a JS string; wasm's copy is wiped
      ctx.exportVault("pw", { logN: 10 });
      const printed = `${ctx} ${JSON.stringify({ ctx })}`;
      const masterBefore = find(master);
      const apiKeyBefore = find(apiKeyBytes);
      let lockedError = "";
      if (ending === "lock") {
        ctx.lock();
        try {
          ctx.getApiKey("openai");
        } catch (error) {
          lockedError = `${error.code}: ${error.message}`;
        }
        ctx.free();
      } else {
        ctx.free();
      }
      results[ending] = { masterBefore, apiKeyBefore, masterAfter: find(master), apiKeyAfter: find(apiKeyBytes), viaGet: viaGet === OPENAI, printed, lockedError };
    }
    return results;
  }, OPENAI);
  for (const ending of ["lock", "free"]) {
    const x = r[ending];
    assert.equal(x.masterBefore, true, `${ending}: the scan sees the master key while the context lives`);
    assert.equal(x.apiKeyBefore, false, `${ending}: the API key is kept sealed, never in plaintext`);
    assert.equal(x.masterAfter, false, `${ending}: the master key is wiped`);
    assert.equal(x.apiKeyAfter, false, `${ending}: no plaintext API key is left`);
    assert.equal(x.viaGet, true);
    assert.ok(!x.printed.includes("abcdefghij") && x.printed.includes("openai"), x.printed);
  }
  assert.equal(r.lock.lockedError, "LOCKED: the security context is locked");
});

/** A loopback server that records each request's Authorization header (CORS open to the page). */
function startRecorder() {
  const recorder = { requests: [] };
  const cors = {
    "access-control-allow-origin": "*",
    "access-control-allow-headers": "authorization, content-type",
    "access-control-allow-methods": "POST",
  };
  recorder.server = createServer(async (req, res) => {
    if (req.method === "OPTIONS") return res.writeHead(204, cors).end();
    let body = "";
    for await (const chunk of req) body += chunk;
    recorder.requests.push({ path: req.url, auth: req.headers.authorization, type: req.headers["content-type"], cookie: req.headers.cookie, body });
    res.writeHead(200, { ...cors, "content-type": "application/json" }).end('{"ok":true}');
  });
  return new Promise((resolve) => recorder.server.listen(0, "127.0.0.1", () => resolve(recorder)));
}

test("authorizedFetch: a script that patches fetch, Request, Headers, URL and their helpers after init never sees the key nor moves it", async () => {
  const allowed = await startRecorder();
  const other = await startRecorder();
  const allowedUrl = `http://127.0.0.1:${allowed.server.address().port}`;
  const otherUrl = `http://127.0.0.1:${other.server.address().port}`;
  try {
    const r = await page.evaluate(async ({ OPENAI, allowedUrl, otherUrl }) => {
      const { SecurityContext } = window.sdk;
      const ctx = new SecurityContext();
      ctx.storeApiKey("openai", OPENAI);
      ctx.allowApiOrigin("openai", allowedUrl);
      const keyBytes = new TextEncoder().encode(OPENAI);
      const keyBody = OPENAI.slice("sk-proj-".length);
      const { apply, construct } = Reflect;
      const [OriginalRequest, OriginalHeaders, OriginalUrl] = [Request, Headers, URL];
      const decoder = new TextDecoder();
      const decode = TextDecoder.prototype.decode;
      const describe = (proto, name) => Object.getOwnPropertyDescriptor(proto, name);
      const headersEntries = Headers.prototype.entries;
      const requestHeaders = describe(Request.prototype, "headers").get;

      // What a hostile patch could read: its receiver and arguments, and all of wasm memory.
      const seen = [];
      const calls = {};
      let busy = false;
      const plain = (value) => [Object.prototype, Array.prototype, null].includes(Object.getPrototypeOf(value));
      const mentionsKey = (value, depth = 0) => {
        try {
          if (typeof value === "string") return value.includes(keyBody);
          if (!value || typeof value !== "object" || depth > 3) return false;
          if (value instanceof Uint8Array) return mentionsKey(apply(decode, decoder, [value]));
          if (value instanceof OriginalRequest) return mentionsKey(apply(requestHeaders, value, []));
          if (value instanceof OriginalHeaders) return [...apply(headersEntries, value, [])].some(([, v]) => mentionsKey(v));
          if (plain(value)) return Object.keys(value).some((k) => mentionsKey(value[k], depth + 1));
        } catch {
          // an object this check cannot read is not one the patch could read either
        }
        return false;
      };
      const watch = (name, self, args) => {
        if (busy) return;
        busy = true;
        try {
          calls[name] = (calls[name] ?? 0) + 1;
          if ([self, ...args].some(mentionsKey)) seen.push(`${name} was handed the key`);
          if (window.wasmMemoryContains(keyBytes)) seen.push(`${name} ran while the key was in wasm memory`);
        } finally {
          busy = false;
        }
      };
      const restore = [];
      const patchValue = (owner, name, make) => {
        const original = describe(owner, name); // undefined when inherited (e.g. window.fetch)
        const value = make(owner[name]);
        Object.defineProperty(owner, name, { configurable: true, writable: true, ...original, value });
        restore.push(() => (original ? Object.defineProperty(owner, name, original) : delete owner[name]));
      };
      const patchMethod = (owner, name, label) =>
        patchValue(owner, name, (original) =>
          function (...args) {
            watch(label, this, args);
            return new.target ? construct(original, args) : apply(original, this, args);
          },
        );
      const patchGetter = (owner, name, label, lie) => {
        const original = describe(owner, name);
        Object.defineProperty(owner, name, {
          ...original,
          get() {
            watch(label, this, []);
            return lie ?? apply(original.get, this, []);
          },
        });
        restore.push(() => Object.defineProperty(owner, name, original));
      };

      // After init: replace the globals, the prototypes' methods and accessors, and the helpers
      // a naive implementation (or wasm-bindgen's glue) would look up at call time.
      for (const name of ["set", "append", "get", "has", "entries", "forEach", Symbol.iterator]) patchMethod(OriginalHeaders.prototype, name, `Headers.${String(name)}`);
      for (const name of ["url", "headers"]) patchGetter(OriginalRequest.prototype, name, `Request.${name}`);
      patchGetter(OriginalUrl.prototype, "origin", "URL.origin", allowedUrl); // lies: every URL is the allowed origin
      patchGetter(OriginalUrl.prototype, "href", "URL.href");
      patchMethod(OriginalRequest.prototype, "clone", "Request.clone");
      for (const name of ["fetch", "Request", "Headers", "URL"]) patchMethod(window, name, name);
      patchMethod(TextDecoder.prototype, "decode", "TextDecoder.decode");
      patchMethod(TextEncoder.prototype, "encodeInto", "TextEncoder.encodeInto");
      patchMethod(TextEncoder.prototype, "encode", "TextEncoder.encode");
      patchMethod(String, "fromCharCode", "String.fromCharCode");
      patchMethod(String.prototype, "charCodeAt", "String.charCodeAt");
      patchMethod(Uint8Array.prototype.__proto__, "subarray", "TypedArray.subarray");
      patchGetter(WebAssembly.Memory.prototype, "buffer", "Memory.buffer");
      patchMethod(WebAssembly.Table.prototype, "set", "Table.set");
      patchMethod(Array.prototype, "push", "Array.push");
      patchMethod(Object, "assign", "Object.assign");
      for (const name of ["apply", "construct", "get", "set"]) patchMethod(Reflect, name, `Reflect.${name}`);
      for (const name of ["call", "apply"]) patchMethod(Function.prototype, name, `Function.${name}`);
      for (const name of ["integrity", "keepalive", "priority", "window", Symbol.iterator]) {
        Object.defineProperty(Object.prototype, name, { configurable: true, get() { watch(`Object.prototype.${String(name)}`, this, []); } });
        restore.push(() => delete Object.prototype[name]);
      }
      const patchesWork = new URL(`${otherUrl}/x`).origin === allowedUrl && calls["URL.origin"] === 1;

      const out = { patchesWork };
      try {
        const response = await ctx.authorizedFetch("openai", `${allowedUrl}/v1/embeddings`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: "Bearer from-the-page" },
          body: '{"input":"hello"}',
        });
        out.status = response.status;
        out.body = await response.text();
        try {
          await ctx.authorizedFetch("openai", `${otherUrl}/steal`, { method: "POST", body: "{}" });
          out.forged = "sent";
        } catch (error) {
          out.forged = error.code;
        }
      } finally {
        while (restore.length) restore.pop()();
      }
      out.seen = seen;
      out.calls = calls;
      out.keyLeftInMemory = window.wasmMemoryContains(keyBytes);
      ctx.free();
      return out;
    }, { OPENAI, allowedUrl, otherUrl });

    assert.equal(r.patchesWork, true, "the patches are live (URL lies about every origin)");
    assert.equal(r.status, 200);
    assert.equal(r.body, '{"ok":true}');
    assert.equal(allowed.requests.length, 1);
    assert.deepEqual(allowed.requests[0], {
      path: "/v1/embeddings",
      auth: `Bearer ${OPENAI}`,
      type: "application/json",
      cookie: undefined,
      body: '{"input":"hello"}',
    });
    assert.equal(r.forged, "ORIGIN_NOT_ALLOWED", "a lying URL does not move the key to another origin");
    assert.equal(other.requests.length, 0);
    assert.deepEqual(r.seen, [], `patched functions saw the key (calls: ${JSON.stringify(r.calls)})`);
    // Called by nothing but the page's own check above: the snippet uses what it captured (the
    // glue does call some patched helpers, e.g. Function.apply in handleError, TextDecoder.decode
    // for the error message, but never while the key is in wasm memory: `seen` is empty).
    for (const name of ["fetch", "Request", "Headers", "Headers.set", "Headers.entries", "Request.url", "Request.headers", "String.fromCharCode", "Reflect.apply", "Reflect.construct"]) {
      assert.equal(r.calls[name], undefined, `${name} was never called`);
    }
    assert.equal(r.calls["URL"], 1, "URL: only the page's own check");
    assert.equal(r.calls["URL.origin"], 1, "URL.origin: only the page's own check");
    assert.equal(r.keyLeftInMemory, false);
  } finally {
    allowed.server.close();
    other.server.close();
  }
});
