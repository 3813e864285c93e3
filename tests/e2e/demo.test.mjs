// The demo: the same server the README's demo command starts, driven in headless Chromium.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { once } from "node:events";
import { ROOT, launchChromium, openPage } from "./browser.mjs";

const SCREENSHOTS = join(ROOT, "target/screenshots");
let browser;
let server;
let baseUrl;

before(async () => {
  browser = await launchChromium();
  // Port 0: the server picks a free port and prints the URL, as the demo command does.
  server = spawn(process.execPath, [join(ROOT, "scripts/serve.mjs"), "--port", "0"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  let out = "";
  for await (const chunk of server.stdout) {
    out += chunk;
    const match = out.match(/http:\/\/localhost:\d+\//);
    if (match) {
      baseUrl = match[0];
      break;
    }
  }
  assert.ok(baseUrl, `the server printed its URL: ${out}`);
});

after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) server.kill("SIGKILL");
});

test("the demo page loads the SDK, hashes text and files, with no console errors", async () => {
  const page = await openPage(browser, baseUrl);
  await page.waitForSelector("#sdk-status[data-status=ready]");
  assert.match(await page.textContent("#sdk-status"), /chrysalis-sdk \d+\.\d+\.\d+/);

  await page.selectOption("#hash-algorithm", "sha256");
  await page.fill("#hash-text", "hello from the demo test");
  const expected = createHash("sha256").update("hello from the demo test").digest("hex");
  await page.waitForFunction((want) => document.getElementById("hash-output").textContent === want, expected);

  const file = Buffer.alloc(3 * (1 << 20) + 17, 7); // several 1 MiB chunks
  await page.setInputFiles("#hash-file", { name: "three-megs.bin", mimeType: "application/octet-stream", buffer: file });
  const fileDigest = createHash("sha256").update(file).digest("hex");
  await page.waitForFunction((want) => document.getElementById("file-output").textContent.endsWith(want), fileDigest);
  assert.equal(await page.evaluate(() => document.getElementById("file-progress").value), 1);

  // Sign, verify, then tamper with the message: verification must fail.
  await page.click("#sign-button");
  await page.waitForFunction(() => /^[0-9a-f]{128}$/.test(document.getElementById("sign-signature").textContent));
  await page.click("#verify-button");
  await page.waitForSelector("#verify-result[data-status=ready]");
  await page.fill("#sign-message", "I, agent 7, remember something else.");
  await page.click("#verify-button");
  await page.waitForSelector("#verify-result[data-status=error]");

  // Encrypt with a passphrase (sliced scrypt with a progress bar), decrypt, then tamper.
  await page.fill("#enc-plaintext", "secret plans");
  await page.click("#enc-button");
  await page.waitForFunction(() => document.getElementById("enc-sealed").value.length === 2 * (12 + 12 + 16));
  assert.equal(await page.evaluate(() => document.getElementById("enc-progress").value), 1);
  await page.click("#dec-button");
  await page.waitForSelector("#dec-result[data-status=ready]");
  assert.equal(await page.textContent("#dec-result"), "✓ secret plans");
  await page.evaluate(() => {
    const box = document.getElementById("enc-sealed");
    box.value = box.value.slice(0, 40) + (box.value[40] === "0" ? "1" : "0") + box.value.slice(41);
  });
  await page.click("#dec-button");
  await page.waitForSelector("#dec-result[data-status=error]");
  assert.match(await page.textContent("#dec-result"), /^✗ AUTH_FAILED: /);

  // Vault: store a key (shown redacted), reject a malformed one, export, lock, import, IndexedDB.
  const key = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789WXYZ";
  await page.selectOption("#vault-provider", "openai");
  await page.fill("#vault-key", key);
  await page.click("#vault-store");
  await page.waitForFunction(() => document.getElementById("vault-keys").textContent.includes("openai: sk-proj-...WXYZ"));
  await page.selectOption("#vault-provider", "anthropic");
  await page.fill("#vault-key", "not-a-key");
  await page.click("#vault-store");
  await page.waitForSelector("#vault-status[data-status=error]");
  assert.match(await page.textContent("#vault-status"), /^BAD_FORMAT: /);
  await page.click("#vault-export");
  await page.waitForFunction(() => document.getElementById("vault-blob").value.length > 100);
  await page.click("#vault-save");
  await page.waitForFunction(() => document.getElementById("vault-status").textContent.startsWith("Saved"));
  await page.click("#vault-lock");
  await page.waitForFunction(() => document.getElementById("vault-keys").children.length === 0);
  await page.fill("#vault-passphrase", "wrong passphrase");
  await page.click("#vault-import");
  await page.waitForFunction(() => document.getElementById("vault-status").textContent.startsWith("AUTH_FAILED"));
  await page.fill("#vault-passphrase", "agents keep secrets");
  await page.click("#vault-import");
  await page.waitForFunction(() => document.getElementById("vault-keys").textContent.includes("openai: sk-proj-...WXYZ"));
  await page.click("#vault-lock");
  await page.click("#vault-load");
  await page.waitForFunction(() => document.getElementById("vault-status").textContent.startsWith("Loaded from IndexedDB: 1 keys"));
  const pageText = await page.evaluate(() => document.body.innerText + JSON.stringify(localStorage));
  assert.ok(!pageText.includes("abcdefghij"), "the page never shows the plaintext key");

  // CRDTs: concurrent edits in two replicas, then sync both ways: both show the same state.
  const A = "#replica-a";
  const B = "#replica-b";
  for (let i = 0; i < 3; i++) await page.click(`${A} .inc`);
  await page.click(`${B} .dec`);
  for (const [side, item] of [[A, "milk"], [A, "eggs"], [B, "eggs"], [B, "tea"]]) {
    await page.fill(`${side} .set-input`, item);
    await page.click(`${side} .set-add`);
  }
  await page.click(`${A} .chip:has-text("eggs") .set-remove`); // concurrent with B's add: add wins
  await page.fill(`${A} .lww-input`, "from A");
  await page.click(`${A} .lww-set`);
  await page.fill(`${B} .lww-input`, "from B");
  await page.click(`${B} .lww-set`);
  await page.fill(`${A} .mv-input`, "a");
  await page.click(`${A} .mv-set`);
  await page.fill(`${B} .mv-input`, "b");
  await page.click(`${B} .mv-set`);
  await page.click(`${A} .views-inc`);
  await page.click(`${B} .views-inc`);
  await page.fill(`${A} .skill-level`, "0.4");
  await page.click(`${A} .skill-raise`);
  await page.fill(`${B} .skill-level`, "0.8");
  await page.click(`${B} .skill-raise`);
  await page.fill(`${A} .episode-input`, "met the user");
  await page.click(`${A} .episode-record`);
  await page.fill(`${A} .dag-input`, "root");
  await page.click(`${A} .dag-append`);
  await page.click("#sync-ab"); // B now has A's episode and DAG root to build on
  await page.fill(`${B} .episode-input`, "answered");
  await page.click(`${B} .episode-record`);
  await page.fill(`${B} .dag-input`, "reply");
  await page.click(`${B} .dag-append`);
  await page.fill(`${A} .dag-input`, "aside");
  await page.click(`${A} .dag-append`);
  await page.click("#sync-ab");
  await page.click("#sync-ba");
  const panel = (side) =>
    page.evaluate((side) => {
      const q = (sel) => document.querySelector(`${side} ${sel}`).textContent;
      return {
        views: q(".views-value"),
        counter: q(".counter-value"),
        set: q(".set-items"),
        lww: q(".lww-value"),
        mv: q(".mv-values"),
        skills: q(".skills-value"),
        episodes: q(".episodes-value"),
        dag: q(".dag-value"),
      };
    }, side);
  const [left, right] = [await panel(A), await panel(B)];
  assert.deepEqual(left, right);
  assert.equal(left.counter, "2");
  assert.equal(left.views, "2");
  assert.equal(left.skills, "planning 0.8");
  assert.equal(left.episodes, "met the user → answered");
  assert.match(left.dag, /^3 nodes, 2 head\(s\): root, /);
  assert.equal(left.set, "eggs ×milk ×tea ×");
  assert.deepEqual(left.mv.split(" | ").sort(), ['"a"', '"b"'], "both concurrent writes are kept");
  assert.match(await page.textContent("#sync-status"), /^B → A: \d+ bytes of deltas$/);

  mkdirSync(SCREENSHOTS, { recursive: true });
  const shot = await page.screenshot({ path: join(SCREENSHOTS, "demo.png"), fullPage: true });
  assert.ok(shot.length > 10_000, "the screenshot has content");
  assert.deepEqual(page.problems, []);
  await page.close();
});

