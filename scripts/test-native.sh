#!/usr/bin/env bash
# The native cargo tests, faster than `cargo test --workspace` on two cores: one build, then the
# test binaries two at a time, longest first (cargo runs them one by one, and the long seeded
# simulations and the 100k-vector recall test would leave a core idle), then the relay's alone
# (its load test counts refusals under a deadline and must not share the CPU), then the doc tests.
# Every binary runs from its crate's directory, as under cargo, with the given test arguments.
#   bash scripts/test-native.sh [-- TEST ARGS]      (scripts/test.sh passes --show-output)
# Output goes to standard output in binary order; exit status 1 if any binary failed.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
if [ "${CHRYSALIS_SKIP_SETUP:-}" != 1 ]; then
  setup
  ensure_embedding_reference # onnxruntime's vectors for the local model's test
fi
[ "${1:-}" = -- ] && shift
out="$ROOT/target/test-native"
rm -rf "$out" && mkdir -p "$out"

# Each test executable as "index crate-directory executable label" (label: crate/target:kind),
# from cargo's JSON messages; paths with spaces are not supported.
cargo test --workspace --no-run --message-format=json-render-diagnostics >"$out/build.json" || exit 1
node -e '
const { dirname, basename } = require("node:path");
for (const line of require("node:fs").readFileSync(0, "utf8").split("\n")) {
  if (!line.startsWith("{")) continue;
  const m = JSON.parse(line);
  if (m.reason !== "compiler-artifact" || !m.executable || !m.profile.test) continue;
  const dir = dirname(m.manifest_path);
  console.log([dir, m.executable, `${basename(dir)}/${m.target.name}:${m.target.kind[0]}`].join(" "));
}' <"$out/build.json" >"$out/binaries"

# The long ones first, so that the short ones fill the other core around them; the relay's last.
LONG="sync/simulation:test memory/retrieval:test memory/agreement:test memory/store_attacks:test
  room/simulation:test security/context:test crypto/wycheproof:test"
{
  for label in $LONG; do grep " $label$" "$out/binaries" || true; done
  for label in $LONG; do echo " $label"; done | grep -v -F -f - "$out/binaries" | grep -v " relay/" || true
} | awk '{ print NR, $0 }' >"$out/together"
grep " relay/" "$out/binaries" | awk -v n="$(wc -l <"$out/together")" '{ print n + NR, $0 }' >"$out/alone"

run_one() { # index crate-directory executable label: runs one binary, its output to $out/index.log
  local index=$1 dir=$2 exe=$3 label=$4
  {
    echo "     Running $label"
    # shellcheck disable=SC2086 # the test arguments are words
    (cd "$dir" && "$exe" $TEST_ARGS) 2>&1
    echo "exit status $?"
  } >"$out/$index.log"
  tail -1 "$out/$index.log" | grep -q '^exit status 0$'
}
export -f run_one
export out TEST_ARGS="$*"

status=0
xargs -P 2 -n 4 bash -c 'run_one "$@"' _ <"$out/together" || status=1
xargs -P 1 -n 4 bash -c 'run_one "$@"' _ <"$out/alone" || status=1
for i in $(seq 1 "$(cat "$out/together" "$out/alone" | wc -l)"); do cat "$out/$i.log"; done
echo "     Doc tests"
cargo test --workspace --doc 2>&1 || status=1
exit "$status"
