#!/usr/bin/env bash
# The whole test suite, as CI runs it: system packages, formatting and lints,
# every unit and end-to-end test (with the reference Go siftool as an oracle),
# an unprivileged smoke test, and a bounded fuzz run of the four parsers of
# untrusted input (SIF, SquashFS, OCI layers, definition files).
#
# Environment: FUZZ_SECONDS (default 60; 0 skips fuzzing).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

scripts/install-deps.sh

export VESSEL_FIXTURES=${VESSEL_FIXTURES:-$root/../shared/fixtures}
if [ ! -d "$VESSEL_FIXTURES/sif" ]; then
  echo "error: the shared fixtures are missing: expected $VESSEL_FIXTURES/sif (set VESSEL_FIXTURES)" >&2
  exit 1
fi

tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
echo "==> building the reference siftool and integrity oracle (Go, from Debian's sources)"
.ci/build-go-oracle.sh siftool "$tools/siftool"
.ci/build-go-oracle.sh sifintegrity "$tools/sifintegrity"
export VESSEL_SIFTOOL=$tools/siftool VESSEL_SIFINTEGRITY=$tools/sifintegrity

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "==> building"
cargo build --quiet
bin=$tools/vessel
install -m 0755 target/debug/vessel "$bin"
chmod 0755 "$tools"
# The unprivileged user the container tests run as.
id vtest >/dev/null 2>&1 || useradd -m -s /bin/bash vtest
# A second one, the attacker of the multi-user safety tests (tests/multiuser.rs).
id vattack >/dev/null 2>&1 || useradd -m -s /bin/bash vattack
# The victim whose default extract cache the attacker takes: a user of its
# own, so that no other test's runs meet the planted directory.
id vvictim >/dev/null 2>&1 || useradd -m -s /bin/bash vvictim
# Subordinate ids, as sites configure them for fakeroot builds (apt-get in
# %post switches to the _apt user). Debian's useradd adds them; others may not.
grep -q '^vtest:' /etc/subuid 2>/dev/null || usermod --add-subuids 100000-165535 vtest
grep -q '^vtest:' /etc/subgid 2>/dev/null || usermod --add-subgids 100000-165535 vtest
# The Debian mirror the debootstrap build tests use (the host's own).
read -r VESSEL_TEST_DEBIAN_SUITE VESSEL_TEST_DEBIAN_MIRROR < <(scripts/debian-mirror.sh) || true
export VESSEL_TEST_DEBIAN_SUITE VESSEL_TEST_DEBIAN_MIRROR

echo "==> a Debian image (debootstrap, cached in ${VESSEL_CI_CACHE:=/var/cache/vessel-ci})"
scripts/make-debian-image.sh "$VESSEL_CI_CACHE/debian"
debian_sif=$tools/debian.sif
"$bin" sif new "$debian_sif"
"$bin" sif add --datatype 4 --partfs 1 --parttype 2 --partarch 2 --groupid 1 \
  "$debian_sif" "$VESSEL_CI_CACHE/debian/debian.sqfs"
chmod 0644 "$debian_sif"
export VESSEL_TEST_DEBIAN_SIF=$debian_sif

echo "==> an Open MPI image (vessel build, cached in $VESSEL_CI_CACHE/mpi)"
scripts/make-mpi-image.sh "$VESSEL_CI_CACHE/mpi" "$bin"
# The MPI and Slurm tests run it as vtest: a copy where the cache is out of its reach.
mpi_sif=$VESSEL_CI_CACHE/mpi/mpi.sif
if ! setpriv --reuid=vtest --regid=vtest --init-groups test -r "$mpi_sif"; then
  install -m 0644 "$mpi_sif" "$tools/mpi.sif"
  mpi_sif=$tools/mpi.sif
fi
export VESSEL_TEST_MPI_SIF=$mpi_sif

echo "==> OCI registries on 127.0.0.1 (plain HTTP, and HTTPS with auth) and test images"
registry_state=/var/tmp/vessel-ci-registry
mkdir -p "$registry_state" && chmod 0755 "$registry_state"
.ci/registry.sh start "$registry_state"
trap '.ci/registry.sh stop "$registry_state" >/dev/null 2>&1 || true; rm -rf "$tools"' EXIT
tests/oci/make-images.sh "$registry_state"
export VESSEL_TEST_REGISTRY=$registry_state

echo "==> cargo test"
# Every skipped test (or part of one) appends a line here (tests/common/skip.rs):
# cargo shows nothing of passing tests, so the closing line counts them from it.
export VESSEL_TEST_SKIP_LOG=$tools/skips.log
: >"$VESSEL_TEST_SKIP_LOG"
cargo test --workspace --quiet --no-fail-fast 2>&1 | tee "$tools/test.log"
status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] || exit "$status"

