#!/usr/bin/env bash
# Builds pkg/, runs the native Criterion benchmarks and the fault-free agreement simulation, then
# www/bench/ (primitives, CRDTs, embeddings, vector search) and the 8-page replication benchmark
# (scripts/bench-sync.mjs, against Yjs + y-websocket) in headless Chromium, and writes docs/benchmarks.md.
# `bash scripts/bench.sh sync` runs only the replication benchmark and rewrites its section;
# `bash scripts/bench.sh embedding` only the embedding page (www/bench/embedding.html);
# `bash scripts/bench.sh relay` only the relays' load test (crates/relay/tests/cluster_load.rs).
source "$(dirname "$0")/lib.sh"
# The relays' load test: 3,000 connections over 3 relays on Redis and over one relay alone.
relay_load() {
  step "relay load test: 3,000 connections, 300 rooms, 3 relays on Redis and 1 alone (release)"
  mkdir -p "$ROOT/target/bench"
  (cd "$ROOT" && CHRYSALIS_LOAD_CONNECTIONS=3000 CHRYSALIS_LOAD_SECONDS=10 \
    CHRYSALIS_LOAD_REPORT="$ROOT/target/bench/relay-load.json" \
    cargo test --release -p chrysalis-relay --test cluster_load -- --nocapture)
  step "pub/sub against streams for live frames (3,000 messages/s of 1 KiB over 300 rooms)"
  (cd "$ROOT" && CHRYSALIS_BUS_REPORT="$ROOT/target/bench/relay-bus.json" \
    cargo test --release -p chrysalis-relay --test cluster_load pub_sub_against_streams -- --ignored --nocapture)
}
if [ "${1:-}" = relay ]; then
  setup
  relay_load
  exec node "$ROOT/scripts/bench.mjs" relay
fi
bash "$ROOT/scripts/build-pkg.sh"
if [ "${1:-}" = embedding ]; then
  step "embedding benchmark in headless Chromium"
  exec node "$ROOT/scripts/bench.mjs" embedding
fi
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
relay_load
step "benchmarks in headless Chromium"
node "$ROOT/scripts/bench.mjs"
