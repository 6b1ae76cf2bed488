#!/usr/bin/env bash
# Reading a SIF's root file system as a user gets it, interleaved in one run:
# `vessel exec IMG.sif` (Vessel's SquashFS FUSE server under the container's
# overlay) and `vessel __mount-image` (the bare FUSE mount) as the
# unprivileged user, against the kernel's squashfs (loop-mounted by root,
# read by the same user), squashfuse_ll and squashfuse (mounted by the user).
# Each round mounts each system afresh after dropping the page cache and
# times, as the user:
#   find    a cold `find` over the whole tree (the first listing of every
#           directory: what a metadata walk costs);
#   read1   then one process reading every file (cold data);
#   par2    then warm parallel reads: two processes reading disjoint halves
#           of the tree at once;
#   cpar2   (only when asked for) the same two readers on a fresh mount;
#   python  on another fresh mount, a cold `python3 -c 'import …'` of many
#           standard modules (python3 from the image, chrooted in).
# Prints the median of the rounds, ratios to the kernel, and each goal of
# issue 20 marked met or missed.
#   bench/fuse.sh [VESSEL_BINARY] [IMAGE.sif]
# Run as root. IMAGE defaults to $VESSEL_TEST_DEBIAN_SIF (a Debian image
# with python3, as scripts/test.sh makes). BENCH_RUNS sets the rounds
# (default 10). BENCH_VESSEL_VARIANTS compares server settings in the same
# run (default, where the kernel's fuse.enable_uring is on: the server on
# /dev/fuse as "devfuse"): space-separated NAME:VAR=VALUE[,VAR=VALUE…] (e.g.
# "t1:VESSEL_FUSE_THREADS=1 t2:VESSEL_FUSE_THREADS=2"), each a further pair
# of Vessel rows; BIN=PATH there runs another Vessel binary (before/after). BENCH_WORKLOADS picks the mounts (default "find python";
# "cpar2" adds cold parallel reads), BENCH_PEERS the other systems (default
# "kernel squashfuse_ll squashfuse"; the kernel's is needed for the ratios).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
runs=${BENCH_RUNS:-10}
# shellcheck source=bench/lib.sh
. bench/lib.sh

if [ -n "${1:-}" ]; then vessel=$1; else cargo build --release --quiet; vessel=$root/target/release/vessel; fi
image=${2:-${VESSEL_TEST_DEBIAN_SIF:?give an image with python3, or set VESSEL_TEST_DEBIAN_SIF}}

need_packages squashfuse fuse3 squashfs-tools
[ -e /dev/fuse ] && chmod 0666 /dev/fuse
ensure_user

work=$(mktemp -d /tmp/vessel-bench-fuse-XXXXXX)
cleanup() {
  for m in "$work"/mnt-*; do umount -l "$m" 2>/dev/null || fusermount3 -u -z "$m" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
install -m 0755 "$vessel" "$work/vessel"
primary=$("$work/vessel" sif list "$image" | awk -F'|' '/\*System/ { print $1 + 0 }')
"$work/vessel" sif dump "$primary" "$image" > "$work/img.sqfs"
cp "$image" "$work/img.sif"

# The regular files, relative, in two halves (made once, outside the timing).
mkdir -p "$work/mnt-kernel"
mount -t squashfs -o loop,ro "$work/img.sqfs" "$work/mnt-kernel"
(cd "$work/mnt-kernel" && find . -type f | sort) > "$work/files"
umount "$work/mnt-kernel"
split -n l/2 -d "$work/files" "$work/part."

# One measurement over the tree at $1 (the same path inside a container):
# prints "find SECONDS par2 SECONDS" or "python SECONDS". Timed with the
# shell's clock (`date` of the host or of the image) around each step.
cat > "$work/phase.sh" <<'EOF'
#!/bin/sh
dir=$1 what=$2 work=$(dirname "$0")
now() { date +%s.%N; }
par() {
  for part in "$work"/part.*; do
    (cd "$dir" && xargs -d '\n' cat < "$part" > /dev/null 2>&1) &
  done
  wait
}
case $what in
  find)
    s=$(now); find "$dir" -xdev > /dev/null 2>&1; e=$(now)
    echo "find $s $e"
    s=$(now); (cd "$dir" && xargs -d '\n' cat < "$work/files" > /dev/null 2>&1); e=$(now)
    echo "read1 $s $e"
    s=$(now); par; e=$(now)
    echo "par2 $s $e" ;;
  cpar2)
    s=$(now); par; e=$(now)
    echo "cpar2 $s $e" ;;
  python)
    # In a container the image is already the root; elsewhere chroot to it.
    if [ "$dir" = / ]; then run=; else run="unshare -r chroot $dir"; fi
    s=$(now)
    $run /usr/bin/python3 -B -c 'import json, email.parser, http.client, xml.dom.minidom, sqlite3, asyncio, unittest, decimal, argparse, logging, csv, urllib.request, multiprocessing, concurrent.futures, tarfile, zipfile, shutil, tempfile, subprocess, pathlib, dataclasses, typing, statistics, fractions, difflib, pickle, gettext, locale, calendar, configparser'
    e=$(now)
    echo "python $s $e" ;;
esac
EOF
chown -R "$user": "$work"
chmod 0755 "$work"

