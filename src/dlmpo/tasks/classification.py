"""A label-classification task: the shape of SST-2, SST-5, MRPC, SNLI and custom label sets."""

from __future__ import annotations

from dataclasses import dataclass, field

from dlmpo.tasks.base import Example, Graded, SplitSet, TemplatedSplits
from dlmpo.tasks.metrics import accuracy, macro_f1
from dlmpo.tasks.parsing import LabelParser


@dataclass
class ClassificationTask(TemplatedSplits):
    name: str
    seed_prompt: str
    labels: list[str]
    template: str
    splits: SplitSet
    synonyms: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._parser = LabelParser.build(self.labels, self.synonyms)

    def parse(self, output: str) -> str | None:
        return self._parser.parse(output)

    def grade(self, example: Example, output: str) -> Graded:
        prediction = self.parse(output)
        if prediction == example.label:
            return Graded(prediction, 1.0, f"Correct: the answer is '{example.label}'.")
        if prediction is None:
            shown = " ".join(output.split())[:80] or "(empty)"
            feedback = (  # a format failure: what to fix is the form of the answer, not the choice
                f"Format error: the answer named no single label, but it must be exactly one of "
                f"{', '.join(self.labels)} (expected '{example.label}'; got \"{shown}\")."
            )
        else:
            feedback = f"Expected '{example.label}' but the answer was '{prediction}'."
        return Graded(prediction, 0.0, feedback)

    def metrics(self, examples: list[Example], predictions: list[str | None]) -> dict[str, float]:
        gold = [ex.label for ex in examples]
        return {
            "accuracy": accuracy(gold, predictions),
            "macro_f1": macro_f1(gold, predictions, self.labels),
        }
