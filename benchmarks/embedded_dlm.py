"""The embedded DLM, measured (issue 12): held-out masked-token accuracy, infill fluency and speed.

For each model (`SPEC` or `SPEC@ADAPTER_DIR`):
- held-out loss and accuracy on target (prompt) tokens masked at ratio 0.5, fixed seed, on the
  recipe's held-out canvases (SST-5 prompts, τ-bench retail policy, lm-eval descriptions: never
  trained on);
- 20 infills of held-out prompts in the optimizer's append format (`## Additional instructions`
  + 24 masks, with the prompt's traces), verbatim, with the share of English words in each;
- infill speed: a 32-token span in a 512-token canvas, plain vs context K/V reuse.

    python recipes/embedded_dlm/make_data.py          # writes recipes/embedded_dlm/data/
    python -m benchmarks.embedded_dlm --model smollm2:base --model embedded"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from benchmarks.common import report
from dlmpo.dlm import Sampler, SamplerConfig, infill, load_dlm
from dlmpo.dlm.fluency import english_fraction
from dlmpo.train import evaluate_masked
from dlmpo.train.data import encode_rows, read_rows

ROOT = Path(__file__).resolve().parents[1]


def open_model(spec: str):
    name, _, adapter = spec.partition("@")
    return load_dlm(name, "cpu", adapter=adapter or None)


def infill_rows(rows: list[dict], n: int) -> list[dict]:
    seen, chosen = set(), []
    for row in sorted(rows, key=lambda r: (len(r["prompt"]), r["prompt"])):
        if row["prompt"] not in seen and len(row["prompt"]) < 700:
            seen.add(row["prompt"])
            chosen.append(row)
    step = max(1, len(chosen) // n)
    return chosen[::step][:n]


def speed(model, repeats: int = 2) -> dict:
    text = (ROOT / "README.md").read_text() * 4
    ids = model.tokenizer(text, add_special_tokens=False)["input_ids"]
    x = torch.tensor([ids[:24] + [model.mask_token_id] * 32 + ids[24:24 + 512 - 56]])
    out = {}
    for label, kw in (("plain", {}), ("kv_refresh_8", {"kv_refresh": 8})):
        if kw and not model.supports_kv_reuse:
            out[label] = None
            continue
        sampler = Sampler(model, SamplerConfig(steps=32, alg="entropy", **kw))
        sampler.sample(x)
        began = time.perf_counter()
        for _ in range(repeats):
            sampler.sample(x)
        out[label] = round(32 * repeats / (time.perf_counter() - began), 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", action="append", required=True, help="SPEC or SPEC@ADAPTER_DIR (repeatable)")
    ap.add_argument("--heldout", type=Path, default=ROOT / "recipes/embedded_dlm/data/heldout.jsonl")
    ap.add_argument("--infills", type=int, default=20)
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--alg", default="entropy")
    ap.add_argument("--temperature", type=float, default=0.0)
    ap.add_argument("--block-length", type=int, default=None, help="semi-autoregressive blocks of masks")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--name", default="embedded_dlm")
    args = ap.parse_args()
    rows = read_rows(args.heldout)
    table, details = [], {}
    for spec in args.model:
        model = open_model(spec)
        examples, _ = encode_rows(model, rows, 384)
        metric = evaluate_masked(model, examples, on="target", ratio=0.5)
        samples = []
        for i, row in enumerate(infill_rows(rows, args.infills)):
            text = row["prompt"] + "\n\n## Additional instructions\n[MASK:24]"
            sampler = SamplerConfig(steps=args.steps, alg=args.alg, temperature=args.temperature,
                                    block_length=args.block_length, seed=i)
            result = infill(model, text, context=row["context"], sampler=sampler)
            span = result.candidates[0].spans[0]
            samples.append({"prompt": row["prompt"], "infill": span, "english": round(english_fraction(span), 3)})
        fluent = sum(s["english"] >= 0.8 and len(s["infill"].split()) >= 3 for s in samples) / len(samples)
        rates = speed(model) if not args.skip_speed else {"plain": None, "kv_refresh_8": None}
        table.append({"model": spec, "heldout_loss": round(metric["loss"], 4), "heldout_acc": round(metric["accuracy"], 4),
                      "masked_tokens": metric["tokens"], "fluent_infills": round(fluent, 3),
                      "mean_english": round(sum(s["english"] for s in samples) / len(samples), 3),
                      "tok_s_plain": rates["plain"], "tok_s_kv": rates["kv_refresh_8"]})
        details[spec] = samples
    sampling = {"steps": args.steps, "alg": args.alg, "temperature": args.temperature, "block_length": args.block_length}
    report(args.name, table, {"infills": details, "heldout": str(args.heldout), "sampling": sampling})


if __name__ == "__main__":
    main()
