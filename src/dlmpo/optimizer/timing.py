"""Where a round's wall time goes: seconds per phase, each phase timed on its own, so what the
phases leave out (the bookkeeping between them) shows as the gap between their sum and the wall."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Iterator

# in the order a round runs them; `load` only in the first round a process plays
PHASES = {
    "load": "loading the proposer (the DLM), feedback and the readability gate's reader",
    "traces": "incumbent on the train batch",
    "feedback": "feedback on the traces",
    "canvas": "building DLM canvases",
    "sampling": "DLM sampling",
    "propose": "the proposer's other work (masks, decoding, a chat writer's calls)",
    "checks": "candidate checks (guards, repeats, readability gate)",
    "screen": "screening candidates and incumbent",
    "val": "challenger on the val pool",
    "confirm": "second look on the confirmation pool",
}


@dataclass
class RoundTiming:
    wall: float  # the round's seconds; in the first round a process plays, the proposer's loading too
    phases: dict[str, float] = field(default_factory=dict)  # phase -> seconds, PHASES' keys
    nfe: int = 0  # DLM forward passes (one batched pass over several candidates counts once)
    redraws: int = 0  # samples taken again because a candidate repeated a text

    @property
    def accounted(self) -> float:
        return sum(self.phases.values())

    @property
    def share(self) -> float:
        """The part of the wall time the phases account for."""
        return self.accounted / self.wall if self.wall > 0 else 1.0

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> RoundTiming:
        return cls(**data)


class PhaseClock:
    """Wall seconds of one round, by phase."""

    def __init__(self, *, carried: dict[str, float] | None = None):
        self.started = time.perf_counter()
        self.seconds = dict(carried or {})  # phases timed before the round began (the proposer's loading)
        self.before = sum(self.seconds.values())

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float) -> None:
        assert name in PHASES, f"unknown phase {name}"
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def timing(self, *, nfe: int = 0, redraws: int = 0) -> RoundTiming:
        wall = time.perf_counter() - self.started + self.before
        phases = {name: round(self.seconds[name], 3) for name in PHASES if name in self.seconds}
        return RoundTiming(round(wall, 3), phases, nfe, redraws)
