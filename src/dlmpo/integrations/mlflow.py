"""dlmpo as an MLflow prompt optimizer: `mlflow.genai.optimize_prompts(..., optimizer=DLMPromptOptimizer())`.

Registered prompts go in (`prompt_uris`), MLflow runs the caller's `predict_fn` with candidate
templates patched in and scores it with the caller's scorers (`eval_fn`), and the optimized
templates come back as new versions in the Prompt Registry. Each round, for each prompt in turn,
the optimizer scores the incumbent on a screening batch, turns those records into DLM traces
(inputs, outputs, the aggregated score, the scorers' rationales as feedback) and lets the DLM
proposer of `dlmpo optimize` write `candidates` edits (mask strategy, infill, readability gate).
An edit that drops one of the template's `{{variables}}` is rejected. The best edit ahead on the
screening batch must pass dlmpo's sign test (`optimizer.selection.judge`) on the val rows before
it replaces the incumbent. `train_data` is split in two: val rows (half, at least 1) and
screening rows (the rest; all rows when fewer than 2).

Not supported: zero-shot mode (no train_data or no scorers: there is nothing to score edits
with), chat-format prompts are edited as their JSON text (an edit that breaks the JSON is scored 0
by MLflow), prompts are optimized one at a time (no coupled edits)."""

from __future__ import annotations

import random
import re
from typing import Any

from dlmpo.dlm import ContextItem
from dlmpo.errors import UserError
from dlmpo.integrations.common import BudgetSpent, DLMWriter, EditSearch, as_text, failures_first, mean, require

VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")


def _mlflow_base():
    require("mlflow", "dlmpo's MLflow prompt optimizer")
    from mlflow.genai.optimize import BasePromptOptimizer

    return BasePromptOptimizer


def context_items(records) -> list[ContextItem]:
    """MLflow's EvaluationResultRecords as DLM traces."""
    items = []
    for r in records:
        feedback = "; ".join(f"{k}: {v}" for k, v in (r.rationales or {}).items() if v) or None
        expected = None if r.expectations in (None, {}, "") else as_text(r.expectations)
        if expected and (feedback is None or expected not in feedback):
            feedback = f"{feedback + '; ' if feedback else ''}expected: {expected}"
        items.append(ContextItem(as_text(r.inputs), as_text(r.outputs), r.score, feedback))
    return items


def _scores(records) -> list[float]:
    return [float(r.score) if r.score is not None else 0.0 for r in records]


def missing_variables(candidate: str, template: str) -> set[str]:
    return set(VARIABLE.findall(template)) - set(VARIABLE.findall(candidate))


def DLMPromptOptimizer(dlm: str = "embedded", *, rounds: int = 2, candidates: int = 2,
                       max_metric_calls: int | None = None, **kwargs: Any):
    """An `mlflow.genai.optimize.BasePromptOptimizer` whose edits a DLM writes (see the module's
    docstring). Other keywords: `significance` (0.05; 1 turns the sign test off), `screen_size`
    (8: screening rows per step), `context_traces` (6), `min_gain` (1), `seed` (0), `writer` (a ready
    DLMWriter), and any OptimizeSettings field of the DLM proposer (strategy, mask_tokens, steps,
    temperature, device, adapter, readability, ...). `max_metric_calls` bounds the rows scored
    (each is one predict_fn call and one scoring), checked before every batch."""
    return _optimizer_class()(dlm, rounds=rounds, candidates=candidates, max_metric_calls=max_metric_calls, **kwargs)


_CLASS = None


