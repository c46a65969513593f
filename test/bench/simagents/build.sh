#!/usr/bin/env bash
# Builds the simulated agents of the probe-scale benchmark (main.go, standard library only) into
# the project cache, keyed by a hash of the Go version and the source, as test/image/build.sh does
# for its pause program: a second run with the same source builds nothing. Prints the binary's
# path on its last line. Go at /usr/local/go, as for the control-plane builds.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PATH="/usr/local/go/bin:$PATH"
cache="${IPC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ipcontroller}"
key="$( { go version; cat "$here/main.go"; } | sha256sum | cut -c1-16)"
out="$cache/assets/simagents-$key"
if [[ -x "$out/simagents" ]]; then
  echo "$out/simagents"
  exit 0
fi
mkdir -p "$out"
export GOCACHE="$cache/go/build" CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-trimpath -buildvcs=false"
echo "[simagents $(date +%T)] building $out/simagents" >&2
# Built under a temporary name and renamed, so a build cut short never leaves a binary behind.
(cd "$here" && go build -ldflags "-s -w" -o "$out/simagents.tmp.$$" main.go)
mv "$out/simagents.tmp.$$" "$out/simagents"
echo "$out/simagents"
