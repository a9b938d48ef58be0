"""Progress over a whole grid of runs: done, running, failed, and the spend so far (paid calls
counted from every run's cache, the way its budget counts them; dollars of the finished runs).
Transient, like every progress callback: what, done, total, status."""

from __future__ import annotations

import time
from typing import Callable

from dlmpo.errors import RunsFailed, UserError
from dlmpo.lm.cache import paid_calls
from dlmpo.optimizer.result import OptimizeResult
from dlmpo.scale.grid import GridRun

Progress = Callable[[str, int, "int | None", str], None]
OnDone = Callable[[int, OptimizeResult], None]


class GridProgress:
    def __init__(self, runs: list[GridRun], *, on_progress: Progress | None = None, on_done: OnDone | None = None,
                 what: str = "grid"):
        self.runs, self.what = runs, what
        self.on_progress = on_progress or (lambda *_: None)
        self.on_done = on_done or (lambda *_: None)
        self.results: dict[int, OptimizeResult] = {}
        self.failures: dict[int, BaseException] = {}
        self.started_at = time.time()
        self.running: set[int] = set()
        self.calls = 0

    def finished(self, index: int, result: OptimizeResult) -> None:
        self.results[index] = result
        self.running.discard(index)
        self.on_done(index, result)
        self.refresh()

    def failed(self, index: int, error: BaseException) -> None:
        self.failures[index] = error
        self.running.discard(index)
        self.refresh()

    def refresh(self) -> None:
        """Reread the runs' caches; a run counts as running once it has logged in this grid."""
        open_runs = [i for i in range(len(self.runs)) if i not in self.results and i not in self.failures]
        for i in open_runs:
            events = self.runs[i].run_dir / "events.jsonl"
            if events.is_file() and events.stat().st_mtime >= self.started_at:
                self.running.add(i)
        self.calls = sum(paid_calls(run.run_dir / "calls.sqlite") for run in self.runs)
        self.on_progress(self.what, len(self.results), len(self.runs), self.status())

    def status(self) -> str:
        dollars = sum(r.usage.get("cost_usd", 0.0) for r in self.results.values())
        return (f"{len(self.running)} running, {len(self.failures)} failed; {self.calls} paid calls, "
                f"${dollars:.4f} in finished runs")

    def raise_failures(self) -> None:
        """After the grid: a user's mistake as its one sentence, else which runs failed and why."""
        if not self.failures:
            return
        mistakes = [e for e in self.failures.values() if isinstance(e, UserError)]
        if mistakes:
            raise mistakes[0]
        why = "; ".join(f"{self.runs[i].name}: {_last_line(e)}" for i, e in sorted(self.failures.items())[:3])
        raise RunsFailed(f"{len(self.failures)} of {len(self.runs)} runs failed ({why}): run the same command "
                         "again to retry them; finished runs are kept.")


def _last_line(error: BaseException) -> str:
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(error).__name__
