#!/usr/bin/env bash
# Runs each fuzz target for a bounded time ($1 seconds, split between them):
# sif_load seeded with the reference SIF corpus, squashfs_walk with small
# SquashFS images (the fixtures' and a few made here with each compressor).
# Fails if one finds a crash; the crashing input is left in
# fuzz/artifacts/TARGET/ to be kept under fuzz/regressions/TARGET/.
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

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fixtures=${VESSEL_FIXTURES:-../shared/fixtures}

mkdir -p "$work/sif_load" "$work/squashfs_walk"
find "$fixtures/sif" -name '*.sif' -size -1M -exec cp {} "$work/sif_load/" \;
cp "$fixtures/sif/input/root.squashfs" "$work/squashfs_walk/" 2>/dev/null || true
mkdir -p "$work/tree/d"
printf 'hello\n' > "$work/tree/d/f"; ln -s d/f "$work/tree/l"; head -c 70000 /dev/urandom > "$work/tree/big"
for comp in gzip xz lz4 lzo zstd; do
  mksquashfs "$work/tree" "$work/squashfs_walk/$comp.sqfs" -comp "$comp" -b 4096 -noappend -quiet -no-progress >/dev/null 2>&1 || true
done

status=0
per=$(( seconds / 2 > 0 ? seconds / 2 : 1 ))
for target in sif_load squashfs_walk; do
  cp fuzz/regressions/"$target"/* "$work/$target/" 2>/dev/null || true
  log=$work/$target.log
  cargo "${toolchain[@]}" fuzz run "$target" "$work/$target" -- \
    -max_total_time="$per" -rss_limit_mb=2048 -max_len=1048576 -print_final_stats=1 \
    >"$log" 2>&1 || status=$?
  grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==|SUMMARY)|panicked|Test unit written' "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 40 "$log" >&2
    echo "fuzzing $target found a crash (exit $status): see fuzz/artifacts/$target/" >&2
    exit "$status"
  fi
  echo "fuzzing $target: no crashes in ${per}s"
done
