#!/usr/bin/env bash
# Builds the package's core module as it was at REV (a commit) into target/bench-build/before/pkg,
# so the replication benchmark (scripts/bench-sync.mjs) runs it as "chrysalis-before" next to
# today's build and Yjs in the same rounds. Only the core module: the benchmark loads no other.
#   bash scripts/bench-before.sh da38283 && bash scripts/bench.sh sync
source "$(dirname "$0")/lib.sh"
rev=${1:?usage: bench-before.sh REV}
[ "${CHRYSALIS_SKIP_SETUP:-}" = 1 ] || setup
cd "$ROOT"
tree="$ROOT/target/bench-before/src"
out="$ROOT/target/bench-build/before/pkg"
rm -rf "$tree" "$out"
mkdir -p "$tree" "$out"
git archive "$rev" | tar -x -C "$tree"
step "core module at $rev"
(cd "$tree" && cargo rustc -p chrysalis-wasm --release --target "$WASM_TARGET" --crate-type cdylib \
  --no-default-features --features crypto --target-dir "$ROOT/target/bench-before/target")
wasm-bindgen --target web --out-dir "$out" --out-name chrysalis_wasm \
  "$ROOT/target/bench-before/target/$WASM_TARGET/release/chrysalis_wasm.wasm"
wasm-opt -Oz --enable-simd --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --enable-multivalue --enable-reference-types \
  "$out/chrysalis_wasm_bg.wasm" -o "$out/chrysalis_wasm_bg.wasm"
cp "$tree"/pkg/*.js "$out/"
echo "$rev $(git rev-parse "$rev")" >"$out/REVISION"
echo "the package at $rev is in $out"
