#!/usr/bin/env bash
# Builds pkg/, runs the native Criterion benchmarks and the fault-free agreement simulation, then
# www/bench/ (primitives, CRDTs, embeddings, vector search) and the 8-page replication benchmark
# (scripts/bench-sync.mjs, against Yjs + y-websocket) in headless Chromium, and writes docs/benchmarks.md.
# `bash scripts/bench.sh sync` runs only the replication benchmark and rewrites its section.
source "$(dirname "$0")/lib.sh"
bash "$ROOT/scripts/build-pkg.sh"
if [ "${1:-}" = sync ]; then
  step "cargo build --release -p chrysalis-relay (the replication benchmark's relay)"
  (cd "$ROOT" && cargo build --release -p chrysalis-relay)
  step "replication benchmark in headless Chromium"
  exec node "$ROOT/scripts/bench.mjs" sync
fi
step "native CRDT benchmarks (Criterion)"
(cd "$ROOT" && cargo bench -p chrysalis-crdt --bench merge)
step "agreement latency and messages per decision, fault-free simulation (n = 4, 7, 10)"
mkdir -p "$ROOT/target/bench"
(cd "$ROOT" && AGREEMENT_BENCH_OUT="$ROOT/target/bench/agreement.json" cargo test --release -p chrysalis-memory \
  --test agreement fault_free_latency -- --ignored --nocapture)
step "cargo build --release -p chrysalis-relay (the replication benchmark's relay)"
(cd "$ROOT" && cargo build --release -p chrysalis-relay)
step "benchmarks in headless Chromium"
node "$ROOT/scripts/bench.mjs"
