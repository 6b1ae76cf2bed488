#!/usr/bin/env bash
# Vessel under a real two-node Slurm (munge + slurmctld + slurmd on node1 and
# node2, each in its own network namespace: .ci/slurm.sh), as an
# unprivileged user: batch jobs and job steps run containers that see their
# SLURM_* variables, steps span both nodes, scancel stops the payload with
# SIGTERM and clears both nodes, leaving nothing behind, and an instance
# started in a job ends with it; Open MPI of the MPI image runs across the
# nodes under srun --mpi=pmix; the SPANK plugin of contrib/spank runs steps
# and batch scripts in a container with --container-image (one container
# per node for a step's tasks, --sharens) and leaves steps without it alone.
#   tests/slurm/run.sh VESSEL_BINARY IMAGE.sif
# VESSEL_TEST_MPI_SIF: the Open MPI image (scripts/make-mpi-image.sh;
# default /var/cache/vessel-ci/mpi/mpi.sif); its cases are skipped without
# it, and the --sharens ones with a runtime that lacks the flag.
# Run as root (it starts the daemons). Prints "ok: …", "FAILED: …" and
# "skipped: …" lines (skips also to $VESSEL_TEST_SKIP_LOG), then
# "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/../.."
vessel=${1:?usage: run.sh VESSEL_BINARY IMAGE}
image=${2:?usage: run.sh VESSEL_BINARY IMAGE}
user=${VESSEL_TEST_USER:-vtest}

state=$(mktemp -d)
work=$(mktemp -d)
chmod 0755 "$work"
chown "$user": "$work"
cleanup() {
  .ci/slurm.sh stop "$state" >/dev/null 2>&1 || true
  tests/gpu/fake-driver.sh remove >/dev/null 2>&1 || true
  rm -f /etc/slurm/gres.conf
  rm -rf "$state" "$work"
}
trap cleanup EXIT
# The daemons load the SPANK plugin, with this binary as its runtime.
export VESSEL_SLURM_VESSEL=$vessel
# The plugin runs the tasks of a step on a node in one container (vessel
# exec --sharens); a runtime without --sharens gets sharens=no, and the
# cases that need it are skipped.
# (--help lists the flag before it works: try it.)
if (cd "$work" && setpriv --reuid="$user" --regid="$user" --init-groups env -i HOME="/home/$user" \
  PATH=/usr/bin:/bin TMPDIR=/tmp "$vessel" exec --sharens "$image" true) >/dev/null 2>&1; then
  sharens=yes
else
  sharens=no
fi
export VESSEL_SLURM_SPANK_ARGS="sharens=$sharens"
.ci/slurm.sh start "$state"

passed=0 failed=0
check() {
  local name=$1; shift
  if "$@"; then
    echo "ok: $name"; passed=$((passed + 1))
  else
    echo "FAILED: $name"; failed=$((failed + 1))
  fi
}
# A case that cannot run here: counted by scripts/test.sh through its skip log.
skip() {
  echo "skipped: $*"
  if [ -n "${VESSEL_TEST_SKIP_LOG:-}" ]; then echo "slurm: $*" >>"$VESSEL_TEST_SKIP_LOG"; fi
}
as_user() {
  setpriv --reuid="$user" --regid="$user" --init-groups \
    env -i HOME="/home/$user" USER="$user" PATH=/usr/bin:/bin TMPDIR=/tmp "$@"
}

# A step of two tasks: each container prints the rank Slurm gave it.
step_ranks() {
  local out
  out=$(cd "$work" && as_user srun -n 2 "$vessel" exec "$image" sh -c 'echo "rank=$SLURM_PROCID of $SLURM_NTASKS"' | sort)
  echo "$out"
  [ "$out" = "$(printf 'rank=0 of 2\nrank=1 of 2')" ]
}
check "srun -n 2 vessel exec: each task sees its SLURM_PROCID" step_ranks

