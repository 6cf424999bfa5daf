#!/usr/bin/env bash
# Provides `prometheus` and `promtool` for the metrics tests (test/metrics/**): a real Prometheus scrapes the
# sidecar and the webhook, and promtool lints the scrapes and unit-tests the alert rules.
#
# Source, in order of preference:
#   1. Debian's `prometheus` package (apt-get). As root it is installed; without root it is fetched with
#      `apt-get download` and unpacked into the cache (the package's binaries are static Go programs).
#      The package ships an init script that would start a system Prometheus on 0.0.0.0:9090; the tests start
#      their own on loopback, so a daemon started by the install is stopped and disabled again.
#   2. Fallback when no Debian package is available (other distribution, no apt): build both commands from the
#      Go module github.com/prometheus/prometheus through the Go module proxy.
# Either way the binaries are linked into $MI_ANYWHERE_CACHE/bin, where the tests look first.
# Idempotent: a warm run only checks the links.
set -euo pipefail

CACHE="${MI_ANYWHERE_CACHE:-$HOME/.cache/mi-anywhere}"
BIN="$CACHE/bin"
# Go fallback version: the Prometheus 2.x line, as Debian 12 ships (module versions are v0.<minor>.<patch>).
PROMETHEUS_GO_VERSION="${MI_ANYWHERE_PROMETHEUS_GO_VERSION:-v0.53.3}"
mkdir -p "$BIN"

works() { [ -x "$1" ] && "$1" --version >/dev/null 2>&1; }
have_both() { works "$BIN/prometheus" && works "$BIN/promtool"; }

link_from() { # link_from <dir containing prometheus and promtool>
  ln -sf "$1/prometheus" "$BIN/prometheus"
  ln -sf "$1/promtool" "$BIN/promtool"
}

# MI_ANYWHERE_PROMETHEUS_FROM=go skips the Debian package (what a host without apt gets; exercises the fallback).
FROM="${MI_ANYWHERE_PROMETHEUS_FROM:-debian}"

if have_both; then
  echo "prometheus: cached ($("$BIN/prometheus" --version 2>&1 | head -1))"
  exit 0
fi

if [ "$FROM" = "debian" ] && works /usr/bin/prometheus && works /usr/bin/promtool; then
  link_from /usr/bin
fi

if [ "$FROM" = "debian" ] && ! have_both && command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ]; then
    # --no-install-recommends: the recommended node exporter would be one more system daemon.
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends prometheus >/dev/null 2>&1 \
      || { apt-get update >/dev/null && apt-get install -y --no-install-recommends prometheus >/dev/null; } \
      || echo "prometheus: apt-get install failed" >&2
    if [ -x /etc/init.d/prometheus ]; then
      # Only the tests' own loopback Prometheus is wanted; undo the package's service start, if it happened.
      /etc/init.d/prometheus status >/dev/null 2>&1 && /etc/init.d/prometheus stop >/dev/null 2>&1 || true
      command -v update-rc.d >/dev/null 2>&1 && update-rc.d prometheus disable >/dev/null 2>&1 || true
    fi
    works /usr/bin/prometheus && works /usr/bin/promtool && link_from /usr/bin
  else
    dir="$CACHE/debian-prometheus"
    rm -rf "$dir" && mkdir -p "$dir"
    if (cd "$dir" && apt-get download prometheus >/dev/null 2>&1); then
      dpkg-deb -x "$dir"/prometheus_*.deb "$dir/root"
      works "$dir/root/usr/bin/prometheus" && works "$dir/root/usr/bin/promtool" && link_from "$dir/root/usr/bin"
    else
      echo "prometheus: apt-get download failed" >&2
    fi
  fi
fi

build_from_go_module() {
  # `go install module@version` refuses modules whose go.mod has `replace` directives, and Prometheus' has some
  # (klog -> klog-gokit). A wrapper module that requires Prometheus and repeats its replace/exclude directives
  # builds both commands from the Go module proxy, as scripts/provision.d/30-kube.sh does for kube-apiserver.
  local version="$1" out="$2"
  local dir="$CACHE/go-build/prometheus-$version"
  mkdir -p "$dir" "$out"
  export GOFLAGS=-mod=mod GOMAXPROCS="${GOMAXPROCS:-2}"
  go mod download -json "github.com/prometheus/prometheus@$version" >"$dir/download.json"
  local gomod
  gomod="$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p' "$dir/download.json")"
  {
    echo "module mi-anywhere.local/prometheus-build"
    echo
    grep -m1 '^go ' "$gomod"
    echo
    echo "require github.com/prometheus/prometheus $version"
    echo
    # Every replace/exclude line or block of Prometheus' own go.mod, verbatim.
    awk '/^(replace|exclude) \(/{p=1} p{print} /^\)/{if(p){p=0; print ""}} /^(replace|exclude) [^(]/{print}' "$gomod"
  } >"$dir/go.mod"
  cat >"$dir/tools.go" <<'GO'
//go:build tools

// Package tools pins the commands we build, so `go mod tidy` keeps their dependencies.
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
GO
  (cd "$dir" && go mod tidy -e >/dev/null 2>&1 || true)
  # Module v0.<minor>.<patch> is Prometheus 2.<minor>.<patch>; stamp it so `--version` says what was built.
  local stamp="-X github.com/prometheus/common/version.Version=2.${version#v0.} -X github.com/prometheus/common/version.Branch=go-module -X github.com/prometheus/common/version.Revision=$version"
  for cmd in prometheus promtool; do
    (cd "$dir" && nice -n 10 go build -trimpath -ldflags "-s -w $stamp" -o "$out/$cmd.tmp" "github.com/prometheus/prometheus/cmd/$cmd")
    mv "$out/$cmd.tmp" "$out/$cmd"
  done
}

if ! have_both; then
  echo "prometheus: no Debian package; FALLBACK: building prometheus and promtool $PROMETHEUS_GO_VERSION from the Go module" >&2
  command -v go >/dev/null 2>&1 || { echo "prometheus: neither apt-get nor go is available" >&2; exit 1; }
  build_from_go_module "$PROMETHEUS_GO_VERSION" "$CACHE/go-prometheus-$PROMETHEUS_GO_VERSION"
  link_from "$CACHE/go-prometheus-$PROMETHEUS_GO_VERSION"
fi

have_both || { echo "prometheus: provisioning failed" >&2; exit 1; }
echo "prometheus: $("$BIN/prometheus" --version 2>&1 | head -1)"
