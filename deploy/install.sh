#!/usr/bin/env bash
# Install nexcage on this node: the shim and the admin CLI into /usr/local/bin, a default
# /etc/nexcage/config.toml (kept if present), and the containerd runtime entry (added once).
# Idempotent: run it again after an upgrade. Tells you what to restart; restarts nothing itself.
#
#   deploy/install.sh [--prefix /usr/local] [--containerd-config /etc/containerd/config.toml]
set -euo pipefail

prefix=/usr/local
ctd_config=/etc/containerd/config.toml
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=$2; shift 2 ;;
    --containerd-config) ctd_config=$2; shift 2 ;;
    *) echo "install.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
if [ "$(id -u)" -ne 0 ]; then echo "install.sh: run as root" >&2; exit 1; fi

echo "building release binaries"
out=$(deploy/build-release.sh)
install -D -m 0755 "$out/containerd-shim-nexcage-v1" "$prefix/bin/containerd-shim-nexcage-v1"
install -D -m 0755 "$out/nexcage" "$prefix/bin/nexcage"
echo "installed $prefix/bin/containerd-shim-nexcage-v1 and $prefix/bin/nexcage"

if [ ! -e /etc/nexcage/config.toml ]; then
  install -D -m 0644 examples/config.toml /etc/nexcage/config.toml
  echo "installed /etc/nexcage/config.toml"
else
  echo "kept existing /etc/nexcage/config.toml"
fi

mkdir -p "$(dirname "$ctd_config")"
touch "$ctd_config"
if grep -q 'io.containerd.nexcage.v1' "$ctd_config"; then
  echo "containerd config $ctd_config already has the nexcage runtime"
else
  if ! grep -q '^version' "$ctd_config"; then
    sed -i '1i version = 2' "$ctd_config"
  fi
  cat deploy/containerd/config-v2.toml >> "$ctd_config"
  echo "added the nexcage runtime to $ctd_config"
  echo "restart containerd to load it: systemctl restart containerd"
fi
