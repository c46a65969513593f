#!/usr/bin/env bash
# Builds containerd, its runc shim and ctr from the Go module proxy (Debian bookworm ships
# containerd 1.6, which Kubernetes after 1.35 no longer supports) into the same cache as the
# control plane, keyed by version. runc and the CNI plugins come from Debian
# (test/install-deps.sh). Prints the folder on its last line.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/versions.env"
export PATH="/usr/local/go/bin:$PATH"
cache="${IPC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ipcontroller}"
out="$cache/assets/containerd-$CONTAINERD_VERSION"
export GOMODCACHE="$cache/go/mod" GOCACHE="$cache/go/build"
# Static binaries; the btrfs, devmapper and zfs snapshotters need cgo and are not used (overlayfs).
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-trimpath -buildvcs=false -modcacherw"
log() { echo "[containerd $(date +%T)] $*" >&2; }
ok() { [[ -x "$out/$1" ]] && v="$("$out/$1" --version 2>/dev/null)" && [[ "$v" == *"${CONTAINERD_VERSION#v}"* ]]; }
if ok containerd && ok ctr && [[ -x "$out/containerd-shim-runc-v2" ]]; then
  echo "$out"
  exit 0
fi
src="$cache/src/containerd-$CONTAINERD_VERSION"
mkdir -p "$out" "$src"
cd "$src"
[[ -f go.mod ]] || go mod init ipcontroller.local/containerd >/dev/null 2>&1
mod=github.com/containerd/containerd/v2
log "resolving $mod@$CONTAINERD_VERSION"
go get -tool "$mod/cmd/containerd@$CONTAINERD_VERSION" "$mod/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" "$mod/cmd/ctr@$CONTAINERD_VERSION"
ld="-s -w -X $mod/version.Version=$CONTAINERD_VERSION -X $mod/version.Revision=ipcontroller-build"
for b in containerd containerd-shim-runc-v2 ctr; do
  t0=$SECONDS
  log "building $b"
  go build -tags "no_btrfs no_devmapper no_zfs no_aufs" -ldflags "$ld" -o "$out/$b.tmp" "$mod/cmd/$b"
  mv "$out/$b.tmp" "$out/$b"
  log "built $b in $((SECONDS - t0))s"
done
ok containerd || { log "containerd in $out does not report $CONTAINERD_VERSION"; exit 1; }
echo "$out"
