#!/usr/bin/env bash
# Builds the conformance harness twice, once per driver line, from the same
# source: conformance-v1.6 against driver v1.6.0 (go.mod) and conformance-v1.5
# against v1.5.6, the newest v1.5.x the Go module proxy serves (go.v15.mod).
#
#   bash tests/conformance/build.sh [OUT_DIR]
#
# OUT_DIR defaults to a cache outside the repo. Modules come through the
# normal module cache and proxy, so a fresh machine downloads them once and
# a rebuild only relinks (go's build cache). Each binary is moved into place
# whole, so a reader never sees half a file.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-${POLYSECRET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/polysecret}/conformance}"

go_bin="$(command -v go || true)"
if [ -z "$go_bin" ] && [ -x /usr/local/go/bin/go ]; then
  go_bin=/usr/local/go/bin/go
fi
if [ -z "$go_bin" ]; then
  echo "build.sh: no Go toolchain (need go >= 1.25.9 on PATH or in /usr/local/go)" >&2
  exit 1
fi

# -mod=mod: go.sum may be completed from the proxy rather than failing.
# GOTOOLCHAIN=local: use the installed Go; go.mod's go line says if it is too
# old, instead of go quietly fetching another toolchain.
export GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=local

mkdir -p "$out"
cd "$here"
build() { # build NAME MODFILE
  local tmp
  tmp="$(mktemp "$out/.$1.XXXXXX")"
  if ! "$go_bin" build -modfile="$2" -o "$tmp" .; then
    rm -f "$tmp"
    return 1
  fi
  mv -f "$tmp" "$out/$1"
  echo "$out/$1: $("$out/$1" --driver-version)"
}
build conformance-v1.6 go.mod
build conformance-v1.5 go.v15.mod
