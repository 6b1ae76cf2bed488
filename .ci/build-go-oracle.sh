#!/usr/bin/env bash
# Builds one of the Go test oracles in .ci/ (siftool, sifintegrity) from
# Debian's copy of the reference SIF library, offline, into OUTPUT.
# Needs: golang-go golang-github-sylabs-sif-dev (scripts/install-deps.sh).
set -euo pipefail
program=${1:?usage: build-go-oracle.sh PROGRAM OUTPUT_BINARY}
out=${2:?usage: build-go-oracle.sh PROGRAM OUTPUT_BINARY}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# GOPATH mode has no module path with /v2: give the library that import path.
mkdir -p "$work/src/github.com/sylabs/sif" "$work/src/$program"
ln -s /usr/share/gocode/src/github.com/sylabs/sif "$work/src/github.com/sylabs/sif/v2"
cp "$here/$program/main.go" "$work/src/$program/main.go"
cd "$work/src/$program"
env -i PATH=/usr/bin:/bin GOCACHE="$work/cache" GOPATH="$work:/usr/share/gocode" \
  GO111MODULE=off GOPROXY=off CGO_ENABLED=0 go build -trimpath -o "$work/$program" .
install -m 0755 "$work/$program" "$out"
