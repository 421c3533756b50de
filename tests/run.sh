#!/usr/bin/env bash
# The test command of nexcage. As root on Debian 12 it installs what the tests need (once),
# fetches the containerd releases the end-to-end suite runs against, builds the workspace, runs
# the unit tests, then the end-to-end suite (tests/e2e: the ctr scenarios and the CRI/Kubernetes
# scenarios, each on every backend) once per containerd release series:
#
#   1.6  Debian 12's containerd (the system package)
#   1.7  containerd from Debian 13, unpacked into /var/cache/nexcage-tests (tests/fetch-containerd.sh)
#   2.1  containerd from Debian unstable, likewise
#
# Every series runs even when an earlier one failed; the script prints a summary (result and
# duration per series, pod start times per series and backend) and exits non-zero on any failure.
#
#   tests/run.sh                                  # everything
#   E2E_CONTAINERD=2.1 tests/run.sh               # one containerd series only
#   E2E_CONTAINERD=1.7 cargo test -p nexcage-e2e --test cri_pod   # after tests/fetch-containerd.sh 1.7
#   E2E_RUNTIME=io.containerd.runc.v2 cargo test -p nexcage-e2e   # harness against the Go shim
set -euo pipefail

cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "tests/run.sh: must run as root (the end-to-end tests start containerd and containers)" >&2
  exit 1
fi

if [ -n "${E2E_CONTAINERD:-}" ]; then
  series=("$E2E_CONTAINERD")
else
  series=(1.6 1.7 2.1)
fi

# Packages (apt-get update only when something is missing) and, on a hybrid cgroup host, the
# cgroup v1 mounts crun needs.
bash tests/setup-host.sh

# The CNI bridge plugin turns on IPv4 forwarding for its gateway; put the host's value back.
ip_forward=/proc/sys/net/ipv4/ip_forward
ip_forward_was="$(cat "$ip_forward" 2>/dev/null || true)"
# shellcheck disable=SC2317  # invoked by the EXIT trap
restore_forwarding() {
  if [ -n "$ip_forward_was" ]; then echo "$ip_forward_was" >"$ip_forward" 2>/dev/null || true; fi
}
trap restore_forwarding EXIT

declare -A bindir
for v in "${series[@]}"; do
  echo "== containerd $v"
  bindir[$v]="$(bash tests/fetch-containerd.sh "$v")"
  "${bindir[$v]}/containerd" --version
done

export RUST_BACKTRACE="${RUST_BACKTRACE:-0}"

echo "== cargo build --workspace --all-targets"
cargo build --workspace --all-targets

echo "== unit and crate tests"
cargo test --workspace --exclude nexcage-e2e --no-fail-fast

echo "== ZFS tests on a zfs-fuse pool (tests/setup-zfs.sh)"
bash tests/setup-zfs.sh
cargo test -p nexcage-zfs -p nexcage-image -p nexcage-cli --no-fail-fast -- --ignored
# The Proxmox simulator and the proxmox-lxc backend on it: one test at a time (zfs-fuse has hung
# here under concurrent dataset creation and mounts from several test processes), each run under
# a hang guard. helper_shim is not a test: it is the child process that
# killed_shim_then_sweep_leaves_nothing starts and kills.
timeout 900 cargo test -p nexcage-pve-sim --no-fail-fast -- --ignored --test-threads=1
cargo build -p nexcage-pve-sim --bins
timeout 900 cargo test -p nexcage-pve --no-fail-fast -- --ignored --test-threads=1 --skip helper_shim

echo "== fuzzing the layer applier briefly (tests/fuzz.sh)"
bash tests/fuzz.sh "${NEXCAGE_FUZZ_SECONDS:-30}"

timings="$(mktemp /tmp/nexcage-e2e-timings.XXXXXX)"
declare -A result duration
failed=0
for v in "${series[@]}"; do
  echo "== end-to-end tests on containerd $v (private containerd, every backend: ctr and CRI scenarios)"
  start=$(date +%s)
  if E2E_CONTAINERD="$v" E2E_CONTAINERD_BIN="${bindir[$v]}" E2E_TIMINGS="$timings" \
    cargo test -p nexcage-e2e --no-fail-fast -- --test-threads=2; then
    result[$v]=pass
  else
    result[$v]=FAIL
    failed=1
  fi
  duration[$v]=$(($(date +%s) - start))
done

echo
echo "== summary"
for v in "${series[@]}"; do
  printf 'containerd %-4s %-4s %4ss\n' "$v" "${result[$v]}" "${duration[$v]}"
done
if [ -s "$timings" ]; then
  echo "pod start (RunPodSandbox -> first container RUNNING), ms: n / median / min / max"
  awk '{
      for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
      k = f["containerd"] " " f["backend"]; n[k]++; v[k, n[k]] = f["ms"] + 0
    }
    END {
      for (k in n) {
        m = n[k]
        for (i = 1; i <= m; i++) a[i] = v[k, i]
        for (i = 2; i <= m; i++) { x = a[i]; j = i - 1; while (j > 0 && a[j] > x) { a[j + 1] = a[j]; j-- } a[j + 1] = x }
        printf "  containerd %-4s %-5s %3d / %5d / %5d / %5d\n", substr(k, 1, index(k, " ") - 1), substr(k, index(k, " ") + 1), m, a[int((m + 1) / 2)], a[1], a[m]
      }
    }' "$timings" | sort
fi
rm -f "$timings"
exit "$failed"
