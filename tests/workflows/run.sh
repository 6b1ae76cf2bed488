#!/usr/bin/env bash
# The real workflow tools, from PyPI and unchanged, driving Vessel installed
# as `apptainer` and `singularity` (scripts/install.sh), as an unprivileged
# user, against the local test registry: Snakemake (locally and through its
# Slurm executor plugin on a throwaway Slurm), cwltool --singularity,
# spython, ReFrame's Apptainer container platform and Parsl's
# WrappedLauncher. Each case checks the files the workflow wrote, not only
# exit statuses.
#
#   tests/workflows/run.sh VESSEL_BINARY DEBIAN_SIF REGISTRY_STATE
#
# Run as root (it installs Vessel into a scratch prefix, starts Slurm and
# makes the tools' venv), after `.ci/registry.sh start REGISTRY_STATE` and
# `tests/oci/make-images.sh REGISTRY_STATE`. DEBIAN_SIF is the Debian test
# image scripts/test.sh makes (it has bash and python3, which Snakemake's
# jobs need). The tools live in a venv made from requirements.txt, cached as
# ${VESSEL_CI_CACHE:-/var/cache/vessel-ci}/workflow-venv-<sha256 of it>.
# Prints "ok: NAME" or "FAILED: NAME" per case, then "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
here=$root/tests/workflows
usage="usage: $0 VESSEL_BINARY DEBIAN_SIF REGISTRY_STATE"
vessel=$(readlink -f "${1:?$usage}")
debian_sif=$(readlink -f "${2:?$usage}")
registry_state=${3:?$usage}
user=${VESSEL_TEST_USER:-vtest}
[ "$(id -u)" -eq 0 ] || { echo "$0: must run as root" >&2; exit 1; }
[ -r "$registry_state/env" ] || { echo "$0: $registry_state/env missing: run .ci/registry.sh start $registry_state first" >&2; exit 1; }
# shellcheck source=/dev/null
. "$registry_state/env"
registry=$REGISTRY_HTTP

# The test user, as scripts/test.sh makes it: spython's build case runs
# %post as fake root with its subordinate ids.
id "$user" >/dev/null 2>&1 || useradd -m -s /bin/bash "$user"
grep -q "^$user:" /etc/subuid 2>/dev/null || usermod --add-subuids 100000-165535 "$user"
grep -q "^$user:" /etc/subgid 2>/dev/null || usermod --add-subgids 100000-165535 "$user"
home=$(getent passwd "$user" | cut -d: -f6)

# The tools' venv, made with Debian's python3 (python3-venv). Only a
# complete venv is ever used: it is made in a directory of its own and then
# published by renaming a symbolic link over the cached name (a venv itself
# cannot be renamed: its scripts' #! lines name its path). A killed run
# leaves at most an unpublished directory, removed by the next run together
# with venvs of earlier requirements.
cache=${VESSEL_CI_CACHE:-/var/cache/vessel-ci}
requirements=$here/requirements.txt
link=$cache/workflow-venv-$(sha256sum "$requirements" | cut -d' ' -f1)
if [ ! -x "$link/bin/python3" ]; then
  /usr/bin/python3 -c 'import ensurepip, venv' 2>/dev/null ||
    { echo "$0: Debian's python3-venv is missing (apt-get install -y python3-venv)" >&2; exit 1; }
  echo "==> making the workflow tools' venv ${link##*/} (PyPI)"
  mkdir -p "$cache"
  dir=$(mktemp -d "$link.XXXXXX")
  SECONDS=0
  /usr/bin/python3 -m venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$requirements"
  # The unprivileged user runs it (mktemp -d made the top 0700).
  chmod -R a+rX "$dir"
  ln -sfn "${dir##*/}" "$link.new"
  mv -T "$link.new" "$link"
  echo "venv made in ${SECONDS}s"
fi
for d in "$cache"/workflow-venv-*; do
  [ "$d" = "$link" ] || [ "${d##*/}" = "$(readlink "$link")" ] || rm -rf "$d"
