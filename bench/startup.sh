#!/usr/bin/env bash
# Container start-up, side by side in one run: Vessel against a bare
# `unshare -Urm chroot` and Charliecloud's ch-run (on a directory and on a
# SquashFS file), all running /bin/true as an unprivileged user. Prints a
# table with ratios to `unshare chroot`, the monitor's peak RSS, and the
# cold-cache check (16 concurrent first runs of one SIF, one extraction).
# With a Debian image (DEBIAN.sif, or $VESSEL_TEST_DEBIAN_SIF), also what a
# run that does some work costs, each run a fresh container (a fresh mount
# for the SquashFS ones): a cold Python import of many standard modules and
# a cold `find /usr`.
#   bench/startup.sh [VESSEL_BINARY] [IMAGE.sif] [DEBIAN.sif]
# Run as root (it installs the peers and switches to the test user).
# BENCH_RUNS sets the hyperfine runs per command (default 100), and
# BENCH_WORK_RUNS those of the Debian image's workloads (default 20).
# BENCH_BEFORE=BINARY adds rows for another Vessel binary (a before/after
# comparison in one run).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
runs=${BENCH_RUNS:-100}
# shellcheck source=bench/lib.sh
. bench/lib.sh

if [ -n "${1:-}" ]; then vessel=$1; else cargo build --release --quiet; vessel=$root/target/release/vessel; fi
image=${2:-${VESSEL_FIXTURES:-../shared/fixtures}/sif/apptainer/images/busybox_amd64.sif}
debian=${3:-${VESSEL_TEST_DEBIAN_SIF:-}}

need_packages charliecloud-runtime hyperfine squashfs-tools
ensure_user

