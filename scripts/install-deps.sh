#!/usr/bin/env bash
# Installs what the demo and the tests need on Debian/Ubuntu (as root): the real tools they drive
# inside network namespaces, then the npm dev dependencies. Changes no firewall.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "$0 must run as root: it installs packages, and the lab needs network namespaces" >&2
  exit 1
fi

packages=(ufw ipset conntrack firewalld dbus mosh openssh-server openssh-client iproute2 iptables nftables util-linux procps socat tmux debootstrap systemd-container ansible-core ansible-lint lintian man-db sudo gcc libc6-dev prometheus)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
# firewalld (and dbus, for the private system bus the lab runs it on) must never run on this machine:
# its postinst would start and enable firewalld.service, which takes over the host's firewall, and the
# unit's D-Bus alias would start it again at the first firewall-cmd. The tests only run firewalld inside a
# lab namespace. So while installing, a temporary policy-rc.d (exit 101: "action forbidden") stops every
# service start, made only if none exists and removed afterwards; then the new unit is disabled.
# prometheus (promtool checks the metrics text; the e2e runs a prometheus inside a lab) is kept from
# running on this machine the same way: no start while installing, its unit disabled afterwards.
new_firewalld=false
new_prometheus=false
if [ "${#missing[@]}" -gt 0 ]; then
  for package in "${missing[@]}"; do
    [ "$package" = firewalld ] && new_firewalld=true
    [ "$package" = prometheus ] && new_prometheus=true
  done
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    trap 'rm -f "$policy"' EXIT
    printf '#!/bin/sh\n# temporary, from moshwall scripts/install-deps.sh: start no service while installing\nexit 101\n' >"$policy"
    chmod 755 "$policy"
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if [ "$new_firewalld" = true ]; then
  if [ -d /run/systemd/system ]; then
    systemctl disable firewalld.service
  else
    deb-systemd-helper disable firewalld.service || true
  fi
fi
if [ "$new_prometheus" = true ]; then
  if [ -d /run/systemd/system ]; then
    systemctl disable prometheus.service
  else
    deb-systemd-helper disable prometheus.service || true
  fi
fi

npm ci --no-audit --no-fund
