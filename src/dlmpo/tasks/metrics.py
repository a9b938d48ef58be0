"""Accuracy and macro-F1 over labels."""

from __future__ import annotations


def accuracy(gold: list[str], predicted: list[str | None]) -> float:
    if not gold:
        return 0.0
    return sum(g == p for g, p in zip(gold, predicted)) / len(gold)


def macro_f1(gold: list[str], predicted: list[str | None], labels: list[str]) -> float:
    """Mean F1 over the label set; an unparsed prediction counts as wrong for every class."""
    if not gold:
        return 0.0
    scores = []
    for label in labels:
        tp = sum(g == label and p == label for g, p in zip(gold, predicted))
        fp = sum(g != label and p == label for g, p in zip(gold, predicted))
        fn = sum(g == label and p != label for g, p in zip(gold, predicted))
        if tp + fp + fn == 0:
            continue
        scores.append(2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores) if scores else 0.0
