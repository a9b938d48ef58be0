#!/usr/bin/env bash
# The long run of the embedded DLM, in resumable slices across sessions (issue 12). Each call
# trains until TIME_LIMIT (default 100m), stops cleanly with held-out metrics in log.jsonl, saves
# campaign/checkpoint.pt (not committed: 40 MB), and exports the shipped adapter. The same call
# resumes from that checkpoint; on a fresh checkout it starts from the shipped adapter with a
# fresh optimizer (--init-from), continuing its step count and batches.
# The attention schedule is the pilots' winner (docs/benchmarks.md).
# On a GPU: DEVICE=cuda BATCH_SIZE=64 STEPS=20000 EVAL_EVERY=200 SAVE_EVERY=200 OUT=recipes/embedded_dlm/campaign_gpu
# (a separate run directory: the batch size is part of a run's identity).
# The second stage (trace-conditioned corrections, make_bias_data.py) continues the shipped adapter:
# STAGE=2 STEPS=2600 TIME_LIMIT=40m OUT=recipes/embedded_dlm/campaign_stage2
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=recipes/embedded_dlm/data
OUT=${OUT:-recipes/embedded_dlm/campaign}
mkdir -p "$OUT"
[ -f "$DATA/train.jsonl" ] || python recipes/embedded_dlm/make_data.py --data-dir "${DATA_DIR:-../shared/data}" --out "$DATA"
if [ "${STAGE:-1}" = 2 ]; then
  [ -f "$DATA/finetune.jsonl" ] || PYTHONPATH=recipes/embedded_dlm python recipes/embedded_dlm/make_bias_data.py \
    --data-dir "${DATA_DIR:-../shared/data}" --out "$DATA" --rows 1000
  TRAIN=finetune.jsonl MASKING=target  # only the prompt is masked: the traces are what it must read
fi
${DLMPO:-dlmpo} train --dlm smollm2:base --data "$DATA/${TRAIN:-train.jsonl}" --eval-data "$DATA/heldout.jsonl" \
  --attention "${ATTENTION:-full}" --masking "${MASKING:-joint}" --span-fraction 0.5 --train-mask-row --bf16 --lora-rank 16 \
  --steps "${STEPS:-5000}" --batch-size "${BATCH_SIZE:-8}" --lr 5e-4 --warmup 20 --max-length 384 \
  --eval-every "${EVAL_EVERY:-60}" --save-every "${SAVE_EVERY:-20}" \
  --seed 0 --time-limit "${TIME_LIMIT:-100m}" --init-from src/dlmpo/weights/embedded_dlm --out "$OUT" ${DEVICE:+--device "$DEVICE"} --json | tail -1 > "$OUT/last_slice.json"
python recipes/embedded_dlm/export.py "$OUT" src/dlmpo/weights/embedded_dlm
