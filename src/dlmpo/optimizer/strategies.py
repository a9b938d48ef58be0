"""Mask strategies: where the DLM may write in the incumbent prompt.

    append    n mask tokens under a `## Additional instructions` heading (the paper's setting)
    span      random word spans of the prompt are masked (ratio, span length)
    sentence  whole sentences of the prompt are masked
    regrow    the section added in earlier rounds is masked and regenerated

`a,b` alternates strategies across candidates; `a+b` combines them in one candidate."""

from __future__ import annotations

import random
import re
from typing import Callable

HEADING = "## Additional instructions"

TokenCounter = Callable[[str], int]


def _split_added(prompt: str) -> tuple[str, str | None]:
    if HEADING in prompt:
        head, _, added = prompt.partition(HEADING)
        return head.rstrip(), added.strip()
    return prompt.rstrip(), None


def append(prompt: str, rng: random.Random, count: TokenCounter, n: int, **_) -> str:
    head, added = _split_added(prompt)
    body = f"{added}\n[MASK:{n}]" if added else f"[MASK:{n}]"
    return f"{head}\n\n{HEADING}\n{body}"


def regrow(prompt: str, rng: random.Random, count: TokenCounter, n: int, **_) -> str:
    head, added = _split_added(prompt)
    size = max(n, count(added) if added else 0)
    return f"{head}\n\n{HEADING}\n[MASK:{size}]"


# a line's Markdown marker (heading, bullet, numbered item) stays; only its text may be masked
MARKER = re.compile(r"^(\s*(?:#{1,6}|[-*+]|\d+[.)])\s+)")


def _lines(text: str) -> list[tuple[str, str, str]]:
    """(marker, body, line break after it) for each line; joined back they give the text."""
    out = []
    for line, brk in re.findall(r"([^\n]*)(\n*)", text)[:-1] or [(text, "")]:
        m = MARKER.match(line)
        marker = m.group(1) if m else ""
        out.append((marker, line[len(marker):], brk))
    return out


def span(prompt: str, rng: random.Random, count: TokenCounter, n: int, ratio: float = 0.25,
         span_length: int = 6, **_) -> str:
    """Random word spans, each inside one line: line breaks and Markdown markers are never masked."""
    head, added = _split_added(prompt)
    lines = _lines(head)
    words = [(li, wi) for li, (_, body, _) in enumerate(lines) for wi, _ in enumerate(body.split(" "))]
    if len(words) < 2:
        return append(prompt, rng, count, n)
    n_spans = max(1, round(len(words) * ratio / span_length))
    starts = {words[i] for i in rng.sample(range(len(words)), min(n_spans, len(words)))}
    out = []
    for li, (marker, body, brk) in enumerate(lines):
        tokens, kept, i = body.split(" "), [], 0
        while i < len(tokens):
            if (li, i) in starts:
                removed = " ".join(tokens[i:i + span_length])
                kept.append(f"[MASK:{count(removed) + 2}]")  # room to grow a little; unused slots are stripped
                i += span_length
            else:
                kept.append(tokens[i])
                i += 1
        out.append(marker + " ".join(kept) + brk)
    text = "".join(out)
    return f"{text}\n\n{HEADING}\n{added}" if added else text


def sentence(prompt: str, rng: random.Random, count: TokenCounter, n: int, ratio: float = 0.25, **_) -> str:
    """Whole sentences, each inside one line: line breaks and Markdown markers are never masked."""
    head, added = _split_added(prompt)
    pieces = []  # [marker, sentence, separator] per sentence
    for marker, body, brk in _lines(head.strip()):
        parts = re.split(r"(?<=[.!?])(\s+)", body)
        for j in range(0, len(parts), 2):
            sep = parts[j + 1] if j + 1 < len(parts) else brk
            pieces.append([marker if j == 0 else "", parts[j], sep])
    candidates = [i for i, (_, text, _) in enumerate(pieces) if text.strip()]
    if not candidates:
        return append(prompt, rng, count, n)
    k = max(1, round(len(candidates) * ratio))
    chosen = set(rng.sample(candidates, min(k, len(candidates))))
    text = "".join(m + (f"[MASK:{count(t) + 4}]" if i in chosen else t) + sep
                   for i, (m, t, sep) in enumerate(pieces))
    return f"{text}\n\n{HEADING}\n{added}" if added else text


STRATEGY_FUNCS = {"append": append, "span": span, "sentence": sentence, "regrow": regrow}


def plan_for(spec: str, candidate_index: int) -> list[str]:
    alternatives = spec.split(",")
    return alternatives[candidate_index % len(alternatives)].split("+")


def apply_strategy(spec: str, candidate_index: int, prompt: str, rng: random.Random, count: TokenCounter,
                   *, n: int, ratio: float, span_length: int) -> tuple[str, str]:
    """The masked text for candidate `candidate_index`, and the name of the strategy used.
    Combined strategies apply in order; `append` goes last so its masks are not re-masked."""
    parts = plan_for(spec, candidate_index)
    ordered = [p for p in parts if p != "append"] + (["append"] if "append" in parts else [])
    text = prompt
    for name in ordered:
        text = _mask_fixed_text(STRATEGY_FUNCS[name], text, rng, count, n=n, ratio=ratio, span_length=span_length)
    return text, "+".join(ordered)


def _mask_fixed_text(func, text: str, rng, count, **kw) -> str:
    """Apply a strategy without touching mask runs another strategy already placed."""
    runs = re.findall(r"\[MASK:\d+\]", text)
    if not runs:
        return func(text, rng, count, **kw)
    placeholders = [f"⟦{i}⟧" for i in range(len(runs))]
    for ph, run in zip(placeholders, runs):
        text = text.replace(run, ph, 1)
    out = func(text, rng, count, **kw)
    for ph, run in zip(placeholders, runs):
        out = out.replace(ph, run, 1)
    return out