# A batch job, waited for, writing what its container saw.
batch_job() {
  cat > "$work/job.sh" <<JOB
#!/bin/sh
exec "$vessel" exec "$image" sh -c 'echo "job=\$SLURM_JOB_ID rank=\$SLURM_PROCID user=\$(id -un)"'
JOB
  chmod 0755 "$work/job.sh"
  (cd "$work" && as_user sbatch --wait --quiet -o "$work/job.out" "$work/job.sh")
  cat "$work/job.out"
  grep -Eq "^job=[0-9]+ rank=0 user=$user\$" "$work/job.out"
}
check "sbatch job runs vessel exec and sees its job" batch_job

# scancel: the payload gets SIGTERM (through the monitor), and no process
# of the job is left afterwards.
cancel_job() {
  cat > "$work/long.sh" <<JOB
#!/bin/sh
exec "$vessel" exec "$image" sh -c 'trap "echo got-term > $work/term.out; exit 0" TERM; echo running > $work/running; while :; do sleep 0.1; done'
JOB
  chmod 0755 "$work/long.sh"
  local id
  id=$(cd "$work" && as_user sbatch --parsable -o /dev/null "$work/long.sh")
  for _ in $(seq 300); do [ -e "$work/running" ] && break; sleep 0.1; done
  [ -e "$work/running" ] || { echo "the job never started"; return 1; }
  as_user scancel "$id"
  for _ in $(seq 300); do [ -s "$work/term.out" ] && break; sleep 0.1; done
  echo "payload wrote: $(cat "$work/term.out" 2>/dev/null)"
  [ "$(cat "$work/term.out" 2>/dev/null)" = got-term ] || return 1
  # Nothing of the job may survive: no monitor, no payload.
  for _ in $(seq 100); do
    pgrep -u "$user" -f "$vessel|sleep 0.1" >/dev/null || return 0
    sleep 0.1
  done
  echo "left running:"; pgrep -a -u "$user" -f "$vessel|sleep 0.1"
  return 1
}
check "scancel delivers SIGTERM to the payload and leaves nothing running" cancel_job

# Two nodes: a step of four tasks over node1 and node2, two on each, each
# task in its own container on its node (hostname and SLURMD_NODENAME).
two_node_step() {
  local out
  out=$(cd "$work" && as_user srun -N 2 -n 4 "$vessel" exec "$image" \
    sh -c 'echo "$SLURMD_NODENAME rank=$SLURM_PROCID host=$(hostname)"' | sort -t= -k2n)
  echo "$out"
  [ "$out" = "$(printf 'node1 rank=0 host=node1\nnode1 rank=1 host=node1\nnode2 rank=2 host=node2\nnode2 rank=3 host=node2')" ]
}
check "srun -N 2 -n 4 vessel exec: two tasks on each node, in containers there" two_node_step

