#!/usr/bin/env bash
# Builds OUTPUT_DIR/debian.sqfs: a minimal Debian root file system (the host's
# suite, with python3) packed as SquashFS, for tests that need a real distro.
#   scripts/make-debian-image.sh [--keep-rootfs] OUTPUT_DIR
# Run as root. Needs the Debian packages debootstrap and squashfs-tools.
# --keep-rootfs also leaves the unpacked tree at OUTPUT_DIR/rootfs.
set -euo pipefail

keep=0 out=
for a in "$@"; do
  case $a in
    --keep-rootfs) keep=1 ;;
    -*) echo "unknown option: $a" >&2; exit 2 ;;
    *) out=$a ;;
  esac
done
[ -n "$out" ] || { echo "usage: $0 [--keep-rootfs] OUTPUT_DIR" >&2; exit 2; }
img=$out/debian.sqfs

read -r suite mirror < <("$(dirname "$0")/debian-mirror.sh") || true
[ -n "${mirror:-}" ] || exit 1

# Rebuilding takes minutes. The image is current when it was made by this
# very script for this suite and mirror (by content, not time stamps: a
# fresh clone makes every file new).
key=$( { sha256sum < "$0"; echo "$suite $mirror"; } | sha256sum | cut -d' ' -f1)
if [ -f "$img" ] && [ "$(cat "$img.key" 2>/dev/null)" = "$key" ] \
  && { [ $keep -eq 0 ] || [ -d "$out/rootfs" ]; }; then
  echo "debian image: $img is up to date"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "$0: must run as root (debootstrap chroots)" >&2; exit 1; }
for c in debootstrap mksquashfs; do
  command -v "$c" >/dev/null || { echo "$0: $c missing (apt-get install -y debootstrap squashfs-tools)" >&2; exit 1; }
done

mkdir -p "$out"
# Temporaries live next to the outputs so the final renames are atomic.
tmp=$(mktemp -d "$out/.debian-image.XXXXXX")
cleanup() {
  # An interrupted debootstrap can leave proc/sys mounted inside the tree.
  grep -o " $tmp/[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf --one-file-system "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP # so that an interrupted run still cleans up

echo "debian image: debootstrap $suite from $mirror"
SECONDS=0
if ! debootstrap --variant=minbase --include=python3 "$suite" "$tmp/rootfs" "$mirror" >"$tmp/debootstrap.log" 2>&1; then
  tail -n 30 "$tmp/debootstrap.log" >&2
  [ -f "$tmp/rootfs/debootstrap/debootstrap.log" ] && tail -n 30 "$tmp/rootfs/debootstrap/debootstrap.log" >&2
  exit 1
fi
t_boot=$SECONDS
# Downloaded .debs and apt's package lists (about 50 MB) are only dead weight
# in a test image; `apt-get update` inside it would fetch the lists again.
rm -f "$tmp"/rootfs/var/cache/apt/archives/*.deb "$tmp"/rootfs/var/cache/apt/*.bin
find "$tmp/rootfs/var/lib/apt/lists" -maxdepth 1 -type f ! -name lock -delete

SECONDS=0
if ! mksquashfs "$tmp/rootfs" "$tmp/debian.sqfs" -noappend -comp gzip -no-progress >"$tmp/mksquashfs.log" 2>&1; then
  tail -n 30 "$tmp/mksquashfs.log" >&2
  exit 1
fi
t_sq=$SECONDS

if [ $keep -eq 1 ]; then
  rm -rf --one-file-system "$out/rootfs"
  mv "$tmp/rootfs" "$out/rootfs"
fi
# Last: the key beside the image is what marks the cache as complete.
rm -f "$img.key"
mv -f "$tmp/debian.sqfs" "$img"
echo "$key" > "$img.key"
echo "debian image: $img ($(du -h "$img" | cut -f1); debootstrap ${t_boot}s, mksquashfs ${t_sq}s)"
