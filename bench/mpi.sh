#!/usr/bin/env bash
# Open MPI on one node with Vessel against native runs (the same sources
# compiled on the host, the host's Open MPI), as the unprivileged user, in
# one run (issue 19):
#   - ping-pong latency and bandwidth, 8 B to 4 MiB, and allreduce: native,
#     hybrid with the ranks sharing one container (--sharens), and hybrid
#     with a container per rank (btl_vader_single_copy_mechanism=none, which
#     Vessel sets for such ranks itself: CMA cannot cross user namespaces),
#     and native with single-copy none too (native-none: the same transport);
#   - start-up (`mpirun -np N hello`, wall time) and the summed PSS memory of
#     a job's processes (the ranks, and the monitors and FUSE servers of the
#     containers) while every rank sleeps after MPI_Init, for N = 1, 8, 16, 32
#     (--oversubscribe): native, SIF per rank, --sharens, sandbox directory.
# Prints medians side by side with ratios to native, and the goals of issue
# 19 marked met or missed. A way of running that fails (say, a runtime
# without --sharens) is shown as n/a. Informative: CI never fails on it.
#   bench/mpi.sh VESSEL_BINARY MPI.sif
# Run as root (it switches to the test user). MPI.sif is the image of
# scripts/make-mpi-image.sh. BENCH_RUNS sets the runs per figure (default 3),
# BENCH_RANKS the rank counts (default "1 8 16 32").
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
runs=${BENCH_RUNS:-3}
ranks=${BENCH_RANKS:-1 8 16 32}
# shellcheck source=bench/lib.sh
. bench/lib.sh

vessel=${1:?usage: bench/mpi.sh VESSEL_BINARY MPI.sif}
image=${2:?usage: bench/mpi.sh VESSEL_BINARY MPI.sif}
need_packages openmpi-bin libopenmpi-dev hyperfine
ensure_user

work=$(mktemp -d /tmp/vessel-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT
install -m 0755 "$vessel" "$work/vessel"
cp "$image" "$work/mpi.sif"
# The native programs: the image's sources, compiled with the host's mpicc.
for p in hello pingpong allreduce; do
  mpicc -O2 -o "$work/$p" "$root/tests/mpi/$p.c"
done
chown -R "$user": "$work"
chmod 0755 "$work"
as_user() { as_user_in "/home/$user" /tmp "$@"; }
cd "$work"
# The sandbox: the image's tree as a directory (what --sandbox builds).
as_user ./vessel build --sandbox sandbox mpi.sif >/dev/null 2>&1

v=$work/vessel
declare -A run=(
  [native]=""
  [native-none]=""
  [sharens]="$v exec --sharens $work/mpi.sif /opt/mpitests/"
  [per-rank]="$v exec $work/mpi.sif /opt/mpitests/"
  [sif]="$v exec $work/mpi.sif /opt/mpitests/"
  [sandbox]="$v exec $work/sandbox /opt/mpitests/"
)
# mpirun_of MODE N PROGRAM ARGS...: the command line of a job.
mpirun_of() {
  local mode=$1 n=$2 prog=$3
  shift 3
  local cmd=(mpirun -np "$n" --oversubscribe)
  # With a container per rank, CMA is refused and 4 MiB messages hang.
  case $mode in per-rank | native-none) cmd+=(--mca btl_vader_single_copy_mechanism none) ;; esac
  if [ -z "${run[$mode]}" ]; then cmd+=("$work/$prog"); else read -ra c <<<"${run[$mode]}$prog"; cmd+=("${c[@]}"); fi
  echo "${cmd[@]}" "$@"
}
# A mode that cannot run at all (a runtime without --sharens) is left out.
works() { # MODE
  # shellcheck disable=SC2046 # a command line without quoted words
  timeout -k 5 60 setpriv --reuid="$user" --regid="$user" --init-groups \
    env -i HOME="/home/$user" USER="$user" PATH=/usr/bin:/bin TMPDIR=/tmp \
    $(mpirun_of "$1" 2 hello) >/dev/null 2>"$work/$1.works.err" || {
      echo "$1: does not run, left out: $(grep -m1 -E 'FATAL|ERROR' "$work/$1.works.err" || tail -n 1 "$work/$1.works.err")"
      return 1
    }
}
modes=()
for m in native native-none sharens per-rank sif sandbox; do works "$m" && modes+=("$m"); done
have() { [[ " ${modes[*]} " == *" $1 "* ]]; }

