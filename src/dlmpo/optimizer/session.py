"""What the optimizer loop and the peers (GEPA, MIPROv2) share of one run: its settings, task, seed
prompt, pools and log, the call estimate before it starts, how its models and scorer are made, and
how it ends (the seed and the best prompt on test, result.json)."""

from __future__ import annotations

import time
from pathlib import Path

from dlmpo.catalog import get_task
from dlmpo.evaluate import answer_cap, budget_requests
from dlmpo.optimizer.models import Models
from dlmpo.optimizer.pools import Pools
from dlmpo.optimizer.registry import PROPOSERS
from dlmpo.optimizer.result import OptimizeResult, RoundRecord
from dlmpo.optimizer.runlog import EventSink, RunLog
from dlmpo.optimizer.scorer import ProgressSink, Scorer
from dlmpo.optimizer.settings import OptimizeSettings
from dlmpo.tasks import Task


class RunSession:
    def __init__(self, settings: OptimizeSettings, out: str | Path, *, on_event: EventSink | None = None,
                 on_progress: ProgressSink | None = None, task: Task | None = None):
        self.settings = settings
        self.log = RunLog(out, on_event)
        self.on_progress = on_progress or (lambda what, done, total: None)  # transient: never logged
        self.task = task or get_task(settings.task, settings.data_dir,
                                      allow_unisolated_code=settings.allow_unisolated_code)
        # None: the task's seed prompt; "" (or blank): no system prompt, as in `dlmpo eval --prompt ''`
        seed = settings.seed_prompt
        self.seed_prompt = self.task.seed_prompt if seed is None else (seed if seed.strip() else "")
        self.pools = Pools.draw(self.task, settings)
        self.answer_tokens = answer_cap(self.task, settings.max_answer_tokens)
        self.start = time.perf_counter()

    def estimate(self) -> dict:
        """Calls and cost of the optimizer loop before starting: every batch at full size, no cache hits."""
        settings, pools = self.settings, self.pools
        screened = min(settings.screen_batch, max(len(pools.spare_val), len(pools.train)))
        per_round = min(settings.batch_size, len(pools.train)) + (settings.candidates + 1) * screened + len(pools.val) \
            + 2 * len(pools.confirm)
        runs = len(pools.val) + 2 * len(pools.test) + settings.rounds * per_round  # examples the target runs
        per_example = [budget_requests(self.task, self.seed_prompt, ex, self.answer_tokens) for ex in pools.val[:20]]
        calls = runs * len(per_example[0])  # an episodic example (τ-bench) is several target calls
        if settings.feedback == "judge":
            calls += settings.rounds * min(settings.batch_size, len(pools.train))
        per_candidate, extra = PROPOSERS[settings.proposer].writer_calls
        calls += settings.rounds * (per_candidate * settings.candidates + extra)
        sample = [r for rs in per_example for r in rs]
        avg_prompt = sum(r.prompt_tokens_bound() for r in sample) / len(sample)
        return {"calls": calls, "prompt_tokens": int(calls * avg_prompt),
                "completion_tokens": calls * self.answer_tokens}

    def open_models(self, *, writer: bool) -> Models:
        """The run's models (with a chat-model writer when asked), to be entered with `async with`."""
        return Models.open(self.settings, self.task, self.log.calls_db, writer=writer)

    def scorer(self, models: Models) -> Scorer:
        return Scorer(self.task, self.pools, models, self.log, self.answer_tokens, self.on_progress)

    async def finish(self, scorer: Scorer, *, best_prompt: str, best_val: float, seed_val: float,
                     writer: str, stop_reason: str, rounds: list[RoundRecord] | None = None,
                     warnings: list[str] | None = None) -> OptimizeResult:
        """Score the seed and the best prompt on test (paid from the reserve), write the best prompt
        and result.json."""
        settings = self.settings
        test = await scorer.score_test(self.seed_prompt, best_prompt, part=settings.test_part,
                                       interval=settings.test_interval)
        self.log.write_best(best_prompt)
        result = OptimizeResult(
            run_dir=str(self.log.path), task=self.task.name, target=self.settings.target, writer=writer,
            seed_prompt=self.seed_prompt, best_prompt=best_prompt,
            val={"seed": round(seed_val, 4), "best": round(best_val, 4)},
            test=test.to_json(),
            rounds=rounds or [], stop_reason=stop_reason, calls=scorer.models.budget.spend().calls,
            usage=scorer.models.usage(), seconds=time.perf_counter() - self.start,
            settings=self.settings.model_dump(), warnings=warnings or [], timing=dict(scorer.seconds))
        self.log.write_result(result)
        return result

