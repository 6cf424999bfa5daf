#!/usr/bin/env bash
# Builds the azure-workload-identity proxy sidecar (`azwi proxy`, cmd/proxy of the Go module
# github.com/Azure/azure-workload-identity) into $MI_ANYWHERE_CACHE/bin/azwi-proxy. It is the peer that
# `npm run bench` (bench/run.ts, docs/performance.md) measures the sidecar against. Idempotent: a binary whose
# version stamp matches is not rebuilt, so a warm run is instant.
#
# Integrity: the Go checksum database has no entry for this module (its lookup answers 404 here), so the
# module proxy's copy cannot be checked against it. Instead this script pins the module's own h1 hashes below
# (as `go mod download -json` reports them) and refuses to build when the downloaded module differs; every
# dependency is still verified against the checksum database as usual.
#
# Logging shim: azwi logs through monis.app/mlog, which the Go module proxy refuses to serve here (403). The build
# replaces it with a small local module (written below) offering the same API the proxy's import graph uses
# (Logger.Info/Error/WithName/WithValues, New, Setup, Fatal, Enabled, the levels, LogSpec,
# ValidateAndSetLogLevelAndFormatGlobally) and the same semantics that matter for a benchmark: JSON lines on
# stderr, and the default level (empty string) is "warning", so the proxy's per-request Info lines are dropped
# exactly as with mlog in its default configuration (the azwi webhook injects the proxy with its own, default,
# level). docs/performance.md states this.
set -euo pipefail

AZWI_MODULE="github.com/Azure/azure-workload-identity"
AZWI_VERSION="${MI_ANYWHERE_AZWI_VERSION:-v1.5.1}"
# h1 hashes of v1.5.1 (module zip and go.mod); update both together with AZWI_VERSION.
AZWI_SUM="h1:naxiBegLRujIwnu4oSA0+2D0g0WFZY60lFkX/vksd0k="
AZWI_GOMOD_SUM="h1:ifFm5HbZ5UUcWIdapM47OZV7cDAGI9vKaWlrmq77Hno="
CACHE="${MI_ANYWHERE_CACHE:-$HOME/.cache/mi-anywhere}"
BIN="$CACHE/bin"
WORK="$CACHE/go-build/azwi-$AZWI_VERSION"
mkdir -p "$BIN" "$WORK"
# Builds share 2 cores with other work: low priority, and a bounded number of parallel compiles.
export GOMAXPROCS="${GOMAXPROCS:-2}"
export GOFLAGS=-mod=mod
export GONOSUMDB="$AZWI_MODULE"
NICE="nice -n 10"

# A failure here must not stop the provisioning of everything else: it is recorded in azwi-proxy.error, and the
# peer section of `npm run bench` (and so test/bench/quick.test.ts) fails with that exact message instead.
if [ "${MI_ANYWHERE_AZWI_INNER:-}" != "1" ]; then
  rm -f "$BIN/azwi-proxy.error"
  if MI_ANYWHERE_AZWI_INNER=1 bash "$0" 2>&1 | tee "$WORK/provision.log"; then
    exit 0
  fi
  tail -n 30 "$WORK/provision.log" >"$BIN/azwi-proxy.error"
  echo "WARNING: azwi proxy build failed (recorded in $BIN/azwi-proxy.error; the bench's peer section will fail with it)" >&2
  exit 0
fi

if [ -x "$BIN/azwi-proxy" ] && [ -f "$BIN/azwi-proxy.version" ] && [ "$(cat "$BIN/azwi-proxy.version")" = "$AZWI_VERSION" ]; then
  echo "azwi-proxy $AZWI_VERSION: cached"
  exit 0
fi

if ! (cd "$WORK" && go mod download -json "$AZWI_MODULE@$AZWI_VERSION") >"$WORK/download.json"; then
  echo "azwi-proxy: go mod download $AZWI_MODULE@$AZWI_VERSION failed: $(sed -n 's/^[[:space:]]*"Error": "\(.*\)",*$/\1/p' "$WORK/download.json")" >&2
  exit 1
