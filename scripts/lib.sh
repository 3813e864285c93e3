# Shared helpers for the scripts in this folder. Source it; do not run it.
# shellcheck shell=bash

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$HOME/.cargo/bin:$ROOT/node_modules/.bin:$PATH"
WASM_TARGET=wasm32-unknown-unknown

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# The wasm-bindgen version pinned in Cargo.lock (the CLI must match it exactly).
locked_wasm_bindgen_version() {
  awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$ROOT/Cargo.lock"
}

ensure_wasm_target() {
  if ! rustup target list --installed | grep -qx "$WASM_TARGET"; then
    step "rustup target add $WASM_TARGET"
    rustup target add "$WASM_TARGET"
  fi
}

ensure_wasm_bindgen_cli() {
  local want have
  [ -f "$ROOT/Cargo.lock" ] || (cd "$ROOT" && cargo generate-lockfile)
  want="$(locked_wasm_bindgen_version)"
  have="$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)"
  if [ "$have" != "$want" ] || ! command -v wasm-bindgen-test-runner >/dev/null; then
    step "cargo install wasm-bindgen-cli $want (about 5 minutes, once)"
    # No --locked: the CLI's own lockfile pins crate versions the registry no longer serves.
    cargo install wasm-bindgen-cli --version "$want"
  fi
}

ensure_chromium() {
  if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    step "apt-get install chromium chromium-driver"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver
  fi
  export CHROMEDRIVER=/usr/bin/chromedriver
  export CHROMIUM=/usr/bin/chromium
  export WASM_BINDGEN_TEST_WEBDRIVER_JSON="$ROOT/tests/wasm/webdriver.json"
}

# cargo-fuzz, for scripts/fuzz.sh (built from crates.io, once).
ensure_cargo_fuzz() {
  if ! cargo fuzz --version >/dev/null 2>&1; then
    step "cargo install cargo-fuzz (about 1 minute, once)"
    cargo install cargo-fuzz --version 0.13.2
  fi
}

# npm ci only when package-lock.json changed since the last install.
ensure_node_modules() {
  local stamp="$ROOT/node_modules/.chrysalis-lock.sha256" want
  want="$(sha256sum "$ROOT/package-lock.json" | cut -d' ' -f1)"
  if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    step "npm ci"
    (cd "$ROOT" && npm ci --no-audit --no-fund)
    echo "$want" >"$stamp"
  fi
}

# Everything the demo, the tests and the benchmarks need; fast when already done.
setup() {
  ensure_wasm_target
  ensure_wasm_bindgen_cli
  ensure_chromium
  ensure_node_modules
}
