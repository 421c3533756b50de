#!/usr/bin/env bash
# Give the ZFS tests a real pool without a kernel module: install zfs-fuse, start its daemon, and
# create (or import) the pool `nexcage-test` on a sparse file. Idempotent; run as root.
#
#   bash tests/setup-zfs.sh && cargo test -p nexcage-zfs -p nexcage-image -- --ignored
#
# NEXCAGE_ZFS_POOL / NEXCAGE_ZFS_IMG / NEXCAGE_ZFS_SIZE override the pool name, file and size.
set -euo pipefail

pool=${NEXCAGE_ZFS_POOL:-nexcage-test}
img=${NEXCAGE_ZFS_IMG:-/var/tmp/$pool.img}
size=${NEXCAGE_ZFS_SIZE:-2G}

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-zfs: must run as root" >&2
  exit 1
fi

if ! command -v zfs-fuse >/dev/null 2>&1; then
  echo "setup-zfs: installing zfs-fuse"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends zfs-fuse >/dev/null
fi

[ -e /dev/fuse ] || { echo "setup-zfs: /dev/fuse is missing; zfs-fuse cannot run here" >&2; exit 1; }

# The daemon answers `zpool list` (exit 0, possibly "no pools available") once it is up. A daemon
# that is still shutting down answers nothing: wait for it to go first.
for _ in $(seq 100); do
  zpool list >/dev/null 2>&1 && break
  pgrep -x zfs-fuse >/dev/null || break
  sleep 0.2
done
if ! zpool list >/dev/null 2>&1; then
  echo "setup-zfs: starting zfs-fuse"
  mkdir -p /run/zfs-fuse
  pidfile=/run/zfs-fuse/zfs-fuse.pid
  # zfs-fuse exits 1, silently, when its pidfile exists: a daemon killed with the session before it
  # (or a reboot without tmpfs /run) leaves one behind. Only a live zfs-fuse keeps it.
  if [ -e "$pidfile" ]; then
    old=$(cat "$pidfile" 2>/dev/null || true)
    if [ -z "$old" ] || [ "$(cat "/proc/$old/comm" 2>/dev/null)" != zfs-fuse ]; then
      echo "setup-zfs: removing stale $pidfile (pid '${old}' is not zfs-fuse)"
      rm -f "$pidfile"
    fi
  fi
  zfs-fuse --pidfile "$pidfile" || { echo "setup-zfs: zfs-fuse exited $? (see syslog)" >&2; exit 1; }
  for _ in $(seq 50); do
    zpool list >/dev/null 2>&1 && break
    sleep 0.2
  done
  zpool list >/dev/null 2>&1 || { echo "setup-zfs: zfs-fuse did not come up" >&2; exit 1; }
fi

if ! zpool list -H -o name "$pool" >/dev/null 2>&1; then
  if [ -f "$img" ] && zpool import -d "$(dirname "$img")" "$pool" >/dev/null 2>&1; then
    echo "setup-zfs: imported $pool from $img"
  else
    echo "setup-zfs: creating $pool on $img ($size, sparse)"
    rm -f "$img"
    truncate -s "$size" "$img"
    zpool create -f "$pool" "$img"
  fi
fi

health=$(zpool list -H -o health "$pool")
[ "$health" = ONLINE ] || { echo "setup-zfs: $pool is $health" >&2; exit 1; }
mountpoint=$(zfs get -H -o value mountpoint "$pool")
# A FUSE mount left by a dead daemon answers "Transport endpoint is not connected" while zfs
# still says mounted=yes: take every such mount of the pool down, then mount afresh.
while read -r _ mnt fstype _; do
  case "$mnt" in "$mountpoint" | "$mountpoint"/*) ;; *) continue ;; esac
  case "$fstype" in fuse*) ;; *) continue ;; esac
  if ! stat "$mnt" >/dev/null 2>&1; then
    echo "setup-zfs: unmounting stale $mnt"
    umount -l "$mnt" || true
  fi
done < <(sort -r -k2 /proc/mounts)
if [ "$(zfs get -H -o value mounted "$pool")" != yes ] || ! stat "$mountpoint" >/dev/null 2>&1; then
  zfs mount "$pool" || zfs mount -a
fi
echo "setup-zfs: $pool ONLINE, mounted at $mountpoint"
