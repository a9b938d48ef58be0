"""The result of a run: JSON in, JSON out."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dlmpo.errors import UserError


@dataclass
class RoundRecord:
    round: int
    incumbent_minibatch: float
    candidates: list[dict]  # {prompt, strategy, minibatch, wins, losses, rejected, val}
    accepted: bool
    best_val: float
    seconds: float


@dataclass
class OptimizeResult:
    run_dir: str
    task: str
    target: str
    dlm: str
    seed_prompt: str
    best_prompt: str
    val: dict[str, float]
    test: dict[str, float]
    rounds: list[RoundRecord]
    stop_reason: str
    calls: int
    usage: dict
    seconds: float
    settings: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2, ensure_ascii=False))

    @classmethod
    def from_json(cls, data: dict) -> OptimizeResult:
        data = dict(data)
        data["rounds"] = [RoundRecord(**r) for r in data["rounds"]]
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> OptimizeResult:
        path = Path(path)
        if path.is_dir():
            path = path / "result.json"
        try:
            return cls.from_json(json.loads(path.read_text()))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise UserError(f"{path} is not a result of `dlmpo optimize` ({type(exc).__name__}: {exc}): "
                            "re-run the same command to write it again.") from None

    def summary(self) -> dict:
        return {
            "run_dir": self.run_dir, "seed_prompt": self.seed_prompt, "best_prompt": self.best_prompt,
            "val": self.val, "test": self.test, "rounds": len(self.rounds), "calls": self.calls,
            "usage": self.usage, "stop_reason": self.stop_reason, "seconds": round(self.seconds, 2),
            "warnings": self.warnings,
        }