as_user() { as_user_in "/home/$user" /tmp "$@"; }
cold_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
# "WHAT START END" lines → "SYSTEM WHAT SECONDS" lines in results.
record() { awk -v who="$1" 'NF == 3 { printf "%s %s %.6f\n", who, $1, $3 - $2 }' >> "$work/results"; }

# Vessel rows: the default settings, then each variant's.
# Where the kernel offers FUSE over io_uring, the server uses it; a second
# pair of rows shows the same server on /dev/fuse.
if [ -z "${BENCH_VESSEL_VARIANTS+set}" ] && [ "$(cat /sys/module/fuse/parameters/enable_uring 2>/dev/null)" = Y ]; then
  BENCH_VESSEL_VARIANTS="devfuse:VESSEL_FUSE_URING=0"
fi
read -r -a more <<< "${BENCH_VESSEL_VARIANTS:-}"
variants=("vessel:" ${more[@]+"${more[@]}"})
read -r -a systems <<< "${BENCH_PEERS:-kernel squashfuse_ll squashfuse}"
for v in "${variants[@]}"; do systems+=("exec/${v%%:*}" "bare/${v%%:*}"); done

# One system, one workload, on a fresh mount after a cold cache.
measure() {
  local sys=$1 what=$2 mnt env=() v x bin=$work/vessel e
  case $sys in
    exec/* | bare/*)
      for v in "${variants[@]}"; do
        [ "${v%%:*}" = "${sys#*/}" ] || continue
        IFS=, read -r -a e <<< "${v#*:}"
        for x in ${e[@]+"${e[@]}"}; do
          case $x in BIN=*) bin=${x#BIN=} ;; *) env+=("$x") ;; esac
        done
      done ;;
  esac
  mnt=$work/mnt-${sys//\//-}; mkdir -p "$mnt"; chown "$user": "$mnt"
  cold_caches
  case $sys in
    kernel)
      mount -t squashfs -o loop,ro "$work/img.sqfs" "$mnt"
      as_user sh "$work/phase.sh" "$mnt" "$what" | record "$sys"
      umount "$mnt" ;;
    squashfuse*)
      as_user "$sys" "$work/img.sqfs" "$mnt"
      as_user sh "$work/phase.sh" "$mnt" "$what" | record "$sys"
      as_user fusermount3 -u "$mnt" ;;
    exec/*)
      as_user ${env[@]+"${env[@]}"} VESSEL_IMAGE_DRIVER=fuse "$bin" exec "$work/img.sif" \
        sh "$work/phase.sh" / "$what" | record "$sys" ;;
    bare/*)
      as_user ${env[@]+"${env[@]}"} "$bin" __mount-image "$work/img.sif" "$mnt" \
        sh "$work/phase.sh" "$mnt" "$what" | record "$sys" ;;
  esac
}

: > "$work/results"
n=${#systems[@]}
for round in $(seq "$runs"); do
  # Interleaved, and each round starts with a different system, so that
  # load from elsewhere on the machine spreads over all of them.
  for i in $(seq 0 $((n - 1))); do
    sys=${systems[$(((i + round) % n))]}
    for what in ${BENCH_WORKLOADS:-find python}; do measure "$sys" "$what"; done
  done
done

python3 - "$work/results" "$runs" "$(du -sm "$work/img.sqfs" | cut -f1)" "${systems[@]}" <<'PY'
import statistics, sys
from collections import defaultdict
samples = defaultdict(list)
for line in open(sys.argv[1]):
    who, what, secs = line.split()
    samples[(who, what)].append(float(secs))
runs, size, systems = sys.argv[2], sys.argv[3], sys.argv[4:]
med = {k: statistics.median(v) for k, v in samples.items()}
works = [w for w in ["find", "read1", "par2", "cpar2", "python"]
         if any(k[1] == w for k in med)]
print(f"SquashFS image {size} MiB; median seconds of {runs} interleaved rounds (× kernel); "
      "exec = `vessel exec` (overlay over FUSE), bare = `vessel __mount-image`")
print(f"{'system':22} " + " ".join(f"{w:>18}" for w in works))
for s in systems:
    cells = []
    for w in works:
        v, base = med.get((s, w)), med.get(("kernel", w))
        cells.append(f"{v:8.4f} ({v / base:5.2f}×)" if v is not None and base else f"{'-':>18}")
    print(f"{s:22} " + " ".join(f"{c:>18}" for c in cells))
print()
def goal(text, ok):
    print(f"{'met   ' if ok else 'MISSED'} {text}")
for s in systems:
    if not s.startswith("exec/") or (s, "find") not in med or ("kernel", "find") not in med:
        continue
    f, p = med[(s, "find")], med[(s, "par2")]
    k, kp = med[("kernel", "find")], med[("kernel", "par2")]
    goal(f"{s}: cold find <= 1.1x kernel: {f / k:.2f}x", f <= 1.1 * k)
    if ("squashfuse_ll", "find") in med:
        ll = med[("squashfuse_ll", "find")]
        goal(f"{s}: cold find faster than squashfuse_ll: {f:.4f} s vs {ll:.4f} s", f < ll)
    goal(f"{s}: warm parallel reads <= 1.2x kernel: {p / kp:.2f}x", p <= 1.2 * kp)
PY
