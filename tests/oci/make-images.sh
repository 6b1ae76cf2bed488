#!/usr/bin/env bash
# Builds the test images for `vessel pull docker://…` and pushes them into the
# local registries started by `.ci/registry.sh start STATE_DIR`:
#
#   tests/oci/make-images.sh STATE_DIR
#
# Run as root (umoci unpack/repack keep real ownership only as root, and the
# Debian tree is unsquashed with its owners). Needs the Debian packages umoci
# skopeo python3 curl squashfs-tools busybox-static (and, only when
# /var/cache/vessel-ci/debian/debian.sqfs is missing, debootstrap).
#
# Images, on 127.0.0.1:5000 (plain HTTP, anonymous) unless said otherwise:
#   busybox:latest     one layer: static busybox, applet symlinks, /etc/passwd
#                      (root, user 1000, nobody), /etc/group, /tmp 1777,
#                      /root 0700, /srv. Config: Env PATH=… FOO=bar
#                      SPACED=hello world, Cmd ["sh"], no Entrypoint,
#                      WorkingDir /srv, Labels org.opencontainers.image.title
#                      and org.vessel.ci.image=busybox.
#   layers:latest      busybox + the 5 layers described below.
#   multiarch:latest   an OCI image index: linux/amd64 and linux/arm64 manifests
#                      (same busybox layer, both sharing it, plus a layer with
#                      /arch.txt = "amd64\n" or "arm64\n"; the arm64 config says
#                      architecture arm64 but its busybox is still x86-64).
#   debian:bookworm    one ~60 MB gzip layer: the debootstrap minbase tree of
#                      /var/cache/vessel-ci/debian/debian.sqfs (Cmd ["bash"]).
#   hostile/<case>:latest  single-layer images whose layer tries to escape the
#                      rootfs, each after a harmless regular file ok.txt:
#     dotdot             `../escape.txt` (regular file)
#     absolute           `/abs-escape.txt` (regular file, leading slash kept)
#     symlink-escape     `evil` -> /tmp/vessel-hostile-target, then `evil/pwned.txt`
#     symlink-relative   `evil` -> ../../../../../../../../tmp/vessel-hostile-target,
#                        then `evil/pwned.txt`
#     hardlink-escape    `hl` hard link to `../../etc/passwd`
#     hardlink-absolute  `hl` hard link to `/etc/passwd`
#     chardev            `mem`: character device 1,1 (/dev/mem), mode 0666
# On 127.0.0.1:5443 (TLS with STATE_DIR/ca.crt, user vessel/vessel-secret):
#   private/busybox:latest, private/multiarch:latest  (the same images)
#
# layers:latest, layer by layer (uncompressed tars made with Python's tarfile,
# added verbatim with `umoci raw add-layer`; every entry root:root, mtime
# 1700000000, unless said):
#   L1  data/ 0755; data/replaced.txt "v1\n" 0644; data/deleted.txt 0644;
#       data/deleted-dir/ 0755 + data/deleted-dir/inner.txt; data/kept.txt;
#       data/opaque/ 0755 + opaque/lower.txt + opaque/lower-sub/deep.txt;
#       data/type-change (a regular file)
#   L2  data/replaced.txt "v2\n" 0640 (replaced: new content and mode);
#       whiteouts data/.wh.deleted.txt, data/.wh.deleted-dir
#   L3  data/opaque/ + data/opaque/.wh..wh..opq + data/opaque/upper.txt;
#       data/type-change/ (the file becomes a directory) + type-change/inner.txt
#   L4  data/hardlink-target.txt and data/hardlink.txt (hard link to it);
#       data/symlink -> kept.txt; data/abs-symlink -> /bin/busybox;
#       data/xattr.txt with xattr user.vessel=hello (PAX SCHILY.xattr.user.vessel)
#   L5  data/root-only.txt 0600; data/userdir/ 0750 1000:1000 +
#       data/userdir/user-file.txt 0640 1000:1000; data/exec.sh 0755;
#       data/sticky/ 1777
# Expected final tree under /data (besides the busybox files), mtime 1700000000:
#   PATH                        TYPE  MODE  UID:GID    CONTENT / TARGET
#   /data                       dir   0755  0:0
#   /data/replaced.txt          file  0640  0:0        "v2\n"
#   /data/kept.txt              file  0644  0:0        "kept from layer 1\n"
#   /data/opaque                dir   0755  0:0        (holds upper.txt only)
#   /data/opaque/upper.txt      file  0644  0:0        "upper\n"
#   /data/type-change           dir   0755  0:0
#   /data/type-change/inner.txt file  0644  0:0        "now a directory\n"
#   /data/hardlink-target.txt   file  0644  0:0        "shared inode\n"  (nlink 2)
#   /data/hardlink.txt          file  0644  0:0        same inode as hardlink-target.txt
#   /data/symlink               link  0777  0:0        -> kept.txt
#   /data/abs-symlink           link  0777  0:0        -> /bin/busybox
#   /data/xattr.txt             file  0644  0:0        "has xattr\n", user.vessel="hello"
#   /data/root-only.txt         file  0600  0:0        "secret\n"
#   /data/userdir               dir   0750  1000:1000
#   /data/userdir/user-file.txt file  0640  1000:1000  "owned by 1000\n"
#   /data/exec.sh               file  0755  0:0        "#!/bin/sh\necho exec-ok\n"
#   /data/sticky                dir   1777  0:0        (empty)
# and absent: /data/deleted.txt, /data/deleted-dir, /data/opaque/lower.txt,
# /data/opaque/lower-sub, and any file whose name starts with ".wh.".
#
# Re-runs are cheap: every manifest (and the index) carries the annotation
# org.vessel.ci.recipe=<hash of this script>; an image whose manifest in the
# registry has the current value is skipped. All timestamps are fixed, so the
# same script gives the same digests on every run (the Debian one as long as
# debian.sqfs is not rebuilt).
# Build products (OCI layouts, usable as `oci:DIR:TAG`) stay in STATE_DIR/oci.
set -euo pipefail

