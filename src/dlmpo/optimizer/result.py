"""The result of a run: JSON in, JSON out. On disk (events.jsonl, result.json) three fields keep
the names the first runs were written with, and the timings later versions added are left out when
unknown, so every run directory stays readable and resumable and is written back alike."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from dlmpo.errors import UserError
from dlmpo.files import atomic_write
from dlmpo.optimizer.selection import Verdict
from dlmpo.optimizer.timing import RoundTiming

CANDIDATE_KEYS = {"screen_score": "minibatch"}  # attribute -> key on disk
ROUND_KEYS = {"incumbent_screen_score": "incumbent_minibatch"}
RESULT_KEYS = {"writer": "dlm"}


def _to_disk(data: dict, keys: dict[str, str]) -> dict:
    return {keys.get(k, k): v for k, v in data.items()}


def _from_disk(data: dict, keys: dict[str, str]) -> dict:
    attribute = {disk: name for name, disk in keys.items()}
    return {attribute.get(k, k): v for k, v in data.items()}


@dataclass
class CandidateRecord:
    """One candidate of a round: how it was written, why it was rejected, how it scored."""
    index: int
    strategy: str
    prompt: str
    masked: str
    nfe: int = 0
    draws: int = 1  # samples the proposer took to get a text unlike the others
    dlm_seconds: float = 0.0
    rejected: str | None = None
    screen_score: float | None = None  # on the round's screening batch
    wins: int = 0  # paired with the incumbent on the screening batch
    losses: int = 0
    val: float | None = None  # scored on val only as the round's challenger
    significance: Verdict | None = None  # the challenger's sign test

    def to_json(self) -> dict:
        return _to_disk({**asdict(self), "significance": self.significance and self.significance.to_json()},
                       CANDIDATE_KEYS)

    @classmethod
    def from_json(cls, data: dict) -> CandidateRecord:
        names = {f.name for f in fields(cls)}
        own = {k: v for k, v in _from_disk(data, CANDIDATE_KEYS).items() if k in names}
        if own.get("significance"):
            own["significance"] = Verdict(**own["significance"])
        return cls(**own)


@dataclass
class RoundRecord:
    round: int
    incumbent_screen_score: float  # the incumbent on the round's screening batch
    candidates: list[CandidateRecord]
    accepted: bool
    best_val: float
    seconds: float  # the round's own steps (timing.wall adds the proposer's loading to the first round)
    timing: RoundTiming | None = None  # None in runs of versions before the timing

    def to_json(self) -> dict:
        data = {**asdict(self), "candidates": [c.to_json() for c in self.candidates]}
        if self.timing is None:
            del data["timing"]
        return _to_disk(data, ROUND_KEYS)

    @classmethod
    def from_json(cls, data: dict) -> RoundRecord:
        timing = data.get("timing")
        return cls(**{**_from_disk(data, ROUND_KEYS),
                      "candidates": [CandidateRecord.from_json(c) for c in data["candidates"]],
                      "timing": timing and RoundTiming.from_json(timing)})


@dataclass
class OptimizeResult:
    run_dir: str
    task: str
    target: str
    writer: str  # who wrote the candidates: the DLM's spec, or "proposer:model" / "peer:model"
    seed_prompt: str
    best_prompt: str
    val: dict[str, float]
    test: dict  # seed, best, their paired wins/losses and p_value, the 95% intervals, rows and why it stopped
    # (held_out.HeldOutScores.to_json; runs of earlier versions hold fewer of these keys)
    rounds: list[RoundRecord]
    stop_reason: str
    calls: int
    usage: dict
    seconds: float
    settings: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    timing: dict[str, float] = field(default_factory=dict)  # seconds outside the rounds: seed, test

    def to_json(self) -> dict:
        data = {**asdict(self), "rounds": [r.to_json() for r in self.rounds]}
        if not self.timing:
            del data["timing"]
        return _to_disk(data, RESULT_KEYS)

    def unreadable(self) -> tuple[int, int]:
        """Candidates the readability gate rejected, of all the proposers wrote."""
        candidates = [c for r in self.rounds for c in r.candidates]
        return sum(bool(c.rejected and c.rejected.startswith("unreadable")) for c in candidates), len(candidates)

    def save(self, path: str | Path) -> None:
        atomic_write(path, json.dumps(self.to_json(), indent=2, ensure_ascii=False))

    @classmethod
    def from_json(cls, data: dict) -> OptimizeResult:
        data = _from_disk(data, RESULT_KEYS)
        data["rounds"] = [RoundRecord.from_json(r) for r in data["rounds"]]
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> OptimizeResult:
        path = Path(path)
        if path.is_dir():
            path = path / "result.json"
        if not path.is_file():
            raise UserError(f"{path.parent} holds no finished run (no result.json).")
        try:
            return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError, ValueError) as exc:
            raise UserError(f"{path} is not a result of `dlmpo optimize` ({type(exc).__name__}: {exc}): "
                            "re-run the same command to write it again.") from None

    def summary(self) -> dict:
        return {
            "run_dir": self.run_dir, "seed_prompt": self.seed_prompt, "best_prompt": self.best_prompt,
            "val": self.val, "test": self.test, "rounds": len(self.rounds), "calls": self.calls,
            "usage": self.usage, "stop_reason": self.stop_reason, "seconds": round(self.seconds, 2),
            "warnings": self.warnings,
        }
