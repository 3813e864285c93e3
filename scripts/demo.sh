#!/usr/bin/env bash
# Builds pkg/ and the relay, and serves the demo (www/) on http://localhost:8080 (or the next free
# port) with the relay on a free loopback port.
# PORT=9000 picks another port. Ctrl-C stops it.
source "$(dirname "$0")/lib.sh"
bash "$ROOT/scripts/build-pkg.sh"
step "cargo build -p chrysalis-relay (the replication panel's relay)"
(cd "$ROOT" && cargo build -p chrysalis-relay)
step "serving the demo"
exec node "$ROOT/scripts/serve.mjs" --port "${PORT:-8080}"
