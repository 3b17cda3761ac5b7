#!/usr/bin/env bash
# Installs the servers lockbench starts, from the distribution's packages
# (Debian 12 / Ubuntu 22.04+). Idempotent and non-interactive.
#
# lockbench starts its own servers on free 127.0.0.1 ports, so the
# packages' system services are not needed: by default this script keeps
# apt from starting them (set LOCKBENCH_KEEP_SERVICES=1 to let them start).
set -euo pipefail

packages=(
  redis-server redis-tools     # redis, redis-get-set (and Redlock, Sentinel later)
  memcached                    # memcached recipes
  zookeeper                    # ZooKeeper recipes (Java; jars under /usr/share/java)
  etcd-server                  # etcd lease locks
  mariadb-server               # MySQL-family recipes
  postgresql                   # advisory locks
  protobuf-compiler            # etcd-client needs protoc at build time
  iproute2                     # ss -K: cutting ZooKeeper's direct election links
)
# The browser test renders the HTML reports in headless Chromium. Some
# systems (GitHub's Ubuntu runners) ship one outside apt: keep it.
if ! command -v chromium >/dev/null 2>&1; then
  packages+=(chromium)
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-backends: all servers already installed"
  exit 0
fi

policy=/usr/sbin/policy-rc.d
made_policy=0
if [ "${LOCKBENCH_KEEP_SERVICES:-0}" != "1" ] && [ ! -e "$policy" ]; then
  # "exit 101" tells invoke-rc.d not to start services during the install.
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
  $sudo chmod +x "$policy"
  made_policy=1
fi
cleanup() {
  if [ "$made_policy" = 1 ]; then $sudo rm -f "$policy"; fi
}
trap cleanup EXIT

echo "install-backends: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-backends: done"
