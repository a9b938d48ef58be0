"""Proposers write candidate prompts from the incumbent and its traces. The DLM proposer masks the
prompt (a strategy) and lets a diffusion LM denoise the masks conditioned on the traces."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, replace
from typing import Callable, Protocol

from dlmpo.dlm import ContextItem, DiffusionLM, SamplerConfig, infill
from dlmpo.optimizer.strategies import apply_strategy

CANVAS_OVERHEAD = 64  # tokens of chat template and heading around the prompt in the DLM canvas
# A candidate that repeats the incumbent, an earlier candidate or a text to avoid (an earlier
# round's challenger) is drawn again, up to REDRAWS
# times, each time a little hotter: short fills from a confident model collapse onto the same text,
# and a new seed alone often draws it again.
REDRAWS = 3
REDRAW_HEAT = 0.15


@dataclass
class Proposal:
    prompt: str
    strategy: str
    masked: str
    nfe: int = 0
    seconds: float = 0.0
    failure: str | None = None  # the writer failed: the candidate is recorded, rejected, never scored
    draws: int = 1  # samples taken to get a text no other candidate (nor the incumbent) has
    # this candidate's share of a batch drawn with others, where the proposer knows them: part of `seconds`
    canvas_seconds: float = 0.0
    sample_seconds: float = 0.0
    forwards: float = 0.0  # DLM forward passes of its batches, shared among the batch's candidates


class Proposer(Protocol):
    name: str

    def prompt_token_limit(self) -> tuple[int, Callable[[str], int]] | None:
        """The longest prompt (in the writer's tokens, with its counter) that leaves room for the
        next round's masks; None when the writer has no hard context limit."""
        ...

    async def propose(self, incumbent: str, context: list[ContextItem], k: int, round_index: int, *,
                      avoid: frozenset[str] = frozenset()) -> list[Proposal]:
        """`k` candidates; `avoid` holds texts (whitespace-normalised) the loop will reject as
        already judged, which a proposer that can draw again should not return."""
        ...


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

    async def propose(self, incumbent, context, k, round_index, *, avoid=frozenset()):
        rng = random.Random(f"{self.seed}:{round_index}:mask")
        masked = [apply_strategy(self.strategy, i, incumbent, rng, self._count, n=self.mask_tokens,
                                 ratio=self.span_ratio, span_length=self.span_length) for i in range(k)]
        proposals: list[Proposal] = [Proposal("", strategy, text, draws=0) for text, strategy in masked]
        todo = list(range(k))
        for attempt in range(REDRAWS + 1):
            self._draw(proposals, todo, context, round_index, attempt)
            todo = _repeats(incumbent, [p.prompt for p in proposals], avoid)
            if not todo:
                break
        return proposals

    def _draw(self, proposals: list[Proposal], indices: list[int], context, round_index: int, attempt: int) -> None:
        """Sample new texts for the candidates at `indices`; those that share a masked text are
        sampled together in one batch. Each candidate's draws depend on the candidates before it
        only, never on how many follow."""
        groups: dict[str, list[int]] = {}
        for i in indices:
            groups.setdefault(proposals[i].masked, []).append(i)
        sampler = replace(self.sampler, temperature=self.sampler.temperature + REDRAW_HEAT * attempt)
        for g, (text, members) in enumerate(groups.items()):
            start = time.perf_counter()
            seed = random.Random(f"{self.seed}:{round_index}:{attempt}:{g}").getrandbits(62)
            result = infill(self.model, text, context=context, n_candidates=len(members), sampler=sampler, seed=seed)
            share = 1 / len(members)
            seconds = (time.perf_counter() - start) * share
            for i, cand in zip(members, result.candidates):
                p = proposals[i]
                p.prompt, p.nfe, p.seconds, p.draws = cand.text, p.nfe + result.nfe, p.seconds + seconds, p.draws + 1
                p.canvas_seconds += result.canvas_seconds * share
                p.sample_seconds += result.seconds * share
                p.forwards += result.nfe * share


def prompt_key(prompt: str) -> str:
    """Prompts that differ only in whitespace are the same prompt."""
    return " ".join(prompt.split())


def _repeats(incumbent: str, texts: list[str], avoid: frozenset[str] = frozenset()) -> list[int]:
    """Indices of the texts that repeat the incumbent, a text to avoid or an earlier text
    (whitespace aside)."""
    seen = {prompt_key(incumbent)} | set(avoid)
    repeats = []
    for i, text in enumerate(texts):
        key = prompt_key(text)
        if key in seen:
            repeats.append(i)
        seen.add(key)
    return repeats


def build(s, writer=None) -> DLMProposer:
    """The registry's builder (`optimizer.registry.PROPOSERS['dlm']`): the settings' DLM, sampler
    and mask strategy, the DLM prepared for inference (its LoRA folded in: `dlm.inference`)."""
    from dlmpo.dlm.inference import shared_dlm

    sampler = SamplerConfig(steps=s.steps, alg=s.alg, alg_temp=s.alg_temp, temperature=s.temperature, top_p=s.top_p,
                            top_k=s.top_k, block_length=s.block_length, threshold=s.threshold,
                            kv_refresh=s.kv_refresh, seed=s.seed, schedule=s.schedule)
    sampler.validate()
    model = shared_dlm(s.dlm, s.device, adapter=s.adapter)
    return DLMProposer(model, sampler, strategy=s.strategy, mask_tokens=s.mask_tokens, span_ratio=s.span_ratio,
                       span_length=s.span_length, seed=s.seed)
