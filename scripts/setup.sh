#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages this project needs, only when missing.
# Idempotent; uses sudo when not root.
set -euo pipefail
packages=(
  g++ cmake ninja-build ccache pkg-config ca-certificates openssl
  libboost-dev libboost-filesystem-dev libboost-test-dev
  libsqlite3-dev sqlite3 rapidjson-dev libpoco-dev libssl-dev
  nats-server libnats-dev
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "setup: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
