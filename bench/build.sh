#!/usr/bin/env bash
# Building a debootstrap-based image, side by side in one run: the same
# definition built by `vessel build` (as the unprivileged user, fake root
# with subordinate ids, and as root) against `debootstrap` + `mksquashfs`
# run by hand as root with the same options. Prints build times, output
# sizes and Vessel's overhead over the hand-made image; Singularity 3.4 is
# timed too when a `singularity` binary is installed.
#   bench/build.sh [VESSEL_BINARY]
# Run as root. BENCH_RUNS sets the runs per variant (default 2; the
# median is reported). Downloads come from the host's Debian mirror.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
runs=${BENCH_RUNS:-2}
# shellcheck source=bench/lib.sh
. bench/lib.sh

if [ -n "${1:-}" ]; then vessel=$1; else cargo build --release --quiet; vessel=$root/target/release/vessel; fi
read -r suite mirror < <(scripts/debian-mirror.sh) || true
[ -n "${mirror:-}" ] || exit 1
for c in debootstrap mksquashfs newuidmap; do
  command -v "$c" >/dev/null || { echo "$0: $c missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
ensure_user

work=$(mktemp -d /tmp/vessel-bench-build-XXXXXX)
cleanup() {
  grep -o " $work/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
install -m 0755 "$vessel" "$work/vessel"
cat > "$work/bench.def" <<EOF
Bootstrap: debootstrap
OSVersion: $suite
MirrorURL: $mirror

%runscript
    cat /etc/debian_version
EOF
chown -R "$user": "$work"
chmod 0755 "$work"

as_user() { as_user_in "/home/$user" "$work" "$@"; }
now() { date +%s.%N; }
size() { stat -c %s "$1"; }

# The agent's options, as bootstrap agent and hand-made image must match.
hand() {
  local dir=$work/hand-root out=$work/hand.sqfs
  rm -rf --one-file-system "$dir" "$out"
  debootstrap --variant=minbase --exclude=openssl,udev,debconf-i18n,e2fsprogs \
    --include=apt "--arch=$(dpkg --print-architecture)" "$suite" "$dir" "$mirror" >/dev/null
  mksquashfs "$dir" "$out" -noappend -quiet -no-progress -comp gzip >/dev/null
  rm -rf --one-file-system "$dir"
}
vessel_user() {
  rm -f "$work/user.sif"
  as_user sh -c "cd $work && ./vessel -q build user.sif bench.def" >/dev/null
}
vessel_root() {
  rm -f "$work/root.sif"
  (cd "$work" && TMPDIR=$work ./vessel -q build root.sif bench.def >/dev/null)
}
singularity34() {
  rm -f "$work/sing.sif"
  (cd "$work" && singularity -s build sing.sif bench.def >/dev/null)
}

variants=(hand vessel_user vessel_root)
command -v singularity >/dev/null && variants+=(singularity34)
: > "$work/times"
for i in $(seq "$runs"); do
  for v in "${variants[@]}"; do
    t0=$(now)
    if "$v"; then awk -v a="$t0" -v b="$(now)" -v n="$v" 'BEGIN { print n, b - a }' >> "$work/times"; else echo "$v failed" >&2; fi
  done
done
[ -e "$work/sing.sif" ] || echo "singularity: not installed here, skipped"

python3 - "$work/times" "$(size "$work/hand.sqfs")" "$(size "$work/user.sif")" "$(size "$work/root.sif")" \
  "$( [ -e "$work/sing.sif" ] && size "$work/sing.sif" || echo 0)" "$runs" <<'PY'
import statistics, sys
times = {}
for line in open(sys.argv[1]):
    name, t = line.split()
    times.setdefault(name, []).append(float(t))
sizes = {"hand": int(sys.argv[2]), "vessel_user": int(sys.argv[3]),
         "vessel_root": int(sys.argv[4]), "singularity34": int(sys.argv[5])}
labels = {"hand": "debootstrap + mksquashfs (root)",
          "vessel_user": "vessel build (user, fake root)",
          "vessel_root": "vessel build (root)",
          "singularity34": "singularity 3.4 build (root)"}
base_t = statistics.median(times["hand"])
base_s = sizes["hand"]
print(f"debootstrap image build, median of {sys.argv[6]} run(s) each")
print(f"{'variant':34} {'time s':>8} {'× hand':>7} {'size MiB':>9} {'× hand':>7}")
for name, label in labels.items():
    if name not in times:
        continue
    t = statistics.median(times[name])
    print(f"{label:34} {t:8.1f} {t/base_t:7.2f} {sizes[name]/2**20:9.1f} {sizes[name]/base_s:7.2f}")
worst = max(statistics.median(times[n]) for n in ("vessel_user", "vessel_root") if n in times)
print()
print(f"target: vessel overhead <= 10% over debootstrap + mksquashfs: "
      f"{(worst/base_t - 1)*100:+.1f}% time (slowest vessel variant), "
      f"{(max(sizes['vessel_user'], sizes['vessel_root'])/base_s - 1)*100:+.1f}% size")
PY
