#!/usr/bin/env bash
# The embedded DLM's training, in resumable slices across sessions. Each call trains until
# TIME_LIMIT (default 100m), stops cleanly with held-out metrics in log.jsonl, saves
# $OUT/checkpoint.pt (not committed: 40 MB) and exports the adapter to $EXPORT. The same call
# resumes from that checkpoint.
#
# SST-2 and SST-5 are evaluation-only: no stage reads their rows, prompts or any text written for
# them (training_tasks.py; tests/recipes/test_training_data.py checks every training file).
#
# Stage 1 (default): a fresh LoRA on smollm2:base over make_data.py's canvases (MRPC, SNLI,
#   retail-intent, τ-bench airline policy, lm-eval descriptions, self-instruct prompts).
# Stage "measured": expert iteration. measured_edits.py scores candidate edits on the target,
#   paired against the incumbent on rows no canvas shows, and keeps the canvases whose edit
#   helped; training continues stage 1's adapter on them (only the prompt is masked).
#     STAGE=measured INIT_FROM=recipes/embedded_dlm/campaign_clean/export STEPS=600 TIME_LIMIT=40m \
#       OUT=recipes/embedded_dlm/campaign_measured bash recipes/embedded_dlm/campaign.sh
# bf16 autocast only where bf16 matmuls are fast (BF16=1, e.g. on a GPU): on this project's CPU, torch
# 2.13's bf16 matmul backward falls back to its reference GEMM, 13x slower than float32 (measured).
# On a GPU: BF16=1 DEVICE=cuda BATCH_SIZE=64 STEPS=20000 EVAL_EVERY=200 SAVE_EVERY=200 (the batch size is
# part of a run's identity: use a separate OUT).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=recipes/embedded_dlm/data
OUT=${OUT:-recipes/embedded_dlm/campaign_clean}
EXPORT=${EXPORT:-$OUT/export}  # src/dlmpo/weights/embedded_dlm to ship it
mkdir -p "$OUT"
[ -f "$DATA/train.jsonl" ] || python recipes/embedded_dlm/make_data.py --data-dir "${DATA_DIR:-../shared/data}" --out "$DATA"
if [ "${STAGE:-1}" = measured ]; then
  [ -f "$DATA/measured/edits.jsonl" ] || python recipes/embedded_dlm/measured_edits.py \
    --data-dir "${DATA_DIR:-../shared/data}" --out "$DATA/measured" ${DLM:+--dlm "$DLM"}
  TRAIN=measured/edits.jsonl MASKING=target  # only the prompt is masked: the traces are what it must read
fi
${DLMPO:-dlmpo} train --dlm smollm2:base --data "$DATA/${TRAIN:-train.jsonl}" --eval-data "$DATA/heldout.jsonl" \
  --attention "${ATTENTION:-full}" --masking "${MASKING:-joint}" --span-fraction 0.5 --train-mask-row ${BF16:+--bf16} --lora-rank 16 \
  --steps "${STEPS:-5000}" --batch-size "${BATCH_SIZE:-8}" --lr 5e-4 --warmup 20 --max-length 384 \
  --eval-every "${EVAL_EVERY:-60}" --save-every "${SAVE_EVERY:-20}" \
  --seed 0 --time-limit "${TIME_LIMIT:-100m}" ${INIT_FROM:+--init-from "$INIT_FROM"} --out "$OUT" \
  ${DEVICE:+--device "$DEVICE"} --json | tail -1 > "$OUT/last_slice.json"
python recipes/embedded_dlm/export.py "$OUT" "$EXPORT"
