"""Issue 3 benchmark: forward passes (NFE) and wall time per infilled token for one-token-per-step
decoding, confidence-threshold parallel decoding and context K/V reuse.

Models: `tiny-random:dream`, and `smollm2:base` (SmolLM2-135M's weights in our bidirectional
module with a fresh mask token: a DLM of real size and real output distributions, NOT trained as
a DLM, so only speed and NFE are meaningful, not the text).
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
from dlmpo.dlm.base import pick_device  # noqa: E402


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
    rows += run(load_dlm("smollm2:base", str(device)), "smollm2:base (135M)", args.context, args.span, args.repeats)
    report(f"dlm_sampler_{device.type}_ctx{args.context}", rows)


if __name__ == "__main__":
    main()