def _optimizer_class():
    global _CLASS
    if _CLASS is not None:
        return _CLASS

    class DLMPromptOptimizerImpl(_mlflow_base()):
        def __init__(self, dlm="embedded", *, rounds=2, candidates=2, max_metric_calls=None, significance=0.05,
                     screen_size=8, context_traces=6, min_gain=1, seed=0, writer=None, **dlm_settings):
            if rounds < 1 or candidates < 1 or screen_size < 1 or (max_metric_calls is not None and max_metric_calls < 1):
                raise UserError("DLMPromptOptimizer needs rounds, candidates, screen_size and max_metric_calls of at least 1.")
            self.dlm, self.rounds, self.candidates, self.max_metric_calls = dlm, rounds, candidates, max_metric_calls
            self.screen_size, self.context_traces, self.seed = screen_size, context_traces, seed
            self.writer = writer or DLMWriter(dlm, seed=seed, **dlm_settings)
            self.search = EditSearch(self.writer, candidates=candidates, min_gain=min_gain, significance=significance,
                                     max_calls=max_metric_calls, who="prompt", what="template")

        calls = property(lambda self: self.search.calls)  # rows scored so far
        history = property(lambda self: self.search.history)  # one record per candidate judged, and the decisions

        def _eval(self, eval_fn, prompts, rows):
            self.search.charge(len(rows))
            return eval_fn(dict(prompts), rows)

        def optimize(self, eval_fn, train_data, target_prompts, enable_tracking=True):
            from mlflow.genai.optimize import PromptOptimizerOutput

            if eval_fn is None or not train_data:
                raise UserError("DLMPromptOptimizer needs train_data and scorers: it scores every edit.")
            rows = list(train_data)
            random.Random(self.seed).shuffle(rows)
            n_val = max(1, len(rows) // 2)
            val, screen_pool = rows[:n_val], rows[n_val:] or rows
            prompts = dict(target_prompts)
            log = _tracker(enable_tracking)
            incumbent_val = _scores(self._eval(eval_fn, prompts, val))
            initial = mean(incumbent_val)
            log("dlmpo_val_score", initial, 0)
            step, start, stop = 0, 0, "rounds"
            try:
                for round_index in range(self.rounds):
                    for name in list(prompts):
                        batch = [screen_pool[(start + i) % len(screen_pool)]
                                 for i in range(min(self.screen_size, len(screen_pool)))]
                        start += len(batch)
                        accepted, incumbent_val = self._step(eval_fn, prompts, name, batch, val, incumbent_val,
                                                             round_index)
                        step += 1
                        log("dlmpo_val_score", mean(incumbent_val), step)
                        log("dlmpo_accepted", float(accepted), step)
            except BudgetSpent:
                stop = "max_metric_calls"
            final = mean(incumbent_val)
            self.search.log({"type": "run_end", "stop_reason": stop, "metric_calls": self.calls,
                             "initial_val": initial, "final_val": final})
            return PromptOptimizerOutput(optimized_prompts=prompts, initial_eval_score=initial, final_eval_score=final)

        def _step(self, eval_fn, prompts, name, batch, val, incumbent_val, round_index):
            incumbent = prompts[name]
            traced = self._eval(eval_fn, prompts, batch)

            def scores(template, rows):
                return _scores(self._eval(eval_fn, {**prompts, name: template}, rows))

            def drops_variables(template):
                lost = missing_variables(template, incumbent)
                return "drops the variables " + ", ".join(sorted(lost)) if lost else None

            accepted, incumbent_val = self.search.turn(
                round_index, name, incumbent, failures_first(context_items(traced), self.context_traces),
                incumbent_screen=_scores(traced), incumbent_val=incumbent_val,
                screen=lambda template: scores(template, batch), validate=lambda template: scores(template, val),
                reject=drops_variables)
            if accepted is not None:
                prompts[name] = accepted
            return accepted is not None, incumbent_val

    DLMPromptOptimizerImpl.__name__ = DLMPromptOptimizerImpl.__qualname__ = "DLMPromptOptimizer"
    _CLASS = DLMPromptOptimizerImpl
    return _CLASS


def _tracker(enabled: bool):
    """log(key, value, step) into the active MLflow run when tracking is on and a run is active."""
    import mlflow

    def log(key: str, value: float, step: int) -> None:
        if enabled and mlflow.active_run() is not None:
            mlflow.log_metric(key, value, step=step)

    return log
