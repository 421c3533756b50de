#!/usr/bin/env bash
# Prepare a Debian 12 host (as root) for nexcage and its tests: install the packages, and on a
# hybrid cgroup host move the controllers the cgroup2 hierarchy holds to v1 hierarchies, which
# crun 1.8 needs ("cgroups in hybrid mode not supported, drop all controllers from cgroupv2").
# Idempotent.
set -euo pipefail

# containernetworking-plugins: the CNI plugins (bridge, host-local, loopback) of the CRI suite;
# protobuf-compiler: protoc, which the k8s-cri crate's build script needs.
pkgs=(containerd runc crun umoci busybox-static util-linux iproute2 lxc containernetworking-plugins
  protobuf-compiler ca-certificates)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup-host: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

unified=/sys/fs/cgroup/unified
if [ -f "$unified/cgroup.controllers" ]; then
  for c in $(cat "$unified/cgroup.controllers"); do
    if ! grep -qw "$c" <(awk '$9 == "cgroup" {print $NF}' /proc/self/mountinfo); then
      echo "setup-host: mounting the $c controller as a cgroup v1 hierarchy (hybrid host)"
      mkdir -p "/sys/fs/cgroup/$c"
      mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c"
    fi
  done
fi
