"""Export the campaign's current weights as the adapter shipped inside dlmpo: LoRA weights in
fp16 plus the mask token's embedding row, and the training settings that `load_adapter` reads.

    python recipes/embedded_dlm/export.py recipes/embedded_dlm/campaign src/dlmpo/weights/embedded_dlm
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

from dlmpo.dlm.adapter import MASK_ROW


def export(run: Path, dest: Path) -> dict:
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    weights = {k: (v if k == MASK_ROW else v.to(torch.float16)).contiguous() for k, v in state["trainable"].items()}
    dest.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(dest / "adapter.safetensors"))
    cfg = json.loads((run / "train_config.json").read_text())
    keep = ("dlm", "lora", "lora_rank", "lora_alpha", "attention", "masking", "span_fraction", "max_length", "seed")
    info = {**{k: cfg[k] for k in keep}, "step": state["step"], "tokens_seen": state["tokens_seen"]}
    (dest / "train_config.json").write_text(json.dumps(info, indent=2) + "\n")
    size = (dest / "adapter.safetensors").stat().st_size / 2**20
    print(f"exported step {state['step']} ({state['tokens_seen']:,} tokens) to {dest}: {size:.1f} MB")
    return info


if __name__ == "__main__":
    export(Path(sys.argv[1]), Path(sys.argv[2]))