# scancel of a job running on both nodes: the step's containers end on
# both, no process of the user is left (monitor, payload, FUSE server), no
# session directory is left in the job's TMPDIR (a directory of its own, so
# that other runs of the user cannot interfere), and the job leaves squeue.
#   two_node_cancel TAG TASKS_PER_NODE SRUN_ARGS...: the job's step is
#   srun SRUN_ARGS... sh -c PAYLOAD (SRUN_ARGS: vessel exec IMAGE, or
#   --container-image=IMAGE).
# The user's instance records on node1 and node2 (under the home directory,
# one directory per host name).
node_records() {
  local app
  app=$(getent passwd "$user" | cut -d: -f6)/.apptainer/instances/app
  find "$app/node1/$user" "$app/node2/$user" -mindepth 1 -maxdepth 1 2>/dev/null | sort
}
two_node_cancel() {
  local tag=$1 per_node=$2 id left f n tmp=$work/tmp-$1
  shift 2
  mkdir -m 0700 "$tmp" && chown "$user": "$tmp"
  # Instance records of the nodes (shared containers are instances), kept
  # per host name: the job's must go with it.
  local records
  records=$(node_records)
  cat > "$work/two-$tag.sh" <<JOB
#!/bin/sh
[ "\$TMPDIR" = "$tmp" ] || { echo "TMPDIR is \$TMPDIR"; exit 1; }
exec srun $(printf '%q ' "$@") sh -c 'touch "$work/up-$tag.\$SLURMD_NODENAME.\$SLURM_PROCID"; exec sleep 7771'
JOB
  chmod 0755 "$work/two-$tag.sh"
  id=$(cd "$work" && as_user env TMPDIR="$tmp" sbatch -N 2 --ntasks-per-node="$per_node" --parsable -o "$work/two-$tag.out" "$work/two-$tag.sh")
  up() { n=0; for f in "$work/up-$tag".node[12].*; do [ -e "$f" ] && n=$((n + 1)); done; [ "$n" -eq $((2 * per_node)) ]; }
  for _ in $(seq 300); do up && break; sleep 0.1; done
  up || { echo "the job did not start its $((2 * per_node)) tasks on both nodes"; ls "$work"; cat "$work/two-$tag.out"; return 1; }
  echo "running on $(squeue -h -j "$id" -o %N): $(cd "$work" && echo up-"$tag".*)"
  as_user scancel "$id"
  for _ in $(seq 300); do [ -z "$(squeue -h -j "$id" 2>/dev/null)" ] && break; sleep 0.1; done
  [ -z "$(squeue -h -j "$id" 2>/dev/null)" ] || { echo "job $id still in squeue: $(squeue -h -j "$id")"; return 1; }
  for _ in $(seq 100); do
    pgrep -u "$user" -f "$vessel|sleep 7771" >/dev/null || break
    sleep 0.1
  done
  left=$(pgrep -a -u "$user" -f "$vessel|sleep 7771" || true)
  [ -z "$left" ] || { echo "left running:"; echo "$left"; return 1; }
  if [ -n "$(ls -A "$tmp")" ]; then
    echo "left in the job's TMPDIR $tmp:"; ls -la "$tmp"; return 1
  fi
  if [ "$(node_records)" != "$records" ]; then
    echo "instance records left:"; comm -13 <(echo "$records") <(node_records); return 1
  fi
  echo "job $id gone from squeue, nothing of it left on either node"
}
check "scancel of a two-node job clears both nodes (processes, session directories, squeue)" \
  two_node_cancel exec 1 "$vessel" exec "$image"

# MPI across the two nodes: Open MPI of the image (the hybrid model),
# launched by srun through Slurm's PMIx plugin, ranks talking TCP between
# the nodes' network namespaces (the only interfaces there are lo and the
# node's veth, so Open MPI needs no interface selection).
mpi_sif=${VESSEL_TEST_MPI_SIF:-/var/cache/vessel-ci/mpi/mpi.sif}
# mpi_srun NAME SECONDS SRUN_ARGS...: srun --mpi=pmix as the user in $work,
# killed after SECONDS (a hang is a failure, not a stuck CI); stdout and
# stderr to $work/NAME.out and .err.
mpi_srun() {
  local name=$1 secs=$2 rc=0
  shift 2
  (cd "$work" && as_user timeout -k 5 "$secs" srun --mpi=pmix "$@") \
    >"$work/$name.out" 2>"$work/$name.err" </dev/null || rc=$?
  if [ $rc -ne 0 ]; then
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then echo "$name: no end within ${secs}s (hung)"; else echo "$name: exit status $rc"; fi
    tail -n 20 "$work/$name.out" "$work/$name.err"
  fi
  return $rc
}
mpi_hello_two_nodes() {
  mpi_srun hello2 90 -N 2 -n 4 "$vessel" exec "$mpi_sif" /opt/mpitests/hello || return 1
  local out
  out=$(grep '^hello from' "$work/hello2.out" | sort)
  echo "$out"
  [ "$out" = "$(printf 'hello from rank 0 of 4 on node1\nhello from rank 1 of 4 on node1\nhello from rank 2 of 4 on node2\nhello from rank 3 of 4 on node2')" ]
}
mpi_allreduce_two_nodes() {
  mpi_srun allreduce2 120 -N 2 -n 4 "$vessel" exec "$mpi_sif" /opt/mpitests/allreduce || return 1
  cat "$work/allreduce2.out"
  grep -Eq '^allreduce 65536 doubles 4 ranks: [0-9.]+ us$' "$work/allreduce2.out"
}
# One line per size, 8 B to 4 MiB (tests/mpi/pingpong.c).
pingpong_complete() {
  local out=$work/$1.out
  [ "$(awk 'NF == 3 && $1 ~ /^[0-9]+$/' "$out" | wc -l)" -eq 20 ] && [ "$(tail -n 1 "$out" | cut -d' ' -f1)" = 4194304 ] && return 0
  echo "$1: incomplete ping-pong:"; cat "$out" "$work/$1.err"
  return 1
}
mpi_pingpong_two_nodes() {
  mpi_srun pingpong2 180 -N 2 -n 2 "$vessel" exec "$mpi_sif" /opt/mpitests/pingpong || return 1
  tail -n 1 "$work/pingpong2.out"
  pingpong_complete pingpong2
}
# Both ranks on one node in one container (--sharens): Open MPI's defaults,
# and no "CMA is not available" (that warning means two user namespaces).
mpi_pingpong_sharens() {
  mpi_srun pingpong-sharens 180 -N 1 -n 2 "$vessel" exec --sharens "$mpi_sif" /opt/mpitests/pingpong || return 1
  tail -n 1 "$work/pingpong-sharens.out"
  pingpong_complete pingpong-sharens || return 1
  if grep -q "CMA is not available" "$work/pingpong-sharens.err"; then
    echo "Open MPI says CMA is not available (the ranks are in different user namespaces):"
    cat "$work/pingpong-sharens.err"; return 1
  fi
}
# Both ranks on one node, each in a container of its own, Open MPI's
# defaults: CMA cannot cross the user namespaces, and the runtime has the
# ranks copy instead (4 MiB messages used to hang).
mpi_pingpong_per_rank() {
  mpi_srun pingpong-per-rank 180 -N 1 -n 2 "$vessel" exec "$mpi_sif" /opt/mpitests/pingpong || return 1
  tail -n 1 "$work/pingpong-per-rank.out"
  pingpong_complete pingpong-per-rank
}
if [ ! -r "$mpi_sif" ]; then
  skip "srun --mpi=pmix over two nodes (no MPI image $mpi_sif; set VESSEL_TEST_MPI_SIF)"
