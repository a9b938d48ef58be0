"""Prompts scored by the target under the run's budget: a batch runs only when it fits (the final
test evaluation's reserve kept), every scoring is logged with its seconds, its progress reported as
it goes."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

from dlmpo.errors import BudgetExceeded, UserError
from dlmpo.evaluate import budget_requests, evaluate
from dlmpo.lm.budget import Budget
from dlmpo.optimizer.events import Eval
from dlmpo.optimizer.models import Models
from dlmpo.optimizer.pools import Pools
from dlmpo.optimizer.runlog import RunLog
from dlmpo.tasks import EvalResult, Example, Task

ProgressSink = Callable[[str, int, "int | None"], None]  # what is running, done, total (None: unknown)


class StopRun(Exception):
    """A limit (budget, time) ends the search early; the run still finishes cleanly."""


@dataclass(frozen=True)
class SeedScores:
    val: EvalResult
    test: EvalResult


class Scorer:
    def __init__(self, task: Task, pools: Pools, models: Models, log: RunLog, answer_tokens: int,
                 on_progress: ProgressSink):
        self.task, self.pools, self.models, self.log = task, pools, models, log
        self.answer_tokens = answer_tokens
        self.on_progress = on_progress  # transient: never logged
        self.seed_test: EvalResult | None = None  # the seed prompt's test rows, paired with the best's at the end
        self.seconds: dict[str, float] = {}  # wall seconds of the scorings outside the rounds: seed, test

    def _refusal(self, prompt: str, examples: Sequence[Example]) -> str | None:
        target = self.models.target
        requests = [r for ex in examples
                    for r in budget_requests(self.task, prompt, ex, self.answer_tokens, model=target)]
        return self.models.budget.refusal(target, requests)

    def reserve_test(self, prompt_chars: int) -> None:
        """Keep room in the budget for scoring the best prompt, up to `prompt_chars` long, on test
        (a stand-in prompt that is never in the cache, so every call counts)."""
        stand_in = "x" * prompt_chars
        self.models.budget.reserve = Budget.estimate(self.models.target, [
            r for ex in self.pools.test
            for r in budget_requests(self.task, stand_in, ex, self.answer_tokens, worst_case=True)])

    async def evaluate(self, prompt: str, examples: Sequence[Example], split: str, which: str, *,
                       round_index: int | None = None, charge: bool = True, log: bool = True) -> EvalResult:
        """Score `prompt` with the target; when `charge`, the batch must fit the budget (with the
        reserve kept) or StopRun is raised before any call. Every call is checked again as it is
        made, whatever `charge` says; a call the budget refuses ends the batch with StopRun."""
        if charge:
            why = self._refusal(prompt, examples)
            if why:
                raise StopRun(f"budget ({why})")
        what = f"round {round_index}: {which} on {split}" if round_index else f"{which} prompt on {split}"
        done = 0

        def tick(_trace) -> None:
            nonlocal done
            done += 1
            self.on_progress(what, done, len(examples))

        self.on_progress(what, 0, len(examples))
        started = time.perf_counter()
        try:
            result = await evaluate(self.task, self.models.target, prompt, list(examples), split=split,
                                    max_tokens=self.answer_tokens, on_done=tick)
        except BudgetExceeded as exc:
            raise StopRun(f"budget ({exc})") from None
        if log:
            self.log.emit(Eval(which=which, split=split, round=round_index, n=result.n, score=round(result.score, 4),
                               metrics=result.metrics, parse_failures=result.parse_failures, failures=result.failures,
                               seconds=round(time.perf_counter() - started, 3)))
        return result

    async def score_seed(self, seed_prompt: str) -> SeedScores:
        """The seed prompt on val and test; a budget that cannot cover both (and the reserve) is the
        user's error, found before any call."""
        started = time.perf_counter()
        why = self._refusal(seed_prompt, self.pools.val + self.pools.test)
        try:
            if why:
                raise StopRun(f"budget ({why})")
            val = await self.evaluate(seed_prompt, self.pools.val, "val", "seed")
            test = self.seed_test = await self.evaluate(seed_prompt, self.pools.test, "test", "seed")
        except StopRun as stop:
            raise UserError(f"The budget cannot cover scoring the seed prompt on val and test, {stop}: "
                            "raise it or lower --val-size / --test-size.") from None
        self.seconds["seed"] = round(time.perf_counter() - started, 3)
        return SeedScores(val, test)

    async def score_best(self, prompt: str) -> EvalResult:
        """The best prompt on test, paid from the reserve kept for it."""
        self.models.budget.spend_reserve()
        started = time.perf_counter()
        try:
            best = await self.evaluate(prompt, self.pools.test, "test", "best", charge=False)
        except StopRun as stop:
            raise UserError(f"The reserve kept for scoring the best prompt on test fell short, {stop}; the best "
                            f"prompt is in {self.log.path}: raise the budget and run the same command "
                            "again to score it.") from None
        self.seconds["test"] = round(time.perf_counter() - started, 3)
        return best
