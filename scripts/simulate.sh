#!/usr/bin/env bash
# The long deterministic simulations, beyond the seeds the test command runs:
#   bash scripts/simulate.sh sync [runs]       replication: 3–50 nodes with drops, duplicates,
#                                              delays, partitions, restarts and a hostile node
#                                              (default 20000 runs); prints rounds and bytes.
#   bash scripts/simulate.sh agreement [runs]  Byzantine agreement: 4–10 agents, up to f Twins,
#                                              silent or forging agents, drops, delays and healing
#                                              partitions (default 10000 runs); prints decisions,
#                                              views, messages and latency.
#   bash scripts/simulate.sh store [runs]      the memory store: 3 honest agents and a hostile
#                                              peer crafting deltas, contexts and records over a
#                                              lossy network (default 5000 runs); no bead lost.
#   bash scripts/simulate.sh room [runs]       whole Rooms with hosted memories: drops, duplicates,
#                                              delays, partitions, restarts losing unfinished
#                                              writes, a hostile peer; councils of 4, 7 and 10
#                                              among 100 agents, f silent or Twins (default 200
#                                              runs of the first, 20 of the councils); prints
#                                              time, bytes, latency.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
case "${1:-}" in
  sync) SIM_RUNS="${2:-20000}" cargo test --release -p chrysalis-sync --test simulation many_seeds -- \
    --ignored --nocapture ;;
  agreement) SIM_RUNS="${2:-10000}" cargo test --release -p chrysalis-memory --test agreement many_seeds -- \
    --ignored --nocapture ;;
  store) SIM_RUNS="${2:-5000}" cargo test --release -p chrysalis-memory --test store_attacks many_seeds -- \
    --ignored --nocapture ;;
  room) SIM_RUNS="${2:-200}" COUNCIL_RUNS="${2:-20}" cargo test --release -p chrysalis-room --test simulation -- \
    --nocapture ;;
  *) echo "usage: bash scripts/simulate.sh sync|agreement|store|room [runs]" >&2; exit 2 ;;
esac
