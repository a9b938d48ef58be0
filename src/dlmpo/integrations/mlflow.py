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

import json
import random
import re
from typing import Any

from dlmpo.dlm import ContextItem
from dlmpo.errors import UserError
from dlmpo.integrations.common import DLMWriter, require
from dlmpo.optimizer.proposers import prompt_key
from dlmpo.optimizer.selection import judge, paired

VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")


def _mlflow_base():
    require("mlflow", "dlmpo's MLflow prompt optimizer")
    from mlflow.genai.optimize import BasePromptOptimizer

    return BasePromptOptimizer


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "\n".join(f"{k}: {_text(v)}" for k, v in value.items())
    return json.dumps(value, ensure_ascii=False, default=str)


def context_items(records) -> list[ContextItem]:
    """MLflow's EvaluationResultRecords as DLM traces, lowest scores first."""
    items = []
    for r in records:
        feedback = "; ".join(f"{k}: {v}" for k, v in (r.rationales or {}).items() if v) or None
        expected = None if r.expectations in (None, {}, "") else _text(r.expectations)
        if expected and (feedback is None or expected not in feedback):
            feedback = f"{feedback + '; ' if feedback else ''}expected: {expected}"
        items.append(ContextItem(_text(r.inputs), _text(r.outputs), r.score, feedback))
    return sorted(items, key=lambda c: (c.score is None, c.score or 0.0))


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


class _Budget(Exception):
    pass


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
            self.significance, self.screen_size, self.context_traces = significance, screen_size, context_traces
            self.min_gain, self.seed = min_gain, seed
            self.writer = writer or DLMWriter(dlm, seed=seed, **dlm_settings)
            self.calls = 0
            self.history: list[dict] = []

        def _eval(self, eval_fn, prompts, rows):
            if self.max_metric_calls is not None and self.calls + len(rows) > self.max_metric_calls:
                raise _Budget
            self.calls += len(rows)
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
            initial = sum(incumbent_val) / len(incumbent_val)
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
                        log("dlmpo_val_score", sum(incumbent_val) / len(incumbent_val), step)
                        log("dlmpo_accepted", float(accepted), step)
            except _Budget:
                stop = "max_metric_calls"
            final = sum(incumbent_val) / len(incumbent_val)
            self.history.append({"type": "run_end", "stop_reason": stop, "metric_calls": self.calls,
                                 "initial_val": initial, "final_val": final})
            return PromptOptimizerOutput(optimized_prompts=prompts, initial_eval_score=initial, final_eval_score=final)

        def _step(self, eval_fn, prompts, name, batch, val, incumbent_val, round_index):
            incumbent = prompts[name]
            traced = self._eval(eval_fn, prompts, batch)
            base = _scores(traced)
            context = context_items(traced)[:self.context_traces]
            judged = {prompt_key(h["template"]) for h in self.history if h.get("prompt") == name and "template" in h}
            best = None
            for p in self.writer.propose(incumbent, context, self.candidates, avoid=frozenset(judged)):
                record = {"type": "candidate", "round": round_index, "prompt": name, "template": p.prompt}
                lost = missing_variables(p.prompt, incumbent)
                reason = p.failure or ("drops the variables " + ", ".join(sorted(lost)) if lost else None)
                if reason is None and prompt_key(p.prompt) == prompt_key(incumbent):
                    reason = "repeats the incumbent"
                if reason is not None:
                    self.history.append({**record, "rejected": reason})
                    continue
                screen = _scores(self._eval(eval_fn, {**prompts, name: p.prompt}, batch))
                wins, losses = paired(screen, base)
                self.history.append({**record, "screen": {"wins": wins, "losses": losses}})
                if wins - losses >= self.min_gain and (best is None or wins - losses > best[0]):
                    best = (wins - losses, p.prompt)
            if best is None:
                self.history.append({"type": "decision", "round": round_index, "prompt": name, "accepted": False,
                                     "reason": "no candidate ahead on the screening rows"})
                return False, incumbent_val
            scores = _scores(self._eval(eval_fn, {**prompts, name: best[1]}, val))
            verdict = judge(scores, incumbent_val, self.significance)
            self.history.append({"type": "decision", "round": round_index, "prompt": name, "template": best[1],
                                 "accepted": verdict.significant, "verdict": verdict.to_json()})
            if verdict.significant:
                prompts[name] = best[1]
                return True, scores
            return False, incumbent_val

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
