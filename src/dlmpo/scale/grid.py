"""One run of a comparison or sweep (a `GridRun`: settings, run directory, optimizer), and the
read-back of a run that has already finished, so that no executor runs it again."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dlmpo.optimizer.result import OptimizeResult
from dlmpo.optimizer.settings import OptimizeSettings


@dataclass(frozen=True)
class GridRun:
    settings: OptimizeSettings
    run_dir: Path
    optimizer: str  # a name of `optimizers.optimizers()`
    name: str  # how messages name it, e.g. sst2/dlm-seed0


def finished_result(settings: OptimizeSettings, run_dir: str | Path) -> OptimizeResult | None:
    """The result.json in `run_dir` when it holds a finished run of these very settings, else None."""
    if not (Path(run_dir) / "result.json").is_file():
        return None
    done = OptimizeResult.load(run_dir)
    return done if done.settings == settings.model_dump() else None
