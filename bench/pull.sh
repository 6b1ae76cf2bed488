#!/usr/bin/env bash
# Pull speed, side by side in one run: `vessel pull` (cold cache, and a warm
# re-pull) against Apptainer's own pipeline (skopeo copy + umoci unpack +
# mksquashfs) and Charliecloud's `ch-image pull`, for a one-layer Debian
# image (~65 MB layer) and a 6-layer image, from the local registry, as an
# unprivileged user. Prints times, ratios and peak RSS.
#   bench/pull.sh [VESSEL_BINARY] REGISTRY_STATE_DIR
# Run as root, with the registries of .ci/registry.sh running and filled by
# tests/oci/make-images.sh. BENCH_RUNS sets the runs per command (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
vessel=${1:?usage: pull.sh VESSEL_BINARY REGISTRY_STATE_DIR}
state=${2:?usage: pull.sh VESSEL_BINARY REGISTRY_STATE_DIR}
runs=${BENCH_RUNS:-3}
# shellcheck source=bench/lib.sh
. bench/lib.sh
# shellcheck source=/dev/null
. "$state/env"

need_packages hyperfine skopeo umoci squashfs-tools charliecloud-builders

work=$(mktemp -d /tmp/vessel-pull-bench-XXXXXX)
trap 'rm -rf "$work"' EXIT
install -m 0755 "$vessel" "$work/vessel"
chown "$user": "$work"
chmod 0755 "$work"
cd "$work"

# Apptainer's pipeline, as it runs unprivileged: an OCI layout copy, a
# rootless unpack, then mksquashfs of the bundle.
cat > apptainer-pipeline.sh <<'SH'
#!/bin/sh
set -e
rm -rf layout bundle out.sqfs
skopeo copy -q --src-tls-verify=false "docker://$1" oci:layout:img
umoci unpack --rootless --image layout:img bundle >/dev/null
mksquashfs bundle/rootfs out.sqfs -noappend -comp gzip -quiet >/dev/null
SH
chmod 0755 apptainer-pipeline.sh

as_user() { as_user_in "$work" "$work" "$@"; }

results=()
for image in debian:bookworm layers:latest; do
  ref="$REGISTRY_HTTP/$image"
  cmds=(
    -n "vessel pull (cold cache)" --prepare "rm -rf $work/cache out.sif"
    "env APPTAINER_CACHEDIR=$work/cache ./vessel -q pull --no-https out.sif docker://$ref"
    -n "vessel pull (warm cache)" --prepare "true"
    "env APPTAINER_CACHEDIR=$work/cache ./vessel -q pull -F --no-https out.sif docker://$ref"
    -n "skopeo + umoci + mksquashfs" --prepare "true" "./apptainer-pipeline.sh $ref"
  )
  as_user env APPTAINER_CACHEDIR="$work/cache" ./vessel -q pull -F --no-https out.sif "docker://$ref"
  as_user hyperfine --style none --runs "$runs" --export-json "$work/${image%%:*}.json" "${cmds[@]}" >/dev/null 2>&1
  results+=("$work/${image%%:*}.json")
done

# Peak RSS of a cold pull of the big image (vessel itself and its children).
rss=$(as_user python3 -c 'import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' \
  env APPTAINER_CACHEDIR="$work/rss-cache" ./vessel -q pull --no-https rss.sif "docker://$REGISTRY_HTTP/debian:bookworm")

# Charliecloud's pull (to a directory, not a SquashFS), where it runs: it
# speaks only HTTPS, so it pulls from the TLS registry, trusting its CA.
ch="n/a"
skopeo copy -q --src-tls-verify=false --dest-tls-verify=false --dest-creds "$REGISTRY_USER:$REGISTRY_PASSWORD" \
  "docker://$REGISTRY_HTTP/debian:bookworm" "docker://$REGISTRY_TLS/bench/debian:bookworm" 2>/dev/null || true
install -m 0644 "$REGISTRY_CA" "$work/ca.crt"
ch_pull() {
  rm -rf "$work/ch"
  as_user env REQUESTS_CA_BUNDLE="$work/ca.crt" CH_IMAGE_USERNAME="$REGISTRY_USER" CH_IMAGE_PASSWORD="$REGISTRY_PASSWORD" \
    ch-image -s "$work/ch" --no-cache --auth pull "$REGISTRY_TLS/bench/debian:bookworm" >/dev/null 2>&1
}
if ch_pull; then
  start=$(date +%s.%N)
  ch_pull
  end=$(date +%s.%N)
  ch=$(python3 -c "print(f'{($end - $start):.2f}')")
fi

python3 - "$rss" "$ch" "${results[@]}" <<'PY'
import json, sys
rss, ch, files = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
for f in files:
    name = f.rsplit("/", 1)[1][:-5]
    res = {r["command"]: r for r in json.load(open(f))["results"]}
    base = res["skopeo + umoci + mksquashfs"]["median"]
    print(f"{name}:")
    print(f"  {'command':32} {'median s':>9} {'× apptainer pipeline':>21}")
    for cmd, r in res.items():
        print(f"  {cmd:32} {r['median']:9.3f} {r['median']/base:21.2f}")
print(f"ch-image pull debian to a directory (cold, one run): {ch} s")
print(f"peak RSS of a cold vessel pull of debian (largest process): {rss/1024:.1f} MiB")
# Issue 20's goal, for the Debian image.
for f in files:
    if f.endswith("/debian.json"):
        res = {r["command"]: r["median"] for r in json.load(open(f))["results"]}
        ratio = res["vessel pull (cold cache)"] / res["skopeo + umoci + mksquashfs"]
        print(f"{'met   ' if ratio <= 0.25 else 'MISSED'} cold pull of debian <= 0.25x the Apptainer pipeline: {ratio:.2f}x")
PY
