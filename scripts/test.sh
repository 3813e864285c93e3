#!/usr/bin/env bash
# Runs every test: formatting, clippy (host and wasm32 in one run), native cargo tests (the local
# embedding model against onnxruntime's reference vectors among them), the wasm-bindgen-test suites in
# headless Chromium, 10 s of fuzzing per decoder (scripts/fuzz.sh for longer runs), the built npm
# package's type check, and the end-to-end tests (Node smoke test, script-tag / Vite / Node
# examples, the demo page, crypto, vault, CRDT and embedding suites) in headless Chromium.
# The package build runs beside the browser suites and fuzzing (two lanes: see `lanes` below).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
setup
ensure_embedding_reference # onnxruntime's vectors for tests/embedding/texts.json

LOGS="$ROOT/target/test-logs"
rm -rf "$LOGS" && mkdir -p "$LOGS"

# Every step runs even when an earlier one failed, so that the closing line counts every failure.
FAILED_STEPS=()
# check "name" command...: runs one step; a failure is recorded and the run goes on.
check() {
  local name=$1
  shift
  step "$name"
  if ! "$@"; then
    FAILED_STEPS+=("$name")
    echo "FAILED: $name" >&2
  fi
}

# Host and wasm32 in one cargo run, so that each target's long single-crate stretches (tract-core)
# overlap the other's: 233 s against 431 s for two runs, cold. The relay is the one native-only
# crate (tokio sockets); then each shipped module's feature alone.
clippy_all() {
  local host
  host="$(rustc -vV | sed -n 's/^host: //p')"
  cargo clippy --workspace --exclude chrysalis-relay --all-targets --target "$host" --target "$WASM_TARGET" \
    -- -D warnings || return 1
  cargo clippy -p chrysalis-relay --all-targets --target "$host" -- -D warnings || return 1
  for feature in crypto x509 embedding; do
    cargo clippy -p chrysalis-wasm --target "$WASM_TARGET" --no-default-features --features "$feature" -- -D warnings || return 1
  done
}
native_tests() {
  CHRYSALIS_SKIP_SETUP=1 bash "$ROOT/scripts/test-native.sh" -- --show-output 2>&1 | tee "$LOGS/native.log"
}
# The core module's suites (the embedding module is tested through the package in tests/e2e/).
browser_tests() {
  cargo test -p chrysalis-wasm --target "$WASM_TARGET" --no-default-features --features crypto --tests 2>&1 |
    tee "$LOGS/browser.log"
}
FUZZ_SECONDS=10
fuzz_all() { bash "$ROOT/scripts/fuzz.sh" "$FUZZ_SECONDS" 2>&1 | tee "$LOGS/fuzz.log"; }
e2e_tests() { node --test --test-timeout=600000 --test-reporter=spec "$ROOT/tests/e2e/" 2>&1 | tee "$LOGS/e2e.log"; }

check "cargo fmt --check" cargo fmt --all -- --check
check "cargo clippy (host and wasm32, and each shipped module's feature alone)" clippy_all
check "cargo test (host; scripts/test-native.sh)" native_tests

# Two lanes at once. The package build spends long stretches on one core (tract-core, then LTO with
# one codegen unit); the other lane (the wasm-bindgen suites, the fuzz build and time-bound fuzzing)
# fills the other. Each lane's output goes to a log, printed when it ends, and its failed steps to a
# file the closing count reads. The end-to-end tests run after both, alone (they measure timeouts).
package_lane() {
  check "build the npm package (scripts/build-pkg.sh)" env CHRYSALIS_SKIP_SETUP=1 bash "$ROOT/scripts/build-pkg.sh"
  check "cargo build -p chrysalis-relay (the relay the end-to-end tests start)" cargo build -p chrysalis-relay
  check "tsc --noEmit (package types over the examples)" tsc --noEmit -p "$ROOT/tsconfig.json"
}
checks_lane() {
  check "wasm-bindgen-test in headless Chromium" browser_tests
  check "fuzzing every decoder for $FUZZ_SECONDS s (scripts/fuzz.sh)" fuzz_all
}
lanes() { # lane-function...: runs each in the background; then prints their logs and collects failures
  local lane pids=()
  for lane in "$@"; do
    (FAILED_STEPS=() && "$lane"; printf '%s\n' "${FAILED_STEPS[@]}" >"$LOGS/$lane.failed") >"$LOGS/$lane.out" 2>&1 &
    pids+=($!)
  done
  wait "${pids[@]}" || true
  for lane in "$@"; do
    cat "$LOGS/$lane.out"
    if [ -f "$LOGS/$lane.failed" ]; then
      while read -r name; do [ -z "$name" ] || FAILED_STEPS+=("$name"); done <"$LOGS/$lane.failed"
    else
      FAILED_STEPS+=("$lane (did not finish)")
    fi
  done
}
lanes package_lane checks_lane
check "end-to-end tests (node --test)" e2e_tests

# One closing line over every runner: cargo's "test result:" lines and node's "ℹ pass/fail".
count() { # line-pattern number-pattern file...
  { grep -hE "$1" "${@:3}" 2>/dev/null || true; } | { grep -oE "$2" || true; } | { grep -oE '[0-9]+' || true; } |
    awk '{ s += $1 } END { print s + 0 }'
}
native=$(count '^test result:' '[0-9]+ passed' "$LOGS/native.log")
browser=$(count '^test result:' '[0-9]+ passed' "$LOGS/browser.log")
e2e=$(count '^ℹ pass [0-9]+$' '[0-9]+' "$LOGS/e2e.log")
failed=$(( $(count '^test result:' '[0-9]+ failed' "$LOGS/native.log" "$LOGS/browser.log") + $(count '^ℹ fail [0-9]+$' '[0-9]+' "$LOGS/e2e.log") ))
# A failed step whose own tests reported no failure (a build, a lint, a crash) counts as one.
for name in "${FAILED_STEPS[@]}"; do
  case "$name" in
    "cargo test (host"*) reported=$(count '^test result:' '[0-9]+ failed' "$LOGS/native.log") ;;
    "wasm-bindgen-test"*) reported=$(count '^test result:' '[0-9]+ failed' "$LOGS/browser.log") ;;
    "end-to-end tests"*) reported=$(count '^ℹ fail [0-9]+$' '[0-9]+' "$LOGS/e2e.log") ;;
    *) reported=0 ;;
  esac
  [ "$reported" -gt 0 ] || failed=$((failed + 1))
done
step "summary"
echo "native cargo tests: $native passed"
echo "wasm-bindgen tests in headless Chromium: $browser passed"
echo "end-to-end tests (Node + headless Chromium): $e2e passed"
echo "fuzz targets without a crash after $FUZZ_SECONDS s: $(grep -c ', no crash$' "$LOGS/fuzz.log" 2>/dev/null || echo 0)"
for name in "${FAILED_STEPS[@]}"; do echo "failed step: $name"; done
echo "$((native + browser + e2e)) passed, $failed failed"
[ "$failed" = 0 ] && [ "${#FAILED_STEPS[@]}" = 0 ]
