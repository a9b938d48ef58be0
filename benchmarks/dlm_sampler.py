"""Issue 3 benchmark: forward passes (NFE) and wall time per infilled token for one-token-per-step
decoding, confidence-threshold parallel decoding and context K/V reuse.

Models: `tiny-random:dream`, and `smollm2:base` (SmolLM2-135M's weights in our bidirectional
module with a fresh mask token: a DLM of real size and real output distributions, NOT trained as
a DLM, so only speed and NFE are meaningful, not the text).
`--shape dream-7b` instead runs a random model of Dream-7B's shape (Qwen2.5-7B: 28 layers, hidden
3584, 28/4 heads, MLP 18944, vocabulary 152064) in bf16, for GPU speed and NFE only.
Quality proxy: the fraction of infilled tokens equal to the one-per-step output.

`--round` (issue 25) instead measures the embedded DLM's proposal round as the optimizer runs it by
default (4 candidates x 16 masks appended to the SST-2 seed prompt, 6 held-out traces), today's
path and each change side by side, interleaved in one process; the held-out infill quality of each
sampler variant; and the physical limit (the round's FLOPs over a measured matmul rate).

    python -m benchmarks.dlm_sampler [--context 512] [--span 32] [--device cpu]
    python -m benchmarks.dlm_sampler --shape dream-7b --context 2048 --span 64 --device cuda
    OMP_WAIT_POLICY=PASSIVE python -m benchmarks.dlm_sampler --round [--repeats 2]
    OMP_WAIT_POLICY=PASSIVE python -m benchmarks.dlm_sampler --quality [--rows 20]
    python -m benchmarks.dlm_sampler --round --only "K/V reuse, no refresh"   # today's path and the variants named"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from pathlib import Path

import torch

from benchmarks.common import report
from benchmarks.embedded_dlm import infill_rows
from dlmpo.dlm import ContextItem, Sampler, SamplerConfig, infill, load_dlm
from dlmpo.dlm.base import NativeDLM, pick_device
from dlmpo.dlm.canvas import build_canvas
from dlmpo.dlm.families import DREAM_MASK
from dlmpo.dlm.fluency import english_fraction
from dlmpo.dlm.inference import bf16_is_native, prepare_for_inference
from dlmpo.dlm.masks import parse_masked_text
from dlmpo.dlm.modeling import BidirectionalLM, TransformerConfig
from dlmpo.dlm.smollm2 import smollm2_tokenizer
from dlmpo.optimizer.strategies import HEADING, append
from dlmpo.tasks.builtin import BUILTINS
from dlmpo.train import evaluate_masked
from dlmpo.train.data import encode_rows, read_rows

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


# ---------------------------------------------------------------------------------------------
# --round (issue 25): the embedded DLM's proposal round, today's path and each change

ROOT = Path(__file__).resolve().parents[1]
HELDOUT = ROOT / "recipes/embedded_dlm/data/heldout.jsonl"
CANDIDATES, MASKS = 4, 16  # the optimizer's defaults
TODAY = dict(kv_reuse=False, kv_refresh=None, threshold=None)  # the sampler as the optimizer ran it before issue 25
REUSE = dict(kv_reuse=True, kv_refresh=None)  # the context's K/V computed once, at the first forward
ROUND_VARIANTS = {  # label -> (model, sampler settings over the defaults)
    "today (LoRA unmerged, plain)": ("loaded", TODAY),
    "LoRA merged": ("merged", TODAY),
    "merged + K/V reuse, refresh 8": ("merged", dict(REUSE, kv_refresh=8, threshold=None)),
    "merged + K/V reuse, no refresh": ("merged", dict(REUSE, threshold=None)),
    "merged + no refresh + threshold 0.9": ("merged", dict(REUSE, threshold=0.9)),
    "merged + no refresh + threshold 0.8": ("merged", dict(REUSE, threshold=0.8)),
    "bf16 + K/V reuse, no refresh": ("bf16", dict(REUSE, threshold=None)),  # the default where bf16 is native
    "bf16 + no refresh + threshold 0.9": ("bf16", dict(REUSE, threshold=0.9)),
}
SPAN_VARIANTS = {k: ROUND_VARIANTS[k] for k in ("today (LoRA unmerged, plain)", "merged + K/V reuse, refresh 8",
                                                 "merged + no refresh + threshold 0.9")}
QUALITY_VARIANTS = {  # label -> (model, sampler settings); the merged model's logits are today's within float rounding
    "plain": ("merged", TODAY),
    "K/V reuse, refresh 8": ("merged", dict(REUSE, kv_refresh=8, threshold=None)),
    "K/V reuse, no refresh": ("merged", dict(REUSE, threshold=None)),
    "bf16 + K/V reuse, no refresh": ("bf16", dict(REUSE, threshold=None)),
    "no refresh + threshold 0.9": ("merged", dict(REUSE, threshold=0.9)),
    "no refresh + threshold 0.8": ("merged", dict(REUSE, threshold=0.8)),
    "no refresh + threshold 0.7": ("merged", dict(REUSE, threshold=0.7)),
}
GREEDY = dict(temperature=0.0, top_p=None)
MERGE_CHECK_ROWS = 16  # held-out rows on which the merged model's masked accuracy is checked against the loaded one's
ENV = {"omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "bf16_native": bf16_is_native()}


class WorkCounter:
    """Tokens through the transformer body, rows through the vocabulary head and query-key pairs
    of attention, counted by wrapping a model's three forwards."""

    def __init__(self, model):
        self.model, self.cfg = model, model.model.config
        self.body_params = sum(p.numel() for p in model.model.model.layers.parameters())
        self.reset()
        for name in ("raw_logits", "raw_logits_with_kv", "raw_logits_partial"):
            setattr(model, name, self._counted(getattr(model, name)))

    def reset(self):
        self.tokens = self.head_rows = self.pairs = 0

    def _counted(self, forward):
        def run(input_ids, *args):
            batch, length = input_ids.shape
            queries = len(args[0]) if len(args) == 3 else length  # partial: (active, context, rows)
            self.tokens += batch * queries
            self.pairs += batch * queries * length
            self.head_rows += args[-1].numel()
            return forward(input_ids, *args)
        return run

    def flops(self) -> float:
        c = self.cfg
        attention = 4 * self.pairs * c.num_heads * c.dim_per_head * c.num_layers  # scores and weighted sum
        return 2 * self.tokens * self.body_params + 2 * self.head_rows * c.vocab_size * c.hidden_size + attention


