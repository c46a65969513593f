#!/usr/bin/env bash
# `make image`: builds the container images of the real-node lab with buildah, on a machine that
# reaches no container registry, and prints one `name=OCI archive` line per image:
#   ipcontroller  the repository's own Dockerfile, unchanged, with its base given as the build
#                 argument NODE_IMAGE (users build it FROM node:22-bookworm-slim);
#   nginx         docker.io/library/nginx:1.27 for examples/nginx.yaml, made here from Debian's
#                 nginx-light package (nginx.Containerfile; the version inside is Debian's 1.22);
#   pause         the pod sandbox image containerd needs (pause/main.go, static).
# The lab's base image (the stand-in for node:22-bookworm-slim) is Debian bookworm from
# debootstrap plus this machine's Node (the project targets Node 20) and a `node` user (uid
# 1000). When this machine trusts certificate authorities that a fresh Debian does not (an
# egress proxy that intercepts TLS), those are added to the base and NODE_EXTRA_CA_CERTS is set,
# so `npm ci` and `apt-get` inside the build work; on other machines the base has Debian's alone.
# Everything is cached in ~/.cache/ipcontroller/image: the base by what goes into it, each
# archive by a hash of its build inputs, so a rebuild happens only when the sources change.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export PATH="/usr/local/go/bin:$PATH"
cache="${IPC_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ipcontroller}/image"
mkdir -p "$cache"
log() { echo "[image $(date +%T)] $*" >&2; }
[[ $(id -u) -eq 0 ]] || { log "needs root (buildah storage, debootstrap)"; exit 1; }
for tool in buildah debootstrap; do
  command -v "$tool" >/dev/null || { log "$tool missing: run make get-deps"; exit 1; }
done

# One build at a time per cache (make image and a test may both ask).
exec 9>"$cache/.lock"
flock 9

B() { buildah --root "$cache/storage" --runroot "$cache/run" --storage-driver overlay "$@"; }
hash_of() { sha256sum | cut -c1-16; }
work="$(mktemp -d "$cache/work.XXXXXX")"
cleanup() {
  # A failed debootstrap can leave /proc or /sys mounted inside the tree.
  for m in proc sys dev/pts dev; do mountpoint -q "$work/rootfs/$m" 2>/dev/null && umount -l "$work/rootfs/$m"; done
  rm -rf "$work"
}
trap cleanup EXIT

# --- base: Debian bookworm + Node ---------------------------------------------------------
mirror="$(sed -n 's/^URIs: *\([^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)"
mirror="${mirror:-http://deb.debian.org/debian}"
node_bin="$(command -v node)"
npm_dir="$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")"
host_cas=/etc/ssl/certs/ca-certificates.crt
base_key="$( { echo "bookworm $mirror"; "$node_bin" --version; cat "$npm_dir/package.json"; cat "$host_cas" 2>/dev/null; sed -n '/^# --- base/,/^# --- end base/p' "$0"; } | hash_of)"
base="localhost/ipcontroller-lab/node:bookworm-$base_key"

# PEM blocks of a bundle, one per line, so two bundles can be compared with comm.
pem_lines() { awk '/BEGIN CERT/{b=""} {b=b $0 "\\n"} /END CERT/{print b}' "$1" | sort -u; }

