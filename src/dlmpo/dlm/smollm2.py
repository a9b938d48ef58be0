"""SmolLM2-135M-Instruct as a DLM: `smollm2:base` (the starting point of `dlmpo train`) and
`embedded` (smollm2:base with the adapter that ships inside dlmpo)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from dlmpo.dlm.base import NativeDLM, pick_dtype
from dlmpo.dlm.families import CHATML_TEMPLATE, DREAM_MASK
from dlmpo.dlm.modeling import BidirectionalLM, TransformerConfig
from dlmpo.errors import UserError

EMBEDDED_DLM_DIR = Path(__file__).resolve().parent.parent / "weights" / "embedded_dlm"


def smollm2_tokenizer():
    from transformers import AutoTokenizer

    from dlmpo.embedded_weights import embedded_model_dir

    return AutoTokenizer.from_pretrained(str(embedded_model_dir()))


def smollm2_base(device: torch.device) -> NativeDLM:
    """SmolLM2-135M-Instruct in our bidirectional module, as Dream was made from Qwen2.5: same
    weights, full attention, shifted logits; the new mask token's embedding is the mean embedding."""
    from safetensors.torch import load_file

    from dlmpo.embedded_weights import embedded_model_dir

    folder = embedded_model_dir()
    tok = smollm2_tokenizer()
    tok.chat_template = CHATML_TEMPLATE
    tok.add_special_tokens({"additional_special_tokens": [DREAM_MASK]})
    tok.mask_token = DREAM_MASK
    cfg = TransformerConfig.from_hf(json.loads((folder / "config.json").read_text()))
    state = load_file(str(folder / "model.safetensors"))
    emb = state["model.embed_tokens.weight"]
    state["model.embed_tokens.weight"] = torch.cat([emb, emb.mean(0, keepdim=True)])
    state.pop("lm_head.weight", None)  # tied to the embeddings
    cfg.vocab_size = emb.shape[0] + 1
    model = BidirectionalLM(cfg)
    model.load_state_dict(state, strict=not cfg.tie_embeddings)
    model = model.to(pick_dtype(device))
    return NativeDLM(model, tok, name="smollm2:base", family="dream", mask_token_id=tok.mask_token_id, shift=True,
                     max_length=2048, device=device)


def embedded_dlm(device: torch.device) -> NativeDLM:
    """smollm2:base with the adapter shipped in the package."""
    from dlmpo.dlm.adapter import load_adapter

    if not (EMBEDDED_DLM_DIR / "train_config.json").is_file():
        raise UserError(f"The embedded DLM's weights are missing from {EMBEDDED_DLM_DIR}: reinstall dlmpo.")
    model = load_adapter(smollm2_base(device), EMBEDDED_DLM_DIR)
    model.name = "embedded"
    return model
