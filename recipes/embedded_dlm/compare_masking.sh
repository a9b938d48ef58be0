#!/usr/bin/env bash
# Joint vs response-only masking on SmolLM2-135M made bidirectional (smollm2:base), CPU scale.
# Held-out metric: masked-token loss/accuracy on retail-policy prompt text (half of it masked),
# which no training example contains. Seeds fixed; outputs under recipes/embedded_dlm/runs/.
set -euo pipefail
cd "$(dirname "$0")/../.."
STEPS=${STEPS:-40}
DATA=recipes/embedded_dlm/data
python recipes/embedded_dlm/make_data.py --data-dir "${DATA_DIR:-../shared/data}" --out "$DATA"
for masking in response joint; do
  dlmpo train --dlm smollm2:base --data "$DATA/train.jsonl" --eval-data "$DATA/heldout.jsonl" \
    --masking "$masking" --steps "$STEPS" --batch-size 4 --lr 1e-3 --lora-rank 8 --max-length 256 \
    --eval-every "$STEPS" --save-every 20 --eval-on prompt --seed 0 \
    --out "recipes/embedded_dlm/runs/$masking-$STEPS" --json | tail -1 > "recipes/embedded_dlm/runs/$masking-$STEPS.json"
done
