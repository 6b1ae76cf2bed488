#!/usr/bin/env bash
# Builds the reference siftool from Debian's Go SIF library, offline, into $1.
# Needs: golang-go golang-github-sylabs-sif-dev (installed by .ci/setup.sh).
set -euo pipefail
out=${1:?usage: build-siftool.sh OUTPUT_BINARY}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# GOPATH mode has no module path with /v2: give the library that import path.
mkdir -p "$work/src/github.com/sylabs/sif" "$work/src/siftool"
ln -s /usr/share/gocode/src/github.com/sylabs/sif "$work/src/github.com/sylabs/sif/v2"
cp "$here/siftool/main.go" "$work/src/siftool/main.go"
cd "$work/src/siftool"
env -i PATH=/usr/bin:/bin GOCACHE="$work/cache" GOPATH="$work:/usr/share/gocode" \
  GO111MODULE=off GOPROXY=off CGO_ENABLED=0 go build -trimpath -o "$work/siftool" .
install -m 0755 "$work/siftool" "$out"
