#!/usr/bin/env bash
# Builds pkg/, runs the native Criterion benchmarks, www/bench/ and the 8-page replication benchmark
# (scripts/bench-sync.mjs, against Yjs + y-websocket) in headless Chromium, and writes docs/benchmarks.md.
source "$(dirname "$0")/lib.sh"
bash "$ROOT/scripts/build-pkg.sh"
step "native CRDT benchmarks (Criterion)"
(cd "$ROOT" && cargo bench -p chrysalis-crdt --bench merge)
step "cargo build --release -p chrysalis-relay (the replication benchmark's relay)"
(cd "$ROOT" && cargo build --release -p chrysalis-relay)
step "benchmarks in headless Chromium"
node "$ROOT/scripts/bench.mjs"
