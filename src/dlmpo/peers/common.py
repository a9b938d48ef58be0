"""What every peer shares with a dlmpo run: its `RunSession` (the same models, splits, call budget
and run directory; the seed prompt scored first on val and test; the best prompt scored last on
the same test set), plus running the peer's own search off the event loop."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dlmpo.errors import UserError
from dlmpo.optimizer.events import Event, RunStart
from dlmpo.optimizer.result import OptimizeResult
from dlmpo.optimizer.session import RunSession
from dlmpo.optimizer.settings import OptimizeSettings


class PeerRun:
    def __init__(self, name: str, settings: OptimizeSettings, out: str | Path, on_event=None, *, writer: bool = True):
        if settings.feedback not in ("metric", "none"):
            raise UserError(f"{name} scores candidates with the task's own metric and feedback: use feedback metric.")
        self.name = name
        self.session = session = RunSession(settings, out, on_event=on_event)
        session.bind()
        session.open_models(writer=writer)  # writer False: the run's DLM writes (gepa+dlm)
        self.writer_name = settings.optimizer_model if writer else settings.dlm
        session.reserve_test(len(session.seed_prompt))  # peers keep prompts about the seed's length

    def emit(self, event: Event) -> None:
        self.session.emit(event)

    async def score_seed(self) -> tuple[float, float]:
        """Seed prompt on val and test; the budget must cover both."""
        self.emit(RunStart(resume=False, estimate=self.session.estimate(), completed_rounds=[], optimizer=self.name))
        val, test = await self.session.score_seed()
        return val.score, test.score

    async def run_in_thread(self, search, log_name: str):
        """The peer's own search, off the event loop (its calls come back to it); a failure inside the
        peer package closes our models and becomes one sentence pointing at the peer's log."""
        try:
            return await asyncio.to_thread(search)
        except Exception as exc:
            await self.close()
            raise UserError(f"{self.name} stopped with {type(exc).__name__}: {exc} "
                            f"(its log: {self.session.run_dir.path / log_name}).") from exc

    def calls_left(self) -> int | None:
        """Calls the peer may still spend, keeping the final test evaluation's reserve."""
        return self.session.calls_left()

    async def finish(self, best_prompt: str, best_val: float, seed_val: float, seed_test: float) -> OptimizeResult:
        return await self.session.finish(best_prompt=best_prompt, best_val=best_val, seed_val=seed_val,
                                         seed_test=seed_test, optimizer=f"{self.name}:{self.writer_name}",
                                         stop_reason=self.name)

    async def close(self) -> None:
        await self.session.close()
