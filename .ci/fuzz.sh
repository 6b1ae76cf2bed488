#!/usr/bin/env bash
# Runs the sif_load fuzz target for a bounded time ($1 seconds), seeded with
# the reference SIF corpus. Fails if it finds a crash; the crashing input is
# left in fuzz/artifacts/ to be kept under fuzz/regressions/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --quiet

# libFuzzer needs nightly compiler flags: use a nightly toolchain when there
# is one, else let the stable compiler accept them.
if cargo +nightly --version >/dev/null 2>&1; then
  toolchain=(+nightly)
else
  toolchain=()
  export RUSTC_BOOTSTRAP=1
fi

corpus=$(mktemp -d)
trap 'rm -rf "$corpus" "$corpus.log"' EXIT
fixtures=${VESSEL_FIXTURES:-../shared/fixtures}
find "$fixtures/sif" -name '*.sif' -size -1M -exec cp {} "$corpus/" \;
cp fuzz/regressions/sif_load/* "$corpus/" 2>/dev/null || true

log=$corpus.log
status=0
cargo "${toolchain[@]}" fuzz run sif_load "$corpus" -- \
  -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=1048576 -print_final_stats=1 \
  >"$log" 2>&1 || status=$?
grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==|SUMMARY)|panicked|Test unit written' "$log" || true
if [ "$status" -ne 0 ]; then
  tail -n 40 "$log" >&2
  echo "fuzzing found a crash (exit $status): see fuzz/artifacts/sif_load/" >&2
  exit "$status"
fi
echo "fuzzing: no crashes in ${seconds}s"
