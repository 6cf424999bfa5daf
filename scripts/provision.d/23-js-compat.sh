#!/usr/bin/env bash
# Older JavaScript clients for the compatibility matrix's version axis (test/compat/versions.ts): the releases named
# in test/compat/js/package.json (npm aliases, side by side), installed with `npm ci` from its lock file into
# $MI_ANYWHERE_CACHE/js-compat, never into the project's own node_modules. Idempotent: redone only when the
# package.json or lock changes (stamp).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
CACHE="${MI_ANYWHERE_CACHE:-$HOME/.cache/mi-anywhere}"
src="$root/test/compat/js"
dir="$CACHE/js-compat"
stamp="$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [ -d "$dir/node_modules" ] && [ "$(cat "$dir/stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "compat-js (older @azure/identity, @azure/msal-node): cached"
  exit 0
fi
rm -rf "$dir.tmp"
mkdir -p "$dir.tmp"
cp "$src/package.json" "$src/package-lock.json" "$dir.tmp/"
(cd "$dir.tmp" && nice -n 10 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
echo "$stamp" >"$dir.tmp/stamp"
rm -rf "$dir"
mv "$dir.tmp" "$dir"
echo "compat-js (older @azure/identity, @azure/msal-node): installed"
