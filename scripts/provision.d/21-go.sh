#!/usr/bin/env bash
# Go client for the compatibility matrix: test/compat/go (azidentity, versions in its go.mod/go.sum) built once
# into $MI_ANYWHERE_CACHE/bin/mi-anywhere-compat-go. Idempotent: rebuilt only when a source file, go.mod,
# go.sum or the Go version changes (stamp next to the binary). Older azidentity releases: see the loop below.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
CACHE="${MI_ANYWHERE_CACHE:-$HOME/.cache/mi-anywhere}"
BIN="$CACHE/bin"
src="$root/test/compat/go"
out="$BIN/mi-anywhere-compat-go"
mkdir -p "$BIN"
if ! command -v go >/dev/null; then
  echo "21-go: no go toolchain on PATH" >&2
  exit 1
fi
stamp="$( { cat "$src"/go.mod "$src"/go.sum "$src"/*.go; go version; } | sha256sum | cut -d' ' -f1)"
if [ -x "$out" ] && [ "$(cat "$out.version" 2>/dev/null)" = "$stamp" ]; then
  echo "compat-go (azidentity): cached"
else
  # Low priority and at most 2 compile jobs: the machine is shared.
  (cd "$src" && GOFLAGS=-mod=readonly GOMAXPROCS="${GOMAXPROCS:-2}" nice -n 10 go build -trimpath -o "$out.tmp" .)
  mv "$out.tmp" "$out"
  echo "$stamp" >"$out.version"
  echo "compat-go (azidentity): built"
fi

# The version axis (test/compat/versions.ts): the same driver source built once per older azidentity release, with
# that release's go.mod/go.sum from test/compat/go/versions/<version>/ (older releases have no azidentity.ObjectID:
# built with the compat_no_objectid tag), into $BIN/mi-anywhere-compat-go-<version>.
for vdir in "$src"/versions/*/; do
  v="$(basename "$vdir")"
  vout="$BIN/mi-anywhere-compat-go-$v"
  vstamp="$( { cat "$vdir"go.mod "$vdir"go.sum "$src"/*.go; go version; } | sha256sum | cut -d' ' -f1)"
  if [ -x "$vout" ] && [ "$(cat "$vout.version" 2>/dev/null)" = "$vstamp" ]; then
    echo "compat-go azidentity $v: cached"
    continue
  fi
  work="$(mktemp -d)"
  cp "$src"/*.go "$vdir"go.mod "$vdir"go.sum "$work/"
  (cd "$work" && GOFLAGS=-mod=readonly GOMAXPROCS="${GOMAXPROCS:-2}" nice -n 10 go build -trimpath -tags compat_no_objectid -o "$vout.tmp" .)
  rm -rf "$work"
  mv "$vout.tmp" "$vout"
  echo "$vstamp" >"$vout.version"
  echo "compat-go azidentity $v: built"
done