state=${1:-}
[ -n "$state" ] || { echo "usage: $0 STATE_DIR (after .ci/registry.sh start STATE_DIR)" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "$0: must run as root" >&2; exit 1; }
[ -r "$state/env" ] || { echo "$0: $state/env missing: run .ci/registry.sh start $state first" >&2; exit 1; }
state=$(cd "$state" && pwd)
for c in umoci skopeo python3 curl unsquashfs; do
  command -v "$c" >/dev/null || { echo "$0: $c missing (apt-get install -y umoci skopeo python3 curl squashfs-tools)" >&2; exit 1; }
done
[ -x /bin/busybox ] || { echo "$0: /bin/busybox missing (apt-get install -y busybox-static)" >&2; exit 1; }
# shellcheck source=/dev/null
. "$state/env"
export REGISTRY_HTTP REGISTRY_TLS REGISTRY_USER REGISTRY_PASSWORD REGISTRY_CA

self=$(readlink -f "$0")
repo_root=$(cd "$(dirname "$self")/../.." && pwd)
work=$state/oci
recipe=$(sha256sum "$self" | cut -c1-16)
# One fixed time for file mtimes, config "created" and history entries:
# digests then depend only on this script.
readonly EPOCH=1700000000 CREATED=2023-11-14T22:13:20Z
readonly DEBIAN_SQFS=/var/cache/vessel-ci/debian/debian.sqfs
readonly HOSTILE_CASES=(dotdot absolute symlink-escape symlink-relative hardlink-escape hardlink-absolute chardev)
mkdir -p "$work"

# The layer tars, hand-assembled image layouts and registry queries are done in
# Python: tarfile writes exactly the entries asked for (GNU tar and umoci would
# normalise `../x`, `/x` and whiteouts away).
read -r -d '' PY <<'EOF' || true
import base64, gzip, hashlib, io, json, os, shutil, ssl, sys, tarfile, urllib.error, urllib.request

EPOCH = 1700000000
CREATED = "2023-11-14T22:13:20Z"
MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
ACCEPT = ", ".join([MT_MANIFEST, MT_INDEX, DOCKER_LIST,
                    "application/vnd.docker.distribution.manifest.v2+json"])