def matmul_gflops(dtype: torch.dtype, m: int = 512, k: int = 576, n: int = 1536, calls: int = 200) -> float:
    """The best rate of this CPU at the DLM's MLP shape (SmolLM2-135M: 576 -> 1536), best of 3."""
    a, w = torch.randn(m, k, dtype=dtype), torch.randn(n, k, dtype=dtype)
    torch.nn.functional.linear(a, w)
    best = 0.0
    for _ in range(3):
        began = time.perf_counter()
        for _ in range(calls):
            torch.nn.functional.linear(a, w)
        best = max(best, 2 * m * k * n * calls / (time.perf_counter() - began) / 1e9)
    return best


def round_context(rows: list[dict]) -> list[ContextItem]:
    """Six held-out traces (the optimizer shows 6 per round), as the round's context."""
    return [ContextItem.from_dict(c) for row in rows for c in row["context"]][:6]


def appended(prompt: str, model, n: int) -> str:
    """The optimizer's default edit: `n` masks appended under its heading."""
    return append(prompt, random.Random(0), lambda t: len(model.tokenizer(t)["input_ids"]), n=n)


def chosen(variants: dict, only: list[str] | None) -> dict:
    """The variants whose label holds one of `only` (all without it); the first is always kept, as the baseline."""
    first = next(iter(variants))
    return {k: v for k, v in variants.items() if k == first or not only or any(o in k for o in only)}


