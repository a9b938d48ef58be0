"""The DLM as proposals run it: loaded once per process, its LoRA folded into the weights, in the
fastest dtype this machine computes.

`shared_dlm(spec, device, adapter)` loads a DLM for inference. Inside `dlm_scope()` (one run, or a
compare of several runs) the same specifier returns the same model, and leaving the outermost
scope frees it; outside any scope each call loads afresh. Training loads with `load_dlm` instead:
a merged LoRA can no longer be trained."""

from __future__ import annotations

import contextlib
import gc
from pathlib import Path

import torch

from dlmpo.dlm import load_dlm
from dlmpo.dlm.base import DiffusionLM

_LOADED: dict[tuple, DiffusionLM] = {}
_scopes = 0


def bf16_is_native() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX). Elsewhere torch emulates
    it, and a bf16 forward is slower than a float32 one (docs/benchmarks.md)."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def inference_dtype(device: torch.device) -> torch.dtype:
    """bf16 on a GPU and on a CPU with native bf16; float32 elsewhere."""
    if device.type == "cuda" or (device.type == "cpu" and bf16_is_native()):
        return torch.bfloat16
    return torch.float32


def merge_lora(dlm: DiffusionLM) -> int:
    """Fold each LoRA layer (peft) into its base weights and put the base layer back in its place:
    the same function without two extra matmuls per projection. Returns how many were folded."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [(name, module) for name, module in dlm.model.named_modules() if isinstance(module, BaseTunerLayer)]
    for name, layer in layers:
        layer.merge()
        parent, _, leaf = name.rpartition(".")
        setattr(dlm.model.get_submodule(parent), leaf, layer.get_base_layer())
    return len(layers)


def prepare_for_inference(dlm: DiffusionLM, dtype: torch.dtype | None = None) -> DiffusionLM:
    """LoRA merged, weights in `dtype` (default `inference_dtype`), frozen; the same object."""
    merge_lora(dlm)
    dlm.model.to(dtype or inference_dtype(dlm.device))
    dlm.model.requires_grad_(False).eval()
    return dlm


@contextlib.contextmanager
def dlm_scope():
    """DLMs that `shared_dlm` loads inside are loaded once, and freed when the outermost scope ends."""
    global _scopes
    _scopes += 1
    try:
        yield
    finally:
        _scopes -= 1
        if _scopes == 0:
            _LOADED.clear()
            gc.collect()  # a model's modules can hold reference cycles: free its memory now


def shared_dlm(spec: str, device: str | None = None, adapter: str | Path | None = None) -> DiffusionLM:
    """`load_dlm`, prepared for inference, loaded once per scope."""
    key = (spec.strip(), device, str(Path(adapter).resolve()) if adapter is not None else None)
    if key in _LOADED:
        return _LOADED[key]
    dlm = prepare_for_inference(load_dlm(spec, device, adapter=adapter))
    if _scopes:
        _LOADED[key] = dlm
    return dlm
