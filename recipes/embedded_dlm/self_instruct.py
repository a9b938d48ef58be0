"""Self-instruct rows for the embedded DLM: system prompts written by SmolLM2-135M-Instruct itself.

The task prompts of `make_data.py` are a handful of paraphrases and guidance sentences; a DLM
trained only on them learns to recite them. Here the embedded target writes system prompts for
many (assistant job × domain × style) combinations, so the DLM sees varied, fluent instructions.
The answer is begun for the model ("You are an assistant that <job>.") so it writes the rest of a
system prompt rather than about one; its part is cut after its last full sentence (four at most). Rows have no traces (`"context": []`); the
English filter is `make_data.py`'s, plus a block-list, and duplicates are dropped.
Jobs and domains in HELD_OUT are never written, so held-out metrics can use them.

    python recipes/embedded_dlm/self_instruct.py --n 20000 --out recipes/embedded_dlm/data/self_instruct.jsonl \
        [--device cuda] [--batch-size 256]
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import re
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_data import english  # noqa: E402

JOBS = [
    "classifies the sentiment of {d} as positive or negative",
    "rates {d} on a scale from one to five",
    "decides whether two {d} say the same thing",
    "answers customer questions about {d}",
    "extracts names, dates and places from {d}",
    "summarises {d} in one sentence",
    "detects spam and scams in {d}",
    "decides whether a claim follows from {d}",
    "tags {d} with one topic label",
    "flags rude or toxic language in {d}",
    "helps users fix mistakes in {d}",
    "answers yes or no questions about {d}",
    "translates {d} into plain English",
    "checks {d} for factual errors",
    "sorts {d} by urgency: high, medium or low",
    "explains {d} to a beginner",
]
DOMAINS = [
    "movie reviews", "restaurant reviews", "product reviews", "news headlines", "tweets", "emails",
    "airline bookings", "hotel reservations", "online orders and returns", "bank transactions",
    "insurance claims", "support tickets", "job postings", "recipes", "song lyrics", "school essays",
    "math word problems", "science questions", "legal contracts", "medical notes", "sports reports",
    "travel itineraries", "phone plans", "software bug reports", "forum posts", "book blurbs",
]
STYLES = [
    "Write the system prompt in two sentences.",
    "Write the system prompt in three short sentences, with rules.",
    "Write a short system prompt that says exactly what to reply.",
    "Write a system prompt with a role, the task and the answer format.",
]
HELD_OUT = {"domains": {"medical notes", "legal contracts"}, "jobs": {JOBS[7]}}


def requests(n: int, seed: int) -> list[tuple[str, str]]:
    """(request, opening) pairs: the opening names the job, so the model writes the rest of it."""
    combos = [(j.format(d=d), s) for j, d, s in itertools.product(JOBS, DOMAINS, STYLES)
              if d not in HELD_OUT["domains"] and j not in HELD_OUT["jobs"]]
    rng = random.Random(seed)
    return [(f"Write a system prompt for an AI assistant that {job}. {style} Reply with the system prompt only.",
             f"You are an assistant that {job}.")
            for job, style in (rng.choice(combos) for _ in range(n))]


BLOCKED = re.compile(r"system prompt|\*\*|#|http|fag|nigg|slut|whore|rape|\bkill", re.I)


def clean(opening: str, continuation: str) -> str | None:
    """The opening plus the continuation's first paragraph, cut after its last full sentence; None
    when the model added nothing of its own."""
    sentences = re.findall(r"[^.!?]*[.!?]", continuation.split("\n\n")[0])[:4]
    if not sentences:
        return None
    text = opening + "".join(sentences).rstrip()
    if not (80 <= len(text) <= 700) or not text.isascii() or not english(text) or BLOCKED.search(text):
        return None
    return text


def generate(asks: list[tuple[str, str]], device: str, batch_size: int, max_new_tokens: int, seed: int,
             time_limit: float) -> list[str]:
    """The model's continuations, in order; fewer than asked when `time_limit` seconds run out."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from dlmpo.embedded_weights import embedded_model_dir

    folder = embedded_model_dir()
    tok = AutoTokenizer.from_pretrained(str(folder), padding_side="left")
    tok.pad_token = tok.pad_token or tok.eos_token  # GGUF conversions under some transformers versions lack one
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype).to(device).eval()
    torch.manual_seed(seed)
    out, start = [], time.perf_counter()
    for i in range(0, len(asks), batch_size):
        if time.perf_counter() - start > time_limit:
            break
        chats = [tok.apply_chat_template([{"role": "user", "content": a}], tokenize=False,
                                         add_generation_prompt=True) + opening for a, opening in asks[i:i + batch_size]]
        enc = tok(chats, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        with torch.inference_mode():
            ids = model.generate(**enc, do_sample=True, temperature=0.7, top_p=0.95,
                                 max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id)
        out += tok.batch_decode(ids[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        print(f"{len(out)}/{len(asks)} written, {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000, help="system prompts to ask for (fewer survive the filter)")
    ap.add_argument("--out", type=Path, default=Path("recipes/embedded_dlm/data/self_instruct.jsonl"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-limit", type=float, default=float("inf"), help="seconds; stop early and keep what is written")
    args = ap.parse_args()
    asks = requests(args.n, args.seed)
    written = generate(asks, args.device, args.batch_size, args.max_new_tokens, args.seed, args.time_limit)
    kept = list(dict.fromkeys(t for t in (clean(o, w) for (_, o), w in zip(asks, written)) if t))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w") as f:
        for text in kept:
            f.write(json.dumps({"prompt": text, "context": []}) + "\n")
    print(f"{len(kept)} of {len(written)} kept -> {args.out}")


if __name__ == "__main__":
    main()