elif ! srun --mpi=list 2>&1 | grep -qw pmix; then
  echo "FAILED: srun --mpi=list offers no pmix: $(srun --mpi=list 2>&1 | tr '\n' ' ')"; failed=$((failed + 1))
else
  check "srun --mpi=pmix -N 2 -n 4 vessel exec mpi.sif hello: ranks 0-1 on node1, 2-3 on node2" mpi_hello_two_nodes
  check "srun --mpi=pmix -N 2 -n 4 vessel exec mpi.sif allreduce: sums right over TCP between nodes" mpi_allreduce_two_nodes
  check "srun --mpi=pmix -N 2 -n 2 vessel exec mpi.sif pingpong: 8 B to 4 MiB between the nodes" mpi_pingpong_two_nodes
  check "srun --mpi=pmix -N 1 -n 2 vessel exec mpi.sif pingpong, a container per rank, Open MPI's defaults: 8 B to 4 MiB" mpi_pingpong_per_rank
  if [ "$sharens" = yes ]; then
    check "srun --mpi=pmix -N 1 -n 2 vessel exec --sharens: ping-pong to 4 MiB with Open MPI's defaults, CMA usable" mpi_pingpong_sharens
  else
    skip "srun --mpi=pmix -N 1 -n 2 vessel exec --sharens ping-pong (this vessel has no --sharens)"
  fi
fi

# An instance started in a batch job ends with the job: its monitor left
# the job's process tree (it detaches), so its init watches the job step.
# Checked by the pids the instance recorded, gone or <defunct> (PID 1 does
# not reap here), not by ps alone.
instance_job() {
  local name=slurm-inst-$$ list
  cat > "$work/inst.sh" <<JOB
#!/bin/sh
"$vessel" instance start "$image" $name || exit 1
"$vessel" instance list --json > "$work/inst.json"
JOB
  chmod 0755 "$work/inst.sh"
  # On node1, where the list below is asked: records are kept per host
  # name, and each node has its own.
  (cd "$work" && as_user sbatch -w node1 --wait --quiet -o "$work/inst.out" "$work/inst.sh") || { cat "$work/inst.out"; return 1; }
  cat "$work/inst.out"
  local pid
  pid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["instances"][0]["pid"])' "$work/inst.json") || return 1
  echo "the instance's init was pid $pid"
  ended() { [ ! -r "/proc/$1/stat" ] || [ "$(sed 's/^.*) //' "/proc/$1/stat" | cut -d' ' -f1)" = Z ]; }
  for _ in $(seq 300); do ended "$pid" && break; sleep 0.1; done
  ended "$pid" || { echo "the instance outlived its job"; return 1; }
  list=$(cd "$work" && as_user srun -w node1 "$vessel" instance list $name)
  echo "$list"
  [ "$(wc -l <<<"$list")" -eq 1 ]
}
check "an instance started in an sbatch job ends with the job, nothing left running" instance_job