echo "==> the runtime tests again on an underlay (APPTAINER_UNDERLAY=1: the root Vessel builds where overlays are off or refused)"
VESSEL_TEST_USER_ENV=APPTAINER_UNDERLAY=1 cargo test --quiet --test runtime 2>&1 | tee -a "$tools/test.log"
status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] || exit "$status"

echo "==> Slurm: vessel in batch jobs and job steps (user vtest)"
tests/slurm/run.sh "$bin" "$debian_sif" | tee "$tools/slurm.log"
status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] || exit "$status"

echo "==> Open MPI: hybrid model (a container per rank, --sharens), bind model, kills of mpirun (user vtest)"
tests/mpi/run.sh "$bin" "$VESSEL_TEST_MPI_SIF" "$debian_sif" | tee "$tools/mpi.log"
status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] || exit "$status"

echo "==> workflow tools from PyPI (Snakemake, cwltool, spython, ReFrame, Parsl) driving vessel as apptainer (user vtest)"
tests/workflows/run.sh "$bin" "$debian_sif" "$registry_state" | tee "$tools/workflows.log"
status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] || exit "$status"

echo "==> unprivileged smoke test (user vtest)"
as_vtest() {
  setpriv --reuid=vtest --regid=vtest --init-groups \
    env -i HOME=/home/vtest USER=vtest PATH=/usr/bin:/bin TMPDIR=/tmp "$@"
}
smoke_img=$tools/smoke.sif
cp "$VESSEL_FIXTURES/sif/singularity-3.4/busybox-localimage.sif" "$smoke_img"
chmod 0644 "$smoke_img"
out=$(as_vtest "$bin" inspect --runscript "$smoke_img")
[ "$out" = "$(printf '#!/bin/sh\n\n    echo "run: $FOO $*"')" ] || { echo "unexpected: $out" >&2; exit 1; }
as_vtest "$bin" sif list "$smoke_img" >/dev/null
echo "unprivileged inspect and sif list: ok"
# Installed as the setup script installs it, `./image.sif ARGS` runs the
# image through the run-singularity link its first line names.
scripts/install.sh "$tools/prefix" "$bin" >/dev/null
chmod 0755 "$tools/prefix" "$tools/prefix/bin" "$smoke_img"
out=$(cd "$tools" && setpriv --reuid=vtest --regid=vtest --init-groups \
  env -i HOME=/home/vtest USER=vtest PATH="$tools/prefix/bin:/usr/bin:/bin" TMPDIR=/tmp \
  ./smoke.sif one two)
[ "$out" = "run: bar one two" ] || { echo "unexpected from ./smoke.sif: $out" >&2; exit 1; }
out=$(as_vtest "$tools/prefix/bin/apptainer" --version)
case "$out" in "apptainer version "*) ;; *) echo "unexpected: $out" >&2; exit 1 ;; esac
echo "./image.sif through the installed run-singularity link, and the apptainer persona: ok"

fuzz_seconds=${FUZZ_SECONDS:-60}
if [ "$fuzz_seconds" -gt 0 ]; then
  echo "==> fuzzing the SIF, SquashFS, OCI layer and definition-file parsers for ${fuzz_seconds}s"
  .ci/fuzz.sh "$fuzz_seconds"
fi

echo "==> start-up benchmark (informative; never fails the suite)"
cargo build --release --quiet
BENCH_RUNS=${BENCH_RUNS:-30} bench/startup.sh "$root/target/release/vessel" || echo "benchmark did not complete"
echo "==> pull benchmark (informative; never fails the suite)"
BENCH_RUNS=2 bench/pull.sh "$root/target/release/vessel" "$registry_state" || echo "benchmark did not complete"
echo "==> FUSE driver benchmark (informative; never fails the suite)"
bench/fuse.sh "$root/target/release/vessel" "$debian_sif" || echo "benchmark did not complete"
echo "==> build benchmark (informative; never fails the suite)"
BENCH_RUNS=1 bench/build.sh "$root/target/release/vessel" || echo "benchmark did not complete"
echo "==> MPI benchmark (informative; never fails the suite)"
bench/mpi.sh "$root/target/release/vessel" "$VESSEL_TEST_MPI_SIF" || echo "benchmark did not complete"

# The closing line CI reads: the counts of the cargo, Slurm, MPI and workflow tests above;
# skipped: cargo's ignored tests plus the lines of the skip log.
awk -v skips="$VESSEL_TEST_SKIP_LOG" '
     FILENAME == skips { i++; next }
     /^test result:/ { p += $4; f += $6; i += $8 }
     /^[0-9]+ passed, [0-9]+ failed$/ { p += $1; f += $3 }
     END { printf "%d passed, %d failed, %d skipped\n", p, f, i }' \
  "$tools/test.log" "$tools/slurm.log" "$tools/mpi.log" "$tools/workflows.log" "$VESSEL_TEST_SKIP_LOG"
