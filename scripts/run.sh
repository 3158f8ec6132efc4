#!/usr/bin/env bash
# The README's main command: set up a Vulkan driver if none is present, build bitspike,
# train the small binary BESTformer (binary weights, binary attention) for one epoch on
# the MNIST subset that ships in assets/, classify the sample images, then benchmark the packed binary matmul
# against f32 on the shapes of the real models. Extra arguments go to `bitspike train`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-vulkan.sh
cargo build --release
./target/release/bitspike info
./target/release/bitspike info --model bestformer-2-64
./target/release/bitspike train --model bestformer-2-64 --data assets/mnist-mini \
    --epochs 1 --batch-size 32 --lr 5e-3 --out runs/demo --overwrite "$@"
./target/release/bitspike infer --checkpoint runs/demo/best.safetensors --topk 3 \
    assets/samples/*.png
./target/release/bitspike bench matmul --shapes 8192x384x1536
