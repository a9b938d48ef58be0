"""The Task protocol and deterministic splits."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Protocol, runtime_checkable

if TYPE_CHECKING:
    from dlmpo.lm import ChatModel, ChatRequest
    from dlmpo.tasks.traces import Trace

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Example:
    id: str
    inputs: dict[str, str]
    label: str


@dataclass(frozen=True)
class Graded:
    """One parsed, scored answer."""

    prediction: str | None
    score: float
    feedback: str


@runtime_checkable
class Task(Protocol):
    name: str
    seed_prompt: str
    labels: list[str] | None
    notes: list[str]

    def examples(self, split: str) -> list[Example]: ...

    def user_message(self, example: Example) -> str: ...

    def grade(self, example: Example, output: str) -> Graded: ...

    def metrics(self, examples: list[Example], predictions: list[str | None]) -> dict[str, float]: ...


class EpisodicTask(Task, Protocol):
    """A task whose example is a whole multi-turn episode (τ-bench: agent, simulated user and
    tools) rather than one answer. Such tasks subclass this protocol explicitly."""

    def bind_user_model(self, model: ChatModel | None) -> None:
        """The chat model that plays the user; None for the task's offline stand-in."""

    def budget_requests(self, prompt: str, example: Example, max_tokens: int, *, worst_case: bool = False,
                        agent: ChatModel | None = None) -> list[ChatRequest]:
        """The calls an episode is expected to cost, for budget checks before a batch runs; with
        `worst_case`, the most it can cost, for reserves. With `agent`, nothing for an episode that
        model has already run (its calls are in the cache)."""

    async def run_examples(self, model: ChatModel, prompt: str, examples: list[Example], *, max_tokens: int,
                           on_done: Callable[[Trace], None] | None = None) -> list[Trace]:
        """One episode per example (and trial): its trace and score."""


def is_episodic(task: Task) -> bool:
    return isinstance(task, EpisodicTask)


class TemplatedSplits:
    """What every file-backed task shares: examples from a SplitSet, user messages from a template."""

    splits: SplitSet
    template: str

    @property
    def notes(self) -> list[str]:
        return self.splits.notes

    def examples(self, split: str) -> list[Example]:
        return self.splits.get(split)

    def user_message(self, example: Example) -> str:
        return self.template.format(**example.inputs)


def stable_fraction(key: str, seed: int = 0) -> float:
    """A number in [0, 1) fixed by the key alone: partitions do not depend on file order."""
    digest = hashlib.sha1(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def carve(rows: list[Example], fractions: dict[str, float], seed: int = 0) -> dict[str, list[Example]]:
    """Partition rows into named parts of the given fractions, ordered by a stable hash.

    The last part takes the remainder, so nothing is lost and no row is in two parts."""
    ordered = sorted(rows, key=lambda ex: stable_fraction(ex.id, seed))
    parts: dict[str, list[Example]] = {}
    start = 0
    names = list(fractions)
    for i, name in enumerate(names):
        end = len(ordered) if i == len(names) - 1 else start + round(fractions[name] * len(ordered))
        parts[name] = ordered[start:end]
        start = end
    return parts


@dataclass
class SplitSet:
    """Train / val / test examples with a record of how each split was obtained."""

    train: list[Example]
    val: list[Example]
    test: list[Example]
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_available(
        cls, available: dict[str, list[Example]], source: str, seed: int = 0
    ) -> SplitSet:
        """Fill the missing splits from what exists and say so in `notes`.

        `available` may hold train, dev (or validation) and test. Held-out rules:
        - test present: val = dev, or 10 % carved from train;
        - no test, dev present: dev is cut in two halves, val and test;
        - train only: 10 % val and 10 % test are carved from train."""
        train = available.get("train", [])
        dev = available.get("dev", []) or available.get("val", [])
        test = available.get("test", [])
        notes: list[str] = []
        if test:
            if dev:
                val = dev
            else:
                parts = carve(train, {"val": 0.1, "train": 0.9}, seed)
                val, train = parts["val"], parts["train"]
                notes.append(f"{source}: no dev split; carved val ({len(val)}) from train.")
        elif dev:
            parts = carve(dev, {"val": 0.5, "test": 0.5}, seed)
            val, test = parts["val"], parts["test"]
            notes.append(
                f"{source}: no labelled test split; dev ({len(dev)}) cut into val ({len(val)}) "
                f"and held-out test ({len(test)})."
            )
        else:
            parts = carve(train, {"val": 0.1, "test": 0.1, "train": 0.8}, seed)
            train, val, test = parts["train"], parts["val"], parts["test"]
            notes.append(
                f"{source}: only a train file; carved val ({len(val)}) and held-out test "
                f"({len(test)}), leaving {len(train)} for train."
            )
        if not train:
            parts = carve(val, {"train": 0.5, "val": 0.5}, seed)
            train, val = parts["train"], parts["val"]
            notes.append(f"{source}: no train split; carved train ({len(train)}) from val.")
        return cls(train=train, val=val, test=test, notes=notes)

    def get(self, split: str) -> list[Example]:
        if split not in SPLITS:
            from dlmpo.errors import UserError

            raise UserError(f"Unknown split '{split}': use one of {', '.join(SPLITS)}.")
        return getattr(self, split)
