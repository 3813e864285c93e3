// SecurityContext in headless Chromium: vault export, IndexedDB persistence across a page reload,
// wrong passphrases, key rotation, and no key left in wasm memory after lock() / free().
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
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
      fromExport: SecurityContext.unlock(bytes(saved.vault), "correct horse battery staple").listProviders(),
    };
    // persist() without a passphrase re-seals with the key from load().
    ctx.removeApiKey("nomic");
    await ctx.persist("chrysalis-test-vault");
    out.afterRepersist = (await SecurityContext.load("chrysalis-test-vault", "correct horse battery staple")).listProviders();
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
  assert.deepEqual(afterReload.fromExport, ["openai", "nomic"]);
  assert.deepEqual(afterReload.afterRepersist, ["openai"]);
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
