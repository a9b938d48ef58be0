"""Checks a candidate prompt must pass before it costs a single target call."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

# the canvas shows traces as "[1] User: …", "Assistant: …", "Score: …", "Feedback: …" lines; a
# line that opens with "[7] " is a numbered trace even when a writer changed what follows
TRACE_MARKUP = re.compile(r"\[\d+\] User:|^\s*\[\d+\] |^\s*(?:Assistant|Score|Feedback):", re.M)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


@lru_cache(maxsize=512)  # a round's inputs and the task's own text are checked against every candidate
def _word_grams(text: str, n: int) -> frozenset[tuple[str, ...]]:
    words = _words(text)
    return frozenset(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


@dataclass
class PromptGuard:
    max_chars: int
    copy_ngram: int
    max_tokens: int | None = None  # the proposer's limit, set once the proposer is known
    count_tokens: Callable[[str], int] | None = None

    def reject_reason(self, candidate: str, incumbent: str, sources: list[str], own: list[str] = ()) -> str | None:
        """`sources` are the examples' inputs; `own` the task's own text (its template, label names,
        the seed prompt), which a prompt may repeat: only words copied from examples count."""
        if not candidate.strip():
            return "empty prompt"
        if candidate.strip() == incumbent.strip():
            return "identical to the incumbent"
        if len(candidate) > self.max_chars:
            return f"longer than {self.max_chars} characters"
        if self.max_tokens is not None and self.count_tokens(candidate) > self.max_tokens:
            return f"longer than {self.max_tokens} tokens: no room left for the DLM's masks"
        if TRACE_MARKUP.search(candidate) and not TRACE_MARKUP.search(incumbent):
            return "writes the canvas's trace format (a trace, not an instruction)"
        copied = self.copied_span(candidate, sources, [incumbent, *own])
        if copied:
            return f"copies training text verbatim: \"{copied}\""
        return None

    def copied_span(self, candidate: str, sources: list[str], own: list[str] = ()) -> str | None:
        """The first run of `copy_ngram` words the candidate shares with one example's input, not
        counting runs the task's own text has, nor runs two or more different inputs share (a template's
        fixed words, seen through the inputs)."""
        grams = self._grams(candidate)
        if not grams:
            return None
        for text in own:
            grams -= self._grams(text)
        seen: dict[tuple[str, ...], int] = {}
        for source in set(sources):
            for gram in self._grams(source) & grams:
                seen[gram] = seen.get(gram, 0) + 1
        copied = [gram for gram, count in seen.items() if count == 1]
        return " ".join(min(copied)) if copied else None

    def _grams(self, text: str) -> frozenset[tuple[str, ...]]:
        return _word_grams(text, self.copy_ngram)
