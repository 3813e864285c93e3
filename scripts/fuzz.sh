#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 600), two at a time.
#   bash scripts/fuzz.sh [SECONDS]
# The test command runs it with 10. cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP=1 lets the
# stable toolchain (the only one these machines have) build them. A crash fails the run and leaves
# its input in fuzz/artifacts/<target>/: copy it to fuzz/regressions/<target>/ so the native
# tests replay it forever.
source "$(dirname "$0")/lib.sh"
SECONDS_PER_TARGET="${1:-600}"
cd "$ROOT"
ensure_cargo_fuzz

export RUSTC_BOOTSTRAP=1
step "cargo fuzz build"
cargo fuzz build --fuzz-dir fuzz

targets=$(cargo fuzz list --fuzz-dir fuzz)
step "fuzzing $(echo "$targets" | wc -l) targets for ${SECONDS_PER_TARGET}s each, 2 at a time"
run_one() {
  local target=$1 seconds=$2
  mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
  if "fuzz/target/x86_64-unknown-linux-gnu/release/$target" "fuzz/corpus/$target" \
      -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=20 \
      -artifact_prefix="fuzz/artifacts/$target/" >"fuzz/artifacts/$target.log" 2>&1; then
    echo "fuzz $target: $(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "fuzz/artifacts/$target.log" | tail -1), no crash"
  else
    echo "fuzz $target: CRASH (see fuzz/artifacts/$target.log)"
    tail -30 "fuzz/artifacts/$target.log"
    return 1
  fi
}
export -f run_one
echo "$targets" | xargs -P 2 -I{} bash -c 'run_one "$@"' _ {} "$SECONDS_PER_TARGET"
