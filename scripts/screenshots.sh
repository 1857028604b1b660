#!/usr/bin/env bash
# Renders the desktop app's main screens with sample content into docs/screenshots/.
#
# Needs a wgpu adapter; a software one is enough. On Debian:
#   apt-get install mesa-vulkan-drivers libvulkan1
# Nothing leaves the machine: the app's node runs on loopback with relays off.
# Built with the workspace's usual package selection, so it reuses the test build.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-docs/screenshots}"
cargo build --workspace --features alongside-tests/screenshots --bins
./target/debug/screenshots "$out"