fi
sum="$(sed -n 's/^[[:space:]]*"Sum": "\(.*\)",$/\1/p' "$WORK/download.json")"
gomodsum="$(sed -n 's/^[[:space:]]*"GoModSum": "\(.*\)",$/\1/p' "$WORK/download.json")"
if [ "$AZWI_VERSION" = "v1.5.1" ] && { [ "$sum" != "$AZWI_SUM" ] || [ "$gomodsum" != "$AZWI_GOMOD_SUM" ]; }; then
  echo "azwi-proxy: $AZWI_MODULE@$AZWI_VERSION hashes $sum / $gomodsum differ from the pinned $AZWI_SUM / $AZWI_GOMOD_SUM" >&2
  exit 1
fi
gomod="$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p' "$WORK/download.json")"

# A tiny module that requires azwi at the pinned version, so `go build` resolves the proxy command with the
# module's own dependency versions (go.sum entries for the pinned module come from the hashes checked above).
mkdir -p "$WORK/mlog-shim"
cat >"$WORK/mlog-shim/go.mod" <<'GOMOD'
module monis.app/mlog

go 1.23
GOMOD
cat >"$WORK/mlog-shim/mlog.go" <<'GO'
// Package mlog is a local stand-in for monis.app/mlog (not served by the module proxy here): the subset of its
// API that azure-workload-identity's proxy and webhook packages use, logging JSON lines through log/slog.
package mlog

import (
	"context"
	"fmt"
	"log/slog"
	"os"
)

type LogLevel string

const (
	LevelWarning LogLevel = ""
	LevelInfo    LogLevel = "info"
	LevelDebug   LogLevel = "debug"
	LevelTrace   LogLevel = "trace"
	LevelAll     LogLevel = "all"
)

type LogFormat string

const FormatJSON LogFormat = "json"

type LogSpec struct {
	Level  LogLevel
	Format LogFormat
}

var rank = map[LogLevel]int{LevelWarning: 0, LevelInfo: 1, LevelDebug: 2, LevelTrace: 3, LevelAll: 4}

var current = LevelWarning

var base = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))

func ValidateAndSetLogLevelAndFormatGlobally(_ context.Context, spec LogSpec) error {
	if _, ok := rank[spec.Level]; !ok {
		return fmt.Errorf("unknown log level %q", spec.Level)
	}
	current = spec.Level
	return nil
}

func Enabled(level LogLevel) bool { return rank[current] >= rank[level] }

func Setup() func() { return func() {} }

func Fatal(err error, keysAndValues ...any) {
	base.Error("fatal", append([]any{"error", err.Error()}, keysAndValues...)...)
	os.Exit(1)
}

func Info(msg string, keysAndValues ...any) { New().Info(msg, keysAndValues...) }

type Logger struct{ l *slog.Logger }

func New() Logger { return Logger{l: base} }

func (g Logger) WithName(name string) Logger { return Logger{l: g.l.With("logger", name)} }

func (g Logger) WithValues(keysAndValues ...any) Logger { return Logger{l: g.l.With(keysAndValues...)} }

func (g Logger) Info(msg string, keysAndValues ...any) {
	if Enabled(LevelInfo) {
		g.l.Info(msg, keysAndValues...)
	}
}

func (g Logger) Debug(msg string, keysAndValues ...any) {
	if Enabled(LevelDebug) {
		g.l.Debug(msg, keysAndValues...)
	}
}

func (g Logger) Error(msg string, err error, keysAndValues ...any) {
	g.l.Error(msg, append([]any{"error", fmt.Sprint(err)}, keysAndValues...)...)
}
GO
{
  echo "module mi-anywhere.local/azwi-build"
  echo
  grep -m1 '^go ' "$gomod"
  echo
  echo "require $AZWI_MODULE $AZWI_VERSION"
  echo
  echo "replace monis.app/mlog => ./mlog-shim"
} >"$WORK/go.mod"
cat >"$WORK/tools.go" <<'GO'
//go:build tools

// Package tools pins the command we build, so `go mod tidy` keeps its dependencies.
package tools

import _ "github.com/Azure/azure-workload-identity/cmd/proxy"
GO
(cd "$WORK" && go mod tidy >/dev/null)
(cd "$WORK" && $NICE go build -trimpath \
  -ldflags "-s -w -X $AZWI_MODULE/pkg/version.BuildVersion=$AZWI_VERSION" \
  -o "$BIN/azwi-proxy.tmp" "$AZWI_MODULE/cmd/proxy")
mv "$BIN/azwi-proxy.tmp" "$BIN/azwi-proxy"
echo "$AZWI_VERSION" >"$BIN/azwi-proxy.version"
echo "azwi-proxy $AZWI_VERSION: built"
