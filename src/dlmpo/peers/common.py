"""What every peer shares with a dlmpo run: the same models, splits, call budget and run directory;
the seed prompt scored first on val and test; the best prompt scored last on the same test set."""

from __future__ import annotations

import time
from pathlib import Path

from dlmpo.errors import UserError
from dlmpo.optimizer.budget import Budget
from dlmpo.optimizer.loop import Optimizer, StopRun
from dlmpo.optimizer.result import OptimizeResult
from dlmpo.optimizer.settings import OptimizeSettings


class PeerRun:
    def __init__(self, name: str, settings: OptimizeSettings, out: str | Path, on_event=None):
        if settings.feedback not in ("metric", "none"):
            raise UserError(f"{name} scores candidates with the task's own metric and feedback: use feedback metric.")
        self.name = name
        self.opt = Optimizer(settings, out, on_event=on_event)
        self.s = s = self.opt.s
        self.start = time.perf_counter()
        self.opt.run_dir.bind_config(s.identity(), s.model_dump())
        self.target, _ = self.opt._open_models(writer=True)
        assert self.opt.writer is not None
        self.writer = self.opt.writer
        self.models = [m for m in (self.target, self.writer, self.opt.user_model) if m]
        self.budget = Budget(self.models, max_calls=s.max_calls, max_cost=s.max_cost, max_tokens=s.max_tokens)
        self.reserve_calls = len(self.opt.test_set)  # the best prompt's test evaluation, paid last

    def emit(self, event: dict) -> None:
        self.opt._emit(event)

    async def score_seed(self) -> tuple[float, float]:
        """Seed prompt on val and test; the budget must cover both."""
        opt = self.opt
        self.emit({"type": "run_start", "resume": False, "estimate": opt.estimate(), "completed_rounds": [],
                   "optimizer": self.name})
        try:
            val = await opt._eval(self.target, self.budget, opt.seed_prompt, opt.val_pool, "val", "seed")
            test = await opt._eval(self.target, self.budget, opt.seed_prompt, opt.test_set, "test", "seed")
        except StopRun as stop:
            await self.close()
            raise UserError(f"The budget cannot cover scoring the seed prompt, {stop}.") from None
        return val.score, test.score

    async def run_in_thread(self, search, log_name: str):
        """The peer's own search, off the event loop (its calls come back to it); a failure inside the
        peer package closes our models and becomes one sentence pointing at the peer's log."""
        import asyncio

        try:
            return await asyncio.to_thread(search)
        except Exception as exc:
            await self.close()
            raise UserError(f"{self.name} stopped with {type(exc).__name__}: {exc} "
                            f"(its log: {self.opt.run_dir.path / log_name}).") from exc

    def calls_left(self) -> int | None:
        """Calls the peer may still spend, keeping the final test evaluation's reserve."""
        if self.s.max_calls is None:
            return None
        return self.s.max_calls - self.budget.spend().calls - self.reserve_calls

    async def finish(self, best_prompt: str, best_val: float, seed_val: float, seed_test: float) -> OptimizeResult:
        opt = self.opt
        best_test = await opt._eval(self.target, None, best_prompt, opt.test_set, "test", "best")
        opt.run_dir.write_best(best_prompt)
        spend = self.budget.spend()
        result = OptimizeResult(
            run_dir=str(opt.run_dir.path), task=opt.task.name, target=self.s.target,
            dlm=f"{self.name}:{self.s.optimizer_model}", seed_prompt=opt.seed_prompt, best_prompt=best_prompt,
            val={"seed": round(seed_val, 4), "best": round(best_val, 4)},
            test={"seed": round(seed_test, 4), "best": round(best_test.score, 4)}, rounds=[],
            stop_reason=self.name, calls=spend.calls,
            usage={**spend.to_json(), "this_process": self.target.accounting.to_json()},
            seconds=time.perf_counter() - self.start, settings=self.s.model_dump())
        result.save(opt.run_dir.result_file)
        self.emit({"type": "run_end", **result.summary()})
        await self.close()
        return result

    async def close(self) -> None:
        for model in {id(m): m for m in self.models}.values():
            await model.aclose()
