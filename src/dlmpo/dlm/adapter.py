"""Trained weights on top of a base DLM: LoRA adapters (peft) or full weights written by `dlmpo
train`, a trained mask-token row, and the attention and canvas order the model was trained for.

An adapter directory holds `train_config.json` and `adapter.safetensors` (LoRA) or
`model.safetensors` (full fine-tuning)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from dlmpo.dlm.base import DiffusionLM, NativeDLM
from dlmpo.errors import UserError

NATIVE_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
MASK_ROW = "mask_token_embedding"


def lora_targets(dlm: DiffusionLM) -> list[str]:
    if isinstance(dlm, NativeDLM):
        return NATIVE_LORA_TARGETS
    names = {name.split(".")[-1] for name, mod in dlm.model.named_modules() if isinstance(mod, torch.nn.Linear)}
    return sorted(n for n in names if not any(h in n for h in ("decoder", "lm_head", "head", "classifier")))


def add_lora(dlm: DiffusionLM, rank: int, alpha: int) -> None:
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=lora_targets(dlm))
    inject_adapter_in_model(config, dlm.model)
    for name, p in dlm.model.named_parameters():
        p.requires_grad = "lora_" in name


def input_embeddings(dlm: DiffusionLM) -> torch.nn.Embedding:
    return dlm.model.model.embed_tokens if isinstance(dlm, NativeDLM) else dlm.model.get_input_embeddings()


def attention_kind(spec: str) -> tuple[str, int]:
    """('full', 0), ('block', B) or ('anneal', N), or one clear sentence."""
    kind, _, arg = spec.partition(":")
    if kind == "full" and not arg:
        return "full", 0
    if kind in ("block", "anneal") and arg.isdigit() and int(arg) > 0:
        return kind, int(arg)
    raise UserError(f"Unknown attention '{spec}': use full, block:B (e.g. block:16) or anneal:N (steps).")


def configure_for(dlm: DiffusionLM, attention: str) -> None:
    """Run a DLM with the attention it is trained for (annealing ends at full attention), and the
    canvas order that goes with it (block-causal: the traces come before the prompt, so the
    prompt's masks can read them)."""
    kind, arg = attention_kind(attention)
    if kind == "block" and not isinstance(dlm, NativeDLM):
        raise UserError(f"block-causal attention needs a natively loaded DLM (dream:, smollm2:), not {dlm.name}.")
    dlm.attention = f"block:{arg}" if kind == "block" else "full"
    dlm.canvas_order = "context_first" if kind == "block" else "prompt_first"


def apply_weights(dlm: DiffusionLM, cfg: dict, weights: dict[str, torch.Tensor], source: str) -> DiffusionLM:
    """Put trained weights onto a freshly loaded base DLM; the result is frozen, in eval mode."""
    weights = dict(weights)
    row = weights.pop(MASK_ROW, None)
    if cfg.get("lora", True):
        add_lora(dlm, cfg.get("lora_rank", 16), cfg.get("lora_alpha", 2 * cfg.get("lora_rank", 16)))
    dtype = next(dlm.model.parameters()).dtype
    result = dlm.model.load_state_dict({k: v.to(dlm.device, dtype) for k, v in weights.items()}, strict=False)
    if result.unexpected_keys:
        raise UserError(f"{source} was trained on another model: unexpected weights {result.unexpected_keys[:3]}.")
    if row is not None:
        emb = input_embeddings(dlm)
        with torch.no_grad():
            emb.weight[dlm.mask_token_id] = row.to(emb.weight)
    configure_for(dlm, cfg.get("attention", "full"))
    for p in dlm.model.parameters():
        p.requires_grad = False
    dlm.model.eval()
    return dlm


def load_adapter(dlm: DiffusionLM, folder: str | Path) -> DiffusionLM:
    """Apply the weights of a `dlmpo train` output directory (or a shipped adapter folder)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    cfg_file = folder / "train_config.json"
    if not cfg_file.is_file():
        raise UserError(f"{folder} holds no trained adapter (no train_config.json).")
    try:
        cfg = json.loads(cfg_file.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"{cfg_file} is not valid JSON ({exc.msg}, line {exc.lineno}).") from None
    name = "adapter.safetensors" if cfg.get("lora", True) else "model.safetensors"
    if not (folder / name).is_file():
        raise UserError(f"{folder} holds no finished weights ({name}): run its training to the end first.")
    base = cfg.get("dlm")
    if base and base != dlm.name:
        raise UserError(f"{folder} was trained on {base}, not on {dlm.name}: pass --dlm {base}.")
    try:
        weights = load_file(str(folder / name))
    except Exception as exc:
        raise UserError(f"{folder / name} cannot be read ({type(exc).__name__}).") from None
    return apply_weights(dlm, cfg, weights, str(folder))
