"""Prompt-level infilling: text with masks in, candidate texts out."""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field, replace

from dlmpo.dlm.base import DiffusionLM
from dlmpo.dlm.canvas import ContextItem, build_canvas
from dlmpo.dlm.masks import Span, mask_count, parse_masked_text
from dlmpo.dlm.sampler import Sampler, SamplerConfig


@dataclass
class Candidate:
    text: str  # the filled prompt
    spans: list[str]  # each mask run's new text
    nfe: int
    seconds: float

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class InfillResult:
    candidates: list[Candidate]
    nfe: int
    masks: int
    seconds: float
    canvas_tokens: int
    traces_used: int
    notes: list[str] = field(default_factory=list)
    full_forwards: int = 0  # forwards over whole canvases (the others reused the context's K/V)
    canvas_seconds: float = 0.0  # building the canvas (tokenizing, budgeting); `seconds` is the sampling


def _join(left: str, piece: str, right_first: str = "") -> str:
    """Glue a span's text to its neighbours with one space where words would otherwise touch."""
    if piece and left and not left[-1].isspace() and piece[0].isalnum():
        piece = " " + piece
    if piece and right_first and not piece[-1].isspace() and right_first[0].isalnum():
        piece = piece + " "
    return piece


def decode_span(model: DiffusionLM, token_ids: list[int]) -> str:
    """Unused slots (end-of-text, padding) are stripped; the rest is decoded as text."""
    stops = model.stop_token_ids()
    kept = [t for t in token_ids if t not in stops]
    text = model.tokenizer.decode(kept, skip_special_tokens=True)
    text = re.sub(r"[ \t]+", " ", text)
    return text.strip(" ")


def infill(
    model: DiffusionLM,
    text: str,
    *,
    context: list[ContextItem | dict] | None = None,
    instruction: str | None = None,
    n_candidates: int = 1,
    sampler: SamplerConfig | None = None,
    seed: int | None = None,
    query_tokens: int = 160,
    output_tokens: int = 96,
) -> InfillResult:
    """Fill the masks of `text` (`[MASK:n]` or the model's mask token), conditioned on `context`
    (traces or examples that follow the prompt in the canvas). Returns `n_candidates` candidates
    sampled together in one batch (each with its own draws; at temperature 0 and no alg_temp they
    are identical). `sampler` sets the sampling options (default: `SamplerConfig()`, the same
    defaults as `dlmpo infill` and `optimize`); `seed` replaces its seed."""
    mask_str = model.tokenizer.convert_ids_to_tokens(model.mask_token_id)
    segments = parse_masked_text(text, mask_str)
    items = [c if isinstance(c, ContextItem) else ContextItem.from_dict(c) for c in (context or [])]
    start = time.perf_counter()
    canvas = build_canvas(model, segments, items, instruction=instruction,
                          query_tokens=query_tokens, output_tokens=output_tokens)
    canvas_seconds = time.perf_counter() - start
    cfg = sampler or SamplerConfig()
    if seed is not None:
        cfg = replace(cfg, seed=seed)
    batch = canvas.input_ids.to(model.device).unsqueeze(0).repeat(n_candidates, 1)
    result = Sampler(model, cfg).sample(batch)
    candidates = []
    for row in result.tokens.tolist():
        pieces: list[str] = []
        spans: list[str] = []
        span_iter = iter(canvas.span_positions)
        for i, seg in enumerate(segments):
            if isinstance(seg, Span):
                nxt = segments[i + 1] if i + 1 < len(segments) and isinstance(segments[i + 1], str) else ""
                new = decode_span(model, [row[p] for p in next(span_iter)])
                spans.append(new)
                pieces.append(_join("".join(pieces), new, nxt))
            else:
                pieces.append(seg)
        filled = re.sub(r"[ \t]+\n", "\n", "".join(pieces)).strip()
        candidates.append(Candidate(filled, spans, result.nfe, result.seconds))
    return InfillResult(candidates, result.nfe, mask_count(segments), result.seconds, canvas.length,
                        canvas.traces_used, canvas.notes, result.full_forwards, canvas_seconds)