test("the demo's agents replicate live through the relay, in this page and in another tab", async () => {
  const page = await openPage(browser, baseUrl);
  await page.waitForSelector('#replication-status[data-status="ready"]');
  assert.match(await page.textContent("#replication-status"), /^Relay ws:\/\/127\.0\.0\.1:\d+/);
  const agents = page.locator("#replication-agents .agent");
  await page.waitForFunction(() => document.querySelectorAll("#replication-agents .agent").length === 2);
  await agents.nth(0).locator(".agent-inc").click();
  await agents.nth(0).locator(".agent-note").fill("hello from A");
  await agents.nth(0).locator(".agent-share").click();
  await page.waitForFunction(() => {
    const b = document.querySelectorAll("#replication-agents .agent")[1];
    return b.querySelector(".agent-clicks").textContent === "1" && b.querySelector(".agent-notes").textContent === "hello from A";
  });
  // Another tab (a page of its own, with its own agents) catches up and its edits come back.
  const tab = await openPage(browser, baseUrl);
  await tab.waitForSelector('#replication-status[data-status="ready"]');
  await tab.waitForFunction(() => document.querySelector("#replication-agents .agent .agent-notes")?.textContent === "hello from A");
  await tab.locator("#replication-agents .agent").nth(0).locator(".agent-inc").click();
  await page.waitForFunction(() => [...document.querySelectorAll(".agent-clicks")].every((c) => c.textContent === "2"));
  // The peer table names each agent's peers and how they are reached; traffic is counted.
  await page.waitForFunction(() => document.querySelectorAll("#replication-agents .agent")[0].querySelectorAll(".agent-peers tr").length >= 4);
  const table = await agents.nth(0).locator(".agent-peers").textContent();
  assert.match(table, /relay/);
  assert.match(await agents.nth(0).locator(".agent-traffic").textContent(), /^frames out [1-9]/);
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.locator("#replication").screenshot({ path: join(SCREENSHOTS, "demo-replication.png") });
  assert.deepEqual(page.problems, []);
  assert.deepEqual(tab.problems, []);
  await tab.close();
  await page.close();
});

