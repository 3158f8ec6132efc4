#!/usr/bin/env bash
# The README's main command: set up a Vulkan driver if none is present, build bitspike,
# list the adapters, and benchmark the packed binary matmul against f32 on the shapes of
# the real models.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-vulkan.sh
cargo build --release
./target/release/bitspike info
./target/release/bitspike bench matmul "$@"
