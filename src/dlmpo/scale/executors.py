"""Where the runs of a grid run: the `Executor` protocol and its registry. `compare` and `sweep` hand
an executor their runs and the one function that does a run (`work`, an async function of a
`GridRun` importable by name, so that a remote worker can run it); the executor reports each
result or failure to the grid's progress. A new place to run is one file and one line here."""

from __future__ import annotations

from typing import Awaitable, Callable, Protocol

from dlmpo.optimizer.registry import load
from dlmpo.optimizer.result import OptimizeResult
from dlmpo.scale.grid import GridRun
from dlmpo.scale.progress import GridProgress

Work = Callable[[GridRun], Awaitable[OptimizeResult]]


class Executor(Protocol):
    async def run_all(self, runs: list[tuple[int, GridRun]], work: Work, progress: GridProgress) -> None:
        """Run every (index, run); report each to `progress.finished` or `progress.failed`."""


class SequentialExecutor:
    """One run after another in this process; the first error stops the grid."""

    def __init__(self, address: str | None = None):
        pass

    async def run_all(self, runs: list[tuple[int, GridRun]], work: Work, progress: GridProgress) -> None:
        for index, run in runs:
            progress.running.add(index)
            progress.refresh()
            progress.finished(index, await work(run))


EXECUTORS = {
    "sequential": "dlmpo.scale.executors:SequentialExecutor",
    "ray": "dlmpo.scale.ray_runner:RayExecutor",
}


def executor_for(ray: str | None) -> Executor:
    """Ray tasks on the cluster at `ray` (local: a new one on this machine; auto: the running one;
    or its address), else this process."""
    return load(EXECUTORS["sequential" if ray is None else "ray"])(ray)
