"""Prompts scored by the target under the run's budget: a batch runs only when it fits (the final
test evaluation's reserve kept), every scoring is logged with its seconds, its progress reported as
it goes. The seed prompt is scored on val first; the seed and the best prompt on test last, part by
part until the gain's interval is as narrow as asked (held_out.py)."""

from __future__ import annotations

import time
from typing import Callable, Sequence

from dlmpo.errors import BudgetExceeded, UserError
from dlmpo.evaluate import budget_requests, evaluate
from dlmpo.lm.budget import Budget
from dlmpo.optimizer.events import Eval
from dlmpo.optimizer.held_out import HeldOutScores, join_parts, why_stop
from dlmpo.optimizer.intervals import gain_interval
from dlmpo.optimizer.models import Models
from dlmpo.optimizer.pools import Pools
from dlmpo.optimizer.runlog import RunLog
from dlmpo.tasks import EvalResult, Example, Task

ProgressSink = Callable[[str, int, "int | None"], None]  # what is running, done, total (None: unknown)


class StopRun(Exception):
    """A limit (budget, time) ends the search early; the run still finishes cleanly."""


class Scorer:
    def __init__(self, task: Task, pools: Pools, models: Models, log: RunLog, answer_tokens: int,
                 on_progress: ProgressSink):
        self.task, self.pools, self.models, self.log = task, pools, models, log
        self.answer_tokens = answer_tokens
        self.on_progress = on_progress  # transient: never logged
        self.seconds: dict[str, float] = {}  # wall seconds of the scorings outside the rounds: seed (val), test

    def _refusal(self, prompt: str, examples: Sequence[Example]) -> str | None:
        target = self.models.target
        requests = [r for ex in examples
                    for r in budget_requests(self.task, prompt, ex, self.answer_tokens, model=target)]
        return self.models.budget.refusal(target, requests)

    def reserve_test(self, seed_prompt: str, best_chars: int) -> None:
        """Keep room in the budget for scoring the seed prompt and the best prompt, up to
        `best_chars` long (a stand-in that is never in the cache, so every call counts), on the
        whole test pool."""
        self.models.budget.reserve = Budget.estimate(self.models.target, [
            r for prompt in (seed_prompt, "x" * best_chars) for ex in self.pools.test
            for r in budget_requests(self.task, prompt, ex, self.answer_tokens, worst_case=True)])

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
            self._log_eval(result, which, round_index, time.perf_counter() - started)
        return result

    def _log_eval(self, result: EvalResult, which: str, round_index: int | None, seconds: float) -> None:
        self.log.emit(Eval(which=which, split=result.split, round=round_index, n=result.n, score=round(result.score, 4),
                           metrics=result.metrics, parse_failures=result.parse_failures, failures=result.failures,
                           seconds=round(seconds, 3)))

    async def score_seed(self, seed_prompt: str) -> EvalResult:
        """The seed prompt on val; a budget that cannot cover it and the test reserve is the user's
        error, found before any call."""
        started = time.perf_counter()
        try:
            val = await self.evaluate(seed_prompt, self.pools.val, "val", "seed")
        except StopRun as stop:
            raise UserError(f"The budget cannot cover scoring the seed prompt on val and the seed and best prompts "
                            f"on test, {stop}: raise it or lower --val-size / --test-size.") from None
        self.seconds["seed"] = round(time.perf_counter() - started, 3)
        return val

    async def score_test(self, seed_prompt: str, best_prompt: str, *, part: int, interval: float) -> HeldOutScores:
        """The seed and the best prompt on test, `part` rows at a time, until the half-width of the
        gain's 95% interval is at most `interval` or the pool runs out; paid from the reserve kept
        for it. The best prompt is scored only when it is not the seed prompt."""
        self.models.budget.spend_reserve()
        started = time.perf_counter()
        pool, same = self.pools.test, best_prompt == seed_prompt
        parts: dict[str, list[tuple[Sequence[Example], EvalResult]]] = {"seed": [], "best": []}
        seconds = {"seed": 0.0, "best": 0.0}
        prompts = {"seed": seed_prompt} if same else {"seed": seed_prompt, "best": best_prompt}
        begin, stopped = 0, None
        try:
            while stopped is None:
                end = min(begin + part, len(pool))
                rows = pool[begin:end]
                for which, prompt in prompts.items():
                    clock = time.perf_counter()
                    parts[which].append((rows, await self.evaluate(prompt, rows, "test", which, charge=False, log=False)))
                    seconds[which] += time.perf_counter() - clock
                gain = None if same else gain_interval(_row_scores(parts["best"]), _row_scores(parts["seed"]))
                begin, stopped = end, why_stop(gain, interval, end, len(pool))
        except StopRun as stop:
            raise UserError(f"The reserve kept for scoring the seed and the best prompt on test fell short, {stop}; "
                            f"the best prompt is in {self.log.path}: raise the budget and run the same command "
                            "again to score it.") from None
        seed = join_parts(self.task, seed_prompt, "test", parts["seed"])
        best = seed if same else join_parts(self.task, best_prompt, "test", parts["best"])
        self._log_eval(seed, "seed", None, seconds["seed"])
        if same:  # the seed prompt's rows are the best prompt's: nothing more to ask the target
            self.on_progress("best prompt on test", seed.n, seed.n)
        self._log_eval(best, "best", None, seconds["best"])
        self.seconds["test"] = round(time.perf_counter() - started, 3)
        return HeldOutScores(seed, best, rows=begin, stopped=stopped)


def _row_scores(parts: list[tuple[Sequence[Example], EvalResult]]) -> list[float]:
    return [t.score for _, result in parts for t in result.traces]
