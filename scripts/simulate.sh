#!/usr/bin/env bash
# The long deterministic simulation of the replication protocol: `bash scripts/simulate.sh [runs]`
# (default 20000) seeded runs of 3–50 nodes with drops, duplicates, delays, partitions, restarts
# and a hostile node, beyond the 2000 the test command runs. Prints rounds and bytes to convergence.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
SIM_RUNS="${1:-20000}" cargo test --release -p chrysalis-sync --test simulation many_seeds -- \
  --ignored --nocapture
