#!/usr/bin/env bash
# Builds the npm package in pkg/: one wasm module per feature of chrysalis-wasm — the core
# (`chrysalis_wasm`) and the on-demand certificate (`chrysalis_x509`) and embedding
# (`chrysalis_embedding`) modules. Each is a release
# cdylib (LTO kept by `cargo rustc --crate-type cdylib`), run through wasm-bindgen --target web
# and (but for the embedding builds) wasm-opt from the npm package `binaryen`.
source "$(dirname "$0")/lib.sh"
[ "${CHRYSALIS_SKIP_SETUP:-}" = 1 ] || setup
cd "$ROOT"

WASM_OPT_FEATURES=(--enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int
  --enable-sign-ext --enable-mutable-globals --enable-multivalue --enable-reference-types)

build_module() { # feature out-name [extra RUSTFLAGS] [wasm-opt level or "none"]
  local feature=$1 name=$2 rustflags=${3:-} opt=${4:--Oz}
  # A target dir per module, so switching features does not rebuild another module.
  local target_dir="$ROOT/target/module-$feature"
  step "module $name (feature $feature${rustflags:+, $rustflags})"
  RUSTFLAGS="$rustflags" cargo rustc -p chrysalis-wasm --release --target "$WASM_TARGET" --crate-type cdylib \
    --no-default-features --features "$feature" --target-dir "$target_dir"
  local input="$target_dir/$WASM_TARGET/release/chrysalis_wasm.wasm" stamp="pkg/.$name.stamp" want
  # wasm-bindgen + wasm-opt only when cargo's output changed (wasm-opt takes minutes on tract).
  want="$( (sha256sum "$input"; wasm-bindgen --version; echo "$opt ${WASM_OPT_FEATURES[*]}") | sha256sum | cut -c1-32)"
  if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ] || [ ! -f "pkg/${name}_bg.wasm" ]; then
    wasm-bindgen --target web --out-dir pkg --out-name "$name" "$input"
    [ "$opt" = none ] || wasm-opt "$opt" "${WASM_OPT_FEATURES[@]}" "pkg/${name}_bg.wasm" -o "pkg/${name}_bg.wasm"
    echo "$want" >"$stamp"
  fi
  local raw gz
  raw=$(stat -c %s "pkg/${name}_bg.wasm")
  gz=$(gzip -9c "pkg/${name}_bg.wasm" | wc -c)
  echo "pkg/${name}_bg.wasm: $raw bytes, $gz bytes gzip -9"
}

# Two lanes at once: the embedding module (about 900 s of CPU, most of it in two single-threaded
# stretches: tract-core, then LTO with one codegen unit) beside the core and certificate modules.
# Each lane's output goes to a log, printed when the lane ends.
# simd128 makes tract pick its wasm SIMD kernels (every current engine). Not relaxed SIMD: its fused
# multiply-add was ~5% faster in Chromium but gives different bits on different machines, and a
# second build doubled this script's time (docs/architecture.md).
# No wasm-opt here: -Oz and -O2 both made inference ~30% slower in Chromium (23.6 → 30.9 ms per
# short sentence) for 9% less gzip, and take minutes on a 15 MB module.
lane_logs="$ROOT/target/module-logs"
mkdir -p "$lane_logs"
(build_module embedding chrysalis_embedding "-C target-feature=+simd128" none) >"$lane_logs/lane-1.log" 2>&1 &
lane1=$!
(build_module crypto chrysalis_wasm
  build_module x509 chrysalis_x509) >"$lane_logs/lane-2.log" 2>&1 &
lane2=$!
status=0
for lane in 1 2; do
  pid_var="lane$lane"
  wait "${!pid_var}" || status=$?
  grep -v '^ *Compiling ' "$lane_logs/lane-$lane.log" || true
done
[ "$status" = 0 ] || { echo "a module build failed (logs in $lane_logs)" >&2; exit "$status"; }
