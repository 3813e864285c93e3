// A small static file server for the demo, the examples and the benchmark page.
//
//   node scripts/serve.mjs [--port 8080] [--mount /url/prefix=dir]...
//
// Without mounts it serves www/ at /, the built package at /pkg/, the cached embedding model at
// /models/ and node_modules (benchmark anchors) at /node_modules/. Used as a module, `startServer({ port, mounts })` returns the
// listening server and its URL (port 0 picks a free port). Run as the demo command's server it also
// starts the relay and, on it, the demo's Node.js agent (scripts/demo-agent.mjs).
import { createServer } from "node:http";
import { execFileSync, spawn } from "node:child_process";
import { createReadStream, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { stat } from "node:fs/promises";
import { extname, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { startRelay } from "./relay.mjs";

const ROOT = resolve(fileURLToPath(new URL("..", import.meta.url)));

/** The demo's mounts: URL prefix → folder. */
export const DEMO_MOUNTS = {
  "/pkg/": join(ROOT, "pkg"),
  // The embedding model files, cached outside git by scripts/lib.sh (ensure_model).
  "/models/": process.env.CHRYSALIS_MODEL_DIR
    ? resolve(process.env.CHRYSALIS_MODEL_DIR, "..")
    : join(process.env.CHRYSALIS_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "chrysalis"), "models"),
  "/node_modules/": join(ROOT, "node_modules"),
  // Bundles the replication benchmark builds (scripts/bench-sync.mjs).
  "/bench-build/": join(ROOT, "target/bench-build"),
  // The charts `bash scripts/bench.sh` draws next to docs/benchmarks.md.
  "/charts/": join(ROOT, "docs/charts"),
  "/": join(ROOT, "www"),
};

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".md": "text/markdown; charset=utf-8",
  ".txt": "text/plain; charset=utf-8",
};

/**
 * Cross-origin isolation for every page served: SharedArrayBuffer, and so threaded wasm (the
 * embedding benchmark's onnxruntime-web with 2 threads), is only available to isolated pages.
 */
const ISOLATED = {
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-embedder-policy": "require-corp",
  "cross-origin-resource-policy": "same-origin",
};

/** Maps a URL path to a file inside one of the mounts, or null when none matches. */
function locate(mounts, urlPath) {
  const prefixes = Object.keys(mounts).sort((a, b) => b.length - a.length);
  for (const prefix of prefixes) {
    if (!urlPath.startsWith(prefix)) continue;
    const base = resolve(mounts[prefix]);
    const file = resolve(base, normalize(decodeURIComponent(urlPath.slice(prefix.length))));
    if (file !== base && !file.startsWith(base + sep)) return null; // no escaping the mount
    return file;
  }
  return null;
}

async function handle(mounts, routes, req, res) {
  const { pathname } = new URL(req.url, "http://localhost");
  if (routes[pathname]) {
    res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" }).end(JSON.stringify(routes[pathname]()));
    return;
  }
  let file = locate(mounts, pathname);
  let info = file && (await stat(file).catch(() => null));
  if (info?.isDirectory()) {
    if (!pathname.endsWith("/")) {
      res.writeHead(301, { location: pathname + "/" }).end();
      return;
    }
    file = join(file, "index.html");
    info = await stat(file).catch(() => null);
  }
  if (!info?.isFile() || (req.method !== "GET" && req.method !== "HEAD")) {
    res.writeHead(info ? 405 : 404, { "content-type": "text/plain" }).end(info ? "method not allowed" : "not found");
    return;
  }
  res.writeHead(200, {
    "content-type": TYPES[extname(file)] ?? "application/octet-stream",
    "content-length": info.size,
    "cache-control": "no-store",
    ...ISOLATED,
  });
  if (req.method === "HEAD") res.end();
  else createReadStream(file).pipe(res);
}

/**
 * Starts a server; resolves to `{ server, url }` once it listens on 127.0.0.1. `routes` maps a
 * path to a function whose result is served as JSON (the demo's `/relay.json`).
 */
export function startServer({ port = 0, mounts = DEMO_MOUNTS, host = "127.0.0.1", routes = {} } = {}) {
  const server = createServer((req, res) => {
    handle(mounts, routes, req, res).catch((error) => {
      res.writeHead(500, { "content-type": "text/plain" }).end(String(error));
    });
  });
  return new Promise((resolvePromise, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      const { port: bound } = server.address();
      resolvePromise({ server, url: `http://localhost:${bound}/` });
    });
  });
}

/**
 * The certificate panel's samples: chains made by openssl (tests/certs/make-chains.sh) in a
 * temporary folder, read as PEM text (certificates only: the keys are deleted unread), or none
 * when openssl is missing.
 */
