#!/usr/bin/env bash
# Build the release binaries as installed on nodes: statically linked and not position
# independent, so a shim maps no shared libraries and relocates nothing at start. Every shim
# of a node then shares the binary's pages (measured in docs/benchmarks.md).
# Prints the directory that holds containerd-shim-nexcage-v1 and nexcage.
set -euo pipefail
cd "$(dirname "$0")/.."
triple=$(rustc -vV | sed -n 's/^host: //p')
# --target keeps these flags off build scripts and proc-macros, which must stay dynamic.
# Two cargo runs: built together, cargo would unify features and give the shim nexcage-image's
# `containerd` feature (the gRPC client only the CLI needs).
for pkg in nexcage-shim nexcage-cli; do
  RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
    cargo build --release --locked --target "$triple" -p "$pkg" >&2
done
echo "$PWD/target/$triple/release"
