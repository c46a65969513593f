#!/usr/bin/env bash
# Builds kube-apiserver, kubectl and etcd from the Go module proxy into a cache folder keyed
# by version, laid out like envtest's KUBEBUILDER_ASSETS (one folder, three binaries).
# Prints that folder on its last line. A second run that finds the binaries reporting the
# right versions builds nothing. Honours KUBEBUILDER_ASSETS / TEST_ASSET_*: when those are
# set the caller brings its own binaries and nothing is built.
#
# `build.sh nodes` builds what a real node and the rest of the control plane run (kubelet,
# kube-proxy, kube-controller-manager, kube-scheduler) from the same wrapper module and cache
# into a folder of their own, and prints that folder instead (test/lab/realnode.ts uses it).
set -euo pipefail
mode="${1:-control-plane}"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"

if [[ "$mode" == control-plane && -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  echo "KUBEBUILDER_ASSETS is set; using binaries from $KUBEBUILDER_ASSETS" >&2
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

export PATH="/usr/local/go/bin:$PATH"
# The cache lives outside the checkout so a fresh clone on the same machine (CI) reuses it.
cache="${IPC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ipcontroller}"
assets="$cache/assets/k8s-$K8S_VERSION-etcd-$ETCD_VERSION"
node_assets="$cache/assets/nodes-k8s-$K8S_VERSION"
export GOMODCACHE="$cache/go/mod" GOCACHE="$cache/go/build"
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-trimpath -buildvcs=false -modcacherw"
mkdir -p "$assets"

log() { echo "[control-plane $(date +%T)] $*" >&2; }

# Capture the version first: grep -q on a pipe would close it early and, under pipefail,
# the writer's SIGPIPE would read as a mismatch.
reports() { local out; out="$("$@" 2>/dev/null)" || return 1; [[ "$out" == *"$VERSION_WANTED"* ]]; }
apiserver_ok() { [[ -x "$assets/kube-apiserver" ]] && VERSION_WANTED="Kubernetes $K8S_VERSION" reports "$assets/kube-apiserver" --version; }
kubectl_ok() { [[ -x "$assets/kubectl" ]] && VERSION_WANTED="Client Version: $K8S_VERSION" reports "$assets/kubectl" version --client; }
etcd_ok() { [[ -x "$assets/etcd" ]] && VERSION_WANTED="etcd Version: ${ETCD_VERSION#v}" reports "$assets/etcd" --version; }

build_etcd() {
  local src="$cache/src/etcd-$ETCD_VERSION"
  mkdir -p "$src"
  cd "$src"
  if [[ ! -f go.mod ]]; then
    go mod init ipcontroller.local/etcd >/dev/null 2>&1
  fi
  log "resolving go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  go get -tool "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  log "building etcd"
  go build -o "$assets/etcd.tmp" go.etcd.io/etcd/server/v3
  mv "$assets/etcd.tmp" "$assets/etcd"
}

# cd into the wrapper module of k8s.io/kubernetes (written on first use) and set $ld.
wrapper_module() {
  local src="$cache/src/k8s-$K8S_VERSION"
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  mkdir -p "$src"
  cd "$src"
  if [[ ! -f go.mod ]]; then
    log "writing wrapper module for k8s.io/kubernetes@$K8S_VERSION"
    local gomod
    gomod="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
    {
      echo "module ipcontroller.local/kubernetes"
      echo
      # The release's go and godebug lines set runtime defaults the binaries expect.
      grep -E '^(go|godebug) ' "$gomod"
    } > go.mod
    # k8s.io/kubernetes replaces its staging modules with ./staging/...; a module outside its
    # tree must point each at the published v0.Y.Z instead (kubernetes/kubernetes#79384).
    local staged
    staged="$(sed -n 's#^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/.*#\1#p' "$gomod")"
    local m
    for m in $staged; do
      go mod edit "-replace=$m=$m@v0.${K8S_VERSION#v1.}"
    done
  fi
  ld="-s -w"
  local pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
}

build_kubernetes() {
  wrapper_module
  log "resolving k8s.io/kubernetes@$K8S_VERSION"
  go get -tool "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" "k8s.io/kubernetes/cmd/kubectl@$K8S_VERSION"
  if ! apiserver_ok; then
    log "building kube-apiserver (cold: about 10-15 minutes on 2 cores)"
    go build -ldflags "$ld" -o "$assets/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
    mv "$assets/kube-apiserver.tmp" "$assets/kube-apiserver"
  fi
  if ! kubectl_ok; then
    log "building kubectl"
    go build -ldflags "$ld" -o "$assets/kubectl.tmp" k8s.io/kubernetes/cmd/kubectl
    mv "$assets/kubectl.tmp" "$assets/kubectl"
  fi
}

# kubelet, kube-proxy, kube-controller-manager, kube-scheduler: `go get -tool` only adds
# requirements to the wrapper module (nothing the apiserver build pinned moves), so the
# apiserver's build cache stays valid. Each build's time goes to stderr.
NODE_BINARIES=(kubelet kube-proxy kube-controller-manager kube-scheduler)
node_binary_ok() { [[ -x "$node_assets/$1" ]] && VERSION_WANTED="Kubernetes $K8S_VERSION" reports "$node_assets/$1" --version; }
build_nodes() {
  local b missing=()
  for b in "${NODE_BINARIES[@]}"; do node_binary_ok "$b" || missing+=("$b"); done
  ((${#missing[@]} == 0)) && return 0
  mkdir -p "$node_assets"
  wrapper_module
  log "resolving ${missing[*]} of k8s.io/kubernetes@$K8S_VERSION"
  local tools=()
  for b in "${missing[@]}"; do tools+=("k8s.io/kubernetes/cmd/$b@$K8S_VERSION"); done
  go get -tool "${tools[@]}"
  for b in "${missing[@]}"; do
    local t0=$SECONDS
    log "building $b"
    go build -ldflags "$ld" -o "$node_assets/$b.tmp" "k8s.io/kubernetes/cmd/$b"
    mv "$node_assets/$b.tmp" "$node_assets/$b"
    log "built $b in $((SECONDS - t0))s"
  done
}

start=$SECONDS
if [[ "$mode" == nodes ]]; then
  build_nodes
  for b in "${NODE_BINARIES[@]}"; do node_binary_ok "$b" || { log "$b in $node_assets does not report $K8S_VERSION"; exit 1; }; done
  log "node binaries ready in $((SECONDS - start))s"
  echo "$node_assets"
  exit 0
fi
[[ "$mode" == control-plane ]] || { echo "usage: build.sh [nodes]" >&2; exit 2; }
etcd_ok || build_etcd
{ apiserver_ok && kubectl_ok; } || build_kubernetes
apiserver_ok || { log "kube-apiserver in $assets does not report $K8S_VERSION"; exit 1; }
kubectl_ok || { log "kubectl in $assets does not report $K8S_VERSION"; exit 1; }
etcd_ok || { log "etcd in $assets does not report $ETCD_VERSION"; exit 1; }
log "control plane binaries ready in $((SECONDS - start))s"
echo "$assets"
