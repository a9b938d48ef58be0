"""What a run writes to events.jsonl, one typed record a line, and reads back to resume, print and
report. On disk every event is one flat JSON object with its `type`; a nested record (a
candidate, a verdict, a peer's details) is spread into that object. Fields added later have
defaults, so logs written by older versions still read."""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, ClassVar

from dlmpo.optimizer.result import CandidateRecord, RoundRecord
from dlmpo.optimizer.selection import Verdict

LOG_KEYS = ("type", "time")  # what every line of events.jsonl holds besides the event's own fields


@dataclass
class Event:
    type: ClassVar[str]

    def to_json(self) -> dict:
        return {"type": self.type, **asdict(self)}

    @classmethod
    def from_json(cls, data: dict) -> Event:
        return cls(**_known(cls, data))


def _known(cls, data: dict) -> dict:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def _required(cls) -> set[str]:
    return {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}


@dataclass
class RunStart(Event):
    type: ClassVar[str] = "run_start"
    resume: bool
    estimate: dict
    completed_rounds: list[int]
    val_warning: str | None = None
    optimizer: str | None = None  # a peer's name; None for dlmpo's own loop


@dataclass
class RoundStart(Event):
    type: ClassVar[str] = "round_start"
    round: int


@dataclass
class Eval(Event):
    type: ClassVar[str] = "eval"
    which: str  # seed, best, traces, incumbent, challenger
    split: str
    round: int | None
    n: int
    score: float
    metrics: dict = field(default_factory=dict)
    parse_failures: int = 0
    failures: int = 0
    seconds: float | None = None  # wall seconds of the scoring; None in logs of earlier versions


@dataclass
class Feedback(Event):
    type: ClassVar[str] = "feedback"
    round: int
    source: str
    notes: list[str | None]


@dataclass
class FeedbackFallback(Event):
    """Some traces' feedback failed; they kept the metric's sentence."""
    type: ClassVar[str] = "feedback_fallback"
    round: int
    source: str
    failed: int
    of: int
    reasons: list[str]


@dataclass
class CandidateScored(Event):
    type: ClassVar[str] = "candidate"
    round: int
    candidate: CandidateRecord

    def to_json(self) -> dict:
        return {"type": self.type, "round": self.round, **self.candidate.to_json()}

    @classmethod
    def from_json(cls, data: dict) -> CandidateScored:
        return cls(data["round"], CandidateRecord.from_json(data))


@dataclass
class Decision(Event):
    """The sign test of a round's challenger on val."""
    type: ClassVar[str] = "decision"
    round: int
    index: int
    val: float
    incumbent_val: float
    accepted: bool
    verdict: Verdict

    def to_json(self) -> dict:
        plain = {k: v for k, v in asdict(self).items() if k != "verdict"}
        return {"type": self.type, **plain, **self.verdict.to_json()}

    @classmethod
    def from_json(cls, data: dict) -> Decision:
        own = {k: v for k, v in _known(cls, data).items() if k != "verdict"}
        return cls(**own, verdict=Verdict(**_known(Verdict, data)))


@dataclass
class RoundEnd(Event):
    type: ClassVar[str] = "round_end"
    round: int
    record: RoundRecord
    incumbent: str
    best_val: float
    no_improve: int
    spend: dict

    def to_json(self) -> dict:
        return {**super().to_json(), "record": self.record.to_json()}

    @classmethod
    def from_json(cls, data: dict) -> RoundEnd:
        return cls(**{**_known(cls, data), "record": RoundRecord.from_json(data["record"])})


@dataclass
class WithDetails(Event):
    """An event whose other fields differ by optimizer (a peer's plan, its stop)."""
    details: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        plain = {k: v for k, v in asdict(self).items() if k != "details"}
        return {"type": self.type, **plain, **self.details}

    @classmethod
    def from_json(cls, data: dict) -> Event:
        own = _known(cls, data)
        own.pop("details", None)
        return cls(**own, details={k: v for k, v in data.items() if k not in own and k not in LOG_KEYS})


@dataclass
class Plan(WithDetails):
    type: ClassVar[str] = "plan"
    optimizer: str = ""


@dataclass
class Stop(WithDetails):
    type: ClassVar[str] = "stop"
    reason: str = ""


@dataclass
class RunEnd(WithDetails):
    """The result's summary (OptimizeResult.summary()), all in `details`."""
    type: ClassVar[str] = "run_end"


EVENTS: dict[str, type[Event]] = {cls.type: cls for cls in (RunStart, RoundStart, Eval, Feedback, FeedbackFallback,
                                                            CandidateScored, Decision, RoundEnd, Plan, Stop, RunEnd)}


def parse_event(data: dict[str, Any]) -> Event:
    """One line of events.jsonl as its typed event; ValueError for an unknown type or a missing field."""
    cls = EVENTS.get(data.get("type", ""))
    if cls is None:
        raise ValueError(f"unknown event type {data.get('type')!r}")
    missing = _required(cls) - set(data) - {"candidate", "verdict", "details"}
    if missing:
        raise ValueError(f"a {cls.type} event without {', '.join(sorted(missing))}")
    return cls.from_json(data)
