"""Checks a candidate prompt must pass before it costs a single target call."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

# the canvas shows traces as "[1] User: …", "Assistant: …", "Score: …", "Feedback: …" lines
TRACE_MARKUP = re.compile(r"\[\d+\] User:|^\s*(?:Assistant|Score|Feedback):", re.M)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


@dataclass
class PromptGuard:
    max_chars: int
    copy_ngram: int
    max_tokens: int | None = None  # the proposer's limit, set once the proposer is known
    count_tokens: Callable[[str], int] | None = None

    def reject_reason(self, candidate: str, incumbent: str, sources: list[str]) -> str | None:
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
        copied = self.copied_span(candidate, sources)
        if copied:
            return f"copies training text verbatim: \"{copied}\""
        return None

    def copied_span(self, candidate: str, sources: list[str]) -> str | None:
        n = self.copy_ngram
        cand = _words(candidate)
        grams = {tuple(cand[i:i + n]) for i in range(len(cand) - n + 1)}
        if not grams:
            return None
        for source in sources:
            words = _words(source)
            for i in range(len(words) - n + 1):
                gram = tuple(words[i:i + n])
                if gram in grams:
                    return " ".join(gram)
        return None