done
# Its real path: a symbolic link given as a bind source or in PATH inside
# a container would name nothing there.
venv=$(readlink -f "$link")

work=$(mktemp -d /var/tmp/vessel-workflows.XXXXXX)
slurm_state=$(mktemp -d)
cleanup() {
  .ci/slurm.sh stop "$slurm_state" >/dev/null 2>&1 || true
  rm -rf "$work" "$slurm_state"
}
trap cleanup EXIT
# Under /var/tmp, not /tmp: containers get /tmp bound by default, and the
# tools must make every other path they need visible themselves.
chmod 0755 "$work"
prefix=$work/prefix
scripts/install.sh "$prefix" "$vessel" >/dev/null
mkdir -p "$work/logs"

as_user() {
  # timeout: a hung tool ends its case, not the whole CI run.
  setpriv --reuid="$user" --regid="$user" --init-groups \
    env -i HOME="$home" USER="$user" LOGNAME="$user" LANG=C.UTF-8 TMPDIR=/tmp \
    PATH="$venv/bin:$prefix/bin:/usr/bin:/bin" APPTAINER_NOHTTPS=1 \
    timeout --kill-after=10 600 "$@"
}

# A scratch directory for one case, owned by the test user, with copies of
# the given files and directories of tests/workflows.
case_dir() {
  local d=$work/$1
  shift
  mkdir -p "$d"
  [ $# -eq 0 ] || cp -r "${@/#/$here/}" "$d/"
  chown -R "$user": "$d"
  echo "$d"
}

# expect_lines FILE RE...: FILE has exactly one line per RE, each matching
# its (anchored, extended) regular expression. Shows the file either way.
expect_lines() {
  local file=$1 i got=()
  shift
  local want=("$@")
  if [ ! -f "$file" ]; then echo "| ${file#"$work"/}: missing"; return 1; fi
  echo "| ${file#"$work"/}:"
  sed 's/^/|     /' "$file"
  mapfile -t got <"$file"
  if [ ${#got[@]} -ne ${#want[@]} ]; then
    echo "expected ${#want[@]} lines in $file, got ${#got[@]}"
    return 1
  fi
  for i in "${!want[@]}"; do
    [[ ${got[i]} =~ ^(${want[i]})$ ]] || { echo "line $((i + 1)) of $file: expected /${want[i]}/"; return 1; }
  done
}

# A string as an extended regular expression matching just itself.
re_quote() { printf '%s' "$1" | sed 's/[][\.*^$+?(){}|]/\\&/g'; }

passed=0 failed=0
# check NAME FUNCTION: the case's whole output goes to a log; on success the
# outputs it checked (the "| " lines) are shown, on failure its last lines.
check() {
  local name=$1 log
  shift
  log=$work/logs/$((passed + failed + 1)).log
  if ("$@") >"$log" 2>&1; then
    echo "ok: $name"
    passed=$((passed + 1))
    grep '^| ' "$log" || true
  else
    echo "FAILED: $name"
    failed=$((failed + 1))
    tail -n 60 "$log" | sed 's/^/    /'
  fi
}

# --- Snakemake ---------------------------------------------------------------

snakemake_dir() {
  local d
  d=$(case_dir "$1" snakemake)/snakemake
  mkdir -p "$d/bound"
  echo hello-from-the-host >"$d/bound/marker.txt"
  chown -R "$user": "$d"
  echo "$d"
}

# Arguments of both runs: the deployment method, extra apptainer arguments
# (a bind and an --env), the local SIF and the image to pull.
snakemake_args() {
  printf '%s\n' --software-deployment-method apptainer \
    --apptainer-args "-B $1/bound:/bound --env WF_TAG=smk" \
    --config "sif=$debian_sif" "image=docker://$registry/debian:bookworm"
}

# What both runs must produce; $1: the line the local_sif rule writes about
# Slurm.
snakemake_outputs() {
  local d=$1 slurm=$2
  expect_lines "$d/results/local.txt" '[0-9]+\.[0-9]+' 'bound=hello-from-the-host' "$slurm" &&
    expect_lines "$d/results/pulled.txt" 'tag=smk' 'ID=debian' &&
    expect_lines "$d/results/script.txt" 'lines=3 bash=[0-9]+' &&
    expect_lines "$d/results/shadow.txt" 2 junk.txt results || return 1
  if [ -e "$d/junk.txt" ]; then
    echo "the shadow rule's junk.txt leaked into the working directory"
    return 1
  fi
  # Snakemake pulled the docker:// image itself, into its own prefix.
  compgen -G "$d/.snakemake/singularity/*.simg" >/dev/null ||
    { echo "no image pulled by Snakemake in $d/.snakemake/singularity"; return 1; }
}

snakemake_local() {
  local d args
  d=$(snakemake_dir smk-local)
  mapfile -t args < <(snakemake_args "$d")
  (cd "$d" && as_user snakemake --cores 2 "${args[@]}") || return 1
  snakemake_outputs "$d" 'slurm=none'
}
check "snakemake --software-deployment-method apptainer: local .sif, docker:// pulled by Snakemake, script:, shadow:, --apptainer-args" snakemake_local

snakemake_slurm() {
  local d args
  .ci/slurm.sh start "$slurm_state" || return 1
  d=$(snakemake_dir smk-slurm)
  mapfile -t args < <(snakemake_args "$d")
  # Job states come from squeue: sacct needs an accounting database, which
  # the test cluster has not. The plugin waits 40 s before its first look
  # by default; 1 s keeps the run short. It deletes the Slurm logs of
  # successful jobs unless told to keep them.
  (cd "$d" && as_user snakemake --executor slurm --jobs 4 --slurm-status-command squeue \
    --slurm-init-seconds-before-status-checks 1 --seconds-between-status-checks 1 --slurm-keep-successful-logs \
    --default-resources runtime=10 mem_mb=500 "${args[@]}") || return 1
  snakemake_outputs "$d" 'slurm=[0-9]+' || return 1
  # Every rule but the local target `all` ran as a Slurm job.
  local rule
  for rule in local_sif pulled script shadow; do
    compgen -G "$d/.snakemake/slurm_logs/rule_$rule/*.log" >/dev/null ||
      { echo "no Slurm job log for rule $rule"; return 1; }
  done
  echo "| Slurm jobs: $(cd "$d/.snakemake/slurm_logs" && echo rule_*/*.log)"
}
check "snakemake --executor slurm: the same workflow as Slurm jobs" snakemake_slurm

# --- cwltool -----------------------------------------------------------------

cwl_dir=$(case_dir cwl cwl)/cwl
sed -i "s|REGISTRY/|$registry/|" "$cwl_dir"/*.cwl
printf 'first line\nsecond line\n' >"$cwl_dir/input.txt"
mkdir -p "$cwl_dir/images" "$cwl_dir/tmp"
chown -R "$user": "$cwl_dir"

# cwltool pulls into CWL_SINGULARITY_CACHE; its job directories go under
# $cwl_dir/tmp rather than /tmp, so that only its own mounts make them
# visible in the container.
cwltool_run() {
  local out=$1
  shift
  (cd "$cwl_dir" && as_user env CWL_SINGULARITY_CACHE="$cwl_dir/images" \
    cwltool --singularity --tmpdir-prefix "$cwl_dir/tmp/" --tmp-outdir-prefix "$cwl_dir/tmp/" \
    --outdir "$cwl_dir/$out" "$@") 2>&1 | tee "$cwl_dir/$out.log"
}

cwl_tool() {
  cwltool_run out-tool upper.cwl --infile input.txt || return 1
  expect_lines "$cwl_dir/out-tool/upper.txt" 'FIRST LINE' 'SECOND LINE' 'greeting=hello-from-cwl' 'interface=lo' || return 1
  [ -s "$cwl_dir/images/${registry}_s_busybox:latest.sif" ] ||
    { echo "cwltool did not pull the image into its cache"; ls -la "$cwl_dir/images"; return 1; }
  # No NetworkAccess: the interface list above comes from --network none.
  grep -q -- '--network' "$cwl_dir/out-tool.log" || { echo "cwltool did not ask for --network none"; return 1; }
}
check "cwltool --singularity: CommandLineTool (DockerRequirement pulled by cwltool, EnvVarRequirement, stdout, successCodes, no network)" cwl_tool

cwl_workflow() {
  cwltool_run out-wf wf.cwl --infile input.txt || return 1
  expect_lines "$cwl_dir/out-wf/upper.txt" 'FIRST LINE' 'SECOND LINE' 'greeting=hello-from-cwl' 'interface=lo' &&
    expect_lines "$cwl_dir/out-wf/count.txt" 4
}
check "cwltool --singularity: a Workflow of two container steps, a file passed between them" cwl_workflow

# --- spython -----------------------------------------------------------------

spython_case() {
  local d
  d=$(case_dir "spython-$1")
  cp "$here/spython_check.py" "$d/"
  chown "$user": "$d/spython_check.py"
  # The lines spython printed are the outputs checked.
  (cd "$d" && as_user python3 spython_check.py "$1" "$debian_sif" "$registry") 2>&1 | sed 's/^/| /'
}
check "spython Client.execute (bind, output, exit status)" spython_case execute
check "spython Client.pull (pull --name)" spython_case pull
check "spython Client.inspect (labels, environment)" spython_case inspect
check "spython Client.build (unprivileged, from a pulled local image) and Client.run" spython_case build
check "spython Client.instance (instance start, exec instance://, instance list --json, instance stop)" spython_case instance

# --- ReFrame -----------------------------------------------------------------

reframe_check() {
  local d job stage
  d=$(case_dir reframe reframe)/reframe
  mkdir -p "$d/rfm" "$d/tmp"
  chown "$user": "$d/rfm" "$d/tmp"
  # TMPDIR: ReFrame leaves its first log file there.
  (cd "$d" && as_user env WF_IMAGE="$debian_sif" WF_RFM_PREFIX="$d/rfm" TMPDIR="$d/tmp" \
    reframe -C settings.py -c container_check.py -r --prefix "$d/rfm") || return 1
  job=$d/rfm/output/vessel-ci/local/plain/VesselApptainerCheck
  stage=$d/rfm/stage/vessel-ci/local/plain/VesselApptainerCheck
  echo "| rfm_job.sh: $(grep apptainer "$job/rfm_job.sh")"
  grep -qxF "apptainer exec -B\"$stage:/rfm_workdir\" --pwd /rfm_workdir $debian_sif bash -c 'echo \"pwd=\$PWD\"; echo \"debian=\$(cat /etc/debian_version)\"; echo written-in-container > staged.txt'" "$job/rfm_job.sh" ||
    { echo "unexpected job script:"; cat "$job/rfm_job.sh"; return 1; }
  expect_lines "$job/rfm_job.out" 'pwd=/rfm_workdir' 'debian=[0-9]+\.[0-9]+'
}
check "reframe: a test on the Apptainer container platform (exec -B\"…\" --pwd …)" reframe_check

# --- Parsl -------------------------------------------------------------------

parsl_check() {
  local d
  d=$(case_dir parsl parsl_check.py)
  mkdir -p "$d/out/tmp"
  chown -R "$user": "$d/out"
  # TMPDIR (under out/, which the containers get bound): Parsl leaves
  # multiprocessing's socket directories there.
  (cd "$d" && as_user env TMPDIR="$d/out/tmp" python3 parsl_check.py "$debian_sif" "$d/out") || return 1
  expect_lines "$d/out/app1.out" "app=1 debian=[0-9]+\.[0-9]+ container=$(re_quote "$debian_sif")" &&
    expect_lines "$d/out/app2.out" "app=2 debian=[0-9]+\.[0-9]+ container=$(re_quote "$debian_sif")"
}
check "parsl: HighThroughputExecutor workers in WrappedLauncher(apptainer exec IMAGE) run bash_apps" parsl_check

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
