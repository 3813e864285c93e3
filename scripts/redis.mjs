// Starts `redis-server` (the Debian package scripts/lib.sh installs) as a child process on a free
// loopback port with no persistence, for the end-to-end tests and benchmarks of relays that
// share rooms (`chrysalis-relay --redis`).
//
//   const redis = await startRedis(); redis.url; await redis.stop();
import { spawn } from "node:child_process";
import { createServer, connect } from "node:net";

/** A free loopback port (closed again before it is returned). */
function freePort() {
  return new Promise((resolvePromise, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolvePromise(port));
    });
  });
}

/** Whether a Redis answers PING on `port`. */
function pong(port) {
  return new Promise((resolvePromise) => {
    const socket = connect(port, "127.0.0.1");
    socket.setTimeout(500, () => (socket.destroy(), resolvePromise(false)));
    socket.once("error", () => resolvePromise(false));
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.once("data", (data) => (socket.destroy(), resolvePromise(String(data).startsWith("+PONG"))));
  });
}

/** Spawns `redis-server` and resolves once it answers: `{ url, port, process, stop() }`. */
export async function startRedis() {
  for (let attempt = 0; attempt < 10; attempt++) {
    const port = await freePort();
    const child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
    const exited = new Promise((done) => child.once("exit", done));
    for (let i = 0; i < 100 && child.exitCode === null; i++) {
      if (await pong(port)) {
        return {
          url: `redis://127.0.0.1:${port}`,
          port,
          process: child,
          stop: async () => {
            if (child.exitCode === null) child.kill("SIGKILL");
            await exited;
          },
        };
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill("SIGKILL");
    await exited;
  }
  throw new Error("redis-server did not start (scripts/lib.sh installs it: ensure_system_packages)");
}
