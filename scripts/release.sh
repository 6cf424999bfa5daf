#!/usr/bin/env bash
# What the release workflow (.github/workflows/release.yml) does with versions, names and notes, in one script
# that runs the same on a laptop and in the test suite (test/release/workflows.test.ts):
#
#   scripts/release.sh check <tag> <owner>    the tag (vX.Y.Z) names the one version of package.json, Chart.yaml
#                                             (version, appVersion) and a CHANGELOG.md section; prints the
#                                             workflow's outputs: version, image, chart (OCI repository), prerelease
#   scripts/release.sh notes <version>        the CHANGELOG.md section of that version (the release notes)
#   scripts/release.sh chart <version> <image> <dir>
#                                             packages the chart into <dir> (helm package); when <image> is not the
#                                             chart's image.repository (a fork publishing under its own owner), the
#                                             packaged chart's default is rewritten to it, so the chart pulls the
#                                             image released with it. Prints the .tgz path.
#
# Plain bash, sed and node (any version: it only reads package.json), because a fresh CI runner has them.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CHART_DIR="$ROOT/charts/mi-anywhere"
NAME=mi-anywhere

die() { echo "release: $*" >&2; exit 1; }

# Top-level scalar of Chart.yaml (`key: value` or `key: "value"`).
chart_field() { sed -n "s/^$1:[[:space:]]*\"\{0,1\}\([^\"#[:space:]]*\)\"\{0,1\}[[:space:]]*\(#.*\)\{0,1\}$/\1/p" "$CHART_DIR/Chart.yaml"; }
# image.repository of values.yaml: the `repository:` line inside the top-level `image:` block.
chart_image() { sed -n '/^image:/,/^[^[:space:]#]/s/^[[:space:]]*repository:[[:space:]]*\([^[:space:]#]*\).*$/\1/p' "$CHART_DIR/values.yaml"; }
package_version() { node -p "require(process.argv[1]).version" "$ROOT/package.json"; }

notes() {
  local version="$1"
  # From "## [version]" up to the next "## [" heading (or the link definitions at the end), without the heading itself and surrounding blank lines.
  awk -v v="$version" '
    index($0, "## [" v "]") == 1 { found = 1; next }
    found && /^## \[/ { exit }
    found && /^\[[^]]+\]: / { exit }
    found && (n > 0 || $0 != "") { line[++n] = $0 }
    END { while (n > 0 && line[n] == "") n--; for (i = 1; i <= n; i++) print line[i] }
  ' "$ROOT/CHANGELOG.md"
}

check() {
  local tag="$1" owner="$2"
  [[ "$tag" =~ ^v([0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?)$ ]] || die "tag \"$tag\" is not vMAJOR.MINOR.PATCH[-PRERELEASE]"
  local version="${BASH_REMATCH[1]}" problems=()
  local pkg chart app
  pkg="$(package_version)"
  chart="$(chart_field version)"
  app="$(chart_field appVersion)"
  [ "$pkg" = "$version" ] || problems+=("package.json version is $pkg")
  [ "$chart" = "$version" ] || problems+=("charts/$NAME/Chart.yaml version is $chart")
  [ "$app" = "$version" ] || problems+=("charts/$NAME/Chart.yaml appVersion is $app")
  grep -q "^## \[$version\]" "$ROOT/CHANGELOG.md" || problems+=("CHANGELOG.md has no \"## [$version]\" section")
  if [ "${#problems[@]}" -gt 0 ]; then
    printf 'release: tag %s does not match the repository:\n' "$tag" >&2
    printf '  - %s\n' "${problems[@]}" >&2
    exit 1
  fi
  [ -n "$(notes "$version")" ] || die "CHANGELOG.md section [$version] is empty"
  local lower="${owner,,}"
  [ -n "$lower" ] || die "owner is empty"
  echo "version=$version"
  echo "image=ghcr.io/$lower/$NAME"
  echo "chart=oci://ghcr.io/$lower/charts"
  if [[ "$version" == *-* ]]; then echo "prerelease=true"; else echo "prerelease=false"; fi
}

chart() {
  local version="$1" image="$2" out="$3" current
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  cp -R "$CHART_DIR" "$work/$NAME"
  current="$(chart_image)"
  if [ "$current" != "$image" ]; then
    sed -i.bak "/^image:/,/^[^[:space:]#]/s#^\([[:space:]]*repository:[[:space:]]*\)$current\$#\1$image#" "$work/$NAME/values.yaml"
    rm -f "$work/$NAME/values.yaml.bak"
    grep -q "^[[:space:]]*repository: $image\$" "$work/$NAME/values.yaml" || die "could not set image.repository to $image"
    echo "release: packaged chart defaults to image $image (repository's default: $current)" >&2
  fi
  mkdir -p "$out"
  helm package "$work/$NAME" --version "$version" --app-version "$version" --destination "$out" >&2
  echo "$out/$NAME-$version.tgz"
}

case "${1:-}" in
  check) [ $# -eq 3 ] || die "usage: $0 check <tag> <owner>"; check "$2" "$3" ;;
  notes) [ $# -eq 2 ] || die "usage: $0 notes <version>"; out="$(notes "$2")"; [ -n "$out" ] || die "CHANGELOG.md has no section [$2]"; printf '%s\n' "$out" ;;
  chart) [ $# -eq 4 ] || die "usage: $0 chart <version> <image> <dir>"; chart "$2" "$3" "$4" ;;
  *) die "usage: $0 check <tag> <owner> | notes <version> | chart <version> <image> <dir>" ;;
esac