def time_rounds(models: dict, counters: dict, context: list[ContextItem], repeats: int, variants: dict) -> list[dict]:
    """Each variant's round, the variants interleaved so that all of them share the CPU's moods."""
    masked = appended(BUILTINS["sst2"].seed_prompt, models["merged"], MASKS)
    seconds = {label: [] for label in variants}
    runs = {}
    for r in range(repeats):
        for label, (which, kw) in variants.items():
            counters[which].reset()
            began = time.perf_counter()
            result = infill(models[which], masked, context=context, n_candidates=CANDIDATES,
                            sampler=SamplerConfig(**kw), seed=r)
            seconds[label].append(time.perf_counter() - began)
            runs[label] = (result, counters[which].flops())
            print(f"round {r} {label}: {seconds[label][-1]:.1f} s, NFE {result.nfe}", flush=True)
    rates = {torch.float32: matmul_gflops(torch.float32), torch.bfloat16: matmul_gflops(torch.bfloat16)}
    base = statistics.median(seconds[next(iter(variants))])
    out = []
    for label, (which, kw) in variants.items():
        result, flops = runs[label]
        median = statistics.median(seconds[label])
        rate = rates[next(models[which].model.parameters()).dtype]
        out.append({"variant": label, "canvas_tokens": result.canvas_tokens, "nfe": result.nfe,
                    "full_forwards": result.full_forwards, "seconds_median": round(median, 2),
                    "seconds_all": [round(t, 2) for t in seconds[label]], "share_of_today": round(median / base, 3),
                    "gflop": round(flops / 1e9, 1), "matmul_gflops": round(rate, 1),
                    "limit_seconds": round(flops / 1e9 / rate, 2)})
    return out


def time_span(models: dict, repeats: int, variants: dict, context_tokens: int = 512, span: int = 32) -> list[dict]:
    """Infill tokens/s for a 32-token span in a 512-token canvas, one row, 32 steps."""
    x = canvas(models["merged"], context_tokens - 56, span)  # 24 prompt tokens + span + context = 512
    seconds = {label: [] for label in variants}
    for _ in range(repeats):
        for label, (which, kw) in variants.items():
            out = Sampler(models[which], SamplerConfig(steps=span, **kw)).sample(x)
            seconds[label].append(out.seconds)
    return [{"variant": label, "canvas_tokens": x.shape[1], "span": span,
             "tokens_per_s": round(span / statistics.median(t), 2)} for label, t in seconds.items()]


def appendix_english(model, rows: list[dict], kw: dict) -> dict:
    """The share of English words in 4 default-sampled 16-mask appendices of each held-out prompt."""
    english, words, distinct, nfe = [], [], [], []
    for i, row in enumerate(rows):
        result = infill(model, appended(row["prompt"], model, MASKS), context=row["context"],
                        n_candidates=CANDIDATES, sampler=SamplerConfig(**kw), seed=i)
        spans = [c.spans[-1] for c in result.candidates]
        english += [english_fraction(span) for span in spans]
        words += [len(span.split()) for span in spans]
        distinct.append(len({" ".join(span.split()) for span in spans}) / len(spans))  # repeats are drawn again
        nfe.append(result.nfe)
    fluent = [e >= 0.8 and w >= 3 for e, w in zip(english, words)]
    return {"infills": len(english), "mean_english": round(statistics.mean(english), 3),
            "english_se": round(statistics.stdev(english) / len(english) ** 0.5, 3),
            "fluent": round(sum(fluent) / len(fluent), 3), "distinct": round(statistics.mean(distinct), 3),
            "mean_nfe": round(statistics.mean(nfe), 2)}


