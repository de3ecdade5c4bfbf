#!/usr/bin/env bash
# One training call on a lent GPU machine; run there from the repository root.
# DEVELOPERS.md ("Training on a lent GPU") says what to carry and how to take the weights back.
#
#   bash scripts/gpu_train.sh MODEL MINUTES [more `progcodec train` options]
#
# Resumes exactly from runs/gpu/MODEL.ckpt if the machine still holds it (a warm
# machine), else fine-tunes from gpu/init/MODEL.safetensors. Writes the exported
# weights to $OUT in parts of 15 MiB (files back are limited to 16 MiB each).
set -euo pipefail
model=${1:?usage: gpu_train.sh MODEL MINUTES [options]}
minutes=${2:?usage: gpu_train.sh MODEL MINUTES [options]}
shift 2

if compgen -G "gpu/whl/*.whl" > /dev/null; then  # the GPU image lacks compressai and pytorch-msssim
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site gpu/whl/*.whl
fi
export PYTHONPATH=/tmp/site:$PWD/src PYTHONUNBUFFERED=1

run=runs/gpu
mkdir -p "$run"
start=(--init "gpu/init/$model.safetensors")
if [ -f "$run/$model.ckpt" ]; then
    start+=(--resume "$run/$model.ckpt")
fi
python3 -m progcodec train gpu/pack/train --val gpu/pack/val --model "$model" --out "$run/$model.safetensors" \
    --device "${PROGCODEC_TRAIN_DEVICE:-cuda}" --max-minutes "$minutes" "${start[@]}" "$@" 2>&1 | tee "$OUT/train.log"
split -b 15M -d "$run/$model.safetensors" "$OUT/$model.safetensors.part-"
cp "$run/$model.json" "$OUT/"
