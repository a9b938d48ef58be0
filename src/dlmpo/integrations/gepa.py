"""A GEPA proposer written by a DLM: `gepa.optimize(..., custom_candidate_proposer=dlm_proposer())`.

GEPA keeps its own search (Pareto candidate selection, minibatch acceptance, merges, budget); at
each reflective step it hands the proposer the candidate, its reflective dataset (per component:
rows of inputs, generated outputs and feedback, as `GEPAAdapter.make_reflective_dataset` returns
them) and the components to update. The proposer turns the rows into the DLM canvas's traces
(`ContextItem`s: query, output, score, feedback) and lets the DLM proposer of `dlmpo optimize` edit
each component (mask strategy + infill, repeats drawn again, readability gate). A component whose
edits all fail the gate is returned unchanged, and GEPA's minibatch check then rejects it."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Callable

from dlmpo.dlm import ContextItem
from dlmpo.integrations.common import DLMWriter, as_text, failures_first, require

INPUT_KEYS = ("Inputs", "inputs", "input", "query", "user")
OUTPUT_KEYS = ("Generated Outputs", "generated_outputs", "outputs", "output", "assistant")
FEEDBACK_KEYS = ("Feedback", "feedback")
SCORE_KEYS = ("Score", "score")
SCORE_IN_FEEDBACK = re.compile(r"^\s*score:?\s*(-?\d+(?:\.\d+)?)\.?\s*", re.I)


def _first(row: Mapping[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        if key in row:
            return row[key]
    return None


def context_items(rows: Sequence[Mapping[str, Any]]) -> list[ContextItem]:
    """GEPA's reflective rows as DLM traces. A score comes from a 'Score' field, or from feedback
    that starts with 'Score <x>.' (the form dlmpo's GEPA adapter and many metrics write); the
    remaining feedback is the note. Rows without inputs or outputs are skipped."""
    items = []
    for row in rows:
        query, output = _first(row, INPUT_KEYS), _first(row, OUTPUT_KEYS)
        if query is None or output is None:
            continue
        feedback = _first(row, FEEDBACK_KEYS)
        feedback = None if feedback is None else as_text(feedback)
        score = _first(row, SCORE_KEYS)
        if score is None and feedback:
            m = SCORE_IN_FEEDBACK.match(feedback)
            if m:
                score, feedback = float(m.group(1)), feedback[m.end():] or None
        try:
            score = None if score is None else float(score)
        except (TypeError, ValueError):
            score = None
        items.append(ContextItem(as_text(query), as_text(output), score, feedback))
    return items


def dlm_proposer(dlm: str = "embedded", *, candidates: int = 1, context_traces: int = 6,
                 writer: DLMWriter | None = None, **settings: Any) -> Callable[..., dict[str, str]]:
    """A `gepa.core.adapter.ProposalFn`: (candidate, reflective_dataset, components_to_update) ->
    {component: new text}. `dlm` is any dlmpo DLM specifier; `settings` are OptimizeSettings fields
    of the DLM proposer (strategy, mask_tokens, steps, temperature, seed, device, adapter,
    readability, ...). `candidates` edits are drawn per component and the first that passes the
    readability gate is returned. The function keeps `.writer` (the DLMWriter) and `.log` (one
    record per component edited)."""
    require("gepa", "dlmpo's GEPA proposer")
    writer = writer or DLMWriter(dlm, **settings)
    log: list[dict] = []

    def propose(candidate: dict[str, str], reflective_dataset: Mapping[str, Sequence[Mapping[str, Any]]],
                components_to_update: list[str]) -> dict[str, str]:
        new = {}
        for name in components_to_update:
            context = failures_first(context_items(reflective_dataset.get(name, [])), context_traces)
            new[name] = writer.best_edit(candidate[name], context, candidates)
            log.append({"component": name, "traces": len(context), "changed": new[name] != candidate[name]})
        return new

    propose.writer = writer
    propose.log = log
    return propose
