"""Masks written in text: `[MASK:n]` for n mask tokens, or the model's own mask token (one each)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from dlmpo.errors import UserError

MASK_RUN = re.compile(r"\[MASK:(\d+)\]")


@dataclass(frozen=True)
class Span:
    """A run of `size` mask tokens."""

    size: int


Segment = str | Span


def parse_masked_text(text: str, mask_token: str | None = None) -> list[Segment]:
    """Split text into fixed strings and mask runs. Adjacent model mask tokens form one run."""
    pattern = MASK_RUN.pattern
    if mask_token:
        pattern += "|" + re.escape(mask_token)
    segments: list[Segment] = []
    pos = 0
    for m in re.finditer(pattern, text):
        if m.start() > pos:
            segments.append(text[pos:m.start()])
        size = int(m.group(1)) if m.group(1) is not None else 1
        if size < 1:
            raise UserError(f"'{m.group(0)}' asks for no mask tokens: use [MASK:n] with n >= 1.")
        if segments and isinstance(segments[-1], Span) and m.start() == pos and m.group(1) is None:
            segments[-1] = Span(segments[-1].size + size)
        else:
            segments.append(Span(size))
        pos = m.end()
    if pos < len(text):
        segments.append(text[pos:])
    if not any(isinstance(s, Span) for s in segments):
        raise UserError("The text holds no mask: write [MASK:n] where the model should write n tokens.")
    return segments


def mask_count(segments: list[Segment]) -> int:
    return sum(s.size for s in segments if isinstance(s, Span))