# Ping-pong and allreduce, the modes interleaved round by round, each round
# starting with the next one (the first of a round measured faster here).
pp_modes=(native sharens per-rank native-none)
for r in $(seq "$runs"); do
  for i in "${!pp_modes[@]}"; do
    m=${pp_modes[$(((i + r) % ${#pp_modes[@]}))]}
    have "$m" || continue
    # shellcheck disable=SC2046
    as_user timeout -k 5 180 $(mpirun_of "$m" 2 pingpong) >"pp.$m.$r" 2>/dev/null || echo "ping-pong $m run $r failed"
    # shellcheck disable=SC2046
    as_user timeout -k 5 120 $(mpirun_of "$m" 2 allreduce) >"ar.$m.$r" 2>/dev/null || echo "allreduce $m run $r failed"
  done
done

# Start-up: wall time of whole jobs (hyperfine, one warm-up run), each way
# of running on its own so that a failure loses only its own figure; the
# jobs' stderr is kept to say why.
start_modes=()
for m in native sif sharens sandbox; do have "$m" && start_modes+=("$m"); done
for n in $ranks; do
  for m in "${start_modes[@]}"; do
    as_user hyperfine --style none --warmup 1 --runs "$runs" --export-json "start.$m.$n.json" \
      -n "$m" "$(mpirun_of "$m" "$n" hello) 2>>$work/start.$m.$n.err" >/dev/null 2>&1 || {
        echo "start-up, $m, $n ranks: a job failed: $(grep -m1 -E 'FATAL|ERROR|rror' "start.$m.$n.err" || tail -n 1 "start.$m.$n.err")"
        rm -f "start.$m.$n.json"
      }
  done
done

# Memory: the summed PSS of every process of a job but mpirun (the ranks,
# the containers' monitors and FUSE servers, also those that left mpirun's
# tree), sampled while all ranks sleep 2 s after MPI_Init.
pss_sample() { # MODE N
  local out=$work/mem.$1.$2.out
  # shellcheck disable=SC2046
  as_user $(mpirun_of "$1" "$2" hello 2) >"$out" 2>/dev/null &
  local pid=$!
  python3 - "$pid" "$2" "$out" "$user" "$work" "$v" <<'PY' || echo "n/a n/a"
import os, pwd, sys, time
mpirun, n, out, user, work, vessel = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
uid = pwd.getpwnam(user).pw_uid
deadline = time.time() + 60
while time.time() < deadline:
    try:
        if sum(l.startswith("hello from rank") for l in open(out)) >= n:
            break
    except FileNotFoundError:
        pass
    time.sleep(0.05)
else:
    sys.exit(1)
time.sleep(0.5)  # every rank past the barrier, asleep
procs = {}
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            st = open(f"/proc/{p}/stat").read()
            ppid = int(st.rsplit(")", 1)[1].split()[1])
            if os.stat(f"/proc/{p}").st_uid == uid:
                procs[int(p)] = (ppid, open(f"/proc/{p}/cmdline", "rb").read())
        except OSError:
            pass
def under(p):
    while p in procs:
        p = procs[p][0]
        if p == mpirun:
            return True
    return False
total = runtime = 0
for p, (_, cmd) in procs.items():
    if p != mpirun and (under(p) or work.encode() in cmd):
        try:
            pss = sum(int(l.split()[1]) for l in open(f"/proc/{p}/smaps_rollup") if l.startswith("Pss:"))
            total += pss
            # Vessel's own processes (monitors, FUSE servers, a shared
            # container's init), not the ranks.
            if os.readlink(f"/proc/{p}/exe") == vessel:
                runtime += pss
        except OSError:
            pass
print(f"{total / 1024:.1f} {runtime / 1024:.1f}")
PY
  wait "$pid" || true
}
for n in $ranks; do
  for m in "${start_modes[@]}"; do
    echo "$m $n $(pss_sample "$m" "$n")" >>mem.txt
  done
done

python3 - "$runs" "$ranks" "${modes[*]}" <<'PY'
import glob, json, math, os, statistics, sys
runs, ranks, modes = int(sys.argv[1]), sys.argv[2].split(), sys.argv[3].split()

def med(xs):
    return statistics.median(xs) if xs else None

def ratio(a, b):
    return f"{a / b:5.2f}x" if a is not None and b else "  n/a"

def fmt(x, spec):
    return format(x, spec) if x is not None else "n/a".rjust(len(format(0.0, spec)))

def goal(text, ok):
    print(f"{'met   ' if ok else 'MISSED'} {text}")

# size -> mode -> [latency], [bandwidth]
lat, bw = {}, {}
for m in ("native", "sharens", "per-rank", "native-none"):
    for f in glob.glob(f"pp.{m}.*"):
        for line in open(f):
            p = line.split()
            if len(p) == 3 and p[0].isdigit():
                lat.setdefault(int(p[0]), {}).setdefault(m, []).append(float(p[1]))
                bw.setdefault(int(p[0]), {}).setdefault(m, []).append(float(p[2]))
pp = [m for m in ("native", "sharens", "per-rank", "native-none") if m in modes]
print(f"Ping-pong, 2 ranks, median of {runs} runs (per-rank and native-none: vader single-copy none; ratios to native)")
head = f"{'size B':>8} " + "".join(f"{m + ' us':>12} {'x':>6} " for m in pp) + " | " + "".join(f"{m + ' MB/s':>14} {'x':>6} " for m in pp)
print(head)
for size in sorted(lat):
    nl = med(lat[size].get("native", []))
    nb = med(bw[size].get("native", []))
    row = f"{size:8d} "
    for m in pp:
        x = med(lat[size].get(m, []))
        row += f"{fmt(x, '12.3f')} {ratio(x, nl):>6} "
    row += " | "
    for m in pp:
        x = med(bw[size].get(m, []))
        row += f"{fmt(x, '14.1f')} {ratio(x, nb):>6} "
    print(row)

def geo(m, table, sizes):
    rs = []
    for s in sizes:
        a, b = med(table.get(s, {}).get(m, [])), med(table.get(s, {}).get("native", []))
        if a is None or not b:
            return None
        rs.append(a / b)
    return math.exp(sum(map(math.log, rs)) / len(rs)) if rs else None

small = [s for s in lat if s <= 4096]
large = [s for s in bw if s >= 65536]

print()
ar = {m: med([float(l.split()[-2]) for f in glob.glob(f"ar.{m}.*") for l in open(f) if l.startswith("allreduce")]) for m in pp}
print(f"Allreduce, 65536 doubles, 2 ranks, median of {runs} runs: " +
      ", ".join(f"{m} {fmt(ar[m], '.1f')} us ({ratio(ar[m], ar.get('native')).strip()})" for m in pp))

start = {}
for f in glob.glob("start.*.json"):
    try:
        for r in json.load(open(f))["results"]:
            start[(r["command"], f.split(".")[-2])] = r["median"]
    except (OSError, ValueError, KeyError):
        pass
mem, mem_rt = {}, {}
if os.path.exists("mem.txt"):
    for line in open("mem.txt"):
        m, n, v, rt = line.split()
        mem[(m, n)] = float(v) if v != "n/a" else None
        mem_rt[(m, n)] = float(rt) if rt != "n/a" else None
sm = [m for m in ("native", "sif", "sharens", "sandbox") if m in modes]
print()
print(f"Start-up (mpirun -np N hello, median of {runs} runs, s) and summed PSS of the job (MiB, one sample)")
print(f"{'N':>3} " + "".join(f"{m + ' s':>12} {'x':>6} " for m in sm) + " | " + "".join(f"{m + ' MiB':>13} {'x':>6} " for m in sm))
for n in ranks:
    row = f"{n:>3} "
    for m in sm:
        x = start.get((m, n))
        row += f"{fmt(x, '12.3f')} {ratio(x, start.get(('native', n))):>6} "
    row += " | "
    for m in sm:
        x = mem.get((m, n))
        row += f"{fmt(x, '13.1f')} {ratio(x, mem.get(('native', n))):>6} "
    print(row)

print(f"of which Vessel's own processes (monitors, FUSE servers, shared init), {ranks[-1]} ranks: " +
      ", ".join(f"{m} {fmt(mem_rt.get((m, ranks[-1])), '.1f')} MiB" for m in sm if m != "native"))
print()
for m in ("sharens", "per-rank"):
    if m not in modes:
        goal(f"{m}: does not run", False)
        continue
    g = geo(m, lat, small)
    goal(f"{m}: latency (8 B - 4 KiB, geometric mean) <= 1.05x native: {fmt(g, '.2f')}x", g is not None and g <= 1.05)
    g = geo(m, bw, large)
    goal(f"{m}: bandwidth (64 KiB - 4 MiB, geometric mean) >= 0.95x native: {fmt(g, '.2f')}x", g is not None and g >= 0.95)
top = ranks[-1]
t, tn = start.get(("sharens", top)), start.get(("native", top))
goal(f"--sharens {top} ranks start <= 1.2x native: {ratio(t, tn).strip()}", t is not None and tn and t <= 1.2 * tn)
x, xn = mem.get(("sharens", top)), mem.get(("native", top))
goal(f"--sharens {top} ranks memory <= 1.3x native: {ratio(x, xn).strip()}", x is not None and xn and x <= 1.3 * xn)
PY