if ! B inspect --type image "$base" >/dev/null 2>&1; then
  t0=$SECONDS
  log "debootstrap bookworm from $mirror (once; about 2 minutes)"
  debootstrap --variant=minbase --include=ca-certificates,libstdc++6 bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  rootfs="$work/rootfs"
  install -m 0755 "$node_bin" "$rootfs/usr/local/bin/node"
  mkdir -p "$rootfs/usr/local/lib/node_modules"
  cp -a "$npm_dir" "$rootfs/usr/local/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
  chroot "$rootfs" groupadd --gid 1000 node
  chroot "$rootfs" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
  extra_env=()
  # Detection: certificate authorities this machine trusts that a fresh Debian does not.
  if [[ -f "$host_cas" ]]; then
    comm -23 <(pem_lines "$host_cas") <(pem_lines "$rootfs/etc/ssl/certs/ca-certificates.crt") >"$work/extra-cas"
    if [[ -s "$work/extra-cas" ]]; then
      log "this machine trusts $(wc -l <"$work/extra-cas") certificate authority(ies) Debian does not (TLS-intercepting egress?): adding them to the lab base"
      mkdir -p "$rootfs/usr/local/share/ca-certificates"
      n=0
      while IFS= read -r pem; do printf '%b' "$pem" >"$rootfs/usr/local/share/ca-certificates/host-$((++n)).crt"; done <"$work/extra-cas"
      chroot "$rootfs" update-ca-certificates >/dev/null 2>&1
      # Node reads its own bundle, not the system's, unless told.
      extra_env=(--env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt)
    fi
  fi
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  ctr="$(B from scratch)"
  mnt="$(B mount "$ctr")"
  tar -C "$rootfs" -cf - . | tar -C "$mnt" -xf -
  B umount "$ctr" >/dev/null
  B config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "${extra_env[@]}" --cmd node "$ctr"
  B commit --rm -q "$ctr" "$base" >/dev/null
  rm -rf "$rootfs"
  log "base $base ready in $((SECONDS - t0))s"
fi
# --- end base
base_id="$(B inspect --type image --format '{{.FromImageID}}' "$base")"

# Builds one image (unless its archive is cached) and pushes it to an OCI archive named after
# the hash of its inputs. Arguments: short name, image reference, inputs hash, build command...
archive() {
  local short="$1" ref="$2" key="$3"
  shift 3
  local out="$cache/$short-$key.oci.tar"
  if [[ ! -s "$out" ]]; then
    local t0=$SECONDS
    log "building $ref"
    "$@"
    B push -q "$ref" "oci-archive:$out.tmp:$ref" >/dev/null
    mv "$out.tmp" "$out"
    B rmi -f "$ref" >/dev/null 2>&1 || true
    # Keep one archive per image: the older ones are other sources' builds.
    find "$cache" -maxdepth 1 -name "$short-*.oci.tar" ! -name "$short-$key.oci.tar" -delete
    log "$ref in $((SECONDS - t0))s: $(du -h "$out" | cut -f1)"
  fi
  echo "$short=$out"
}

# The project image: what the Dockerfile copies, and the base it is built on.
app_key="$( { echo "$base_id"; cd "$repo" && find Dockerfile .dockerignore package.json package-lock.json tsconfig.json tsconfig.build.json cli.ts api lib agent scheduler -type f -print0 | sort -z | xargs -0 sha256sum; } | hash_of)"
app_ref=docker.io/ipcontroller/ipcontroller:0.1.0
archive ipcontroller "$app_ref" "$app_key" \
  B bud -q --network host --pull-never --build-arg "NODE_IMAGE=$base" -t "$app_ref" -f "$repo/Dockerfile" "$repo"

nginx_key="$( { echo "$base_id"; cat "$here/nginx.Containerfile"; } | hash_of)"
archive nginx docker.io/library/nginx:1.27 "$nginx_key" \
  B bud -q --network host --pull-never --build-arg "BASE=$base" -t docker.io/library/nginx:1.27 -f "$here/nginx.Containerfile" "$here"

build_pause() {
  (cd "$here/pause" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-trimpath go build -ldflags "-s -w" -o "$work/pause" main.go)
  local ctr
  ctr="$(B from scratch)"
  B copy "$ctr" "$work/pause" /pause >/dev/null
  B config --entrypoint '["/pause"]' "$ctr"
  B commit --rm -q "$ctr" "$PAUSE_REF" >/dev/null
}
PAUSE_REF=localhost/ipcontroller-lab/pause:1
pause_key="$( { go version; cat "$here/pause/main.go"; } | hash_of)"
archive pause "$PAUSE_REF" "$pause_key" build_pause
