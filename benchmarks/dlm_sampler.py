"""Issue 3 benchmark: forward passes (NFE) and wall time per infilled token for one-token-per-step
decoding, confidence-threshold parallel decoding and context K/V reuse.

Models: `tiny-random:dream`, and SmolLM2-135M's weights in our bidirectional module with a fresh
mask token ("smollm2-bidir": a DLM-shaped model of real size and real, peaked output
distributions; it is NOT trained as a DLM, so only speed and NFE are meaningful, not text).
Quality proxy: the fraction of infilled tokens equal to the one-per-step output.

    python benchmarks/dlm_sampler.py [--context 512] [--span 32] [--device cpu]"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import report  # noqa: E402

from dlmpo.dlm import Sampler, SamplerConfig, load_dlm  # noqa: E402
from dlmpo.dlm.base import NativeDLM, pick_device, pick_dtype  # noqa: E402
from dlmpo.dlm.modeling import BidirectionalLM, TransformerConfig  # noqa: E402


def smollm2_bidirectional(device: torch.device) -> NativeDLM:
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from dlmpo.embedded_weights import embedded_model_dir

    folder = embedded_model_dir()
    import json

    cfg = TransformerConfig.from_hf(json.loads((folder / "config.json").read_text()))
    tok = AutoTokenizer.from_pretrained(str(folder))
    tok.add_special_tokens({"additional_special_tokens": ["<|mask|>"]})
    tok.mask_token = "<|mask|>"
    state = load_file(str(folder / "model.safetensors"))
    emb = state["model.embed_tokens.weight"]
    state["model.embed_tokens.weight"] = torch.cat([emb, emb.mean(0, keepdim=True)])
    cfg.vocab_size = emb.shape[0] + 1
    model = BidirectionalLM(cfg)
    model.load_state_dict(state, strict=False)
    model = model.to(pick_dtype(device))
    return NativeDLM(model, tok, name="smollm2-bidir", family="dream", mask_token_id=tok.mask_token_id, shift=True,
                     max_length=8192, device=device)


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
    args = ap.parse_args()
    device = pick_device(args.device)
    rows = run(load_dlm("tiny-random:dream", str(device)), "tiny-random:dream", args.context, args.span, args.repeats)
    rows += run(smollm2_bidirectional(device), "smollm2-bidir (135M)", args.context, args.span, args.repeats)
    report(f"dlm_sampler_{device.type}_ctx{args.context}", rows)


if __name__ == "__main__":
    main()
