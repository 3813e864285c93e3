// Starts the relay binary (crates/relay, built by `cargo build -p chrysalis-relay`) as a child
// process on a free loopback port, for the demo, the end-to-end tests and the benchmarks.
//
//   const relay = await startRelay(); relay.url; await relay.stop();
import { spawn } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(fileURLToPath(new URL("..", import.meta.url)));

/** The relay binary: $CHRYSALIS_RELAY_BIN, else the newer of the release and debug builds (a stale release build would test old code). */
export function relayBinary() {
  if (process.env.CHRYSALIS_RELAY_BIN) return process.env.CHRYSALIS_RELAY_BIN;
  const built = ["release", "debug"].map((profile) => join(ROOT, "target", profile, "chrysalis-relay")).filter((path) => existsSync(path));
  if (!built.length) throw new Error("no chrysalis-relay binary: run `cargo build -p chrysalis-relay` first");
  return built.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
}

/**
 * Spawns the relay with `args` (flags of crates/relay/src/main.rs) on 127.0.0.1 and resolves once
 * it listens: `{ url, httpUrl, process, stop() }`; `stop()` sends SIGTERM and waits for the exit.
 */
export function startRelay({ args = [], listen = "127.0.0.1:0" } = {}) {
  const child = spawn(relayBinary(), ["--listen", listen, ...args], { stdio: ["ignore", "pipe", "inherit"] });
  return new Promise((resolvePromise, reject) => {
    let output = "";
    const timer = setTimeout(() => reject(new Error(`the relay did not start: ${output}`)), 20_000);
    child.on("exit", (code) => reject(new Error(`the relay exited with ${code}: ${output}`)));
    child.stdout.on("data", (chunk) => {
      output += chunk;
      const match = output.match(/listening on (ws:\/\/[^\s]+)/);
      if (!match) return;
      clearTimeout(timer);
      const url = match[1];
      const exited = new Promise((done) => child.once("exit", done));
      resolvePromise({
        url,
        httpUrl: url.replace(/^ws/, "http"),
        process: child,
        stop: async () => {
          if (child.exitCode === null) child.kill("SIGTERM");
          await exited;
        },
      });
    });
  });
}
