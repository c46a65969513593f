#!/usr/bin/env bash
# Builds helm from the Go module proxy (neither Debian nor npm ships it) into the same cache
# as the control plane, keyed by version. Prints the binary's path on its last line.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/versions.env"
export PATH="/usr/local/go/bin:$PATH"
cache="${IPC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ipcontroller}"
out="$cache/assets/helm-$HELM_VERSION"
export GOMODCACHE="$cache/go/mod" GOCACHE="$cache/go/build"
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-trimpath -buildvcs=false -modcacherw"
if [[ -x "$out/helm" ]] && out_version="$("$out/helm" version --template '{{.Version}}' 2>/dev/null)" && [[ "$out_version" == "$HELM_VERSION" ]]; then
  echo "$out/helm"
  exit 0
fi
mkdir -p "$out"
echo "[helm $(date +%T)] building helm $HELM_VERSION" >&2
GOBIN="$out" go install -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
echo "$out/helm"
