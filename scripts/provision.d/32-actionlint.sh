#!/usr/bin/env bash
# Builds actionlint from its Go module (through the Go module proxy) into $MI_ANYWHERE_CACHE/bin, for the
# workflow check (test/release/workflows.test.ts lints .github/workflows/*.yml with it). Idempotent: a binary
# whose version stamp matches is not rebuilt, so a warm run is instant.
#
# actionlint runs shellcheck on every `run:` script when shellcheck is on PATH. It is optional: installed from
# Debian when we are root, otherwise the workflow test runs actionlint without it and says so.
set -euo pipefail

if ! command -v shellcheck >/dev/null && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends shellcheck >/dev/null 2>&1 \
    || echo "shellcheck could not be installed (optional; actionlint runs without it)" >&2
fi

ACTIONLINT_VERSION="${MI_ANYWHERE_ACTIONLINT_VERSION:-v1.7.12}"
CACHE="${MI_ANYWHERE_CACHE:-$HOME/.cache/mi-anywhere}"
BIN="$CACHE/bin"
mkdir -p "$BIN"

if [ -x "$BIN/actionlint" ] && [ -f "$BIN/actionlint.version" ] && [ "$(cat "$BIN/actionlint.version")" = "$ACTIONLINT_VERSION" ]; then
  echo "actionlint $ACTIONLINT_VERSION: cached"
  exit 0
fi

# Builds share 2 cores with other work: low priority, bounded parallelism.
export GOMAXPROCS="${GOMAXPROCS:-2}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# The same -X flag as actionlint's release builds, so `actionlint -version` names the version.
GOBIN="$tmp" nice -n 10 go install -trimpath \
  -ldflags "-s -w -X github.com/rhysd/actionlint.version=${ACTIONLINT_VERSION#v}" \
  "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION"
mv "$tmp/actionlint" "$BIN/actionlint"
echo "$ACTIONLINT_VERSION" >"$BIN/actionlint.version"
"$BIN/actionlint" -version | head -n 1
echo "actionlint $ACTIONLINT_VERSION: built"
