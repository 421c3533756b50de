#!/usr/bin/env bash
# The test command of nexcage. As root on Debian 12 it installs what the tests need (once),
# builds the workspace, runs the unit tests, then the end-to-end suite (tests/e2e), which starts
# its own containerd and drives containerd-shim-nexcage-v1 through ctr on every backend.
# Exits non-zero on any failure.
#
#   tests/run.sh                 # everything
#   E2E_RUNTIME=io.containerd.runc.v2 cargo test -p nexcage-e2e   # harness against the Go shim
set -euo pipefail

cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "tests/run.sh: must run as root (the end-to-end tests start containerd and containers)" >&2
  exit 1
fi

# Packages (apt-get update only when something is missing) and, on a hybrid cgroup host, the
# cgroup v1 mounts crun needs.
bash tests/setup-host.sh

export RUST_BACKTRACE="${RUST_BACKTRACE:-0}"

echo "== cargo build --workspace --all-targets"
cargo build --workspace --all-targets

echo "== unit and crate tests"
cargo test --workspace --exclude nexcage-e2e --no-fail-fast

echo "== end-to-end tests (private containerd, every backend)"
cargo test -p nexcage-e2e --no-fail-fast -- --test-threads=2
