#!/usr/bin/env bash
# ensure-tofu.sh: make sure an OpenTofu binary of a given version exists in
# the Gantry tools cache, building it from the Go module proxy if needed.
#
#   TOFU_VERSION        version to provide (default 1.10.7)
#   GANTRY_TOOLS_CACHE  cache root (default $HOME/.cache/gantry/tools)
#
# The binary ends up at $GANTRY_TOOLS_CACHE/opentofu/<version>/tofu, the same
# layout internal/tofu.Resolver uses for its ToolsDir. The last line printed
# on stdout is the binary's path; progress goes to stderr.
#
# `go install github.com/opentofu/opentofu/cmd/tofu@vX` does not work because
# OpenTofu's go.mod has replace directives, so we build from a writable copy
# of the downloaded module source instead.
set -euo pipefail

version="${TOFU_VERSION:-1.10.7}"
version="${version#v}"
cache="${GANTRY_TOOLS_CACHE:-$HOME/.cache/gantry/tools}"

log() { printf 'ensure-tofu: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

if [[ ! "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.]+)?$ ]]; then
	die "invalid TOFU_VERSION '$version' (want e.g. 1.10.7)"
fi

outdir="$cache/opentofu/$version"
out="$outdir/tofu"

# usable BIN: BIN exists, is executable and answers `version`.
usable() {
	[[ -x "$1" ]] && "$1" version >/dev/null 2>&1
}

if usable "$out"; then
	log "OpenTofu $version already present"
	printf '%s\n' "$out"
	exit 0
fi

command -v go >/dev/null 2>&1 || die "go is not on PATH"
# Lock and temporary binary sit beside the version directories (same file
# system, so the final mv is atomic); the version directory appears only
# when the binary is complete.
mkdir -p "$cache/opentofu"
lockfile="$cache/opentofu/.$version.lock"
tmpbin="$cache/opentofu/.tofu-$version.tmp.$$"

# Serialise concurrent runs for the same version when flock is available; the
# loser then finds the winner's binary and returns straight away.
if command -v flock >/dev/null 2>&1; then
	exec 9>"$lockfile"
	if ! flock -n 9; then
		log "waiting for another ensure-tofu.sh run (lock $lockfile)"
		flock 9
	fi
	if usable "$out"; then
		log "OpenTofu $version built by a concurrent run"
		printf '%s\n' "$out"
		exit 0
	fi
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/ensure-tofu.XXXXXX")"
cleanup() {
	chmod -R u+w "$work" 2>/dev/null || true
	rm -rf "$work" "$tmpbin"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "downloading github.com/opentofu/opentofu@v$version through the Go module proxy"
# Run outside any module so the caller's go.mod/go.work are neither read nor touched.
info="$(cd "$work" && GOWORK=off GO111MODULE=on go mod download -json "github.com/opentofu/opentofu@v$version")" ||
	die "go mod download failed: $info"
srcdir="$(printf '%s\n' "$info" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
[[ -n "$srcdir" && -d "$srcdir" ]] || die "no module directory in go mod download output: $info"

log "copying module source from $srcdir"
cp -R "$srcdir" "$work/src"
chmod -R u+w "$work/src"

ldflags="-s -w"
# The release builds set version.dev=no so the binary does not report a -dev
# prerelease; only pass it if this version still has that variable.
if grep -Eq '^var dev( string)? =' "$work/src/version/version.go" 2>/dev/null; then
	ldflags="$ldflags -X github.com/opentofu/opentofu/version.dev=no"
else
	log "version.dev not found in this version; building without it"
fi

log "building OpenTofu $version (this takes a few minutes)"
(
	cd "$work/src"
	GOWORK=off GOFLAGS= CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmpbin" ./cmd/tofu
) >&2 || die "go build failed"

chmod 0755 "$tmpbin"
usable "$tmpbin" || die "built binary does not run '$tmpbin version'"
mkdir -p "$outdir"
mv -f "$tmpbin" "$out"
log "installed $("$out" version 2>/dev/null | head -n 1)"
printf '%s\n' "$out"
