// The script-tag and Vite examples, built and served on loopback, run in headless Chromium.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startServer } from "../../scripts/serve.mjs";
import { ROOT, launchChromium, openPage } from "./browser.mjs";

let browser;
before(async () => {
  browser = await launchChromium();
});
after(() => browser?.close());

async function readResult(url) {
  const page = await openPage(browser, url);
  await page.waitForSelector("#result:not([data-status=pending])");
  const status = await page.getAttribute("#result", "data-status");
  const text = await page.textContent("#result");
  await page.close();
  assert.equal(status, "ok", text);
  assert.deepEqual(page.problems, []);
  return JSON.parse(text);
}

test("script-tag example: a plain <script type=module> imports the package by URL", async () => {
  const { server, url } = await startServer({
    mounts: { "/chrysalis-sdk/": join(ROOT, "pkg"), "/": join(ROOT, "examples/script-tag") },
  });
  try {
    const result = await readResult(url);
    const expected = createHash("sha3-256").update("hello, script tag").digest("hex");
    assert.equal(result.sha3_256, expected);
  } finally {
    server.close();
  }
});

test("Vite example: the bundled page finds the wasm asset and computes digests", async () => {
  const outDir = mkdtempSync(join(tmpdir(), "chrysalis-vite-"));
  try {
    execFileSync(join(ROOT, "node_modules/.bin/vite"), ["build", "--outDir", outDir, "--emptyOutDir", "--logLevel", "warn"], {
      cwd: join(ROOT, "examples/vite"),
      stdio: "inherit",
    });
    const { server, url } = await startServer({ mounts: { "/": outDir } });
    try {
      const result = await readResult(url);
      assert.equal(result.sha256, createHash("sha256").update("hello, vite").digest("hex"));
      assert.match(result.blake3, /^[0-9a-f]{64}$/);
    } finally {
      server.close();
    }
  } finally {
    rmSync(outDir, { recursive: true, force: true });
  }
});
