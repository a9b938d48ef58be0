"""A run's directory as the optimizer sees it: the settings it is bound to, the typed events it
logs (each also handed to the caller's sink), what a resumed run reads back from them, once, and
the best prompt and the result it writes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from dlmpo.errors import UserError
from dlmpo.optimizer.events import Event, Feedback, FeedbackFallback, RoundEnd, RunEnd, parse_event
from dlmpo.optimizer.result import OptimizeResult
from dlmpo.optimizer.settings import OptimizeSettings
from dlmpo.runs.rundir import RunDir

EventSink = Callable[[Event], None]


@dataclass(frozen=True)
class Resume:
    """What earlier processes of this run logged that the loop reuses."""
    rounds: dict[int, RoundEnd]  # finished rounds, by number: their outcomes are not recomputed
    notes: dict[int, list[str | None]]  # each round's last logged feedback (a person's notes are asked once)
    fallbacks: list[FeedbackFallback]  # feedback that failed and kept the metric's sentence


class RunLog:
    def __init__(self, out: str | Path, on_event: EventSink | None = None):
        self.dir = RunDir(out)
        self.on_event = on_event or (lambda e: None)

    @property
    def path(self) -> Path:
        return self.dir.path

    @property
    def calls_db(self) -> Path:
        return self.dir.calls_db

    def bind(self, settings: OptimizeSettings) -> bool:
        """Claim the run directory for these settings; True when it resumes an earlier run."""
        return self.dir.bind_config(settings.identity(), settings.model_dump())

    def read_resume(self) -> Resume:
        """The log so far, read once; a line that is not an event (another version's) is an error."""
        try:
            events = [parse_event(e) for e in self.dir.events()]
        except (ValueError, TypeError) as exc:
            raise UserError(f"{self.dir.events_file} holds a line this version cannot read ({exc}): "
                            "use a new --out directory.") from None
        return Resume(rounds={e.round: e for e in events if isinstance(e, RoundEnd)},
                      notes={e.round: e.notes for e in events if isinstance(e, Feedback)},
                      fallbacks=[e for e in events if isinstance(e, FeedbackFallback)])

    def emit(self, event: Event) -> None:
        self.dir.append(event.to_json())
        self.on_event(event)

    def write_best(self, prompt: str) -> None:
        self.dir.write_best(prompt)

    def write_result(self, result: OptimizeResult) -> None:
        result.save(self.dir.result_file)
        self.emit(RunEnd(details=result.summary()))
