#!/usr/bin/env bash
# A fake NVIDIA and AMD GPU driver, for the GPU tests on machines without
# GPUs (CI has none), installed the way real drivers are and removed after:
#   - every library of Vessel's nvliblist.conf and rocmliblist.conf that the
#     host does not already have, built from fake.c under the real soname
#     (libcuda.so.1, …) in /usr/local/lib/vessel-fake-gpu and registered
#     with ldconfig; a 32-bit libcuda.so.1 too, which --nv must not pick;
#   - nvidia-smi and rocm-smi scripts in /usr/local/bin;
#   - device nodes /dev/nvidiactl, /dev/nvidia-uvm, /dev/nvidia0,
#     /dev/nvidia1, /dev/kfd, /dev/dri/renderD128 with the numbers of
#     /dev/null (harmless to open).
# Usage (as root):
#   tests/gpu/fake-driver.sh install    prints the number of fake libraries
#   tests/gpu/fake-driver.sh remove     removes exactly what install made
# A host with a real driver (/dev/nvidiactl present) is left alone: install
# fails, so that no test mistakes a real GPU for the fake one.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lists="$here/../../crates/vessel-runtime/src/gpu"
lib=/usr/local/lib/vessel-fake-gpu
lib32=/usr/local/lib/vessel-fake-gpu32
conf=/etc/ld.so.conf.d/zz-vessel-fake-gpu.conf
made=/run/vessel-fake-gpu.made

remove() {
  [ -f "$made" ] || return 0
  # Deepest first: files before the directories that hold them.
  sort -r "$made" | while read -r path; do
    if [ -d "$path" ] && [ ! -L "$path" ]; then rmdir "$path" 2>/dev/null || true; else rm -f "$path"; fi
  done
  rm -f "$made"
  ldconfig
}

install_fake() {
  if [ -e /dev/nvidiactl ] && ! grep -qx /dev/nvidiactl "$made" 2>/dev/null; then
    echo "fake-driver: this host has a real NVIDIA driver (/dev/nvidiactl); not installing the fake one" >&2
    exit 1
  fi
  remove
  : >"$made"
  note() { echo "$1" >>"$made"; }
  for d in "$lib" "$lib32"; do mkdir -p "$d"; note "$d"; done
  local build
  build=$(mktemp -d)
  trap 'rm -rf "$build"' RETURN
  local have count=0
  have=$(ldconfig -p | awk '{print $1}')
  for name in $(grep -hoE '^lib[^ #]*\.so$' "$lists/nvliblist.conf" "$lists/rocmliblist.conf" | sort -u); do
    # A library the host already has (libdrm, libOpenCL, …) is not shadowed.
    if grep -qx "$name.1" <<<"$have"; then continue; fi
    gcc -shared -fPIC -Wl,-soname,"$name.1" -o "$lib/$name.999.1" "$here/fake.c"
    ln -sf "$name.999.1" "$lib/$name.1"
    ln -sf "$name.1" "$lib/$name"
    note "$lib/$name.999.1"; note "$lib/$name.1"; note "$lib/$name"
    count=$((count + 1))
  done
  # The 32-bit copy: built without a C library, so that no multilib
  # toolchain is needed; ldconfig lists it as a 32-bit "ELF" library.
  if gcc -m32 -shared -fPIC -nostdlib -Wl,-soname,libcuda.so.1 \
      -o "$lib32/libcuda.so.1" "$here/fake.c" 2>/dev/null; then
    note "$lib32/libcuda.so.1"
  fi
  printf '%s\n%s\n' "$lib" "$lib32" >"$conf"
  note "$conf"
  ldconfig

  cat >/usr/local/bin/nvidia-smi <<'SMI'
#!/bin/sh
# The fake driver's nvidia-smi: one line per device node it can see.
n=0
for d in /dev/nvidia[0-9]*; do
  [ -e "$d" ] || continue
  echo "GPU ${d#/dev/nvidia}: Vessel Fake GPU (UUID: GPU-00000000-0000-0000-0000-00000000000${d#/dev/nvidia})"
  n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "No devices were found"; exit 6; }
SMI
  cat >/usr/local/bin/rocm-smi <<'SMI'
#!/bin/sh
# The fake driver's rocm-smi.
[ -e /dev/kfd ] || { echo "ROCk module is NOT loaded"; exit 1; }
echo "GPU[0]: Vessel Fake AMD GPU"
SMI
  chmod 0755 /usr/local/bin/nvidia-smi /usr/local/bin/rocm-smi
  note /usr/local/bin/nvidia-smi; note /usr/local/bin/rocm-smi

  node() { mknod -m 0666 "$1" c 1 3; note "$1"; }
  node /dev/nvidiactl; node /dev/nvidia-uvm; node /dev/nvidia0; node /dev/nvidia1
  node /dev/kfd
  if [ ! -d /dev/dri ]; then mkdir /dev/dri; note /dev/dri; fi
  node /dev/dri/renderD128
  echo "$count"
}

case ${1:-} in
  install) install_fake ;;
  remove) remove ;;
  *) echo "usage: $0 install|remove" >&2; exit 2 ;;
esac
