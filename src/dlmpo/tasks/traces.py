"""What running a prompt produces: one trace per interaction, and their scored collection."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Trace:
    """One interaction: [system prompt | user query | target output | score | feedback]."""

    example_id: str
    user: str
    output: str
    prediction: str | None
    gold: str
    score: float
    feedback: str
    error: str | None = None
    cached: bool = False

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class EvalResult:
    task: str
    split: str
    prompt: str
    traces: list[Trace]
    metrics: dict[str, float]

    @property
    def n(self) -> int:
        return len(self.traces)

    @property
    def score(self) -> float:
        return sum(t.score for t in self.traces) / self.n if self.traces else 0.0

    @property
    def parse_failures(self) -> int:
        return sum(t.prediction is None and t.error is None for t in self.traces)

    @property
    def failures(self) -> int:
        return sum(t.error is not None for t in self.traces)

    def write_traces(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as f:
            for t in self.traces:
                f.write(json.dumps({"system": self.prompt, **t.to_json()}, ensure_ascii=False) + "\n")