# The SPANK plugin (contrib/spank): --container-image and its companions.
# What the image says of itself, to compare with (CI's image may carry the
# host's Debian version: the container also shows APPTAINER_CONTAINER).
image_version=$(cd "$work" && as_user "$vessel" exec "$image" cat /etc/debian_version)
in_container() { # srun OPTIONS... COMMAND..., as the user, stdout and stderr
  (cd "$work" && as_user srun "$@" 2>&1)
}
spank_image() {
  local out
  out=$(in_container --container-image="$image" sh -c 'cat /etc/debian_version; echo "container=$APPTAINER_CONTAINER"')
  echo "$out"
  [ "$out" = "$(printf '%s\ncontainer=%s' "$image_version" "$image")" ]
}
check "srun --container-image runs the task in the image (its /etc/debian_version)" spank_image

spank_alias_tasks() {
  local out
  out=$(in_container -n 2 --singularity-image="$image" sh -c 'echo "rank=$SLURM_PROCID $APPTAINER_CONTAINER"' | sort)
  echo "$out"
  [ "$out" = "$(printf 'rank=0 %s\nrank=1 %s' "$image" "$image")" ]
}
check "srun -n 2 --singularity-image (the alias): every task in the container, with its SLURM_PROCID" spank_alias_tasks

spank_untouched() {
  local out
  out=$(in_container sh -c 'cat /etc/debian_version; echo "container=${APPTAINER_CONTAINER:-none}"')
  echo "$out"
  [ "$out" = "$(printf '%s\ncontainer=none' "$(cat /etc/debian_version)")" ]
}
check "srun without --container-image is left alone (host's /etc/debian_version, no container)" spank_untouched

spank_mounts() {
  local out
  mkdir -p "$work/mnt" && echo bound > "$work/mnt/f" && chown -R "$user": "$work/mnt"
  out=$(in_container --container-image="$image" --container-mounts="$work/mnt:/mnt/rw,$work/mnt:/mnt/ro:ro" \
    sh -c 'cat /mnt/rw/f; touch /mnt/rw/new && echo rw-written; touch /mnt/ro/new2 2>/dev/null || echo ro-refused')
  echo "$out"
  [ "$out" = "$(printf 'bound\nrw-written\nro-refused')" ] && [ -e "$work/mnt/new" ] && [ ! -e "$work/mnt/new2" ]
}
check "srun --container-mounts=SRC:DST,SRC:DST:ro: binds visible, :ro read-only" spank_mounts

spank_workdir() {
  local out
  out=$(in_container --container-image="$image" --container-workdir=/usr/share pwd)
  echo "$out"
  [ "$out" = /usr/share ]
}
check "srun --container-workdir=/usr/share starts the task there" spank_workdir

# PATH is one the container sets itself (the image's default) unless
# --container-env passes the task's own.
spank_env() {
  local with without
  with=$(cd "$work" && as_user env PATH=/opt/vessel-test:/usr/bin:/bin VTEST_X=from-slurm \
    srun --container-image="$image" --container-env=PATH,VTEST_X sh -c 'echo "$PATH $VTEST_X"' 2>&1)
  without=$(cd "$work" && as_user env PATH=/opt/vessel-test:/usr/bin:/bin \
    srun --container-image="$image" sh -c 'echo "$PATH"' 2>&1)
  echo "with: $with"; echo "without: $without"
  [ "$with" = "/opt/vessel-test:/usr/bin:/bin from-slurm" ] && [ "$without" != /opt/vessel-test:/usr/bin:/bin ]
}
check "srun --container-env=PATH,VAR passes the task's values over the image's" spank_env

