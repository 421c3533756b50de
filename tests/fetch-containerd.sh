#!/usr/bin/env bash
# Provide the containerd release series the end-to-end suite runs against, and print the
# directory holding its `containerd` and `ctr` binaries on stdout (the only thing printed there).
#
#   tests/fetch-containerd.sh 1.6    # Debian 12's own package (/usr/bin), installed by setup-host.sh
#   tests/fetch-containerd.sh 1.7    # containerd 1.7 from Debian 13 (trixie)
#   tests/fetch-containerd.sh 2.1    # containerd 2.1 from Debian unstable (sid)
#
# 1.7 and 2.1 are downloaded as .deb with apt, using a private source list, list directory and
# archive cache (the host's apt configuration and package state are not touched), and unpacked
# with `dpkg -x` into /var/cache/nexcage-tests/containerd-<series>/ (override with
# NEXCAGE_TEST_CACHE). Nothing is installed. The binaries are dynamically linked Go programs
# that need only libc.so.6 (GLIBC_2.34), which bookworm's glibc 2.36 provides; the script runs
# `containerd --version` to prove they work here. Idempotent: a complete unpack is reused.
#
# The harness (tests/e2e/src/containerd.rs) finds the binaries at the same place, or in
# $E2E_CONTAINERD_BIN.
set -euo pipefail

series="${1:-}"
cache="${NEXCAGE_TEST_CACHE:-/var/cache/nexcage-tests}"
mirror="${NEXCAGE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg

log() { echo "fetch-containerd: $*" >&2; }
die() {
  log "$*"
  exit 1
}

# series -> (Debian suite, preferred exact package version). The exact version is what the suite
# was verified with; when the suite has moved on, any version of the same series is taken.
case "$series" in
  1.6)
    if ! command -v containerd >/dev/null || ! command -v ctr >/dev/null; then
      die "containerd 1.6 is the system package: apt-get install containerd (tests/setup-host.sh does)"
    fi
    v="$(containerd --version)"
    [[ "$v" == *" 1.6."* ]] || die "the system containerd is not 1.6: $v"
    dirname "$(command -v containerd)"
    exit 0
    ;;
  1.7)
    suite=trixie
    want=1.7.24~ds1-6+deb13u1
    ;;
  2.1)
    suite=sid
    want=2.1.9+ds1-5
    ;;
  *) die "usage: $0 1.6|1.7|2.1 (got '${series}')" ;;
esac

dest="$cache/containerd-$series"
if [ -x "$dest/usr/bin/containerd" ] && [ -x "$dest/usr/bin/ctr" ] && [ -f "$dest/.complete" ]; then
  echo "$dest/usr/bin"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || die "must run as root (writes $cache)"
[ -r "$keyring" ] || die "$keyring missing: apt-get install debian-archive-keyring"

apt_dir="$cache/apt"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$apt_dir/etc"
sources="$apt_dir/etc/sources.list"
cat >"$sources" <<EOF
deb [signed-by=$keyring] $mirror trixie main
deb [signed-by=$keyring] $mirror sid main
EOF
# Private sources, lists and caches; no DEP-11/translation indexes (only Packages is needed).
apt_opts=(
  -o "Dir::Etc::sourcelist=$sources"
  -o "Dir::Etc::sourceparts=-"
  -o "Dir::State::Lists=$apt_dir/lists"
  -o "Dir::Cache=$apt_dir"
  -o "Dir::Cache::archives=$apt_dir/archives"
  -o "Dir::Cache::pkgcache="
  -o "Dir::Cache::srcpkgcache="
  -o "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false"
  -o "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false"
  -o "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false"
  -o "Acquire::Languages=none"
  -o "APT::Sandbox::User=root"
)

# The series' version in the suite (exact preferred).
pick_version() {
  apt-cache "${apt_opts[@]}" madison containerd 2>/dev/null |
    awk -F'|' -v s="$suite" '$3 ~ (" " s "/") {gsub(/ /, "", $2); print $2}'
}
versions="$(pick_version || true)"
if ! grep -qxF "$want" <<<"$versions"; then
  log "updating the private package lists ($suite, $mirror)"
  apt-get "${apt_opts[@]}" -qq update >&2 || die "apt-get update (private lists in $apt_dir) failed"
  versions="$(pick_version || true)"
fi
if grep -qxF "$want" <<<"$versions"; then
  version="$want"
else
  version="$(grep -E "^${series//./\\.}\." <<<"$versions" | head -1 || true)"
  [ -n "$version" ] ||
    die "Debian $suite has no containerd $series any more (it has: ${versions:-nothing}); pick another suite or a snapshot.debian.org mirror (NEXCAGE_DEBIAN_MIRROR)"
  log "containerd $want is gone from $suite, taking $version"
fi

work="$(mktemp -d "$cache/.containerd-$series.XXXXXX")"
trap 'rm -rf "$work"' EXIT
log "downloading containerd=$version from $suite"
(cd "$work" && apt-get "${apt_opts[@]}" -qq download "containerd=$version" >&2) ||
  die "apt-get download containerd=$version failed"
deb="$(ls "$work"/containerd_*.deb)"
dpkg -x "$deb" "$work/root"
for b in containerd ctr; do
  [ -x "$work/root/usr/bin/$b" ] || die "$deb has no usr/bin/$b"
done
got="$("$work/root/usr/bin/containerd" --version)" ||
  die "the unpacked containerd does not run on this host: $got"
[[ "$got" == *" ${series}."* ]] || die "unexpected version from $deb: $got"
echo "$version" >"$work/root/.complete"
rm -rf "$dest"
mv "$work/root" "$dest"
log "containerd $version in $dest ($got)"
echo "$dest/usr/bin"
