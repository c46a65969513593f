#!/usr/bin/env bash
# Debian packages the agent and the tests use. Needs root (CI runs as root); skipped with a
# note when every package is already there.
set -euo pipefail
# The real-node lab (test/lab/realcluster.ts) adds runc and the CNI plugins for containerd
# (built from the Go module proxy: test/controlplane/build-containerd.sh), iptables, nftables and
# conntrack for kube-proxy, socat for the API forwarder, and debootstrap and buildah for the
# images (test/image/build.sh).
packages=(iproute2 tcpdump iputils-arping iputils-ping ndisc6 curl openssl procps prometheus
  runc containernetworking-plugins iptables nftables conntrack socat debootstrap buildah)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "Debian packages present: ${packages[*]}"
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "missing Debian packages: ${missing[*]} (run as root or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# This image's policy-rc.d keeps the prometheus package from starting a daemon; tests run their own.
apt-get install -y -qq --no-install-recommends "${missing[@]}"
