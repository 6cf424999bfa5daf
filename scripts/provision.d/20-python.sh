#!/usr/bin/env bash
# Python clients for the compatibility matrix (test/compat/): a venv with azure-identity, msal and azure-cli
# from PyPI, exactly as pinned in test/compat/python/requirements.txt (top level) and requirements.lock (the
# whole transitive set). Idempotent: the venv carries a stamp (hash of both files + interpreter version) and is
# only rebuilt when that changes, so a warm run is instant. Built next to the old one and switched to at the
# end, so an interrupted build never leaves a half venv behind.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
CACHE="${MI_ANYWHERE_CACHE:-$HOME/.cache/mi-anywhere}"
req="$root/test/compat/python/requirements.txt"
lock="$root/test/compat/python/requirements.lock"
dir="$CACHE/python"
venv="$dir/venv"
py="${MI_ANYWHERE_PYTHON:-$(command -v python3 || true)}"
if [ -z "$py" ]; then
  echo "20-python: no python3 on PATH (set MI_ANYWHERE_PYTHON)" >&2
  exit 1
fi
stamp="$( { cat "$req" "$lock"; "$py" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"
build_newest() {
  mkdir -p "$dir"
  # Venvs are not relocatable (scripts carry their interpreter path), so each build gets its own directory and
  # `venv` is a symlink switched only once the build is complete.
  build="$dir/venv-${stamp:0:16}"
  rm -rf "$build"
  "$py" -m venv "$build"
  "$build/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$req" -c "$lock"
  echo "$stamp" >"$build/.mi-anywhere-stamp"
  ln -sfn "$build" "$venv.tmp"
  mv -T "$venv.tmp" "$venv"
  find "$dir" -maxdepth 1 -name 'venv-*' ! -path "$build" -exec rm -rf {} +
  "$venv/bin/python" -c 'from importlib.metadata import version as v; print("python venv: azure-identity", v("azure-identity"), "msal", v("msal"), "azure-cli", v("azure-cli"))'
}
if [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.mi-anywhere-stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "python venv (azure-identity, msal, azure-cli): cached"
else
  build_newest
fi

# --- The version axis (test/compat/versions.ts): one venv per file in test/compat/python/versions/, each with its
# own stamp, built in parallel (pip mostly waits on the network) at low priority. The Azure CLI from Debian (2.45,
# msrestazure-based) comes from apt, as a user of Debian gets it.
vdir="$dir/venvs"
mkdir -p "$vdir"
pids=()
for spec in "$root"/test/compat/python/versions/*.txt; do
  name="$(basename "$spec" .txt)"
  target="$vdir/$name"
  vstamp="$( { cat "$spec"; "$py" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"
  if [ -x "$target/bin/python" ] && [ "$(cat "$target/.mi-anywhere-stamp" 2>/dev/null)" = "$vstamp" ]; then
    echo "python venv $name: cached"
    continue
  fi
  (
    rm -rf "$target.tmp" "$target"
    "$py" -m venv "$target"
    nice -n 10 "$target/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$spec" >"$vdir/$name.log" 2>&1 \
      || { echo "20-python: pip install for $name failed:" >&2; tail -5 "$vdir/$name.log" >&2; exit 1; }
    echo "$vstamp" >"$target/.mi-anywhere-stamp"
    echo "python venv $name: built"
  ) &
  pids+=("$!")
done
failed=0
for p in "${pids[@]}"; do wait "$p" || failed=1; done
if ! dpkg-query -W -f='${Status}' azure-cli 2>/dev/null | grep -q 'install ok installed'; then
  echo "20-python: installing the Azure CLI from Debian (apt-get install azure-cli)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive nice -n 10 apt-get install -y -qq --no-install-recommends azure-cli >/dev/null
fi
echo "Debian azure-cli: $(dpkg-query -W -f='${Version}' azure-cli)"
exit "$failed"
