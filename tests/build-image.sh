#!/usr/bin/env bash
# Build a busybox OCI image archive without any registry: build-image.sh OUT.tar CMD [ARGS...]
# The image has /bin/busybox (from busybox-static) with applet links and PATH=/bin.
set -euo pipefail
out=$1; shift
[ $# -gt 0 ] || set -- sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
mkdir -p rootfs/bin rootfs/tmp rootfs/etc
cp /bin/busybox rootfs/bin/
for a in $(rootfs/bin/busybox --list); do [ "$a" = busybox ] || ln -s busybox "rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > rootfs/etc/passwd
echo 'root:x:0:' > rootfs/etc/group
umoci init --layout img >/dev/null
umoci new --image img:latest
umoci unpack --rootless --image img:latest b >/dev/null 2>&1
cp -a rootfs/. b/rootfs/
umoci repack --image img:latest b
cfg=(--config.env PATH=/bin)
for a in "$@"; do cfg+=(--config.cmd "$a"); done
umoci config --image img:latest "${cfg[@]}"
tar -C img -cf "$out" .