work=$(mktemp -d /tmp/vessel-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT
install -m 0755 "$vessel" "$work/vessel"
before_rows=()
if [ -n "${BENCH_BEFORE:-}" ]; then
  install -m 0755 "$BENCH_BEFORE" "$work/vessel-before"
  before_rows=(
    -n "vessel exec DIR (sandbox, before)" "$work/vessel-before exec $work/dir /bin/true"
    -n "vessel exec IMG.sif (fuse, before)" "env VESSEL_IMAGE_DRIVER=fuse $work/vessel-before exec $work/img.sif /bin/true"
  )
fi
cp "$image" "$work/img.sif"
primary=$("$work/vessel" sif list "$work/img.sif" | awk -F'|' '/\*System/ { print $1 + 0 }')
"$work/vessel" sif dump "$primary" "$work/img.sif" > "$work/img.sqfs"
unsquashfs -no-progress -no-xattrs -quiet -dest "$work/dir" "$work/img.sqfs" >/dev/null || true
chown -R "$user": "$work"
chmod 0755 "$work"

as_user() { as_user_in "/home/$user" /tmp VESSEL_EXTRACT_DIR="$work/cache" "$@"; }
cd "$work"
as_user ./vessel exec --unsquash img.sif /bin/true 2>/dev/null   # warm the extract cache

# The Debian image's workloads, in every way of running it, interleaved
# by hyperfine's order only per command: one table per workload.
work_lines=()
if [ -n "$debian" ]; then
  cp "$debian" "$work/deb.sif"
  primary=$("$work/vessel" sif list "$work/deb.sif" | awk -F'|' '/\*System/ { print $1 + 0 }')
  "$work/vessel" sif dump "$primary" "$work/deb.sif" > "$work/deb.sqfs"
  unsquashfs -no-progress -no-xattrs -quiet -dest "$work/debdir" "$work/deb.sqfs" >/dev/null || true
  chown -R "$user": "$work"
  py='import json, email.parser, http.client, xml.dom.minidom, sqlite3, asyncio, unittest, decimal, argparse, logging, csv, urllib.request, multiprocessing, concurrent.futures, tarfile, zipfile, shutil, tempfile, subprocess, pathlib, dataclasses, typing, statistics, fractions, difflib, pickle, gettext, locale, calendar, configparser'
  for w in python find; do
    if [ $w = python ]; then cmd="/usr/bin/python3 -B -c '$py'"; else cmd="/usr/bin/find /usr -xdev"; fi
    as_user hyperfine --style none --warmup 2 --runs "${BENCH_WORK_RUNS:-20}" --export-json "$work/$w.json" \
      --output null \
      -n "unshare -Urm chroot DIR" "unshare -Urm chroot $work/debdir $cmd" \
      -n "ch-run DIR" "ch-run $work/debdir -- $cmd" \
      -n "ch-run IMG.sqfs" "ch-run $work/deb.sqfs -- $cmd" \
      -n "vessel exec IMG.sif (fuse)" "env VESSEL_IMAGE_DRIVER=fuse $work/vessel exec $work/deb.sif $cmd" \
      >/dev/null
    work_lines+=("$w")
  done
fi

as_user hyperfine --style none --warmup 5 --runs "$runs" --export-json "$work/times.json" -N \
  -n "unshare -Urm chroot DIR" "unshare -Urm chroot $work/dir /bin/true" \
  -n "ch-run DIR" "ch-run $work/dir -- /bin/true" \
  -n "ch-run IMG.sqfs" "ch-run $work/img.sqfs -- /bin/true" \
  -n "vessel exec DIR (sandbox)" "$work/vessel exec $work/dir /bin/true" \
  -n "vessel exec IMG.sif (warm cache)" "$work/vessel exec --unsquash $work/img.sif /bin/true" \
  -n "vessel exec IMG.sif (fuse)" "env VESSEL_IMAGE_DRIVER=fuse $work/vessel exec $work/img.sif /bin/true" \
  ${before_rows[@]+"${before_rows[@]}"} \
  >/dev/null

# --nv against the fake driver of the GPU tests (every library of Vessel's
# nvliblist.conf, under its soname, in the linker cache): what finding and
# linking the driver adds to a start. Not on a host with a real driver.
gpu_line="--nv: skipped (a real NVIDIA driver is installed, or the fake one could not be)"
if fake_libs=$("$root/tests/gpu/fake-driver.sh" install 2>/dev/null); then
  trap '"$root/tests/gpu/fake-driver.sh" remove >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
  as_user hyperfine --style none --warmup 5 --runs "$runs" --export-json "$work/gpu.json" -N \
    -n "exec IMG.sif (fuse)" "env VESSEL_IMAGE_DRIVER=fuse $work/vessel exec $work/img.sif /bin/true" \
    -n "exec --nv IMG.sif (fuse)" "env VESSEL_IMAGE_DRIVER=fuse $work/vessel exec --nv $work/img.sif /bin/true" \
    >/dev/null
  "$root/tests/gpu/fake-driver.sh" remove >/dev/null
  gpu_line=$(python3 - "$work/gpu.json" "$fake_libs" <<'PY'
import json, sys
plain, nv = (r["median"] * 1e3 for r in json.load(open(sys.argv[1]))["results"])
print(f"--nv with a fake driver of {sys.argv[2]} libraries: {nv:.2f} ms vs {plain:.2f} ms "
      f"without (+{nv - plain:.2f} ms; target <= +2 ms)")
PY
)
fi

# Peak RSS of the monitor (the vessel process itself, which the payload
# replaces nothing of: it forks the payload and waits).
rss() {
  as_user python3 -c 'import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' "$@"
}
rss_dir=$(rss "$work/vessel" exec "$work/dir" /bin/true)
rss_sif=$(rss "$work/vessel" exec --unsquash "$work/img.sif" /bin/true)

# Cold cache: 16 ranks at once on a node that never saw the image.
cold=$(as_user sh -c '
  export VESSEL_EXTRACT_DIR=$1/cold; start=$(date +%s.%N)
  for i in $(seq 16); do ./vessel exec --unsquash img.sif /bin/true 2>>$1/cold.log & done; wait
  end=$(date +%s.%N); echo "$start $end"' sh "$work")
extractions=$(grep -c Extracting "$work/cold.log" || true)
entries=$(find "$work/cold" -maxdepth 1 -name '????????????????????????????????????????????????????????????????' | wc -l)

python3 - "$work/times.json" "$rss_dir" "$rss_sif" "$cold" "$extractions" "$entries" "$gpu_line" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
base = results[0]["median"]
print(f"{'command':36} {'median ms':>10} {'mean ms':>9} {'± ms':>7} {'× unshare':>10}")
for r in results:
    print(f"{r['command']:36} {r['median']*1e3:10.2f} {r['mean']*1e3:9.2f} {r['stddev']*1e3:7.2f} {r['median']/base:10.2f}")
start, end = map(float, sys.argv[4].split())
print()
print(f"monitor peak RSS: sandbox {int(sys.argv[2])/1024:.1f} MiB, SIF {int(sys.argv[3])/1024:.1f} MiB")
print(f"16 concurrent first runs of one SIF on a cold cache: {end - start:.2f} s, "
      f"{sys.argv[5]} extraction(s), {sys.argv[6]} cache entr{'y' if sys.argv[6] == '1' else 'ies'}")
by = {r["command"]: r["median"] for r in results}
print()
def goal(text, ok):
    print(f"{'met   ' if ok else 'MISSED'} {text}")
sandbox, warm = by['vessel exec DIR (sandbox)'], by['vessel exec IMG.sif (warm cache)']
fuse, chrun = by['vessel exec IMG.sif (fuse)'], by['ch-run IMG.sqfs']
goal(f"sandbox <= 1.5x unshare chroot: {sandbox / base:.2f}x", sandbox <= 1.5 * base)
goal(f"warm SIF (extract cache) <= 2x unshare chroot: {warm / base:.2f}x", warm <= 2 * base)
goal(f"SIF through FUSE <= 0.5x ch-run IMG.sqfs: {fuse * 1e3:.2f} ms vs {chrun * 1e3:.2f} ms "
     f"({fuse / chrun:.2f}x)", fuse <= 0.5 * chrun)
print(sys.argv[7])
PY
for w in "${work_lines[@]}"; do
  python3 - "$work/$w.json" "$w" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
base = results[0]["median"]
what = {"python": "cold Python import of 30 standard modules", "find": "cold find /usr"}[sys.argv[2]]
print()
print(f"Debian image, {what}, a fresh container each run ({len(results[0]['times'])} runs):")
for r in results:
    print(f"  {r['command']:34} {r['median']*1e3:10.2f} ms median {r['median']/base:6.2f}× unshare")
PY
done
