#!/usr/bin/env bash
# Builds pkg/, runs the native Criterion benchmarks and www/bench/ in headless Chromium, and writes
# docs/benchmarks.md.
source "$(dirname "$0")/lib.sh"
bash "$ROOT/scripts/build-pkg.sh"
step "native CRDT benchmarks (Criterion)"
(cd "$ROOT" && cargo bench -p chrysalis-crdt --bench merge)
step "benchmarks in headless Chromium"
node "$ROOT/scripts/bench.mjs"
