"""LLaDA (`llada:`): its OLMo-style parameter names and config in our module's terms, loaded natively
when the checkpoint is the Llama-shaped LLaDA we implement, through its own remote code otherwise."""

from __future__ import annotations

import torch

from dlmpo.dlm.base import DiffusionLM, HFMaskedDLM, NativeDLM, pick_dtype
from dlmpo.dlm.checkpoints import (
    checkpoint_mask_id,
    checkpoint_tokenizer,
    load_native_weights,
    local_snapshot,
    read_config,
    safetensors_header,
    weight_files,
)
from dlmpo.dlm.families import LLADA_MASK, LLADA_MASK_ID, LLADA_TEMPLATE
from dlmpo.dlm.modeling import TransformerConfig

LLADA_TOP = {"wte": "model.embed_tokens", "ln_f": "model.norm", "ff_out": "lm_head"}
LLADA_BLOCK = {"attn_norm": "input_layernorm", "ff_norm": "post_attention_layernorm",
               "q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj", "v_proj": "self_attn.v_proj",
               "attn_out": "self_attn.o_proj", "ff_proj": "mlp.gate_proj", "up_proj": "mlp.up_proj",
               "ff_out": "mlp.down_proj"}
# LLaDA's ModelConfig defaults, for keys a config.json leaves out
LLADA_DEFAULTS = {
    "d_model": 768, "n_heads": 12, "n_layers": 12, "rope": False, "alibi": False, "block_type": "sequential",
    "layer_norm_type": "default", "activation_type": "swiglu", "include_bias": False, "include_qkv_bias": False,
    "bias_for_layer_norm": None, "attention_layer_norm": False, "input_emb_norm": False, "scale_logits": False,
    "layer_norm_with_affine": True, "block_group_size": 1, "multi_query_attention": None, "n_kv_heads": None,
    "mlp_ratio": 4, "mlp_hidden_size": None, "rope_theta": 10000.0, "rms_norm_eps": 1e-5, "weight_tying": True,
    "vocab_size": 50257, "embedding_size": 50304, "rope_full_precision": True,
}


def llada_name(name: str) -> str | None:
    """model.transformer.blocks.3.ff_proj.weight -> model.layers.3.mlp.gate_proj.weight (None if unknown)."""
    parts = name.split(".")
    if parts[:2] != ["model", "transformer"] or len(parts) < 4:
        return None
    if parts[2] == "blocks" and len(parts) == 6 and parts[3].isdigit() and parts[4] in LLADA_BLOCK:
        return f"model.layers.{parts[3]}.{LLADA_BLOCK[parts[4]]}.{parts[5]}"
    if len(parts) == 4 and parts[2] in LLADA_TOP:
        return f"{LLADA_TOP[parts[2]]}.{parts[3]}"
    return None


def llada_native_config(raw: dict) -> TransformerConfig | None:
    """Our module's config for a LLaDA config.json, or None for a variant it does not implement:
    it implements the Llama block (RMSNorm, SwiGLU MLP with ff_proj as gate and up_proj, RoPE),
    no biases but optional q/k/v ones, one block per group."""
    c = {**LLADA_DEFAULTS, **raw}
    implemented = (
        c["block_type"] == "llama" and c["layer_norm_type"] == "rms" and c["activation_type"] == "silu"
        and c["rope"] and not c["alibi"] and not c["include_bias"] and not c["bias_for_layer_norm"]
        and not c["attention_layer_norm"] and not c["input_emb_norm"] and not c["scale_logits"]
        and c["layer_norm_with_affine"] and c["block_group_size"] == 1 and c["d_model"] % c["n_heads"] == 0
    )
    if not implemented:
        return None
    kv_heads = c["n_kv_heads"] or (1 if c["multi_query_attention"] else c["n_heads"])
    return TransformerConfig(
        vocab_size=c["embedding_size"] or c["vocab_size"], hidden_size=c["d_model"], num_layers=c["n_layers"],
        num_heads=c["n_heads"], num_kv_heads=kv_heads,
        intermediate_size=c["mlp_hidden_size"] or c["mlp_ratio"] * c["d_model"], rope_theta=float(c["rope_theta"]),
        rms_eps=float(c["rms_norm_eps"]), qkv_bias=bool(c["include_qkv_bias"]), tie_embeddings=bool(c["weight_tying"]),
        rope_fp32=bool(c["rope_full_precision"]),
    )


def load_llada(repo_or_path: str, device: torch.device, dtype: torch.dtype | None = None) -> DiffusionLM:
    """Natively into our module when the checkpoint is the Llama-shaped LLaDA we implement (LLaDA-8B
    and its relatives); through its own remote code otherwise."""
    folder = local_snapshot(repo_or_path)
    cfg_raw = read_config(folder)
    tokenizer = checkpoint_tokenizer(folder, LLADA_MASK, LLADA_TEMPLATE)
    mask_id = checkpoint_mask_id({"mask_token_id": LLADA_MASK_ID, **cfg_raw}, tokenizer, LLADA_MASK, folder)
    dtype = dtype or pick_dtype(device)
    files = weight_files(folder)
    cfg = llada_native_config(cfg_raw)
    if cfg is None or not all(llada_name(n) for f in files for n in safetensors_header(f)):
        return load_llada_remote(repo_or_path, folder, tokenizer, mask_id, device, dtype)
    model = load_native_weights(cfg, files, device, dtype, llada_name)
    return NativeDLM(model, tokenizer, name=f"llada:{repo_or_path}", family="llada", mask_token_id=mask_id,
                     shift=False, max_length=int(cfg_raw.get("max_sequence_length", 4096)), device=device)


def load_llada_remote(repo_or_path, folder, tokenizer, mask_id, device, dtype) -> HFMaskedDLM:
    from transformers import AutoModel

    model = AutoModel.from_pretrained(str(folder), trust_remote_code=True, dtype=dtype)
    return HFMaskedDLM(model, tokenizer, name=f"llada:{repo_or_path}", family="llada", mask_token_id=mask_id,
                       shift=False, max_length=4096, device=device)
