"""Issue 3 benchmark: forward passes (NFE) and wall time per infilled token for one-token-per-step
decoding, confidence-threshold parallel decoding and context K/V reuse.

Models: `tiny-random:dream`, and `smollm2:base` (SmolLM2-135M's weights in our bidirectional
module with a fresh mask token: a DLM of real size and real output distributions, NOT trained as
a DLM, so only speed and NFE are meaningful, not the text).
`--shape dream-7b` instead runs a random model of Dream-7B's shape (Qwen2.5-7B: 28 layers, hidden
3584, 28/4 heads, MLP 18944, vocabulary 152064) in bf16, for GPU speed and NFE only.
Quality proxy: the fraction of infilled tokens equal to the one-per-step output.

    python -m benchmarks.dlm_sampler [--context 512] [--span 32] [--device cpu]
    python -m benchmarks.dlm_sampler --shape dream-7b --context 2048 --span 64 --device cuda"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from benchmarks.common import report
from dlmpo.dlm import Sampler, SamplerConfig, load_dlm
from dlmpo.dlm.base import NativeDLM, pick_device
from dlmpo.dlm.families import DREAM_MASK
from dlmpo.dlm.modeling import BidirectionalLM, TransformerConfig
from dlmpo.dlm.smollm2 import smollm2_tokenizer

DREAM_7B = TransformerConfig(vocab_size=152064, hidden_size=3584, num_layers=28, num_heads=28, num_kv_heads=4,
                             intermediate_size=18944, rope_theta=1e6, qkv_bias=True)


def dream_7b_shaped(device: torch.device) -> NativeDLM:
    """Random weights of Dream-7B's shape in bf16; SmolLM2's tokenizer (its ids fit the vocabulary)."""
    tok = smollm2_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": [DREAM_MASK]})
    torch.manual_seed(0)
    with torch.device(device):
        model = BidirectionalLM(DREAM_7B).to(torch.bfloat16)
    return NativeDLM(model, tok, name="dream-7b-shaped (random, bf16)", family="dream",
                     mask_token_id=tok.convert_tokens_to_ids(DREAM_MASK), shift=True, max_length=4096,
                     device=device)


def canvas(model, context_tokens: int, span: int) -> torch.Tensor:
    text = Path(__file__).resolve().parents[1].joinpath("README.md").read_text()  # any long English text
    ids = model.tokenizer(text * 20, add_special_tokens=False)["input_ids"]
    prompt, ctx = ids[:24], ids[24:24 + context_tokens]
    return torch.tensor([prompt + [model.mask_token_id] * span + ctx])


VARIANTS = {
    "one token per step": dict(),
    "threshold 0.9": dict(threshold=0.9),
    "threshold 0.7": dict(threshold=0.7),
    "K/V reuse, refresh 4": dict(kv_refresh=4),
    "K/V reuse, refresh 8": dict(kv_refresh=8),
    "threshold 0.9 + K/V refresh 8": dict(threshold=0.9, kv_refresh=8),
}


def run(model, name, context, span, repeats):
    x = canvas(model, context, span).to(model.device)
    rows, reference = [], None
    for label, kw in VARIANTS.items():
        cfg = SamplerConfig(steps=span, alg="maskgit_plus", **kw)
        Sampler(model, cfg).sample(x)  # warm-up
        times = []
        for _ in range(repeats):
            if model.device.type == "cuda":
                torch.cuda.synchronize()
            out = Sampler(model, cfg).sample(x)
            times.append(out.seconds)
        seconds = min(times)
        tokens = out.tokens[x == model.mask_token_id]
        if reference is None:
            reference, base_seconds, base_nfe = tokens, seconds, out.nfe
        rows.append({"model": name, "variant": label, "context": x.shape[1], "span": span, "nfe": out.nfe,
                     "full_forwards": out.full_forwards, "tokens_per_forward": out.tokens_per_forward,
                     "seconds": seconds, "ms_per_token": 1000 * seconds / span, "tokens_per_s": span / seconds,
                     "speedup": base_seconds / seconds, "nfe_reduction": base_nfe / out.nfe,
                     "same_as_one_per_step": float((tokens == reference).float().mean())})
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--span", type=int, default=32)
    ap.add_argument("--device", default=None)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--shape", choices=["small", "dream-7b"], default="small")
    args = ap.parse_args()
    device = pick_device(args.device)
    if args.shape == "dream-7b":
        model = dream_7b_shaped(device)
        rows = run(model, model.name, args.context, args.span, args.repeats)
        report(f"dlm_sampler_dream7b_{device.type}_ctx{args.context}", rows)
        return
    rows = run(load_dlm("tiny-random:dream", str(device)), "tiny-random:dream", args.context, args.span, args.repeats)
    rows += run(load_dlm("smollm2:base", str(device)), "smollm2:base (135M)", args.context, args.span, args.repeats)
    report(f"dlm_sampler_{device.type}_ctx{args.context}", rows)


if __name__ == "__main__":
    main()
