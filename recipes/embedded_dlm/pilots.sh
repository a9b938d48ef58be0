#!/usr/bin/env bash
# Pilots that choose the adaptation by measurement (issue 12): same data, seed, steps and held-out
# set for three attention schedules of SmolLM2-135M made a DLM (smollm2:base):
#   full       bidirectional from the first step (Dream-style shifted logits)
#   anneal:6   DiffuGPT's attention-mask annealing: causal OR Bernoulli(step/6)
#   block:16   block diffusion: bidirectional in blocks of 16, causal across; traces before the prompt
# Equal steps, not equal time, so that other load on the machine cannot bias the comparison.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=recipes/embedded_dlm/data
OUT=${OUT:-recipes/embedded_dlm/pilots}
STEPS=${STEPS:-18}
mkdir -p "$OUT"
[ -f "$DATA/train.jsonl" ] || python recipes/embedded_dlm/make_data.py --data-dir "${DATA_DIR:-../shared/data}" --out "$DATA"
for attention in full anneal:6 block:16; do
  dlmpo train --dlm smollm2:base --data "$DATA/train.jsonl" --eval-data "$DATA/heldout.jsonl" \
    --attention "$attention" --span-fraction 0.5 --train-mask-row --bf16 --lora-rank 16 \
    --steps "$STEPS" --batch-size 8 --lr 5e-4 --warmup 6 --max-length 384 \
    --eval-every "$STEPS" --save-every "$STEPS" --seed 0 \
    --out "$OUT/${attention/:/-}" --json | tail -1 > "$OUT/${attention/:/-}.json"
done
