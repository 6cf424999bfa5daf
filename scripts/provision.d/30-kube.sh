#!/usr/bin/env bash
# Builds kube-apiserver and etcd from their Go modules (through the Go module proxy) into
# $MI_ANYWHERE_CACHE/bin, for the webhook's real-API-server end-to-end tests (test/e2e/**) and the chart's
# `helm install` tests. Idempotent: a binary whose version stamp matches is not rebuilt, so a warm run is instant.
#
# Why a wrapper module: k8s.io/kubernetes's own go.mod points every k8s.io/* staging module at
# ./staging/src/... with `replace` directives, and `replace` directives of a dependency are ignored by Go.
# A tiny module that requires k8s.io/kubernetes and maps each staging module to its published v0.x twin
# (v1.36.3 <-> v0.36.3) makes `go build k8s.io/kubernetes/cmd/kube-apiserver` resolvable from the proxy.
# etcd: a three-line main calling etcdmain.Main (the same thing etcd's root module does), built against the
# published go.etcd.io/etcd/server/v3 release, so nothing is cloned.
set -euo pipefail

KUBE_VERSION="${MI_ANYWHERE_KUBE_VERSION:-v1.36.3}"
ETCD_VERSION="${MI_ANYWHERE_ETCD_VERSION:-v3.6.16}"
CACHE="${MI_ANYWHERE_CACHE:-$HOME/.cache/mi-anywhere}"
BIN="$CACHE/bin"
WORK="$CACHE/go-build"
mkdir -p "$BIN" "$WORK"
export GOFLAGS=-mod=mod
# Builds share 2 cores with other work: low priority, and a bounded number of parallel compiles.
export GOMAXPROCS="${GOMAXPROCS:-2}"
NICE="nice -n 10"

stamp_ok() { [ -x "$BIN/$1" ] && [ -f "$BIN/$1.version" ] && [ "$(cat "$BIN/$1.version")" = "$2" ]; }

build_kube_apiserver() {
  if stamp_ok kube-apiserver "$KUBE_VERSION"; then echo "kube-apiserver $KUBE_VERSION: cached"; return; fi
  local dir="$WORK/kube-apiserver-$KUBE_VERSION"
  mkdir -p "$dir"
  local staging="v0.${KUBE_VERSION#v1.}"
  go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" >"$dir/download.json"
  local gomod
  gomod="$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p' "$dir/download.json")"
  local goline
  goline="$(grep -m1 '^go ' "$gomod")"
  {
    echo "module mi-anywhere.local/kube-apiserver-build"
    echo
    echo "$goline"
    echo
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    echo
    echo "replace ("
    # Every `k8s.io/x => ./staging/src/k8s.io/x` line becomes `k8s.io/x => k8s.io/x v0.N.P`.
    sed -n 's#^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/src/.*$#\t\1 => \1 '"$staging"'#p' "$gomod"
    echo ")"
  } >"$dir/go.mod"
  cat >"$dir/tools.go" <<'GO'
//go:build tools

// Package tools pins the command we build, so `go mod tidy` keeps its dependencies.
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
  (cd "$dir" && go mod tidy -e >/dev/null 2>&1 || true)
  (cd "$dir" && $NICE go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2)" \
    -o "$BIN/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver)
  mv "$BIN/kube-apiserver.tmp" "$BIN/kube-apiserver"
  echo "$KUBE_VERSION" >"$BIN/kube-apiserver.version"
  echo "kube-apiserver $KUBE_VERSION: built"
}

build_etcd() {
  if stamp_ok etcd "$ETCD_VERSION"; then echo "etcd $ETCD_VERSION: cached"; return; fi
  local dir="$WORK/etcd-$ETCD_VERSION"
  mkdir -p "$dir"
  cat >"$dir/go.mod" <<GOMOD
module mi-anywhere.local/etcd-build

go 1.24

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
GOMOD
  cat >"$dir/main.go" <<'GO'
// Command etcd is etcd's own entry point (etcd's root main.go does exactly this).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (cd "$dir" && go mod tidy >/dev/null)
  (cd "$dir" && $NICE go build -trimpath -ldflags "-s -w" -o "$BIN/etcd.tmp" .)
  mv "$BIN/etcd.tmp" "$BIN/etcd"
  echo "$ETCD_VERSION" >"$BIN/etcd.version"
  echo "etcd $ETCD_VERSION: built"
}

build_etcd
build_kube_apiserver