def restored_share(model, rows: list[dict], kw: dict) -> dict:
    """Held-out prompts' own appendices masked whole: the share of their tokens a greedy infill restores."""
    mask = model.tokenizer.convert_ids_to_tokens(model.mask_token_id)
    restored = total = 0
    for row in rows:
        head, _, added = row["prompt"].partition(HEADING)
        target = model.tokenizer(added.strip(), add_special_tokens=False)["input_ids"]
        segments = parse_masked_text(f"{head.rstrip()}\n\n{HEADING}\n[MASK:{len(target)}]", mask)
        built = build_canvas(model, segments, [ContextItem.from_dict(c) for c in row["context"]])
        filled = Sampler(model, SamplerConfig(**{**kw, **GREEDY})).sample(built.input_ids[None])
        restored += sum(a == b for a, b in zip(filled.tokens[0, built.span_positions[0]].tolist(), target))
        total += len(target)
    return {"restored_tokens": round(restored / total, 3), "masked_tokens": total}


def round_main(repeats: int, only: list[str] | None, note: str) -> None:
    rows = read_rows(HELDOUT)
    variants = chosen(ROUND_VARIANTS, only)
    models = {"loaded": load_dlm("embedded", "cpu"),
              "merged": prepare_for_inference(load_dlm("embedded", "cpu"), torch.float32)}
    if any(which == "bf16" for which, _ in variants.values()):
        models["bf16"] = prepare_for_inference(load_dlm("embedded", "cpu"), torch.bfloat16)
    counters = {name: WorkCounter(model) for name, model in models.items()}
    rounds = time_rounds(models, counters, round_context(rows), repeats, variants)
    spans = time_span(models, repeats, {k: v for k, v in SPAN_VARIANTS.items() if k in variants})
    report("dlm_round_cpu", rounds, {"span_32_in_512": spans, **ENV, "note": note})


def quality_main(n_rows: int, only: list[str] | None, note: str) -> None:
    rows = read_rows(HELDOUT)
    variants = chosen(QUALITY_VARIANTS, only)
    models = {"loaded": load_dlm("embedded", "cpu"),
              "merged": prepare_for_inference(load_dlm("embedded", "cpu"), torch.float32)}
    if any(which == "bf16" for which, _ in variants.values()):
        models["bf16"] = prepare_for_inference(load_dlm("embedded", "cpu"), torch.bfloat16)
    examples, _ = encode_rows(models["merged"], rows, 384)
    examples = examples[:MERGE_CHECK_ROWS]
    masked_acc = {name: evaluate_masked(model, examples, on="target", ratio=0.5)["accuracy"]
                  for name, model in models.items()}
    infilled = infill_rows(rows, n_rows)
    with_appendix = infill_rows([r for r in rows if r["context"] and HEADING in r["prompt"]], n_rows)
    table = []
    for label, (which, kw) in variants.items():
        table.append({"variant": label, **appendix_english(models[which], infilled, kw),
                      **restored_share(models[which], with_appendix, kw)})
        print(table[-1], flush=True)
    report("dlm_round_quality", table, {"heldout_masked_accuracy": masked_acc, "masked_accuracy_rows": len(examples),
                                        "rows_per_measure": n_rows, **ENV, "note": note})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--span", type=int, default=32)
    ap.add_argument("--device", default=None)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--shape", choices=["small", "dream-7b"], default="small")
    ap.add_argument("--round", action="store_true", help="the embedded DLM's round, today's path vs each change")
    ap.add_argument("--quality", action="store_true", help="held-out infill quality of each sampler variant")
    ap.add_argument("--rows", type=int, default=20, help="--quality: held-out prompts per measure")
    ap.add_argument("--only", nargs="+", help="--round/--quality: only the variants whose label holds one of these "
                                              "(the first variant, the baseline, always runs)")
    ap.add_argument("--note", default="", help="--round/--quality: what else ran on the machine, kept in the JSON")
    args = ap.parse_args()
    if args.round:
        return round_main(args.repeats, args.only, args.note)
    if args.quality:
        return quality_main(args.rows, args.only, args.note)
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
