#!/usr/bin/env bash
# Open MPI jobs with Vessel, as an unprivileged user, on one node, with Open
# MPI's default settings: the host's mpirun starting `vessel exec MPI.sif
# /opt/mpitests/...` per rank (the hybrid model; MPI.sif from
# scripts/make-mpi-image.sh), ranks sharing one container (--sharens: CMA
# works, shared memory kept under --contain and --pid), the bind model (the
# host's Open MPI bound into an image without MPI), and nothing left behind
# when mpirun is killed.
#   tests/mpi/run.sh VESSEL_BINARY MPI.sif [DEBIAN.sif]
# DEBIAN.sif (default $VESSEL_TEST_DEBIAN_SIF) is an image without MPI, for
# the bind model; without one that case is skipped. Run as root (it switches
# to the test user). Prints "ok: ..." or "FAILED: ..." per case and a last
# line "N passed, N failed"; exits 0 only when none failed.
set -euo pipefail
cd "$(dirname "$0")/../.."
vessel=${1:?usage: run.sh VESSEL_BINARY MPI.sif [DEBIAN.sif]}
image=${2:?usage: run.sh VESSEL_BINARY MPI.sif [DEBIAN.sif]}
debian=${3:-${VESSEL_TEST_DEBIAN_SIF:-}}
user=${VESSEL_TEST_USER:-vtest}
src=$PWD/tests/mpi

for c in mpirun mpicc; do
  command -v "$c" >/dev/null || { echo "run.sh: $c missing (apt-get install -y openmpi-bin libopenmpi-dev)" >&2; exit 1; }
done

work=$(mktemp -d)
chmod 0755 "$work"
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

as_user() {
  setpriv --reuid="$user" --regid="$user" --init-groups \
    env -i HOME="/home/$user" USER="$user" PATH=/usr/bin:/bin TMPDIR=/tmp "$@"
}
for f in "$vessel" "$image"; do
  as_user test -r "$f" || { echo "run.sh: $f is not readable by $user" >&2; exit 1; }
done

passed=0 failed=0
check() {
  local name=$1; shift
  if "$@"; then
    echo "ok: $name"; passed=$((passed + 1))
  else
    echo "FAILED: $name"; failed=$((failed + 1))
  fi
}

# mpi NAME SECONDS [ENV=VALUE...] -- MPIRUN_ARGS...: mpirun -np 2 as the user
# in $work, killed after SECONDS (a hang is a failure, not a stuck CI);
# stdout and stderr go to $work/NAME.out and $work/NAME.err.
mpi() {
  local name=$1 secs=$2 envs=()
  shift 2
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  local rc=0
  (cd "$work" && as_user "${envs[@]}" timeout -k 5 "$secs" mpirun -np 2 --oversubscribe "$@") \
    >"$work/$name.out" 2>"$work/$name.err" </dev/null || rc=$?
  if [ $rc -ne 0 ]; then
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then echo "$name: no end within ${secs}s (hung)"; else echo "$name: exit status $rc"; fi
    tail -n 20 "$work/$name.out" "$work/$name.err"
  fi
  return $rc
}

# The ping-pong's output is complete: one line per size, 8 B to 4 MiB.
pingpong_complete() {
  local out=$work/$1.out
  [ "$(awk 'NF == 3 && $1 ~ /^[0-9]+$/' "$out" | wc -l)" -eq 20 ] && [ "$(tail -n 1 "$out" | cut -d' ' -f1)" = 4194304 ] && return 0
  echo "$1: incomplete ping-pong:"; cat "$out"
  return 1
}
# Open MPI's warning when ranks are in different user namespaces.
no_cma_warning() {
  if grep -q "CMA is not available" "$work/$1.err"; then
    echo "$1: Open MPI says CMA is not available:"; cat "$work/$1.err"
    return 1
  fi
}

hello() {
  mpi hello 60 -- "$vessel" exec "$image" /opt/mpitests/hello || return 1
  cat "$work/hello.out"
  [ "$(grep -Ec '^hello from rank [01] of 2 on ' "$work/hello.out")" -eq 2 ] \
    && [ "$(grep -c 'rank 0 of' "$work/hello.out")" -eq 1 ]
}
check "mpirun -np 2 vessel exec mpi.sif hello: both ranks (hybrid model)" hello

