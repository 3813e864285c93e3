#!/usr/bin/env bash
# Builds the npm package in pkg/: release wasm (LTO kept by `cargo rustc --crate-type cdylib`),
# wasm-bindgen --target web, then wasm-opt from the npm package `binaryen`.
source "$(dirname "$0")/lib.sh"
[ "${CHRYSALIS_SKIP_SETUP:-}" = 1 ] || setup

step "cargo rustc --release (wasm32, cdylib)"
cd "$ROOT"
cargo rustc -p chrysalis-wasm --release --target "$WASM_TARGET" --crate-type cdylib

step "wasm-bindgen --target web"
wasm-bindgen --target web --out-dir pkg --out-name chrysalis_wasm \
  "target/$WASM_TARGET/release/chrysalis_wasm.wasm"

step "wasm-opt -Oz"
wasm-opt -Oz --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int \
  --enable-sign-ext --enable-mutable-globals --enable-multivalue --enable-reference-types \
  pkg/chrysalis_wasm_bg.wasm -o pkg/chrysalis_wasm_bg.wasm

raw=$(stat -c %s pkg/chrysalis_wasm_bg.wasm)
gz=$(gzip -9c pkg/chrysalis_wasm_bg.wasm | wc -c)
echo "pkg/chrysalis_wasm_bg.wasm: $raw bytes, $gz bytes gzip -9"
