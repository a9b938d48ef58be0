"""Trained weights on top of a base DLM: LoRA adapters (peft) or full weights written by `dlmpo
train`, a trained mask-token row, and the attention and canvas order the model was trained for.

An adapter directory holds `train_config.json` and `adapter.safetensors` (LoRA) or
`model.safetensors` (full fine-tuning)."""

from __future__ import annotations

from pathlib import Path

import torch

from dlmpo.dlm.base import DiffusionLM, NativeDLM
from dlmpo.errors import UserError
from dlmpo.files import read_json

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


def check_adapter_config(cfg: object, source: str) -> dict:
    """The settings of a trained adapter (train_config.json), checked: an object whose LoRA rank
    and alpha are positive integers and whose attention is one dlmpo knows."""
    if not isinstance(cfg, dict):
        raise UserError(f"{source}: train_config.json must hold an object, not {type(cfg).__name__}.")
    if not isinstance(cfg.get("lora", True), bool):
        raise UserError(f"{source}: train_config.json's 'lora' must be true or false.")
    for key in ("lora_rank", "lora_alpha"):
        value = cfg.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise UserError(f"{source}: train_config.json's '{key}' must be a positive integer, not {value!r}.")
    for key in ("dlm", "attention"):
        if cfg.get(key) is not None and not isinstance(cfg[key], str):
            raise UserError(f"{source}: train_config.json's '{key}' must be a string.")
    attention_kind(cfg.get("attention") or "full")
    return cfg


def apply_weights(dlm: DiffusionLM, cfg: dict, weights: dict[str, torch.Tensor], source: str) -> DiffusionLM:
    """Put trained weights onto a freshly loaded base DLM; the result is frozen, in eval mode."""
    cfg = check_adapter_config(cfg, source)
    weights = dict(weights)
    row = weights.pop(MASK_ROW, None)
    if cfg.get("lora", True):
        rank = cfg.get("lora_rank") or 16
        add_lora(dlm, rank, cfg.get("lora_alpha") or 2 * rank)
    dtype = next(dlm.model.parameters()).dtype
    try:
        result = dlm.model.load_state_dict({k: v.to(dlm.device, dtype) for k, v in weights.items()}, strict=False)
    except RuntimeError as exc:  # size mismatch: another LoRA rank, or another base model
        first = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line), "size mismatch")
        raise UserError(f"{source} does not fit {dlm.name} ({first.rstrip('.')}): it was trained with another "
                        "LoRA rank or on another model.") from None
    if result.unexpected_keys:
        raise UserError(f"{source} was trained on another model: unexpected weights {result.unexpected_keys[:3]}.")
    if row is not None:
        emb = input_embeddings(dlm)
        if tuple(row.shape) != tuple(emb.weight[dlm.mask_token_id].shape):
            raise UserError(f"{source} does not fit {dlm.name}: its mask row has shape {tuple(row.shape)}, "
                            f"the model's {tuple(emb.weight[dlm.mask_token_id].shape)}.")
        with torch.no_grad():
            emb.weight[dlm.mask_token_id] = row.to(emb.weight)
    configure_for(dlm, cfg.get("attention") or "full")
    for p in dlm.model.parameters():
        p.requires_grad = False
    dlm.model.eval()
    return dlm


def read_adapter(folder: str | Path) -> tuple[dict, Path]:
    """The checked settings and the weights file of a `dlmpo train` output directory: everything that
    can be checked before the base model loads."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"Adapter {folder} is not a folder: pass the --out folder of `dlmpo train`."
                        if folder.exists() else f"Adapter folder {folder} does not exist.")
    cfg_file = folder / "train_config.json"
    if not cfg_file.is_file():
        raise UserError(f"{folder} holds no trained adapter (no train_config.json).")
    cfg = check_adapter_config(read_json(cfg_file, "Adapter config", expect=None), str(folder))
    weights = folder / ("adapter.safetensors" if cfg.get("lora", True) else "model.safetensors")
    if not weights.is_file():
        raise UserError(f"{folder} holds no finished weights ({weights.name}): run its training to the end first.")
    return cfg, weights


def load_adapter(dlm: DiffusionLM, folder: str | Path) -> DiffusionLM:
    """Apply the weights of a `dlmpo train` output directory (or a shipped adapter folder)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    cfg, weights_file = read_adapter(folder)
    base = cfg.get("dlm")
    if base and base != dlm.name:
        raise UserError(f"{folder} was trained on {base}, not on {dlm.name}: pass --dlm {base}.")
    try:
        weights = load_file(str(weights_file))
    except Exception as exc:
        raise UserError(f"{weights_file} cannot be read ({type(exc).__name__}).") from None
    return apply_weights(dlm, cfg, weights, str(folder))
