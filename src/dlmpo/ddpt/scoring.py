"""Score one way of prompting (a prefix per problem, or none) on code problems: the NLL of the
canonical solutions, and pass@k of generated completions run with their tests in the sandbox."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from dlmpo.code.completion import STOP_SEQUENCES
from dlmpo.code.passk import pass_at_k
from dlmpo.code.problems import CodeProblem
from dlmpo.code.sandbox import SandboxLimits, run_programs
from dlmpo.ddpt.whitebox import WhiteBoxLM

PASS_KS = (1, 5, 10, 100)


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 128
    samples: int = 1
    temperature: float = 0.8
    seed: int = 0
    limits: SandboxLimits = SandboxLimits()


@dataclass
class ConditionScore:
    nll: float  # per token, over every solution token of every problem
    pass_at: dict[str, float | None]  # None when no problem has tests
    rows: list[dict]

    def summary(self) -> dict:
        return {"nll": round(self.nll, 4), **{k: None if v is None else round(v, 4) for k, v in self.pass_at.items()}}


def progress_units(problems: list[CodeProblem], settings: GenerationSettings) -> int:
    """What score_condition reports progress in: one per NLL, one per generated completion."""
    return len(problems) + settings.samples * sum(p.has_tests for p in problems)


@torch.no_grad()
def score_condition(lm: WhiteBoxLM, problems: list[CodeProblem], prefixes: list[torch.Tensor | None],
                    settings: GenerationSettings, on_progress: Callable[[int], None] | None = None) -> ConditionScore:
    """`on_progress(n)` is told of n more units done (see progress_units)."""
    rows, total_nll, total_tokens = [], 0.0, 0
    prompts = [lm.ids(p.prompt) for p in problems]
    for problem, prefix, prompt_ids in zip(problems, prefixes, prompts):
        solution_ids = lm.ids(problem.canonical_solution)
        nll = lm.solution_nll(prefix, prompt_ids, solution_ids).item()
        total_nll, total_tokens = total_nll + nll, total_tokens + len(solution_ids)
        rows.append({"task_id": problem.task_id, "nll": round(nll / len(solution_ids), 4)})
        if on_progress:
            on_progress(1)
    tested = [i for i, p in enumerate(problems) if p.has_tests]
    passes: dict[str, float | None] = {f"pass@{k}": None for k in PASS_KS if k <= settings.samples}
    if tested:
        correct = [0] * len(problems)
        for s in range(settings.samples):
            temperature = settings.temperature if settings.samples > 1 else 0.0
            completions = lm.generate([prefixes[i] for i in tested], [prompts[i] for i in tested],
                                      max_new_tokens=settings.max_new_tokens, stops=STOP_SEQUENCES,
                                      temperature=temperature, seed=settings.seed + 1000 * s, on_batch=on_progress)
            results = run_programs([problems[i].program(c) for i, c in zip(tested, completions)], settings.limits)
            for i, completion, result in zip(tested, completions, results):
                correct[i] += result.passed
                rows[i].setdefault("completions", []).append({"text": completion, "status": result.status,
                                                              "detail": result.detail})
        for k in passes:
            passes[k] = sum(pass_at_k(settings.samples, correct[i], int(k[5:])) for i in tested) / len(tested)
    return ConditionScore(total_nll / max(total_tokens, 1), passes, rows)
