#!/usr/bin/env bash
# Installs Vessel into PREFIX (default /usr/local): the release binary as
# PREFIX/bin/vessel, and the names it answers to as links beside it:
# `apptainer` and `singularity` (it then behaves as that tool) and
# `run-singularity`, the interpreter a SIF's first line names, so that
# `./image.sif ARGS` runs the image.
#
# Usage: scripts/install.sh [PREFIX] [BINARY]   (BINARY: an already built
# vessel; default: build target/release/vessel first)
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${1:-/usr/local}
binary=${2:-}
if [ -z "$binary" ]; then
  cargo build --release --quiet
  binary=target/release/vessel
fi
install -d "$prefix/bin"
install -m 0755 "$binary" "$prefix/bin/vessel"
for name in apptainer singularity run-singularity; do
  ln -sfn vessel "$prefix/bin/$name"
done
echo "installed $prefix/bin/vessel, with apptainer, singularity and run-singularity linked to it"
