"""The examples of one run, drawn once from the task and the run's seed, and never changed."""

from __future__ import annotations

import random
from dataclasses import dataclass

from dlmpo.errors import UserError
from dlmpo.optimizer.settings import OptimizeSettings
from dlmpo.tasks import Example, Task
from dlmpo.tasks.base import stable_fraction


@dataclass(frozen=True)
class Pools:
    train: tuple[Example, ...]  # where traces come from
    val: tuple[Example, ...]  # the sign test's examples
    confirm: tuple[Example, ...]  # the second look's own val examples (empty: one look)
    spare_val: tuple[Example, ...]  # the rest of the val split, where candidates are screened
    test: tuple[Example, ...]  # held out: the seed and the best prompt only

    @classmethod
    def draw(cls, task: Task, settings: OptimizeSettings) -> Pools:
        rng = random.Random(f"{settings.seed}:pools")
        train, val = task.examples("train"), task.examples("val")
        train_pool = rng.sample(train, min(settings.train_size, len(train)))
        val_pool = rng.sample(val, min(settings.val_size, len(val)))
        in_pool = {ex.id for ex in val_pool}
        spare = [ex for ex in val if ex.id not in in_pool]
        # a second look needs examples of its own, and screening still needs a batch's worth
        room = settings.confirm_size > 0 and len(spare) >= settings.confirm_size + settings.screen_batch
        confirm = spare[: settings.confirm_size] if room else []
        test = sorted(task.examples("test"), key=lambda ex: stable_fraction(ex.id))[: settings.test_size]
        if not train_pool or not val_pool or not test:
            raise UserError(f"Task '{task.name}' needs train, val and test examples.")
        return cls(tuple(train_pool), tuple(val_pool), tuple(confirm), tuple(spare[len(confirm):]), tuple(test))
