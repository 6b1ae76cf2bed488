#!/usr/bin/env bash
# Reading a SIF's root file system, side by side in one run: Vessel's own
# SquashFS FUSE server (as the unprivileged user) against the kernel's
# squashfs (as root, loop mount), squashfuse_ll and squashfuse (as the user).
# Workloads, each on a fresh mount after dropping the page cache (cold) and
# again on the same mount (warm): tar of the whole tree, find, Python
# standard-library imports, and 2 and 8 processes reading disjoint parts
# of the tree at once. Prints seconds, ratios to the kernel, and the CPU
# time and peak RSS of each FUSE server.
#   bench/fuse.sh [VESSEL_BINARY] [IMAGE.sif]
# Run as root. IMAGE defaults to $VESSEL_TEST_DEBIAN_SIF (a Debian image
# with python3, as scripts/test.sh makes).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
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

# One workload phase over the tree at $1, timed; $2 names it. Runs as the
# user for FUSE mounts (inside Vessel's namespace for Vessel), as root for
# the kernel mount.
cat > "$work/phase.sh" <<'EOF'
#!/bin/sh
dir=$1 phase=$2
start=$(date +%s.%N)
case $phase in
  tar) tar cf - -C "$dir" . 2>/dev/null | cat > /dev/null ;;
  find) find "$dir" > /dev/null ;;
  python)
    if [ "$(id -u)" = 0 ]; then run="chroot $dir"; else run="unshare -r chroot $dir"; fi
    $run /usr/bin/python3 -B -c 'import json, email.parser, http.client, xml.dom.minidom, sqlite3, asyncio, unittest, decimal, argparse, logging, csv, urllib.request' ;;
  par2|par8)
    n=${phase#par}
    (cd "$dir" && find . -type f | sort > /tmp/vessel-bench-files.$$)
    split -n "l/$n" -d /tmp/vessel-bench-files.$$ /tmp/vessel-bench-part.$$.
    for part in /tmp/vessel-bench-part.$$.*; do
      (cd "$dir" && xargs -d '\n' cat < "$part" > /dev/null 2>&1) &
    done
    wait
    rm -f /tmp/vessel-bench-files.$$ /tmp/vessel-bench-part.$$.* ;;
esac
end=$(date +%s.%N)
echo "$phase $(echo "$start $end" | awk '{ print $2 - $1 }')"
EOF
# Cold then warm on one mount; then the server's CPU seconds and peak RSS.
cat > "$work/both.sh" <<'EOF'
#!/bin/sh
dir=$1 phase=$2 server=$3
cold=$(sh "$(dirname "$0")/phase.sh" "$dir" "$phase" | cut -d' ' -f2)
warm=$(sh "$(dirname "$0")/phase.sh" "$dir" "$phase" | cut -d' ' -f2)
cpu=- rss=-
if [ -n "$server" ] && [ -r "/proc/$server/stat" ]; then
  ticks=$(getconf CLK_TCK)
  cpu=$(awk -v t="$ticks" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$server/stat")
  rss=$(awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$server/status")
fi
echo "$phase $cold $warm $cpu $rss"
EOF
# Inside `vessel __mount-image`: find the server (our parent's other child).
cat > "$work/vessel-both.sh" <<'EOF'
#!/bin/sh
server=
for p in $(cat /proc/$PPID/task/*/children); do
  [ "$p" != "$$" ] && [ "$(cat /proc/$p/comm 2>/dev/null)" = vessel ] && server=$p
done
exec sh "$(dirname "$0")/both.sh" "$1" "$2" "$server"
EOF
chown -R "$user": "$work"
chmod 0755 "$work"

as_user() { as_user_in "/home/$user" /tmp "$@"; }
cold_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }

phases=(tar find python par2 par8)
: > "$work/results"
for phase in "${phases[@]}"; do
  # Kernel squashfs, as root.
  mnt=$work/mnt-kernel; mkdir -p "$mnt"
  cold_caches
  mount -t squashfs -o loop,ro "$work/img.sqfs" "$mnt"
  echo "kernel $(sh "$work/both.sh" "$mnt" "$phase" "")" >> "$work/results"
  umount "$mnt"

  for fuse in squashfuse_ll squashfuse; do
    mnt=$work/mnt-$fuse; mkdir -p "$mnt"; chown "$user": "$mnt"
    cold_caches
    as_user "$fuse" "$work/img.sqfs" "$mnt"
    server=$(pgrep -n -x "$fuse" || true)
    echo "$fuse $(as_user sh "$work/both.sh" "$mnt" "$phase" "$server")" >> "$work/results"
    as_user fusermount3 -u "$mnt"
  done

  mnt=$work/mnt-vessel; mkdir -p "$mnt"; chown "$user": "$mnt"
  cold_caches
  echo "vessel $(as_user "$work/vessel" __mount-image "$work/img.sif" "$mnt" sh "$work/vessel-both.sh" "$mnt" "$phase")" >> "$work/results"
done

python3 - "$work/results" "$(du -sm "$work/img.sqfs" | cut -f1)" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    who, phase, cold, warm, cpu, rss = line.split()
    rows[(who, phase)] = (float(cold), float(warm), cpu, rss)
phases = ["tar", "find", "python", "par2", "par8"]
who = ["kernel", "vessel", "squashfuse_ll", "squashfuse"]
print(f"SquashFS image: {sys.argv[2]} MiB; seconds (× kernel); FUSE server CPU s / peak RSS MiB")
print(f"{'workload':10} " + " ".join(f"{w:>24}" for w in who))
for p in phases:
    for i, kind in enumerate(["cold", "warm"]):
        base = rows[("kernel", p)][i]
        cells = []
        for w in who:
            v = rows[(w, p)][i]
            cells.append(f"{v:8.3f} ({v / base if base else 0:5.2f}×)")
        print(f"{p + ' ' + kind:10} " + " ".join(f"{c:>24}" for c in cells))
    print(f"{'  server':10} " + " ".join(
        f"{rows[(w, p)][2] + ' s / ' + rows[(w, p)][3] + ' MiB':>24}" for w in who))
def ratio(w, p, i, base="kernel"):
    return rows[(w, p)][i] / rows[(base, p)][i]
cold = max(ratio("vessel", p, 0) for p in ["tar", "find", "python"])
warm = max(ratio("vessel", p, 1) for p in ["tar", "find", "python"])
par = min(rows[("squashfuse_ll", p)][0] / rows[("vessel", p)][0] for p in ["par2", "par8"])
print()
print(f"targets: cold <= 1.1x kernel: {cold:.2f}x (worst); warm <= 1.5x kernel: {warm:.2f}x (worst); "
      f"parallel readers >= 1.5x faster than squashfuse_ll: {par:.2f}x (worst)")
PY
