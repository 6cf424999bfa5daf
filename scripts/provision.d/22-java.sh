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
if [ -f "$dir/classpath.txt" ] && [ -d "$dir/classes" ] && [ "$(cat "$dir/stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "compat-java (azure-identity): cached"
  exit 0
fi
mkdir -p "$dir"
rm -rf "$dir/classes.tmp"
(cd "$src" && mvn -B -q -Dstyle.color=never dependency:build-classpath -Dmdep.outputFile="$dir/classpath.txt")
javac -nowarn -encoding UTF-8 --release 17 -cp "$(cat "$dir/classpath.txt")" -d "$dir/classes.tmp" $sources
rm -rf "$dir/classes"
mv "$dir/classes.tmp" "$dir/classes"
echo "$stamp" >"$dir/stamp"
echo "compat-java (azure-identity): built"