# Per-rank containers (one user namespace each): Open MPI's default
# single-copy mechanism (CMA) is refused between them and 4 MiB messages hung
# in vader (issue 19). The runtime now has such ranks copy instead (as if
# OMPI_MCA_btl_vader_single_copy_mechanism=none were exported), so Open
# MPI's defaults work; a user's own choice wins.
pingpong_per_rank() {
  mpi pingpong-per-rank 120 -- \
    "$vessel" exec "$image" /opt/mpitests/pingpong && pingpong_complete pingpong-per-rank
}
check "a container per rank, Open MPI's defaults: ping-pong 8 B to 4 MiB completes" pingpong_per_rank

allreduce() {
  mpi allreduce 120 -- "$vessel" exec "$image" /opt/mpitests/allreduce || return 1
  cat "$work/allreduce.out"
  grep -Eq '^allreduce 65536 doubles 2 ranks: [0-9.]+ us$' "$work/allreduce.out"
}
check "mpirun -np 2 vessel exec mpi.sif allreduce: sums right" allreduce

# --sharens: the ranks share one container, so CMA works with the defaults.
pingpong_sharens() {
  mpi pingpong-sharens 120 -- "$vessel" exec --sharens "$image" /opt/mpitests/pingpong || return 1
  tail -n 1 "$work/pingpong-sharens.out"
  pingpong_complete pingpong-sharens && no_cma_warning pingpong-sharens
}
check "--sharens, Open MPI's defaults: ping-pong 8 B to 4 MiB completes, no CMA warning" pingpong_sharens

# Asking for CMA and shared memory only: Open MPI aborts when the ranks are
# in different user namespaces (cma-different-user-namespace-error) and
# fails when vader cannot reach the peer, instead of falling back.
cma_sharens() {
  mpi cma-sharens 120 -- --mca btl vader,self --mca btl_vader_single_copy_mechanism cma \
    "$vessel" exec --sharens "$image" /opt/mpitests/pingpong && pingpong_complete cma-sharens
}
check "--sharens with btl vader,self and single-copy cma required: ping-pong completes" cma_sharens

same_namespaces() {
  # shellcheck disable=SC2016 # expanded in the container
  mpi ns-sharens 60 -- "$vessel" exec --sharens "$image" \
    sh -c 'echo "$(readlink /proc/self/ns/mnt) $(readlink /proc/self/ns/user)"' || return 1
  cat "$work/ns-sharens.out"
  local host_ns
  host_ns="$(as_user readlink /proc/self/ns/mnt) $(as_user readlink /proc/self/ns/user)"
  [ "$(wc -l <"$work/ns-sharens.out")" -eq 2 ] && [ "$(sort -u "$work/ns-sharens.out" | wc -l)" -eq 1 ] \
    && ! grep -qxF "$host_ns" "$work/ns-sharens.out"
}
check "--sharens: both ranks see the same mount and user namespace (not the host's)" same_namespaces

allreduce_sharens() {
  mpi allreduce-sharens 120 -- "$vessel" exec --sharens "$image" /opt/mpitests/allreduce || return 1
  cat "$work/allreduce-sharens.out"
  grep -Eq '^allreduce 65536 doubles 2 ranks: [0-9.]+ us$' "$work/allreduce-sharens.out"
}
check "--sharens allreduce: sums right" allreduce_sharens

# --contain and --pid with --sharens keep shared memory: vader only (no TCP
# to fall back on), Open MPI's defaults otherwise.
shm_sharens() {
  local tag=shm-sharens$1
  mpi "$tag" 120 -- --mca btl vader,self "$vessel" exec --sharens "$1" "$image" /opt/mpitests/pingpong \
    && pingpong_complete "$tag" && no_cma_warning "$tag"
}
for opt in --contain --pid; do
  check "--sharens $opt: ping-pong over shared memory (btl vader,self) completes" shm_sharens "$opt"
done

# --contain and --pid without --sharens: each rank would get its own
# /dev/shm or PID namespace, which breaks Open MPI's shared memory (falls
# back to TCP, or segfaults): the runtime warns and points to --sharens.
# What Open MPI says is recorded, not checked.
warns_without_sharens() {
  local opt=$1 rc=0
  mpi "note${opt}" 60 -- "$vessel" exec "$opt" "$image" /opt/mpitests/pingpong 65536 >/dev/null || rc=$?
  echo "note: without --sharens, $opt: ping-pong to 64 KiB exit status $rc; warnings and errors:"
  { grep -i -E 'warn|error|signal' "$work/note${opt}.err" || true; } | sed 's/^\[[^]]*\] //' | sort | uniq -c | sed 's/^/note:   /' | head -n 6
  grep -q "^WARNING: $opt .*--sharens" "$work/note${opt}.err"
}
for opt in --contain --pid; do
  check "$opt without --sharens under mpirun: the runtime warns and names --sharens" warns_without_sharens "$opt"
