"""Why a proposed prompt is not worth a target call: the proposer failed, the guards (length,
copies of one example, trace lines), a repeat of another candidate or of an earlier challenger, or
the readability gate, which runs last because it may run a model."""

from __future__ import annotations

import re
from typing import Callable

from dlmpo.optimizer.guards import PromptGuard
from dlmpo.optimizer.proposers import Proposal, prompt_key
from dlmpo.optimizer.readability import ReadabilityGate
from dlmpo.optimizer.settings import OptimizeSettings
from dlmpo.tasks import Task


class CandidateChecks:
    def __init__(self, settings: OptimizeSettings, task: Task, seed_prompt: str):
        self.prompt_chars = settings.max_prompt_chars or max(4000, int(1.5 * len(seed_prompt)))
        self.guard = PromptGuard(self.prompt_chars, settings.copy_ngram)
        self.gate = ReadabilityGate(list(task.labels or []), settings.readability_nll) if settings.readability else None
        # the task's own words, which a prompt may repeat (its template's fixed parts, label names, the seed)
        self.own_text = [seed_prompt, " ".join(task.labels or []),
                         *re.split(r"\{[^}]*\}", getattr(task, "template", "") or "")]

    def limit_tokens(self, max_tokens: int, count: Callable[[str], int]) -> None:
        """Reject prompts longer than the proposer can rewrite, counted with its tokenizer."""
        self.guard.max_tokens, self.guard.count_tokens = max_tokens, count

    def rejection(self, proposal: Proposal, incumbent: str, earlier: list[str], challenged: dict[str, int],
                  sources: list[str]) -> str | None:
        """Why `proposal` is rejected, or None. `earlier`: the round's candidates before it;
        `challenged`: prompts that challenged on val (by key) and their round; `sources`: the
        inputs of the traces the proposer saw."""
        prompt = proposal.prompt
        why = proposal.failure or self.guard.reject_reason(prompt, incumbent, sources, self.own_text)
        if why is None and prompt in earlier:
            why = "duplicate of another candidate"
        if why is None and prompt_key(prompt) in challenged:
            why = f"challenged on val in round {challenged[prompt_key(prompt)]}"
        if why is None and self.gate is not None:
            why = self.gate.reject_reason(prompt, incumbent, " ".join(sources))
        return why
