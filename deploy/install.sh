#!/usr/bin/env bash
# Install nexcage on this node: the shim and the admin CLI into PREFIX/bin, a default nexcage
# config (kept if present), and the CRI runtime entry `nexcage` in containerd's config (added
# once, in the schema of the installed containerd). Idempotent: run it again after an upgrade.
# Tells you what to restart; restarts nothing itself. docs/kubernetes.md walks through it.
#
#   deploy/install.sh [--dry-run] [--prefix /usr/local]
#                     [--containerd-config /etc/containerd/config.toml]
#                     [--nexcage-config /etc/nexcage/config.toml] [--containerd BINARY]
#
# containerd 1.6 / 1.7 read config version 2: deploy/containerd/config-v2.toml is appended (plus
# deploy/containerd/runc-v2.toml when the file defines no runtime of its own, since a runtimes
# table replaces the built-in runc entry there). containerd 2.x reads version 3 (and migrates
# version 2 in memory): a version 3 file, or a file without a version line, gets
# deploy/containerd/config-v3.toml; a version 2 file gets config-v2.toml. A file this containerd
# cannot take (version 3 for 1.x, version 1, tables without a version line) is left untouched and
# the script stops with a message.
set -euo pipefail

usage() { sed -n '7,9p' "$0" | sed 's/^# \{0,1\}//' >&2; }

dry=0
prefix=/usr/local
ctd_config=/etc/containerd/config.toml
nx_config=/etc/nexcage/config.toml
ctd_bin=containerd
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry=1; shift ;;
    --prefix|--containerd-config|--nexcage-config|--containerd)
      [ $# -ge 2 ] || { echo "install.sh: $1 needs a value" >&2; usage; exit 2; }
      case "$1" in
        --prefix) prefix=$2 ;;
        --containerd-config) ctd_config=$2 ;;
        --nexcage-config) nx_config=$2 ;;
        --containerd) ctd_bin=$2 ;;
      esac
      shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown argument $1" >&2; usage; exit 2 ;;
  esac
done
case "$nx_config" in /*) ;; *) echo "install.sh: --nexcage-config must be absolute (containerd passes it to the shim)" >&2; exit 2 ;; esac

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
if [ "$dry" = 0 ] && [ "$(id -u)" -ne 0 ]; then echo "install.sh: run as root (or with --dry-run)" >&2; exit 1; fi

say() { if [ "$dry" = 1 ]; then echo "[dry-run] would $*"; else echo "$*"; fi; }
die() { echo "install.sh: $*" >&2; exit 1; }

# --- containerd: version and config schema (checked first: nothing is installed on a refusal)

command -v "$ctd_bin" >/dev/null 2>&1 ||
  die "no containerd found ('$ctd_bin'): install containerd first, or name it with --containerd PATH"
# "containerd github.com/containerd/containerd 1.6.20~ds1 …", "… containerd/v2 v2.1.4 …"
ctd_version=$("$ctd_bin" --version 2>/dev/null | awk '{print $3}' | sed 's/^v//')
ctd_major=${ctd_version%%.*}
case "$ctd_major" in
  1|2) ;;
  *) die "cannot tell containerd's version from '$("$ctd_bin" --version 2>&1 | head -1)'" ;;
esac
echo "containerd $ctd_version ($(command -v "$ctd_bin"))"

# The top-level `version = N` (only lines before the first table count) and whether any table exists.
file_version=
file_has_tables=0
if [ -s "$ctd_config" ]; then
  file_version=$(awk '/^[[:space:]]*\[/ { exit } match($0, /^[[:space:]]*version[[:space:]]*=[[:space:]]*[0-9]+/) { v = substr($0, RSTART, RLENGTH); sub(/.*=[[:space:]]*/, "", v); print v; exit }' "$ctd_config")
  grep -q '^[[:space:]]*\[' "$ctd_config" && file_has_tables=1
fi

add_version=
case "$ctd_major:${file_version:-none}" in
  1:2) schema=2 ;;
  1:none) schema=2; add_version=2 ;;
  1:3) die "$ctd_config declares version = 3, which containerd $ctd_version cannot read (1.x reads version 2). Left untouched: fix the file (or upgrade containerd to 2.x) and run this again." ;;
  2:3) schema=3 ;;
  2:2) schema=2 ;; # containerd 2.x migrates version 2 in memory (it logs a warning at start)
  2:none) schema=3; add_version=3 ;;
  *:1) die "$ctd_config declares version = 1 (the old schema). Left untouched: convert it to version $([ "$ctd_major" = 1 ] && echo 2 || echo 3) (containerd 2.x: containerd config migrate) and run this again." ;;
  *) die "$ctd_config declares version = $file_version, which this script does not know. Left untouched." ;;
esac
if [ -n "$add_version" ] && [ "$file_has_tables" = 1 ]; then
  die "$ctd_config has tables but no version line, so containerd reads it as version 1 (the old schema). Left untouched: add 'version = $add_version' at its top after checking its tables use that schema (containerd config default shows it), and run this again."