done

# The bind model: the host's Open MPI (its libraries, plugins, help and
# configuration) bound into an image without MPI, running a program
# compiled on the host.
bind_model() {
  mkdir -p "$work/bind/lib"
  mpicc -O2 -o "$work/bind/hello" "$src/hello.c"
  # The libraries the program and Open MPI's and PMIx's plugins need, except
  # the C library's own (the image has the same): copied into one directory
  # that is bound in, as sites bind an MPI installation.
  local plugins=(/usr/lib/x86_64-linux-gnu/openmpi/lib/openmpi3 /usr/lib/x86_64-linux-gnu/pmix2/lib/pmix)
  local existing=()
  for d in "${plugins[@]}" /usr/lib/x86_64-linux-gnu/pmix2 /usr/lib/x86_64-linux-gnu/openmpi /usr/share/openmpi /usr/share/pmix /etc/openmpi; do
    [ -e "$d" ] && existing+=("$d")
  done
  { ldd "$work/bind/hello"; find "${plugins[@]}" -name '*.so' -exec ldd {} + 2>/dev/null; } \
    | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | sort -u \
    | grep -Ev '/(libc|libm|libdl|libpthread|librt|ld-linux-x86-64)\.so' \
    | xargs -r cp -L -t "$work/bind/lib"
  chmod -R a+rX "$work/bind"
  local binds="$work/bind/lib:/opt/hostmpi/lib:ro" d
  for d in "${existing[@]}"; do binds+=",$d:$d:ro"; done
  echo "bound: $(find "$work/bind/lib" -type f | wc -l) libraries, ${existing[*]}"
  mpi bind 60 APPTAINERENV_LD_LIBRARY_PATH=/opt/hostmpi/lib -- \
    "$vessel" exec -B "$binds" "$debian" "$work/bind/hello" || return 1
  cat "$work/bind.out"
  [ "$(grep -Ec '^hello from rank [01] of 2 on ' "$work/bind.out")" -eq 2 ] || return 1
  # The image really has no MPI of its own.
  if as_user "$vessel" exec "$debian" sh -c 'ls /usr/lib/x86_64-linux-gnu/libmpi.so* /usr/bin/mpirun' >/dev/null 2>&1; then
    echo "the image has an MPI of its own"; return 1
  fi
}
if [ -n "$debian" ] && [ -r "$debian" ]; then
  check "bind model: the host's Open MPI bound into an image without MPI runs a host-compiled hello" bind_model
else
  echo "skipped: bind model (no image without MPI: pass DEBIAN.sif or set VESSEL_TEST_DEBIAN_SIF)"
fi

# The runtime's processes of the user that still run (not zombies: PID 1 may
# not reap here): those whose executable is this Vessel (monitors, FUSE
# servers, a shared container's init), whatever their command line says.
vessel_exe=$(readlink -f "$vessel")
runtime_procs() {
  local p
  for p in $(pgrep -u "$user" || true); do
    [ "$(readlink "/proc/$p/exe" 2>/dev/null)" = "$vessel_exe" ] && echo "$p"
  done
  return 0
}
# Every job above has ended: nothing of its containers may still run.
no_strays() {
  local left=
  for _ in $(seq 50); do
    left=$(runtime_procs)
    [ -z "$left" ] && return 0
    sleep 0.1
  done
  echo "still running after their jobs ended:"
  # shellcheck disable=SC2086 # one pid a word
  ps -o pid,ppid,stat,args -p "$(echo $left | tr ' ' ,)" || true
  # Not left to disturb the cases after this one.
  # shellcheck disable=SC2086
  kill -TERM $left 2>/dev/null || true
  sleep 2
  # shellcheck disable=SC2086
  kill -KILL $left 2>/dev/null || true
  return 1
}
check "no container process outlives its job (after all the cases above)" no_strays