def tar_bytes(entries):
    """entries: (name, kind, dict) with kind f(ile) d(ir) s(ymlink) h(ardlink) c(hardev)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, o in entries:
            ti = tarfile.TarInfo(name)  # written as given: no stripping of "/" or ".."
            ti.mtime = EPOCH
            ti.uid, ti.gid = o.get("uid", 0), o.get("gid", 0)
            ti.uname = ti.gname = ""
            ti.mode = o.get("mode", {"d": 0o755, "s": 0o777, "c": 0o666}.get(kind, 0o644))
            data = o.get("data", b"")
            if kind == "f":
                ti.type, ti.size = tarfile.REGTYPE, len(data)
            elif kind == "d":
                ti.type = tarfile.DIRTYPE
            elif kind == "s":
                ti.type, ti.linkname = tarfile.SYMTYPE, o["link"]
            elif kind == "h":
                ti.type, ti.linkname = tarfile.LNKTYPE, o["link"]
            elif kind == "c":
                ti.type, (ti.devmajor, ti.devminor) = tarfile.CHRTYPE, o["dev"]
            for k, v in o.get("xattrs", {}).items():
                ti.pax_headers["SCHILY.xattr." + k] = v
            tf.addfile(ti, io.BytesIO(data) if kind == "f" else None)
    return buf.getvalue()

def F(name, data, **o): return (name, "f", dict(o, data=data))
def D(name, **o): return (name, "d", o)
def WH(name): return (name, "f", {})  # whiteouts: empty regular files

LAYERS = [
    [D("data/"), F("data/replaced.txt", b"v1\n"), F("data/deleted.txt", b"deleted in layer 2\n"),
     D("data/deleted-dir/"), F("data/deleted-dir/inner.txt", b"gone\n"),
     F("data/kept.txt", b"kept from layer 1\n"),
     D("data/opaque/"), F("data/opaque/lower.txt", b"lower\n"),
     D("data/opaque/lower-sub/"), F("data/opaque/lower-sub/deep.txt", b"deep lower\n"),
     F("data/type-change", b"was a file\n")],
    [D("data/"), F("data/replaced.txt", b"v2\n", mode=0o640),
     WH("data/.wh.deleted.txt"), WH("data/.wh.deleted-dir")],
    [D("data/"), D("data/opaque/"), WH("data/opaque/.wh..wh..opq"),
     F("data/opaque/upper.txt", b"upper\n"),
     D("data/type-change/"), F("data/type-change/inner.txt", b"now a directory\n")],
    [D("data/"), F("data/hardlink-target.txt", b"shared inode\n"),
     ("data/hardlink.txt", "h", {"link": "data/hardlink-target.txt"}),
     ("data/symlink", "s", {"link": "kept.txt"}),
     ("data/abs-symlink", "s", {"link": "/bin/busybox"}),
     F("data/xattr.txt", b"has xattr\n", xattrs={"user.vessel": "hello"})],
    [D("data/"), F("data/root-only.txt", b"secret\n", mode=0o600),
     D("data/userdir/", mode=0o750, uid=1000, gid=1000),
     F("data/userdir/user-file.txt", b"owned by 1000\n", mode=0o640, uid=1000, gid=1000),
     F("data/exec.sh", b"#!/bin/sh\necho exec-ok\n", mode=0o755),
     D("data/sticky/", mode=0o1777)],
]

TARGET = "/tmp/vessel-hostile-target"
OK = F("ok.txt", b"benign\n")
HOSTILE = {
    "dotdot": [OK, F("../escape.txt", b"escaped via ../\n")],
    "absolute": [OK, F("/abs-escape.txt", b"escaped via an absolute path\n")],
    "symlink-escape": [OK, ("evil", "s", {"link": TARGET}),
                       F("evil/pwned.txt", b"written through a symlink\n")],
    "symlink-relative": [OK, ("evil", "s", {"link": "../../../../../../../.." + TARGET}),
                         F("evil/pwned.txt", b"written through a symlink\n")],
    "hardlink-escape": [OK, ("hl", "h", {"link": "../../etc/passwd"})],
    "hardlink-absolute": [OK, ("hl", "h", {"link": "/etc/passwd"})],
    "chardev": [OK, ("mem", "c", {"dev": (1, 1), "mode": 0o666})],
}

def dumps(o): return json.dumps(o, separators=(",", ":")).encode()

def put_blob(layout, data):
    d = hashlib.sha256(data).hexdigest()
    os.makedirs(f"{layout}/blobs/sha256", exist_ok=True)
    with open(f"{layout}/blobs/sha256/{d}", "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + d, "size": len(data)}

def write_layout(layout, mediatype, blob, tag):
    with open(f"{layout}/oci-layout", "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    ref = dict(mediaType=mediatype, **blob, annotations={"org.opencontainers.image.ref.name": tag})
    with open(f"{layout}/index.json", "wb") as f:
        f.write(dumps({"schemaVersion": 2, "manifests": [ref]}))

def cmd_layer_tars(out):
    os.makedirs(out, exist_ok=True)
    for i, entries in enumerate(LAYERS, 1):
        with open(f"{out}/layer{i}.tar", "wb") as f:
            f.write(tar_bytes(entries))
    for arch in ("amd64", "arm64"):
        with open(f"{out}/arch-{arch}.tar", "wb") as f:
            f.write(tar_bytes([F("arch.txt", arch.encode() + b"\n")]))

def cmd_hostile(layout, case, recipe):
    shutil.rmtree(layout, ignore_errors=True)
    tar = tar_bytes(HOSTILE[case])
    with open(f"{layout}.tar", "wb") as f:  # kept for inspection (tar tvf)
        f.write(tar)
    layer = put_blob(layout, gzip.compress(tar, mtime=0))
    config = {"created": CREATED, "architecture": "amd64", "os": "linux",
              "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                         "Cmd": ["/ok.txt"], "Labels": {"org.vessel.ci.image": "hostile/" + case}},
              "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar).hexdigest()]},
              "history": [{"created": CREATED, "created_by": "make-images.sh: hostile layer " + case}]}
    manifest = {"schemaVersion": 2, "mediaType": MT_MANIFEST,
                "config": dict(mediaType=MT_CONFIG, **put_blob(layout, dumps(config))),
                "layers": [dict(mediaType=MT_LAYER, **layer)],
                "annotations": {"org.vessel.ci.recipe": recipe}}
    write_layout(layout, MT_MANIFEST, put_blob(layout, dumps(manifest)), "latest")

def cmd_multiarch(src, dst, recipe):
    """An image index over the tags mm-amd64 and mm-arm64 of layout src, as layout dst."""
    shutil.rmtree(dst, ignore_errors=True)
    os.makedirs(f"{dst}/blobs/sha256")
    def copy(digest):
        h = digest.split(":", 1)[1]
        shutil.copyfile(f"{src}/blobs/sha256/{h}", f"{dst}/blobs/sha256/{h}")
    tags = {m["annotations"]["org.opencontainers.image.ref.name"]: m
            for m in json.load(open(f"{src}/index.json"))["manifests"]}
    children = []
    for arch in ("amd64", "arm64"):
        d = tags["mm-" + arch]
        copy(d["digest"])
        m = json.load(open(f"{src}/blobs/sha256/{d['digest'].split(':', 1)[1]}"))
        for b in [m["config"]] + m["layers"]:
            copy(b["digest"])
        children.append({"mediaType": MT_MANIFEST, "digest": d["digest"], "size": d["size"],
                         "platform": {"architecture": arch, "os": "linux"}})
    index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": children,
             "annotations": {"org.vessel.ci.recipe": recipe}}
    write_layout(dst, MT_INDEX, put_blob(dst, dumps(index)), "latest")

def fetch(ref):
    """Raw manifest bytes of host/repo:tag or host/repo@digest, None when unknown."""
    host, rest = ref.split("/", 1)
    repo, sep, tag = rest.partition("@")
    if not sep:
        repo, _, tag = rest.rpartition(":")
    req = urllib.request.Request(
        f"{'https' if host == os.environ['REGISTRY_TLS'] else 'http'}://{host}/v2/{repo}/manifests/{tag}",
        headers={"Accept": ACCEPT})
    ctx = None
    if host == os.environ["REGISTRY_TLS"]:
        ctx = ssl.create_default_context(cafile=os.environ["REGISTRY_CA"])
        cred = f"{os.environ['REGISTRY_USER']}:{os.environ['REGISTRY_PASSWORD']}"
        req.add_header("Authorization", "Basic " + base64.b64encode(cred.encode()).decode())
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.read()
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise

def cmd_stale(recipe, *refs):
    """Prints the refs not in their registry with this recipe annotation."""
    for ref in refs:
        raw = fetch(ref)
        if raw is None or json.loads(raw).get("annotations", {}).get("org.vessel.ci.recipe") != recipe:
            print(ref)

def human(n):
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024

def cmd_summary(*refs):
    rows = []
    for ref in refs:
        raw = fetch(ref)
        if raw is None:
            rows.append((ref, "MISSING", ""))
            continue
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        m = json.loads(raw)
        if m.get("mediaType") in (MT_INDEX, DOCKER_LIST):
            rows.append((ref, digest, f"index of {len(m['manifests'])}"))
            for c in m["manifests"]:
                p = c["platform"]
                cm = json.loads(fetch(f"{ref.rpartition(':')[0]}@{c['digest']}"))
                rows.append((f"  {p['os']}/{p['architecture']}", c["digest"],
                             ", ".join(human(l["size"]) for l in cm["layers"])))
        else:
            rows.append((ref, digest, ", ".join(human(l["size"]) for l in m["layers"])))
    w = max(len(r[0]) for r in rows)
    print(f"{'IMAGE':<{w}}  {'MANIFEST DIGEST':<71}  LAYERS (compressed)")
    for r in rows:
        print(f"{r[0]:<{w}}  {r[1]:<71}  {r[2]}")

globals()["cmd_" + sys.argv[1].replace("-", "_")](*sys.argv[2:])
EOF
py() { python3 -c "$PY" "$@"; }


# Pushes OCI layout tag SRC (layout:tag) to docker REF. --preserve-digests:
# the registry must serve the very manifest bytes built here (a format
# conversion would change the digests the tests see).
push() {
  local src=$1 ref=$2 opts=(--quiet --preserve-digests --all)
  if [ "${ref%%/*}" = "$REGISTRY_TLS" ]; then
    opts+=(--dest-creds "$REGISTRY_USER:$REGISTRY_PASSWORD" --dest-cert-dir "$REGISTRY_CERT_DIR")
  else
    opts+=(--dest-tls-verify=false)
  fi
  skopeo copy "${opts[@]}" "oci:$src" "docker://$ref"
}

# Prints one line per image: pushed (with the time it took) or up to date.
report() { echo "$1: $2"; }

make_busybox_rootfs() {
  local r=$1 d
  for d in bin sbin usr/bin usr/sbin etc root tmp home dev proc sys srv var; do mkdir -p "$r/$d"; done
  chmod 0700 "$r/root"
  chmod 1777 "$r/tmp"
  install -m 0755 /bin/busybox "$r/bin/busybox"
  # Absolute symlinks to /bin/busybox in bin, sbin, usr/bin, usr/sbin.
  chroot "$r" /bin/busybox --install -s
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'user:x:1000:1000:user:/home/user:/bin/sh' \
    'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$r/etc/passwd"
  printf '%s\n' 'root:x:0:' 'user:x:1000:' 'nogroup:x:65534:' >"$r/etc/group"
  # Fixed mtimes (touch -h: the links themselves) make the layer reproducible.
  find "$r" -exec touch -h -d "@$EPOCH" {} +
}

# busybox, layers and the two multiarch manifests share one umoci layout.
build_umoci_images() {
  local L=$work/umoci b=$work/bundle tars=$work/tars arch i
  local hist=(--history.created "$CREATED")
  local cfg=(--no-history --created "$CREATED" --os linux
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    --config.env FOO=bar --config.env 'SPACED=hello world' --config.cmd sh --config.workingdir /srv
    --config.label org.opencontainers.image.title=vessel-ci-busybox
    --manifest.annotation "org.vessel.ci.recipe=$recipe")
  rm -rf "$L" "$b" "$tars"
  umoci init --layout "$L"
  umoci new --image "$L:busybox"
  umoci unpack --image "$L:busybox" "$b"
  make_busybox_rootfs "$b/rootfs"
  umoci repack --image "$L:busybox" "${hist[@]}" --history.created_by "make-images.sh: busybox rootfs" "$b"
  umoci config --image "$L:busybox" "${cfg[@]}" --architecture amd64 --config.label org.vessel.ci.image=busybox
  rm -rf "$b"

  py layer-tars "$tars"
  umoci raw add-layer --image "$L:busybox" --tag layers "${hist[@]}" --history.created_by "make-images.sh: layers L1" "$tars/layer1.tar"
  for i in 2 3 4 5; do
    umoci raw add-layer --image "$L:layers" "${hist[@]}" --history.created_by "make-images.sh: layers L$i" "$tars/layer$i.tar"
  done
  umoci config --image "$L:layers" "${cfg[@]}" --architecture amd64 --clear config.labels \
    --config.label org.opencontainers.image.title=vessel-ci-layers --config.label org.vessel.ci.image=layers

  for arch in amd64 arm64; do
    umoci raw add-layer --image "$L:busybox" --tag "mm-$arch" "${hist[@]}" --history.created_by "make-images.sh: /arch.txt" "$tars/arch-$arch.tar"
    umoci config --image "$L:mm-$arch" "${cfg[@]}" --architecture "$arch" --clear config.labels \
      --config.label org.opencontainers.image.title=vessel-ci-multiarch --config.label "org.vessel.ci.image=multiarch-$arch"
  done
  # Blobs of the intermediate manifests and configs each umoci step left.
  umoci gc --layout "$L"
  py multiarch "$L" "$work/multiarch" "$recipe"
}

build_debian() {
  local L=$work/debian b=$work/debian-bundle
  if [ ! -s "$DEBIAN_SQFS" ]; then
    echo "debian:bookworm: $DEBIAN_SQFS missing, building it (minutes)"
    "$repo_root/scripts/make-debian-image.sh" "$(dirname "$DEBIAN_SQFS")"
  fi
  rm -rf "$L" "$b"
  umoci init --layout "$L"
  umoci new --image "$L:bookworm"
  umoci unpack --image "$L:bookworm" "$b"
  # As root unsquashfs keeps owners, modes and xattrs.
  unsquashfs -f -no-progress -d "$b/rootfs" "$DEBIAN_SQFS" >/dev/null
  umoci repack --image "$L:bookworm" --history.created "$CREATED" --history.created_by "make-images.sh: debootstrap --variant=minbase" "$b"
  umoci config --image "$L:bookworm" --no-history --created "$CREATED" --os linux --architecture amd64 \
    --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --config.cmd bash \
    --config.label org.vessel.ci.image=debian --manifest.annotation "org.vessel.ci.recipe=$recipe"
  umoci gc --layout "$L"
  rm -rf "$b"
}

# Fail early and clearly when the registries are not there.
if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://$REGISTRY_HTTP/v2/")" != 200 ] ||
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 --cacert "$REGISTRY_CA" "https://$REGISTRY_TLS/v2/")" != 401 ]; then
  echo "$0: registries not answering: run .ci/registry.sh start $state first" >&2
  exit 1
fi

H=$REGISTRY_HTTP T=$REGISTRY_TLS
# SOURCE (layout:tag under $work) and destination of each umoci-built image.
umoci_images=(
  "umoci:busybox $H/busybox:latest"
  "umoci:layers $H/layers:latest"
  "multiarch:latest $H/multiarch:latest"
  "umoci:busybox $T/private/busybox:latest"
  "multiarch:latest $T/private/multiarch:latest"
)
all_refs=()
for e in "${umoci_images[@]}"; do all_refs+=("${e#* }"); done
all_refs+=("$H/debian:bookworm")
for c in "${HOSTILE_CASES[@]}"; do all_refs+=("$H/hostile/$c:latest"); done

# One query for all (one Python start instead of one per image).
declare -A stale=()
stale_list=$(py stale "$recipe" "${all_refs[@]}")
for r in $stale_list; do stale[$r]=1; done
is_stale() { [ -n "${stale[$1]:-}" ]; }

todo=()
for e in "${umoci_images[@]}"; do
  if is_stale "${e#* }"; then todo+=("$e"); else report "${e#* }" "up to date"; fi
done
if [ ${#todo[@]} -gt 0 ]; then
  SECONDS=0
  build_umoci_images
  echo "umoci images built in ${SECONDS}s"
  for e in "${todo[@]}"; do
    SECONDS=0
    push "$work/${e%% *}" "${e#* }"
    report "${e#* }" "pushed (${SECONDS}s)"
  done
fi

ref=$H/debian:bookworm
if ! is_stale "$ref"; then report "$ref" "up to date"; else
  SECONDS=0
  build_debian
  t=$SECONDS
  SECONDS=0
  push "$work/debian:bookworm" "$ref"
  report "$ref" "pushed (built in ${t}s, pushed in ${SECONDS}s)"
fi

for c in "${HOSTILE_CASES[@]}"; do
  ref=$H/hostile/$c:latest
  if ! is_stale "$ref"; then report "$ref" "up to date"; continue; fi
  SECONDS=0
  py hostile "$work/hostile-$c" "$c" "$recipe"
  push "$work/hostile-$c:latest" "$ref"
  report "$ref" "pushed (${SECONDS}s)"
done

echo
py summary "${all_refs[@]}"
