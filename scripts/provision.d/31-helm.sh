#!/usr/bin/env bash
# Builds helm from its Go module (through the Go module proxy) into $MI_ANYWHERE_CACHE/bin, for the chart
# tests (test/chart/**: `helm lint`, `helm template` per ci/ scenario, `helm install` into the real API server).
# Idempotent: a binary whose version stamp matches is not rebuilt, so a warm run is instant.
#
# Why v3: it is the line every current cluster tool and CI image still ships, and our chart (apiVersion v2)
# must install with it; helm v4 reads v2 charts too. The version is pinned (bump it here, the stamp rebuilds).
set -euo pipefail

HELM_VERSION="${MI_ANYWHERE_HELM_VERSION:-v3.22.0}"
CACHE="${MI_ANYWHERE_CACHE:-$HOME/.cache/mi-anywhere}"
BIN="$CACHE/bin"
mkdir -p "$BIN"

if [ -x "$BIN/helm" ] && [ -f "$BIN/helm.version" ] && [ "$(cat "$BIN/helm.version")" = "$HELM_VERSION" ]; then
  echo "helm $HELM_VERSION: cached"
  exit 0
fi

# Builds share 2 cores with other work: low priority, bounded parallelism.
export GOMAXPROCS="${GOMAXPROCS:-2}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# The same -X flags as helm's Makefile: the version, and the Kubernetes version `helm template`/`helm lint`
# assume without a cluster (client-go v0.N -> Kubernetes 1.N). Without them helm assumes v1.20.0.
gomod="$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
kminor="$(sed -n 's#^[[:space:]]*k8s.io/client-go v0\.\([0-9]*\)\..*#\1#p' "$gomod")"
[ -n "$kminor" ] || { echo "cannot read the client-go version from $gomod" >&2; exit 1; }
ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ld="$ld -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$kminor"
done
# `go install pkg@version` builds in module mode with the module's own go.mod (its replace directives too).
GOBIN="$tmp" nice -n 10 go install -trimpath -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
mv "$tmp/helm" "$BIN/helm"
echo "$HELM_VERSION" >"$BIN/helm.version"
"$BIN/helm" version --short
echo "helm $HELM_VERSION: built"
