#!/usr/bin/env bash
# Installs everything the test suite needs beyond npm packages: real SDKs of other languages, Go-built tools
# (helm, kube-apiserver, etcd, azwi), Prometheus. Every step is idempotent and caches under
# $MI_ANYWHERE_CACHE (default ~/.cache/mi-anywhere), so a warm run takes seconds.
# Steps live in scripts/provision.d/*.sh and run in name order; each may be skipped with
# MI_ANYWHERE_SKIP_PROVISION=1 (for example when only unit tests are wanted).
set -euo pipefail
[ "${MI_ANYWHERE_SKIP_PROVISION:-}" = "1" ] && exit 0
here="$(cd "$(dirname "$0")" && pwd)"
export MI_ANYWHERE_CACHE="${MI_ANYWHERE_CACHE:-$HOME/.cache/mi-anywhere}"
mkdir -p "$MI_ANYWHERE_CACHE/bin"
for step in "$here"/provision.d/*.sh; do
  [ -e "$step" ] || continue
  echo "== provision: $(basename "$step")"
  start=$(date +%s)
  bash "$step"
  echo "== provision: $(basename "$step") done in $(( $(date +%s) - start ))s"
done
