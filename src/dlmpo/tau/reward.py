"""The τ-bench reward: the final database must equal the database after the task's gold actions,
and every required output must appear in some agent reply (lower-cased, commas removed).

Upstream compares sha256(str(to_hashable(db))); Environment.hash() is equal exactly when that is
(tests/tau/test_environment.py checks both against each other)."""

from __future__ import annotations

from dataclasses import dataclass, field

from dlmpo.tau.domain import Domain, TauTask
from dlmpo.tau.environment import Environment


@dataclass
class Reward:
    reward: float
    database_ok: bool
    outputs_ok: bool
    missing_outputs: list[str] = field(default_factory=list)
    truncated: bool = False

    def to_json(self) -> dict:
        return {"reward": self.reward, "database_ok": self.database_ok, "outputs_ok": self.outputs_ok,
                "missing_outputs": self.missing_outputs, "truncated": self.truncated}


class GoldHashes:
    """The hash after replaying each task's gold actions on a fresh database, computed once per task."""

    def __init__(self, domain: Domain):
        self.domain = domain
        self._hashes: dict[str, str] = {}

    def __call__(self, task: TauTask) -> str:
        if task.id not in self._hashes:
            env = Environment(self.domain)
            for action in task.actions:
                env.execute(action.name, action.kwargs)
            self._hashes[task.id] = env.hash()
        return self._hashes[task.id]


def missing_outputs(task: TauTask, replies: list[str]) -> list[str]:
    said = [r.lower().replace(",", "") for r in replies]
    return [o for o in task.outputs if not any(o.lower() in s for s in said)]


def score(task: TauTask, final_hash: str, gold_hash: str, replies: list[str], *, truncated: bool = False,
          broken: bool = False) -> Reward:
    """`truncated`: cut off by the step limit; `broken`: ended by a failed call. Both score 0."""
    database_ok = final_hash == gold_hash
    missing = missing_outputs(task, replies)
    ok = database_ok and not missing and not truncated and not broken
    return Reward(1.0 if ok else 0.0, database_ok, not missing, missing, truncated)
