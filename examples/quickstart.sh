#!/usr/bin/env bash
# Quick start on a fresh Debian 12 machine, as root: install what nexcage needs, install
# nexcage, and run a busybox container through it on the embedded default backend.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

"$here/tests/setup-host.sh"
"$here/deploy/install.sh"

if ! ctr version >/dev/null 2>&1; then
  if command -v systemctl >/dev/null && systemctl is-system-running >/dev/null 2>&1; then
    systemctl restart containerd
  else
    echo "starting containerd in the background (log: /var/log/containerd-quickstart.log)"
    setsid containerd >/var/log/containerd-quickstart.log 2>&1 < /dev/null &
    for _ in $(seq 50); do ctr version >/dev/null 2>&1 && break; sleep 0.2; done
  fi
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$here/tests/build-image.sh" "$work/busybox.tar" sh
ctr images import --base-name local/busybox --index-name local/busybox:latest "$work/busybox.tar" >/dev/null 2>&1 || true
ctr images ls -q | grep -q '^local/busybox:latest$'

ctr run --rm --runtime io.containerd.nexcage.v1 local/busybox:latest "nexcage-quickstart-$$" \
  sh -c 'echo "hello from nexcage: $(cat /proc/1/cgroup | head -1)"'
nexcage backend list
