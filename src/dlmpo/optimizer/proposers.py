"""Proposers write candidate prompts from the incumbent and its traces. The DLM proposer masks the
prompt (a strategy) and lets a diffusion LM denoise the masks conditioned on the traces."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable, Protocol

from dlmpo.dlm import ContextItem, DiffusionLM, SamplerConfig, infill
from dlmpo.optimizer.strategies import apply_strategy

CANVAS_OVERHEAD = 64  # tokens of chat template and heading around the prompt in the DLM canvas


@dataclass
class Proposal:
    prompt: str
    strategy: str
    masked: str
    nfe: int = 0
    seconds: float = 0.0
    failure: str | None = None  # the writer failed: the candidate is recorded, rejected, never scored


class Proposer(Protocol):
    name: str

    def prompt_token_limit(self) -> tuple[int, Callable[[str], int]] | None:
        """The longest prompt (in the writer's tokens, with its counter) that leaves room for the
        next round's masks; None when the writer has no hard context limit."""
        ...

    async def propose(self, incumbent: str, context: list[ContextItem], k: int, round_index: int) -> list[Proposal]: ...


class DLMProposer:
    name = "dlm"

    def __init__(self, model: DiffusionLM, sampler: SamplerConfig, *, strategy: str, mask_tokens: int,
                 span_ratio: float, span_length: int, seed: int):
        self.model = model
        self.sampler = sampler
        self.strategy = strategy
        self.mask_tokens = mask_tokens
        self.span_ratio = span_ratio
        self.span_length = span_length
        self.seed = seed

    def _count(self, text: str) -> int:
        return len(self.model.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_token_limit(self) -> tuple[int, Callable[[str], int]]:
        # the chat template, the appended heading and span growth take the rest
        return self.model.max_length - self.mask_tokens - CANVAS_OVERHEAD, self._count

    async def propose(self, incumbent, context, k, round_index):
        rng = random.Random(f"{self.seed}:{round_index}:mask")
        masked = [apply_strategy(self.strategy, i, incumbent, rng, self._count, n=self.mask_tokens,
                                 ratio=self.span_ratio, span_length=self.span_length) for i in range(k)]
        # candidates that share a masked text are sampled together in one batch
        groups: dict[str, list[int]] = {}
        for i, (text, _) in enumerate(masked):
            groups.setdefault(text, []).append(i)
        proposals: list[Proposal | None] = [None] * k
        for g, (text, members) in enumerate(groups.items()):
            start = time.perf_counter()
            seed = self.seed * 100003 + round_index * 101 + g
            result = infill(self.model, text, context=context, n_candidates=len(members), sampler=self.sampler,
                            seed=seed)
            seconds = time.perf_counter() - start
            for i, cand in zip(members, result.candidates):
                proposals[i] = Proposal(cand.text, masked[i][1], text, result.nfe, seconds / len(members))
        return [p for p in proposals if p is not None]
