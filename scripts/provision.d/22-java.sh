#!/usr/bin/env bash
# Java client for the compatibility matrix: test/compat/java (com.azure:azure-identity, version in its pom.xml).
# Dependencies are resolved into ~/.m2 by Maven, the class path is written to the cache, and the driver source is
# compiled with javac into $MI_ANYWHERE_CACHE/java/classes. Idempotent: redone only when pom.xml, a source file
# or the JDK changes (stamp), so a warm run does not even start Maven.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
CACHE="${MI_ANYWHERE_CACHE:-$HOME/.cache/mi-anywhere}"
src="$root/test/compat/java"
dir="$CACHE/java"
for tool in java javac mvn; do
  if ! command -v "$tool" >/dev/null; then
    echo "22-java: $tool is not on PATH; installing Debian's default JDK and Maven"
    apt-get install -y --no-install-recommends default-jdk-headless maven >/dev/null
    break
  fi
done
sources=$(find "$src/src" -name '*.java' | sort)
stamp="$( { cat "$src/pom.xml" $sources; java -version 2>&1; } | sha256sum | cut -d' ' -f1)"
# Resolves the class path of azure-identity <version> (empty: the pom's newest) into <out>/classpath.txt and
# compiles the driver against it into <out>/classes.
build() {
  local out="$1" version="$2"
  mkdir -p "$out"
  rm -rf "$out/classes.tmp"
  (cd "$src" && nice -n 10 mvn -B -q -Dstyle.color=never ${version:+-Dazure.identity.version="$version"} \
    dependency:build-classpath -Dmdep.outputFile="$out/classpath.txt")
  nice -n 10 javac -nowarn -encoding UTF-8 --release 17 -cp "$(cat "$out/classpath.txt")" -d "$out/classes.tmp" $sources
  rm -rf "$out/classes"
  mv "$out/classes.tmp" "$out/classes"
}
if [ -f "$dir/classpath.txt" ] && [ -d "$dir/classes" ] && [ "$(cat "$dir/stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "compat-java (azure-identity): cached"
else
  build "$dir" ""
  echo "$stamp" >"$dir/stamp"
  echo "compat-java (azure-identity): built"
fi

# The version axis (test/compat/versions.ts): the older releases listed in test/compat/java/versions.txt, each into
# $dir/v/<version>.
for v in $(grep -v '^#' "$src/versions.txt"); do
  vstamp="$(echo "$stamp $v" | sha256sum | cut -d' ' -f1)"
  if [ -f "$dir/v/$v/classpath.txt" ] && [ "$(cat "$dir/v/$v/stamp" 2>/dev/null)" = "$vstamp" ]; then
    echo "compat-java azure-identity $v: cached"
    continue
  fi
  build "$dir/v/$v" "$v"
  echo "$vstamp" >"$dir/v/$v/stamp"
  echo "compat-java azure-identity $v: built"
done
