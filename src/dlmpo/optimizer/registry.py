"""Name -> builder registries of the loop's parts: proposers and feedback sources (GEPA-style).

A new proposer is one new file with a `build(settings, writer) -> Proposer` function and one line
in PROPOSERS; the `proposer` setting, `dlmpo optimize --proposer`, the cost estimate and
`dlmpo compare --optimizers` all read this table (docs/extending.md has a worked example).
Entries name their builder as "module:function" so that nothing is imported until it is used."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


def load(path: str) -> Any:
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class ProposerEntry:
    build_path: str  # "module:function": (settings, writer ChatModel | None) -> Proposer
    writer: bool = False  # needs the optimizer chat model (`optimizer_model`)
    writer_calls: tuple[int, int] = (0, 0)  # writer calls per round: a x candidates + b (for the estimate)

    def build(self, settings, writer=None):
        return load(self.build_path)(settings, writer)


@dataclass(frozen=True)
class FeedbackEntry:
    build_path: str  # "module:function": (settings, judge ChatModel | None, task) -> FeedbackSource
    judge: bool = False  # needs the judge chat model

    def build(self, settings, judge=None, task=None):
        return load(self.build_path)(settings, judge, task)


PROPOSERS: dict[str, ProposerEntry] = {
    "dlm": ProposerEntry("dlmpo.optimizer.proposers:build"),
    "ar": ProposerEntry("dlmpo.optimizer.ar_proposer:build", writer=True, writer_calls=(1, 0)),
    "textgrad": ProposerEntry("dlmpo.optimizer.textgrad_proposer:build", writer=True, writer_calls=(1, 1)),
}

FEEDBACK: dict[str, FeedbackEntry] = {
    "metric": FeedbackEntry("dlmpo.optimizer.feedback:metric"),
    "judge": FeedbackEntry("dlmpo.optimizer.feedback:judge", judge=True),
    "human": FeedbackEntry("dlmpo.optimizer.feedback:human"),
    "none": FeedbackEntry("dlmpo.optimizer.feedback:none"),
}
