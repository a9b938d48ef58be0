"""The seed and the best prompt on test, scored part by part until the gain's interval is as narrow
as asked, and the test entry of result.json.

Both prompts answer the same `test_part` rows, then the next part, and so on; after each part the
95% interval of the gain best − seed (intervals.gain_interval) is looked at, and scoring stops once
its half-width is at most `test_interval`, or when the test pool runs out. The stop depends on the
interval's width, not on where it lies, so it does not pick a favourable estimate (a fixed-width
interval in the manner of Chow and Robbins). When the best prompt is the seed prompt the gain is
exactly 0: only the seed is scored, on the first part."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from dlmpo.optimizer.intervals import Interval, gain_interval, plus_minus, score_interval
from dlmpo.optimizer.selection import paired, sign_test
from dlmpo.tasks import EvalResult, Example, Task

NARROW = "interval reached"
RAN_OUT = "rows ran out"
SAME_PROMPT = "best is the seed prompt"


def why_stop(gain: Interval | None, asked: float, scored: int, pool: int) -> str | None:
    """Why test scoring stops after `scored` of `pool` rows, or None to score the next part. `gain`
    is None when the best prompt is the seed prompt: the gain is exactly 0 without a look."""
    if gain is None:
        return SAME_PROMPT
    if gain.half_width <= asked + 1e-12:
        return NARROW
    return RAN_OUT if scored >= pool else None


def join_parts(task: Task, prompt: str, split: str, parts: Sequence[tuple[Sequence[Example], EvalResult]]) -> EvalResult:
    """One prompt's results on consecutive parts as one result on all their rows. An episodic task
    (τ-bench) returns its trials one after another over a part's rows, so they are kept in that
    order over all the rows, and its metrics (pass^k) read them right."""
    examples = [ex for rows, _ in parts for ex in rows]
    trials = max((len(r.traces) // len(rows) for rows, r in parts if rows), default=1)
    traces = [t for k in range(trials) for rows, r in parts for t in r.traces[k * len(rows):(k + 1) * len(rows)]]
    return EvalResult(task.name, split, prompt, traces, task.metrics(examples, [t.prediction for t in traces]))


@dataclass(frozen=True)
class HeldOutScores:
    seed: EvalResult
    best: EvalResult  # the seed's own when the best prompt is the seed prompt
    rows: int  # test examples each prompt answered
    stopped: str  # NARROW, RAN_OUT or SAME_PROMPT

    @property
    def best_is_seed(self) -> bool:
        return self.stopped == SAME_PROMPT

    def gain(self) -> Interval:
        if self.best_is_seed:
            return Interval(0.0, 0.0)
        return gain_interval(*self._pairs())

    def _pairs(self) -> tuple[list[float], list[float]]:
        if [t.example_id for t in self.best.traces] != [t.example_id for t in self.seed.traces]:
            raise ValueError("the best and the seed prompt were scored on different test rows")
        return [t.score for t in self.best.traces], [t.score for t in self.seed.traces]

    def to_json(self) -> dict:
        """result.json's test entry: both scores, the best prompt's paired wins and losses against the
        seed on the same rows with the one-sided sign test's p-value, the three 95% intervals, the
        rows scored and why scoring stopped."""
        wins, losses = paired(*self._pairs())
        return {"seed": round(self.seed.score, 4), "best": round(self.best.score, 4), "wins": wins, "losses": losses,
                "p_value": round(sign_test(wins, losses), 5),
                "seed_interval": score_interval([t.score for t in self.seed.traces]).to_json(),
                "best_interval": score_interval([t.score for t in self.best.traces]).to_json(),
                "gain_interval": self.gain().to_json(), "rows": self.rows, "stopped": self.stopped}


def shown_with_intervals(test: dict) -> tuple[str, str, str] | None:
    """A test entry's seed score, best score and gain with their 95% intervals, one text for the
    terminal and the report: `0.5550 ± 0.047`, `0.5963 ± 0.047`, `+0.0413 ± 0.029`; None for a
    run of a version before the intervals."""
    if "gain_interval" not in test:
        return None
    return (plus_minus(test["seed"], test["seed_interval"]), plus_minus(test["best"], test["best_interval"]),
            plus_minus(test["best"] - test["seed"], test["gain_interval"], signed=True))
