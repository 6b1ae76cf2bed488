#!/usr/bin/env bash
# The main job, end to end on a fresh Debian/Ubuntu machine: install the
# system packages, build Vessel, make a container image locally, look inside
# it, and run it.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
echo "==> building vessel"
cargo build --release --quiet
vessel=$PWD/target/release/vessel

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "==> making a root file system with busybox and Apptainer's metadata layout"
root=$work/rootfs
mkdir -p "$root"/{bin,etc,tmp,.singularity.d/env}
cp /bin/busybox "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
printf '#!/bin/sh\necho "Hello from a Vessel container: $*"\n' > "$root/.singularity.d/runscript"
printf '#!/bin/sh\n# Custom environment shell code should follow\nexport GREETING=hello\n' \
  > "$root/.singularity.d/env/90-environment.sh"
printf '{\n\t"org.opencontainers.image.title": "vessel-demo",\n\t"maintainer": "%s"\n}\n' "$(id -un)" \
  > "$root/.singularity.d/labels.json"
chmod 0755 "$root/.singularity.d/runscript"

echo "==> packing it into a SIF image with vessel sif"
mksquashfs "$root" "$work/root.sqfs" -noappend -quiet -comp gzip -all-root >/dev/null
"$vessel" sif new "$work/demo.sif"
case "$(uname -m)" in
  x86_64) arch=2 ;; aarch64) arch=4 ;; ppc64le) arch=6 ;; s390x) arch=11 ;; riscv64) arch=12 ;;
  *) arch=2 ;;
esac
"$vessel" sif add --datatype 4 --partfs 1 --parttype 2 --partarch "$arch" --groupid 1 \
  "$work/demo.sif" "$work/root.sqfs"

echo "==> vessel sif list demo.sif"
"$vessel" sif list "$work/demo.sif"
echo "==> vessel inspect --labels --runscript --environment demo.sif"
"$vessel" inspect --labels --runscript --environment "$work/demo.sif"

echo "==> vessel run demo.sif world"
"$vessel" run "$work/demo.sif" world
echo "==> vessel exec demo.sif sh -c 'id -un; echo \$GREETING; ls /'"
"$vessel" exec "$work/demo.sif" sh -c 'id -un; echo $GREETING; ls /'

fixture=../shared/fixtures/sif/apptainer/images/busybox_amd64.sif
if [ -f "$fixture" ]; then
  echo "==> vessel inspect --json on an image built by Singularity 3.8"
  "$vessel" inspect --json "$fixture"
fi
echo "==> done: $vessel is ready (try: $vessel --help)"