fi

if grep -q '^[[:space:]]*\[.*containerd\.runtimes\.nexcage[]'"'"'"]*\][[:space:]]*$' "$ctd_config" 2>/dev/null; then
  ctd_change=none
else
  ctd_change=append
fi

# --- binaries

if [ "$dry" = 1 ]; then
  say "build the release binaries (deploy/build-release.sh)"
  out="$here/target/<host triple>/release"
else
  echo "building release binaries (deploy/build-release.sh)"
  out=$(deploy/build-release.sh)
fi
for b in containerd-shim-nexcage-v1 nexcage; do
  if [ "$dry" = 1 ]; then say "install $out/$b as $prefix/bin/$b"; else
    install -D -m 0755 "$out/$b" "$prefix/bin/$b"
    echo "installed $prefix/bin/$b"
  fi
done

# --- nexcage's own config

if [ -e "$nx_config" ]; then
  echo "kept existing $nx_config"
elif [ "$dry" = 1 ]; then
  say "install examples/config.toml as $nx_config"
else
  install -D -m 0644 examples/config.toml "$nx_config"
  echo "installed $nx_config"
fi

# --- containerd config

snippet() {
  local f=$1
  if [ "$nx_config" = /etc/nexcage/config.toml ]; then cat "$f"; else
    sed "s#^\([[:space:]]*ConfigPath = \)\(['\"]\)/etc/nexcage/config.toml\2#\1\2$nx_config\2#" "$f"
  fi
}

if [ "$ctd_change" = none ]; then
  echo "containerd config $ctd_config already has the nexcage runtime (left as it is)"
else
  new=$(mktemp)
  trap 'rm -f "$new"' EXIT
  [ -n "$add_version" ] && printf 'version = %s\n' "$add_version" > "$new"
  [ -e "$ctd_config" ] && cat "$ctd_config" >> "$new"
  added="deploy/containerd/config-v$schema.toml"
  if [ "$schema" = 2 ] && [ "$ctd_major" = 1 ] &&
    ! grep -q '^[[:space:]]*\[plugins\."io\.containerd\.grpc\.v1\.cri"\.containerd\.runtimes[].]' "$ctd_config" 2>/dev/null; then
    # 1.6 / 1.7: a runtimes table replaces the built-in one; keep the stock runc runtime.
    cat deploy/containerd/runc-v2.toml >> "$new"
    added="deploy/containerd/runc-v2.toml and $added"
  fi
  snippet "deploy/containerd/config-v$schema.toml" >> "$new"
  if [ "$dry" = 1 ]; then
    [ -n "$add_version" ] && say "put 'version = $add_version' at the top of $ctd_config"
    say "append $added to $ctd_config (config version $schema), giving these changes:"
    diff -u --label "$ctd_config" --label "$ctd_config (after)" "$([ -e "$ctd_config" ] && echo "$ctd_config" || echo /dev/null)" "$new" || true
  else
    mkdir -p "$(dirname "$ctd_config")"
    if [ -s "$ctd_config" ] && [ ! -e "$ctd_config.before-nexcage" ]; then
      cp -p "$ctd_config" "$ctd_config.before-nexcage"
      echo "saved the previous containerd config as $ctd_config.before-nexcage"
    fi
    cat "$new" > "$ctd_config"
    [ -n "$add_version" ] && echo "put 'version = $add_version' at the top of $ctd_config"
    echo "added the nexcage runtime to $ctd_config ($added, config version $schema)"
  fi
  if [ "$schema" = 2 ] && [ "$ctd_major" != 1 ]; then
    echo "note: containerd $ctd_version migrates this version 2 file at every start; 'containerd config migrate' converts it to version 3"
  fi
fi

# --- hints

# CAP_SYS_RESOURCE (bit 24) is needed to lower oom_score_adj for the pod sandbox (-998). The
# bounding set caps what any root process here (containerd too) can have, also under --dry-run.
capbnd=$(awk '/^CapBnd:/ { print $2 }' /proc/self/status 2>/dev/null || true)
if [ -n "$capbnd" ] && [ $(( (16#$capbnd >> 24) & 1 )) = 0 ]; then
  echo "note: this node lacks CAP_SYS_RESOURCE; pod sandboxes will fail with 'oom_score_adj: Permission denied'"
  echo "      unless the CRI plugin has restrict_oom_score_adj = true (docs/kubernetes.md, Troubleshooting)"
fi

echo
if [ "$ctd_change" = append ]; then
  echo "next: restart containerd to load the runtime:  systemctl restart containerd"
else
  echo "next: containerd needs no restart (new pods start the new shim binary)"
fi
echo "      kubelet needs nothing; create the RuntimeClass once per cluster:"
echo "      kubectl apply -f $here/deploy/kubernetes/runtimeclass.yaml"