test("the demo downloads the model with progress, embeds typed text and ranks the corpus by meaning", async () => {
  const page = await openPage(browser, baseUrl);
  await page.waitForSelector('#sdk-status[data-status="ready"]');
  await page.click("#embed-load");
  await page.waitForSelector('#embed-status[data-status="ready"]', { timeout: 120_000 });
  assert.equal(await page.$eval("#embed-progress", (p) => p.value), 1);
  await page.fill("#embed-text", "Which city is the French capital?");
  await page.waitForFunction(() => document.querySelector("#embed-results li")?.textContent.includes("Paris"));
  assert.match(await page.textContent("#embed-vector"), /^all-MiniLM-L6-v2, 384 dimensions, /);
  await page.fill("#embed-text", "keeping secrets safe with a passphrase");
  await page.waitForFunction(() => document.querySelector("#embed-results li")?.textContent.includes("vault"));
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.locator("#embeddings").screenshot({ path: join(SCREENSHOTS, "demo-embeddings.png") });
  assert.deepEqual(page.problems, []);
  await page.close();
});

test("the demo's memory agents remember in one tab, recall in another, approve, and keep it across a reload", async () => {
  const [page, tab] = [await openPage(browser, baseUrl), await openPage(browser, baseUrl)];
  for (const p of [page, tab]) {
    await p.waitForSelector('#sdk-status[data-status="ready"]');
    await p.click("#memory-start");
    await p.waitForSelector('#memory-status[data-status="ready"]', { timeout: 120_000 });
  }
  await page.fill("#memory-text", "The demo relay only listens on the loopback interface.");
  await page.click("#memory-remember");
  await tab.waitForFunction(() => document.querySelector("#memory-beads")?.textContent.includes("loopback interface"));
  await tab.fill("#memory-query", "which network address does the relay accept connections on?");
  await tab.click("#memory-recall");
  await tab.waitForFunction(() => document.querySelector("#memory-results li")?.textContent.includes("loopback interface"));
  const row = page.locator(".memory-bead", { hasText: "loopback interface" });
  assert.equal(await row.locator(".memory-verdict").textContent(), "pending 0/1");
  await row.locator(".memory-approve").click();
  await page.waitForFunction(() => document.querySelector(".memory-bead .memory-verdict")?.textContent === "accepted");
  assert.match(await page.textContent("#memory-stats"), /peers [1-9]/);
  // A council of the two tabs: a new threshold (endorsed by both), then a fact accepted by
  // vote, each agreed through PBFT rounds that both tabs show.
  await page.click("#council-form");
  for (const p of [page, tab]) await p.waitForFunction(() => document.querySelector("#council-status")?.textContent.startsWith("2 members, 2 approvals"));
  // At threshold 2 a motion needs both members: the other tab's user endorses it.
  await tab.fill("#council-threshold", "1");
  await tab.click("#council-propose");
  await page.locator(".council-requested", { hasText: "approvals needed → 1" }).locator(".council-endorse").click();
  for (const p of [page, tab]) {
    await p.waitForFunction(() => document.querySelector(".council-decided")?.textContent.includes("approvals needed → 1"));
    await p.waitForFunction(() => document.querySelector("#council-status")?.textContent.startsWith("2 members, 1 approval accept"));
  }
  await page.fill("#council-threshold", "2");
  await page.click("#council-propose");
  for (const p of [page, tab]) await p.waitForFunction(() => document.querySelector(".memory-bead .memory-verdict")?.textContent === "pending 1/2");
  await tab.locator(".memory-bead", { hasText: "loopback interface" }).locator(".memory-fact").click();
  await page.locator(".council-requested", { hasText: "accept as fact" }).locator(".council-endorse").click();
  for (const p of [page, tab]) {
    await p.waitForFunction(() => document.querySelector(".memory-bead .memory-verdict")?.textContent === "accepted");
    await p.waitForFunction(() => document.querySelectorAll(".council-decided").length === 3);
  }
  assert.match(await tab.textContent(".council-decided"), /accept as fact: “The demo relay.*decided and applied in \d+ ms/);
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.locator("#memory").screenshot({ path: join(SCREENSHOTS, "demo-memory.png") });
  await tab.reload();
  await tab.click("#memory-start");
  await tab.waitForSelector('#memory-status[data-status="ready"]', { timeout: 120_000 });
  assert.match(await tab.textContent("#memory-status"), /\(1 memories loaded\)/);
  assert.deepEqual(page.problems, []);
  assert.deepEqual(tab.problems, []);
  await tab.close();
  await page.close();
});

for (const bench of ["embedding", "knn"]) {
  test(`the ${bench} benchmark page resolves its anchors`, async () => {
    const page = await openPage(browser, `${baseUrl}bench/${bench}.html`);
    await page.waitForFunction(() => window.benchResults !== undefined);
    assert.deepEqual(page.problems, []);
    await page.close();
  });
}

test("the benchmark page resolves its anchors and runs a comparison", async () => {
  const page = await openPage(browser, `${baseUrl}bench/`);
  await page.waitForFunction(() => window.benchResults !== undefined);
  await page.waitForSelector("#run:not([disabled])");
  assert.deepEqual(page.problems, []);
  writeFileSync(join(SCREENSHOTS, "bench.png"), await page.screenshot());
  await page.close();
});

test("the demo server stops cleanly on Ctrl-C (SIGINT)", async () => {
  server.kill("SIGINT");
  const [code] = await once(server, "exit");
  assert.equal(code, 0);
});