spank_writable() {
  local out
  out=$(in_container --container-image="$image" --container-writable sh -c 'echo written > /x && cat /x')
  echo "$out"
  [ "$out" = written ] || return 1
  if in_container --container-image="$image" sh -c 'echo written > /x'; then
    echo "/x was writable without --container-writable"; return 1
  fi
}
check "srun --container-writable lets a task write /x (read-only without it)" spank_writable

spank_remap_root() {
  local out
  out=$(in_container --container-image="$image" --container-remap-root id -u)
  echo "$out"
  [ "$out" = 0 ]
}
check "srun --container-remap-root: the task is uid 0 in the container" spank_remap_root

spank_batch() {
  cat > "$work/cjob.sh" <<JOB
#!/bin/sh
#SBATCH --container-image=$image
cat /etc/debian_version
echo "container=\$APPTAINER_CONTAINER job=\$SLURM_JOB_ID"
JOB
  chmod 0755 "$work/cjob.sh"
  (cd "$work" && as_user sbatch --wait --quiet -o "$work/cjob.out" "$work/cjob.sh") || { cat "$work/cjob.out"; return 1; }
  cat "$work/cjob.out"
  [ "$(head -n 1 "$work/cjob.out")" = "$image_version" ] &&
    grep -Eqx "container=$image job=[0-9]+" "$work/cjob.out"
}
check "sbatch with #SBATCH --container-image runs the batch script in the container" spank_batch

