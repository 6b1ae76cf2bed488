#!/usr/bin/env bash
# Vessel under a real single-node Slurm (munge + slurmctld + slurmd), as an
# unprivileged user: batch jobs and job steps run containers that see their
# SLURM_* variables, scancel stops the payload with SIGTERM, leaving
# nothing behind, and an instance started in a job ends with it.
#   tests/slurm/run.sh VESSEL_BINARY IMAGE.sif
# Run as root (it starts the daemons). Prints "N passed, N failed".
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
  (cd "$work" && as_user sbatch --wait --quiet -o "$work/inst.out" "$work/inst.sh") || { cat "$work/inst.out"; return 1; }
  cat "$work/inst.out"
  local pid
  pid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["instances"][0]["pid"])' "$work/inst.json") || return 1
  echo "the instance's init was pid $pid"
  ended() { [ ! -r "/proc/$1/stat" ] || [ "$(sed 's/^.*) //' "/proc/$1/stat" | cut -d' ' -f1)" = Z ]; }
  for _ in $(seq 300); do ended "$pid" && break; sleep 0.1; done
  ended "$pid" || { echo "the instance outlived its job"; return 1; }
  list=$(cd "$work" && as_user "$vessel" instance list $name)
  echo "$list"
  [ "$(wc -l <<<"$list")" -eq 1 ]
}
check "an instance started in an sbatch job ends with the job, nothing left running" instance_job

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
