#!/usr/bin/env bash
# Builds pkg/, runs www/bench/ in headless Chromium and writes docs/benchmarks.md.
source "$(dirname "$0")/lib.sh"
bash "$ROOT/scripts/build-pkg.sh"
step "benchmarks in headless Chromium"
node "$ROOT/scripts/bench.mjs"