# One container per node for the tasks of a step (the plugin's --sharens).
# nsprint.sh TAG COUNT, run by each task in its container: prints the task's
# node and mount and user namespaces, then waits (30 s at most) until COUNT
# tasks of TAG have printed theirs, so that no namespace ends (and its
# number is reused by a later one) while another task is still to compare.
cat > "$work/nsprint.sh" <<'SH'
#!/bin/sh
tag=$1 count=$2 dir=$(dirname "$0")
echo "$tag $SLURMD_NODENAME $(readlink /proc/self/ns/mnt) $(readlink /proc/self/ns/user)"
touch "$dir/bar.$tag.$SLURMD_NODENAME.$SLURM_STEP_ID.$SLURM_PROCID"
i=0
while [ "$(ls "$dir" | grep -c "^bar\.$tag\.")" -lt "$count" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
SH
chmod 0755 "$work/nsprint.sh"
# Four tasks over two nodes: the two on a node show the same namespaces,
# the nodes different ones, and none the host's.
spank_sharens() {
  local out host_ns n1 n2
  host_ns=$(as_user readlink /proc/self/ns/mnt)
  out=$(in_container -N 2 -n 4 --container-image="$image" "$work/nsprint.sh" step 4 | sort)
  echo "$out"
  [ "$(grep -c '^step node[12] ' <<<"$out")" -eq 4 ] || return 1
  n1=$(grep '^step node1 ' <<<"$out" | sort -u)
  n2=$(grep '^step node2 ' <<<"$out" | sort -u)
  [ "$(wc -l <<<"$n1")" -eq 1 ] || { echo "the tasks on node1 are in different containers"; return 1; }
  [ "$(wc -l <<<"$n2")" -eq 1 ] || { echo "the tasks on node2 are in different containers"; return 1; }
  [ "${n1#step node1 }" != "${n2#step node2 }" ] || { echo "node1 and node2 share namespaces"; return 1; }
  if grep -qF " $host_ns " <<<"$out"; then echo "a task ran in the host's mount namespace ($host_ns)"; return 1; fi
}
# In a batch job (its script outside any container), two steps at once on
# one node (--overlap): the tasks of each step share a container, the two
# steps have one each.
spank_sharens_batch() {
  cat > "$work/sjob.sh" <<JOB
#!/bin/sh
srun --overlap -n 2 --container-image="$image" "$work/nsprint.sh" batch 4 > "$work/sjob.a" &
srun --overlap -n 2 --container-image="$image" "$work/nsprint.sh" batch 4 > "$work/sjob.b" &
wait
JOB
  chmod 0755 "$work/sjob.sh"
  (cd "$work" && as_user sbatch -N 1 -n 2 --wait --quiet -o "$work/sjob.out" "$work/sjob.sh") || { cat "$work/sjob.out"; return 1; }
  cat "$work/sjob.out" "$work/sjob.a" "$work/sjob.b"
  local a b
  a=$(sort -u "$work/sjob.a")
  b=$(sort -u "$work/sjob.b")
  [ "$(cat "$work/sjob.a" "$work/sjob.b" | grep -c '^batch node1 ')" -eq 4 ] || { echo "expected 4 task lines"; return 1; }
  [ "$(wc -l <<<"$a")" -eq 1 ] && [ "$(wc -l <<<"$b")" -eq 1 ] || { echo "the tasks of a step are in different containers"; return 1; }
  [ "$a" != "$b" ] || { echo "two steps share one container"; return 1; }
}
check "scancel of a two-node job with two tasks per node in --container-image containers clears both nodes" \
  two_node_cancel spank 2 --container-image="$image"
if [ "$sharens" = yes ]; then
  check "srun -N 2 -n 4 --container-image: the two tasks on each node share one container (mount and user namespaces), one per node" spank_sharens
  check "sbatch: the two tasks of an srun --container-image step share a container; the job's next step gets its own" spank_sharens_batch
else
  skip "srun --container-image with tasks sharing their node's container (this vessel has no --sharens)"
  skip "sbatch: steps' tasks sharing a container (this vessel has no --sharens)"
fi

spank_bad_image() {
  local out rc=0
  out=$(in_container --container-image="$work/missing.sif" true) || rc=$?
  echo "$out"
  [ "$rc" -ne 0 ] && grep -q -- "--container-image=$work/missing.sif: No such file or directory" <<<"$out"
}
check "srun --container-image=MISSING fails the step with a clear message" spank_bad_image

spank_bad_option() {
  local out rc=0
  out=$(in_container --container-image="$image" --container-mounts=/tmp:relative true) || rc=$?
  echo "$out"
  [ "$rc" -ne 0 ] && grep -q "container-mounts=/tmp:relative: a destination that is not an absolute path" <<<"$out"
}
check "srun --container-mounts=SRC:relative is refused with a clear message" spank_bad_option

# The site's default binds, from plugstack.conf (binds=...): the daemons
# restarted with the plugin's argument.
spank_site_binds() {
  local out
  out=$(in_container --container-image="$image" sh -c 'cat /mnt/site/f; touch /mnt/site/g 2>/dev/null || echo site-ro')
  echo "$out"
  [ "$out" = "$(printf 'bound\nsite-ro')" ]
}
.ci/slurm.sh stop "$state" >/dev/null 2>&1 || true
VESSEL_SLURM_SPANK_ARGS="sharens=$sharens binds=$work/mnt:/mnt/site:ro" .ci/slurm.sh start "$state"
check "plugstack.conf binds=SRC:DST:ro: every container of the plugin gets the bind" spank_site_binds

# A GPU job: the node's gres.conf lists the fake driver's two GPUs, Slurm
# gives the step one, and `--nv --contain` shows the container that one
# only (Slurm's SLURM_STEP_GPUS names the host's device).
gpu_step() {
  local out
  out=$(cd "$work" && as_user srun --gres=gpu:1 "$vessel" exec --nv --contain "$image" \
    sh -c 'echo "step=$SLURM_STEP_GPUS"; ls /dev | grep "^nvidia[0-9]"')
  echo "$out"
  local step
  step=$(sed -n 's/^step=//p' <<<"$out")
  [ -n "$step" ] && [ "$(grep -c '^nvidia[0-9]' <<<"$out")" -eq 1 ] && grep -qx "nvidia$step" <<<"$out"
}
if tests/gpu/fake-driver.sh install >/dev/null; then
  .ci/slurm.sh stop "$state" >/dev/null 2>&1 || true
  VESSEL_SLURM_GPUS=2 .ci/slurm.sh start "$state"
  check "srun --gres=gpu:1 vessel exec --nv --contain sees the GPU Slurm gave the step" gpu_step
  .ci/slurm.sh stop "$state" >/dev/null 2>&1 || true
  tests/gpu/fake-driver.sh remove
  rm -f /etc/slurm/gres.conf
else
  echo "FAILED: the fake GPU driver could not be installed (a real one present?)"; failed=$((failed + 1))
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
