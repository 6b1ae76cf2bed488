#!/usr/bin/env bash
# Builds OUTPUT_DIR/mpi.sif: the Open MPI image of the MPI tests (hybrid
# model), with `vessel build` from tests/mpi/mpi.def: Debian's Open MPI
# from the host's suite and mirror, and /opt/mpitests/{hello,pingpong,
# allreduce} compiled in the image from tests/mpi/*.c.
#   scripts/make-mpi-image.sh OUTPUT_DIR VESSEL_BINARY
# Run as root (debootstrap, as in make-debian-image.sh). The image is left
# readable by everyone (mode 0644) so that the test users can run it.
set -euo pipefail

out=${1:?usage: $0 OUTPUT_DIR VESSEL_BINARY}
vessel=${2:?usage: $0 OUTPUT_DIR VESSEL_BINARY}
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../tests/mpi" && pwd)
img=$out/mpi.sif

read -r suite mirror < <("$here/debian-mirror.sh") || true
[ -n "${mirror:-}" ] || exit 1

# Rebuilding takes minutes. The image is current when it was made from these
# very inputs (by content: a fresh clone makes every file new). Not the
# runtime's binary: any Vessel builds the same image, and the binary changes
# with every commit.
key=$( { cat "$0" "$src/mpi.def" "$src/hello.c" "$src/pingpong.c" "$src/allreduce.c" | sha256sum
         echo "$suite $mirror"; } | sha256sum | cut -d' ' -f1)
if [ -f "$img" ] && [ "$(cat "$img.key" 2>/dev/null)" = "$key" ]; then
  echo "mpi image: $img is up to date"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "$0: must run as root (debootstrap)" >&2; exit 1; }
for c in debootstrap mksquashfs; do
  command -v "$c" >/dev/null || { echo "$0: $c missing (apt-get install -y debootstrap squashfs-tools)" >&2; exit 1; }
done

mkdir -p "$out"
# Temporaries live next to the outputs so the final rename is atomic; the
# build's own scratch space (the root file system being made) too, rather
# than in a possibly small /tmp.
tmp=$(mktemp -d "$out/.mpi-image.XXXXXX")
cleanup() {
  # An interrupted build can leave proc/sys mounted inside the tree.
  grep -o " $tmp/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf --one-file-system "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP # so that an interrupted run still cleans up
mkdir "$tmp/scratch"

echo "mpi image: vessel build from tests/mpi/mpi.def ($suite, $mirror)"
SECONDS=0
if ! APPTAINER_TMPDIR=$tmp/scratch "$vessel" build \
  --build-arg "suite=$suite" --build-arg "mirror=$mirror" --build-arg "src=$src" \
  "$tmp/mpi.sif" "$src/mpi.def" </dev/null >"$tmp/build.log" 2>&1; then
  tail -n 40 "$tmp/build.log" >&2
  exit 1
fi
chmod 0644 "$tmp/mpi.sif"
# Last: the key beside the image is what marks the cache as complete.
rm -f "$img.key"
mv -f "$tmp/mpi.sif" "$img"
echo "$key" > "$img.key"
echo "mpi image: $img ($(du -h "$img" | cut -f1); built in ${SECONDS}s)"
