#!/usr/bin/env bash
# Build and run the layer-applier fuzz target (crates/image/fuzz, target apply_layer) for a
# while: tests/fuzz.sh [SECONDS] (default 60). Exits non-zero when the fuzzer finds a crash or
# an escape; the input is then under crates/image/fuzz/artifacts/apply_layer/ and replays with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run apply_layer <that file>   (in crates/image)
#
# cargo-fuzz needs nightly flags (-Zsanitizer=address, sancov passes); RUSTC_BOOTSTRAP=1 lets
# the pinned stable toolchain take them (its rust-std ships the ASan runtime). The corpus
# grows in crates/image/fuzz/corpus/apply_layer/ (not committed) and is reused by later runs.
# Runs as root on the project's hosts: device nodes are skipped, and every input gets a fresh
# scratch directory under /dev/shm.
set -euo pipefail
secs=${1:-60}
cd "$(dirname "$0")/../crates/image"
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install --locked cargo-fuzz --version 0.13.2
fi
start=$(date +%s)
cargo fuzz build apply_layer
echo "fuzz: built in $(( $(date +%s) - start )) s; running for ${secs} s"
cargo fuzz run apply_layer -- \
  -max_total_time="$secs" -timeout=20 -rss_limit_mb=4096 -max_len=65536 -print_final_stats=1
