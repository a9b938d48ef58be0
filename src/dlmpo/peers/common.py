"""What every peer shares with a dlmpo run: its `RunSession` (the same splits and run directory),
its models and call budget (closed when the peer's block ends, however it ends), the seed prompt
scored first on val, the seed and the best prompt scored last on test, plus running the peer's own
search off the event loop."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

from dlmpo.errors import UserError
from dlmpo.optimizer.events import Event, RunStart
from dlmpo.optimizer.models import Models
from dlmpo.optimizer.result import OptimizeResult
from dlmpo.optimizer.session import RunSession
from dlmpo.optimizer.settings import OptimizeSettings


class PeerRun:
    def __init__(self, name: str, session: RunSession, models: Models, writer_name: str):
        self.name, self.session, self.models, self.writer_name = name, session, models, writer_name
        self.scorer = session.scorer(models)
        self.scorer.reserve_test(session.seed_prompt, len(session.seed_prompt))  # peers keep prompts about the seed's length

    @classmethod
    @asynccontextmanager
    async def open(cls, name: str, settings: OptimizeSettings, out: str | Path, on_event=None, *,
                   writer: bool = True) -> AsyncIterator[PeerRun]:
        """`async with PeerRun.open(...) as peer:` the peer's run, its models open for the block.
        `writer` False: the run's DLM writes (gepa+dlm), no chat model does."""
        if settings.feedback not in ("metric", "none"):
            raise UserError(f"{name} scores candidates with the task's own metric and feedback: use feedback metric.")
        session = RunSession(settings, out, on_event=on_event)
        session.log.bind(settings)
        async with session.open_models(writer=writer) as models:
            yield cls(name, session, models, settings.optimizer_model if writer else settings.dlm)

    def emit(self, event: Event) -> None:
        self.session.log.emit(event)

    async def score_seed(self) -> float:
        """The seed prompt's val score; the budget must cover it and the test reserve."""
        self.emit(RunStart(resume=False, estimate=self.session.estimate(), completed_rounds=[], optimizer=self.name))
        return (await self.scorer.score_seed(self.session.seed_prompt)).score

    async def run_in_thread(self, search, log_name: str):
        """The peer's own search, off the event loop (its calls come back to it); a failure inside the
        peer package becomes one sentence pointing at the peer's log."""
        try:
            return await asyncio.to_thread(search)
        except Exception as exc:
            raise UserError(f"{self.name} stopped with {type(exc).__name__}: {exc} "
                            f"(its log: {self.session.log.path / log_name}).") from exc

    def calls_left(self) -> int | None:
        """Calls the peer may still spend, keeping the final test evaluation's reserve."""
        return self.models.calls_left()

    async def finish(self, best_prompt: str, best_val: float, seed_val: float) -> OptimizeResult:
        return await self.session.finish(self.scorer, best_prompt=best_prompt, best_val=best_val, seed_val=seed_val,
                                         writer=f"{self.name}:{self.writer_name}",
                                         stop_reason=self.name)