# Leftovers: mpirun killed mid-run (SIGTERM, then SIGKILL) while every rank
# sleeps in MPI with a child of its own. Within a few seconds no process of
# the run may remain, no session directory in the TMPDIR the run used, and
# no /dev/shm entry of the user that was not there before. Except where the
# ranks use the host's /dev/shm (a container per rank, as Apptainer): Open
# MPI makes its vader segments there, and after SIGKILL of mpirun a native
# run leaves those too (measured: vader_segment.HOST.UID.JOB.RANK); that case
# only notes them. A shared container's /dev/shm is its own, and goes with it.
user_shm() { find /dev/shm -mindepth 1 -maxdepth 1 -user "$user" 2>/dev/null | sort; }
leftovers() {
  local sig=$1 opts=$2 tag shm_strict=1
  tag=kill-$sig$(tr ' ' '\n' <<<"$opts" | sed 's/^--/-/' | tr -d '\n')
  [ "$sig" = KILL ] && [[ $opts != *--sharens* ]] && shm_strict=0
  local tmp=$work/$tag.tmp marker="sleep 6$RANDOM"
  mkdir "$tmp" && chown "$user": "$tmp"
  user_shm >"$work/$tag.shm-before"
  # The payload: a child that sleeps, and the rank, which sleeps inside MPI
  # after reporting that it is up.
  # shellcheck disable=SC2086 # $opts: zero or one option
  (cd "$work" && exec setpriv --reuid="$user" --regid="$user" --init-groups \
    env -i HOME="/home/$user" USER="$user" PATH=/usr/bin:/bin TMPDIR="$tmp" \
    mpirun -np 2 --oversubscribe "$vessel" exec $opts "$image" \
    sh -c "$marker & exec /opt/mpitests/hello 600") >"$work/$tag.out" 2>"$work/$tag.err" </dev/null &
  local pid=$!
  for _ in $(seq 300); do
    [ "$(grep -c '^hello from rank' "$work/$tag.out")" -eq 2 ] && break
    kill -0 "$pid" 2>/dev/null || break # mpirun gave up
    sleep 0.1
  done
  if [ "$(grep -c '^hello from rank' "$work/$tag.out")" -ne 2 ]; then
    echo "$tag: the ranks did not start"; cat "$work/$tag.out" "$work/$tag.err"
    kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
    # shellcheck disable=SC2046 # one pid a word
    kill -KILL $(runtime_procs) 2>/dev/null || true
    pkill -KILL -u "$user" -f "$marker" 2>/dev/null || true
    return 1
  fi
  sleep 1
  kill "-$sig" "$pid"
  wait "$pid" 2>/dev/null || true
  local ok=1 left=
  for _ in $(seq 50); do
    left=$( { runtime_procs; pgrep -u "$user" -f "$marker|hello 600" || true; } | sort -u)
    [ -z "$left" ] && break
    sleep 0.1
  done
  if [ -n "$left" ]; then
    echo "$tag: still running 5 s after SIG$sig of mpirun:"
    # shellcheck disable=SC2086 # one pid a word
    ps -o pid,ppid,stat,args -p "$(echo $left | tr ' ' ,)" || true
    ok=0
    # Not left to disturb the cases after this one.
    # shellcheck disable=SC2086
    kill -KILL $left 2>/dev/null || true
  fi
  sleep 1 # the session directory's sweeper runs after its monitor ended
  left=$(find "$tmp" -mindepth 1 -maxdepth 1 -name 'vessel-session-*' 2>/dev/null)
  if [ -n "$left" ]; then echo "$tag: session directories left:"; echo "$left"; ok=0; fi
  left=$(user_shm | comm -13 "$work/$tag.shm-before" -)
  if [ -n "$left" ]; then
    if [ $shm_strict -eq 1 ]; then
      echo "$tag: /dev/shm entries left:"; echo "$left"; ok=0
    else
      echo "note: $tag: Open MPI's /dev/shm entries left (as natively): $(tr '\n' ' ' <<<"$left")"
    fi
    # Ours: removed so that the next case starts clean.
    xargs -r rm -rf <<<"$left"
  fi
  [ $ok -eq 1 ]
}
for sig in TERM KILL; do
  shm=$([ $sig = KILL ] || echo ', no /dev/shm entry')
  check "mpirun killed with SIG$sig mid-run (a container per rank): no process or session directory left$shm" leftovers $sig ""
  check "mpirun killed with SIG$sig mid-run (--sharens): no process, session directory or /dev/shm entry left" leftovers $sig --sharens
  check "mpirun killed with SIG$sig mid-run (--sharens --contain): no process, session directory or /dev/shm entry left" leftovers $sig "--sharens --contain"
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
