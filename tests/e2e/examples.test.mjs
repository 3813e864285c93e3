// The script-tag, Vite and agents examples, built and served on loopback, run in headless
// Chromium; the Node.js agents example runs against the real relay.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEMO_MOUNTS, startServer } from "../../scripts/serve.mjs";
import { startRelay } from "../../scripts/relay.mjs";
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

/** What the README's "Getting started" promises: Bob recalls by meaning what Alice remembered. */
function assertRecalled(result) {
  assert.equal(result.recalled, "The staging database is rebuilt from scratch every Sunday night.");
  assert.equal(result.author, result.alice, "recalled with its author");
  assert.ok(result.similarity > 0.3, `by meaning: cosine ${result.similarity}`);
}

test("agents example: two agents in one page share a memory, and one recalls by meaning what the other remembered", async () => {
  const { server, url } = await startServer({
    mounts: { "/chrysalis-sdk/": join(ROOT, "pkg"), "/models/": DEMO_MOUNTS["/models/"], "/": join(ROOT, "examples/agents") },
  });
  try {
    assertRecalled(await readResult(url));
  } finally {
    server.close();
  }
});

test("Node.js agents example: two agents share a memory through the real relay", { timeout: 120_000 }, async () => {
  const relay = await startRelay();
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [join(ROOT, "examples/node-agents/index.mjs"), relay.url, process.env.CHRYSALIS_MODEL_DIR], { timeout: 110_000 });
    assertRecalled(JSON.parse(stdout));
  } finally {
    await relay.stop();
  }
});
