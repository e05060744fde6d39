#!/usr/bin/env bash
# Installs what the demo and the tests need on Debian/Ubuntu (as root): the real tools they drive
# inside network namespaces, then the npm dev dependencies. Changes no firewall.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "$0 must run as root: it installs packages, and the lab needs network namespaces" >&2
  exit 1
fi

packages=(ufw ipset mosh openssh-server openssh-client iproute2 iptables nftables util-linux procps socat tmux debootstrap ansible-core ansible-lint lintian man-db sudo gcc libc6-dev)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

npm ci --no-audit --no-fund