function certificateSamples() {
  let dir;
  try {
    dir = mkdtempSync(join(tmpdir(), "chrysalis-demo-certs-"));
    execFileSync("bash", [join(ROOT, "tests/certs/make-chains.sh"), dir], { stdio: "ignore" });
    const pem = (...names) => names.map((name) => readFileSync(join(dir, `${name}.pem`), "utf8")).join("");
    const web = { chain: pem("leaf-good", "inter-rsa"), anchors: pem("root-p256") };
    return [
      { name: "Valid: RSA-signed leaf ← P-256 intermediate ← root, for api.example.com", ...web, hostname: "api.example.com" },
      { name: "Valid: Ed25519 leaf ← Ed25519 root", chain: pem("leaf-ed"), anchors: pem("root-ed25519"), hostname: "" },
      { name: "Expired leaf (2020–2021)", chain: pem("leaf-expired", "inter-rsa"), anchors: web.anchors, hostname: "" },
      { name: "Forged: the intermediate's name, another key's signature", chain: pem("leaf-forged", "inter-rsa"), anchors: web.anchors, hostname: "" },
      { name: "Wrong hostname (evil.example.net)", ...web, hostname: "evil.example.net" },
      { name: "Untrusted: anchored at another root", chain: web.chain, anchors: pem("root-p384"), hostname: "" },
    ];
  } catch (error) {
    console.log(`No certificate samples (${error.message.split("\n")[0]}): the certificate panel takes pasted PEM.`);
    return [];
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Starts the demo's Node.js agent (scripts/demo-agent.mjs) on the relay at `relayUrl`; resolves to
 * `{ name, key, beads, stop() }` once it is in the room, or null (said why) when the model is not
 * cached or the agent fails. Its files: $CHRYSALIS_DEMO_AGENT_DIR, else target/demo-agent.
 */
async function startNodeAgent(relayUrl) {
  const modelDir = join(DEMO_MOUNTS["/models/"], "all-MiniLM-L6-v2");
  const stateDir = process.env.CHRYSALIS_DEMO_AGENT_DIR ?? join(ROOT, "target/demo-agent");
  if (!existsSync(join(modelDir, "model.onnx"))) {
    console.log(`No Node.js agent: no model in ${modelDir}.`);
    return null;
  }
  // Its standard input stays open while this server runs: it exits when the server does, however.
  const child = spawn(process.execPath, [join(ROOT, "scripts/demo-agent.mjs"), relayUrl, modelDir, stateDir], { stdio: ["pipe", "pipe", "inherit"] });
  const exited = new Promise((done) => child.once("exit", (code, signal) => done(code ?? signal)));
  const stop = async () => {
    if (child.exitCode === null) child.kill("SIGTERM");
    await exited;
  };
  try {
    let output = "";
    const line = await new Promise((resolveLine, reject) => {
      const timer = setTimeout(() => reject(new Error("not in the room after 120 s")), 120_000);
      exited.then((code) => reject(new Error(`exited with ${code}`)));
      // Read to its first line; later output is read and dropped (a full pipe would block it).
      child.stdout.on("data", (chunk) => {
        if (output.includes("\n")) return;
        output += chunk;
        if (output.includes("\n")) resolveLine((clearTimeout(timer), output.split("\n")[0]));
      });
    });
    return { ...JSON.parse(line), stop };
  } catch (error) {
    console.log(`No Node.js agent (${error.message}).`);
    await stop();
    return null;
  }
}

function parseArgs(argv) {
  const options = { port: Number(process.env.PORT ?? 8080), mounts: null };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--port") options.port = Number(argv[++i]);
    else if (argv[i] === "--mount") {
      const [prefix, dir] = argv[++i].split("=");
      options.mounts ??= {};
      options.mounts[prefix.endsWith("/") ? prefix : prefix + "/"] = resolve(dir);
    } else throw new Error(`unknown argument ${argv[i]}`);
  }
  return options;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { port, mounts } = parseArgs(process.argv.slice(2));
  // The replication panel's relay (crates/relay), when it has been built.
  const relay = await startRelay().catch((error) => {
    console.log(`No relay (${error.message}): tabs replicate over a BroadcastChannel only.`);
    return null;
  });
  const agent = relay && (await startNodeAgent(relay.url));
  let samples; // made on the first request: most visits never open the certificate panel
  const routes = { "/relay.json": () => ({ url: relay?.url ?? null }), "/cert-samples.json": () => (samples ??= certificateSamples()) };
  let started;
  // Take the asked-for port, or the next free one when it is busy.
  for (let candidate = port; !started; candidate++) {
    started = await startServer({ port: candidate, mounts: mounts ?? DEMO_MOUNTS, routes }).catch((error) => {
      if (error.code !== "EADDRINUSE" || candidate > port + 20) throw error;
      return null;
    });
  }
  console.log(`Chrysalis demo: ${started.url}  (benchmarks: ${started.url}bench/)  Ctrl-C stops it.`);
  if (relay) console.log(`Relay: ${relay.url} (health: ${relay.httpUrl}/health)`);
  if (agent) console.log(`Node.js agent: ${agent.name} (key ${agent.key}) in the agents' room through the relay, ${agent.beads} memories of its own.`);
  const stop = async () => {
    await agent?.stop();
    await relay?.stop();
    started.server.close(() => process.exit(0));
    started.server.closeAllConnections();
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
