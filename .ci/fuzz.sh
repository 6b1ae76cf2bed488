#!/usr/bin/env bash
# Runs each fuzz target for a bounded time ($1 seconds in all, split evenly
# between them): sif_load seeded with the reference SIF corpus,
# squashfs_walk with small SquashFS images (the fixtures' and a few made here
# with each compressor), tar_merge with small layers made here with `tar`
# (plain, gzip, zstd, whiteouts, a `./` root entry, two layers in one input),
# def_parse with the definition files of the fixtures and the repository.
# Every input that once crashed a target (fuzz/regressions/TARGET/) joins its
# corpus. Fails if one finds a crash; the crashing input is left in
# fuzz/artifacts/TARGET/ to be kept under fuzz/regressions/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
targets=(sif_load squashfs_walk tar_merge def_parse)

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
for target in "${targets[@]}"; do mkdir -p "$work/$target"; done

# sif_load, squashfs_walk
find "$fixtures/sif" -name '*.sif' -size -1M -exec cp {} "$work/sif_load/" \;
cp "$fixtures/sif/input/root.squashfs" "$work/squashfs_walk/" 2>/dev/null || true
mkdir -p "$work/tree/d"
printf 'hello\n' > "$work/tree/d/f"; ln -s d/f "$work/tree/l"; head -c 70000 /dev/urandom > "$work/tree/big"
for comp in gzip xz lz4 lzo zstd; do
  mksquashfs "$work/tree" "$work/squashfs_walk/$comp.sqfs" -comp "$comp" -b 4096 -noappend -quiet -no-progress >/dev/null 2>&1 || true
done

# tar_merge: small layers; one input may hold several layers, separated as
# vessel_oci::layers::FUZZ_LAYER_SEPARATOR says.
sep=--vessel-next-layer--
seeds=$work/tar_merge
mkdir -p "$work/layer/etc/skel" "$work/upper/etc"
printf 'root:x:0:0::/root:/bin/sh\n' > "$work/layer/etc/passwd"
ln "$work/layer/etc/passwd" "$work/layer/etc/hard"; ln -s passwd "$work/layer/etc/soft"
printf 'x' > "$work/layer/etc/skel/.profile"; mkfifo "$work/layer/fifo"
touch "$work/upper/etc/.wh.passwd" "$work/upper/etc/.wh..wh..opq" "$work/upper/new"
tar -cf "$seeds/root-entry.tar" -C "$work/layer" .            # ./ ./etc/ ...
tar -cf "$seeds/plain.tar" -C "$work/layer" etc fifo
tar --format=posix -cf "$seeds/pax.tar" -C "$work/layer" etc
tar -czf "$seeds/gzip.tar.gz" -C "$work/layer" etc
tar --zstd -cf "$seeds/zstd.tar.zst" -C "$work/layer" etc 2>/dev/null || true
tar -cf "$work/upper.tar" -C "$work/upper" .
{ cat "$seeds/plain.tar"; printf '%s' "$sep"; cat "$work/upper.tar"; } > "$seeds/two-layers"

# def_parse: the definition files of the fixtures and of the repository.
find "$fixtures/sif" -name '*.def' -size -64k -exec cp --backup=numbered {} "$work/def_parse/" \; 2>/dev/null || true
grep -rlis --exclude='*.rs' '^bootstrap:' tests crates | while read -r f; do
  cp "$f" "$work/def_parse/$(printf '%s' "$f" | tr '/' '_')"
done

status=0
per=$(( seconds / ${#targets[@]} > 0 ? seconds / ${#targets[@]} : 1 ))
for target in "${targets[@]}"; do
  cp fuzz/regressions/"$target"/* "$work/$target/" 2>/dev/null || true
  rm -f "$work/$target/README.md"
  dict=()
  [ -f "fuzz/$target.dict" ] && dict=(-dict="fuzz/$target.dict")
  log=$work/$target.log
  cargo "${toolchain[@]}" fuzz run "$target" "$work/$target" -- \
    -max_total_time="$per" -rss_limit_mb=2048 -max_len=1048576 -print_final_stats=1 \
    "${dict[@]}" >"$log" 2>&1 || status=$?
  grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==|SUMMARY)|panicked|Test unit written' "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -n 40 "$log" >&2
    echo "fuzzing $target found a crash (exit $status): see fuzz/artifacts/$target/" >&2
    exit "$status"
  fi
  echo "fuzzing $target: no crashes in ${per}s"
done
