// Shared helpers for the end-to-end tests: headless Chromium through playwright-core, pages that
// record every console error, and the repository paths.
import { chromium } from "playwright-core";
import { fileURLToPath } from "node:url";
import { resolve } from "node:path";

export const ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)));

/** The flags Chromium needs as root on these machines (no sandbox, no background network). */
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-dev-shm-usage",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
];

/** Launches Debian's headless Chromium. */
export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_ARGS,
  });
}

/**
 * Opens `url` in a fresh page of `browser` (a context of its own) or of a context (a tab beside
 * the context's others) and collects console errors, uncaught exceptions and failed requests in
 * `page.problems`; `initScript` runs in the page before its own scripts.
 */
export async function openPage(browser, url, { initScript } = {}) {
  const page = await browser.newPage();
  if (initScript) await page.addInitScript(initScript);
  page.problems = [];
  page.on("console", (message) => {
    if (message.type() === "error") page.problems.push(`console: ${message.text()}`);
  });
  page.on("pageerror", (error) => page.problems.push(`exception: ${error.message}`));
  page.on("requestfailed", async (request) => {
    // Chromium reports a response body read through a stream reader as ERR_ABORTED even when it
    // arrived whole; a request with a successful response did not fail.
    const response = await request.response().catch(() => null);
    if (request.failure()?.errorText === "net::ERR_ABORTED" && response?.ok()) return;
    page.problems.push(`request failed: ${request.url()}`);
  });
  page.on("response", (response) => {
    if (response.status() >= 400) page.problems.push(`HTTP ${response.status()}: ${response.url()}`);
  });
  await page.goto(url);
  return page;
}

/** Opens `url` (a page that serves the package at /pkg/) and initializes the SDK in it as `window.sdk`. */
export async function openSdkPage(context, url) {
  const page = await openPage(context, url);
  await page.evaluate(async () => {
    const sdk = await import("/pkg/index.js");
    await sdk.initializeChrysalis();
    window.sdk = sdk;
  });
  return page;
}

/** Lowercase hex of bytes. */
export const hex = (bytes) => Buffer.from(bytes).toString("hex");
