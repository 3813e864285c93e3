#!/usr/bin/env bash
# Builds the npm package in pkg/: one wasm module per feature of chrysalis-wasm — the core
# (`chrysalis_wasm`) and the on-demand certificate (`chrysalis_x509`) and embedding
# (`chrysalis_embedding`) modules. Each is a release
# cdylib (LTO kept by `cargo rustc --crate-type cdylib`), run through wasm-bindgen --target web
# and wasm-opt from the npm package `binaryen`.
source "$(dirname "$0")/lib.sh"
[ "${CHRYSALIS_SKIP_SETUP:-}" = 1 ] || setup
cd "$ROOT"

build_module() { # feature out-name [extra RUSTFLAGS]
  local feature=$1 name=$2 rustflags=${3:-}
  # A target dir per module, so switching features does not rebuild the other module.
  local target_dir="$ROOT/target/module-$feature"
  step "module $name (feature $feature)"
  RUSTFLAGS="$rustflags" cargo rustc -p chrysalis-wasm --release --target "$WASM_TARGET" --crate-type cdylib \
    --no-default-features --features "$feature" --target-dir "$target_dir"
  wasm-bindgen --target web --out-dir pkg --out-name "$name" \
    "$target_dir/$WASM_TARGET/release/chrysalis_wasm.wasm"
  wasm-opt -Oz --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
    --enable-sign-ext --enable-mutable-globals --enable-multivalue --enable-reference-types \
    "pkg/${name}_bg.wasm" -o "pkg/${name}_bg.wasm"
  local raw gz
  raw=$(stat -c %s "pkg/${name}_bg.wasm")
  gz=$(gzip -9c "pkg/${name}_bg.wasm" | wc -c)
  echo "pkg/${name}_bg.wasm: $raw bytes, $gz bytes gzip -9"
}

rm -rf pkg/snippets # wasm-bindgen's copies of JS snippets; names change with their hashes
build_module crypto chrysalis_wasm
build_module x509 chrysalis_x509
# simd128 makes tract pick its wasm_f32_8x8 matmul kernels (every current browser has it).
build_module embedding chrysalis_embedding "-C target-feature=+simd128"
