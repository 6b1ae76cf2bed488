#!/usr/bin/env bash
# Installs what Vessel needs on a Debian or Ubuntu machine, from the
# distribution's packages only. Idempotent; run as root (or with sudo).
set -euo pipefail

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

packages=(
  # Reading SquashFS root file systems (inspect of images without stored metadata).
  squashfs-tools
  # The reference Go SIF library, built into `siftool` as a test oracle.
  golang-go golang-github-sylabs-sif-dev
  # A tiny static root file system for the demo image; mkfifo and friends.
  busybox-static coreutils util-linux
  # Build tools for Rust crates that compile C.
  build-essential pkg-config
  # Tests with real components: a Debian image made with debootstrap, and a
  # single-node Slurm cluster.
  debootstrap munge slurmctld slurmd slurm-client procps
  # The MPI tests and benchmark (tests/mpi, bench/mpi.sh): the host's Open
  # MPI launches containerized ranks, and compiles the native and bind-model
  # programs.
  openmpi-bin libopenmpi-dev
  # Slurm's headers (slurm/spank.h): the SPANK plugin of contrib/spank.
  libslurm-dev
  # Fake-root builds with the user's subordinate ids (newuidmap/newgidmap).
  uidmap
  # overlay create: mkfs.ext3 and debugfs; its tests check images with fsck.ext3.
  e2fsprogs
  # ext3 overlay images without privilege, and overlays where the kernel's
  # cannot be used (an upper layer on FUSE, enable overlay = driver).
  fuse2fs fuse-overlayfs
  # The FUSE driver's tests (xattrs in the corpus) and its benchmark peers.
  attr fuse3 squashfuse
  # Signatures Vessel makes are checked with GnuPG; openssl makes DSSE keys.
  gnupg
  # Pulls: tar2sqfs turns merged layers into SquashFS; local OCI registries
  # and the tools that fill them for the tests.
  squashfs-tools-ng docker-registry skopeo umoci apache2-utils openssl curl python3
  # The workflow tools (Snakemake, cwltool, ...) go into a venv from PyPI.
  python3-venv
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 "${missing[@]}" >/dev/null
fi

# Distributions ship /dev/fuse world-usable; some machines have it 0600,
# which would stop unprivileged FUSE mounts.
if [ -e /dev/fuse ] && [ "$(stat -c %a /dev/fuse)" != 666 ]; then
  as_root chmod 0666 /dev/fuse
fi

# Kernels since 6.14 offer FUSE over io_uring only once an administrator
# turns it on; the test machine does, so that the FUSE tests check both of
# the image server's transports (they run each comparison over /dev/fuse as
# well) and the benchmarks show both.
uring=/sys/module/fuse/parameters/enable_uring
if [ -e "$uring" ] && [ "$(cat "$uring")" != Y ]; then
  echo Y | as_root tee "$uring" >/dev/null || true
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo is not installed; install a Rust toolchain (https://rustup.rs) and re-run" >&2
  exit 1
fi
