"""`dlmpo optimize --mlflow URI`: a dlmpo run logged into an MLflow run, as it goes.

`MLflowRun(uri, settings, run_dir)` is an event sink (`optimizer.runlog.EventSink`): the run's
typed events become MLflow params and metrics, and `finish` logs the result, the report files and
the best prompt as artifacts. It talks to the tracking store through an `MlflowClient` of its own,
so a caller's active run and tracking URI are left alone. The MLflow run starts with the dlmpo
run's first event (a mistake found before it leaves no MLflow run behind); a resumed dlmpo run
gets a new MLflow run whose metrics also hold the rounds logged before."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dlmpo.errors import UserError
from dlmpo.integrations.common import require
from dlmpo.optimizer.events import Event, RoundEnd, RunStart, Stop, parse_event
from dlmpo.optimizer.result import OptimizeResult
from dlmpo.optimizer.settings import OptimizeSettings
from dlmpo.runs.rundir import RunDir

DEFAULT_EXPERIMENT = "dlmpo"
RUN_FILES = ("config.json", "events.jsonl", "result.json")  # besides the report's; the best prompt is logged as text


def round_metrics(event: RoundEnd) -> dict[str, float]:
    """What one finished round logs, at step = its number."""
    record, spend = event.record, event.spend
    return {"best_val": event.best_val, "candidates": len(record.candidates),
            "candidates_screened": sum(c.rejected is None for c in record.candidates),
            "accepted": float(record.accepted), "spend_calls": spend["calls"],
            "spend_tokens": spend["total_tokens"], "spend_cost_usd": spend["cost_usd"]}


class MLflowRun:
    """The sink; use it as a context manager around the run (a run that raises is marked FAILED,
    an interrupted one KILLED). `experiment`: MLFLOW_EXPERIMENT_NAME, else 'dlmpo'."""

    def __init__(self, tracking_uri: str, settings: OptimizeSettings, run_dir: str | Path, *,
                 experiment: str | None = None):
        require("mlflow", "dlmpo optimize --mlflow")
        from mlflow import MlflowClient

        self.uri, self.settings, self.run_dir = tracking_uri, settings, Path(run_dir)
        self.experiment = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
        self.run_id: str | None = None
        with self._store_errors():
            self.client = MlflowClient(tracking_uri=tracking_uri)
            found = self.client.get_experiment_by_name(self.experiment)
            self.experiment_id = found.experiment_id if found else self.client.create_experiment(self.experiment)

    @contextmanager
    def _store_errors(self):
        """The store's refusals (a bad URI, a server that does not answer) as one sentence."""
        from mlflow.exceptions import MlflowException

        try:
            yield
        except MlflowException as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise UserError(f"MLflow tracking store {self.uri!r}: {first.rstrip('.')}.") from None

    # ---------------------------------------------------------------- the run

    def __enter__(self) -> MLflowRun:
        return self

    def __exit__(self, kind, error, tb) -> None:
        if self.run_id is not None and error is not None:
            status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
            self.client.set_terminated(self.run_id, status=status)

    def _start(self) -> str:
        if self.run_id is None:
            from mlflow.entities import Param

            with self._store_errors():
                run = self.client.create_run(self.experiment_id, run_name=self.run_dir.name,
                                             tags={"dlmpo.run_dir": str(self.run_dir.resolve()),
                                                   "dlmpo.task": self.settings.task})
                self.run_id = run.info.run_id
                settings = self.settings.model_dump(exclude={"seed_prompt"})  # any length: seed_prompt.txt at the end
                self.client.log_batch(self.run_id, params=[Param(k, str(v)) for k, v in sorted(settings.items())])
        return self.run_id

    def _metrics(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self._start(), metrics=[Metric(k, float(v), now, step) for k, v in values.items()])

    def __call__(self, event: Event) -> None:
        with self._store_errors():
            self._log(event)

    def _log(self, event: Event) -> None:
        run_id = self._start()
        if isinstance(event, RunStart):
            self.client.set_tag(run_id, "dlmpo.optimizer", event.optimizer or self.settings.proposer)
            if event.resume:
                self.client.set_tag(run_id, "dlmpo.resumed_after_rounds", str(event.completed_rounds))
                for earlier in self._logged_rounds(set(event.completed_rounds)):
                    self._metrics(round_metrics(earlier), earlier.round)
            self._metrics({"estimate_calls": event.estimate["calls"]}, 0)
        elif isinstance(event, RoundEnd):
            self._metrics(round_metrics(event), event.round)
        elif isinstance(event, Stop):
            self.client.set_tag(run_id, "dlmpo.stop_reason", event.reason)

    def _logged_rounds(self, rounds: set[int]) -> list[RoundEnd]:
        events = [parse_event(e) for e in RunDir(self.run_dir).events() if e.get("type") == RoundEnd.type]
        return sorted((e for e in events if e.round in rounds), key=lambda e: e.round)

    def finish(self, result: OptimizeResult, files: dict[str, Path] | None = None) -> str:
        """The result's scores and spend, the run directory's files (and `files`, the report's) as
        artifacts, the seed and best prompts as seed_prompt.txt and best_prompt.txt; the MLflow run
        ends FINISHED. Its id."""
        run_id = self._start()
        with self._store_errors():
            self._metrics({"val_seed": result.val["seed"], "val_best": result.val["best"],
                           "test_seed": result.test["seed"], "test_best": result.test["best"],
                           "calls": result.calls, "cost_usd": result.usage.get("cost_usd", 0.0),
                           "seconds": result.seconds}, len(result.rounds))
            self.client.set_tag(run_id, "dlmpo.stop_reason", result.stop_reason)
            for path in [*(self.run_dir / name for name in RUN_FILES), *(files or {}).values()]:
                if Path(path).is_file():
                    self.client.log_artifact(run_id, str(path))
            self.client.log_text(run_id, result.seed_prompt, "seed_prompt.txt")
            self.client.log_text(run_id, result.best_prompt, "best_prompt.txt")
            self.client.set_terminated(run_id, status="FINISHED")
        return run_id

    def chained(self, other: Any = None):
        """An event sink that hands each event to `other` (the caller's, if any) and to this run."""
        if other is None:
            return self

        def both(event: Event) -> None:
            other(event)
            self(event)

        return both
