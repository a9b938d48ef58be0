"""dlmpo inside DSPy: a teleprompter whose edits a DLM writes, and a dspy LM over dlmpo's chat models.

    import dspy
    from dlmpo.integrations.dspy import DLMPO, ChatLM, lenient_adapter

    dspy.configure(lm=ChatLM("embedded"), adapter=lenient_adapter())   # or any dspy.LM
    optimized = DLMPO(metric, dlm="embedded", rounds=2, candidates=2, max_calls=200).compile(
        program, trainset=train, valset=val)

`DLMPO.compile` optimizes the instructions of every predictor in turn, each round: it runs the
program on a train batch with DSPy's trace on, turns that predictor's own calls into DLM traces
(its inputs, its outputs, the metric's score and — when the metric returns
`dspy.Prediction(score=..., feedback=...)`, as GEPA's metrics do — the feedback, asked for that
predictor by name when the metric takes GEPA's `pred_name`/`pred_trace`), and lets the DLM
proposer of `dlmpo optimize` (mask strategy, infill, readability gate) write `candidates` new
instructions. Candidates are screened on the same train batch against the incumbent (paired
wins minus losses ≥ `min_gain`), and the best one must pass dlmpo's sign test
(`optimizer.selection.judge`) on val before it replaces the incumbent. `max_calls` bounds program
runs (each is one metric call) and is checked before every batch; `run_dir` receives
events.jsonl and best_prompt.txt (the instructions of every predictor, as JSON).

Not supported: few-shot demos (instructions only), parallel program runs (examples run one after
another), resuming an interrupted compile from its run directory."""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from dlmpo.dlm import ContextItem
from dlmpo.errors import UserError
from dlmpo.integrations.common import BudgetSpent, DLMWriter, EditSearch, LoopThread, as_text, failures_first, mean, require


def _dspy():
    import os

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # else litellm fetches a price map on import
    return require("dspy", "dlmpo's DSPy integration")


# ---------------------------------------------------------------- a dspy LM over dlmpo's chat models


def ChatLM(target: str = "embedded", *, temperature: float = 0.0, max_tokens: int = 256,
           cache_path: str | Path | None = None, use_cache: bool = True, concurrency: int | None = None,
           distinct_samples: bool = False, **open_kwargs: Any):
    """A `dspy.LM` (a `dspy.BaseLM`) whose calls go to a dlmpo chat model (`lm.spec.open_target`:
    embedded, hf:, openai:, http://…#model), with dlmpo's call cache, retries and accounting; the
    adapter is `dspy_engine.ChatModelEngine` (the MIPROv2 peer's too). `.chat_model` is the dlmpo ChatModel
    (`.chat_model.accounting` counts its calls). `distinct_samples`: each call its own sample (and
    cache entry), for a model that writes rather than answers."""
    dspy = _dspy()
    from dlmpo.integrations.dspy_engine import CallGuard, ChatModelEngine
    from dlmpo.lm.spec import open_target

    model = open_target(target, cache_path=cache_path, use_cache=use_cache, concurrency=concurrency, **open_kwargs)
    runner = LoopThread("dlmpo-chat-lm")

    class Engine(ChatModelEngine):
        def __deepcopy__(self, memo):  # one model, one loop, however often DSPy copies the LM
            return self

    engine = Engine(CallGuard(), model, runner.loop, temperature=temperature, max_tokens=max_tokens,
                    distinct_samples=distinct_samples)
    engine.runner = runner
    lm = dspy.LM(f"dlmpo/{target}", engine=engine, cache=False, num_retries=0, temperature=temperature,
                 max_tokens=max_tokens)
    lm.chat_model = model
    return lm


def lenient_adapter():
    """dspy's ChatAdapter that reads a single-output answer without DSPy's field markers as that
    field (small models such as the embedded target drop them)."""
    _dspy()
    from dlmpo.integrations.dspy_engine import lenient_chat_adapter_class

    return lenient_chat_adapter_class()()


# ---------------------------------------------------------------- metric results


@dataclass
class Outcome:
    """One program run on one example."""

    score: float
    feedback: str | None
    trace: list = field(default_factory=list)  # DSPy's (predictor, inputs, outputs) entries
    error: str | None = None


def _takes_predictor(metric: Callable) -> bool:
    try:
        params = inspect.signature(metric).parameters
    except (TypeError, ValueError):
        return False
    return "pred_name" in params or len(params) >= 5 or any(p.kind is p.VAR_POSITIONAL for p in params.values())


def read_metric(result: Any) -> tuple[float, str | None]:
    """(score, feedback) of what a metric returned: a number or bool, or an object with `score`
    (and `feedback`), such as `dspy.Prediction(score=..., feedback=...)` or a dict."""
    if isinstance(result, dict):
        score, feedback = result.get("score"), result.get("feedback")
    elif hasattr(result, "score"):
        score, feedback = result.score, getattr(result, "feedback", None)
    else:
        score, feedback = result, None
    try:
        return float(score), (None if feedback is None else str(feedback))
    except (TypeError, ValueError):
        raise UserError(f"The metric returned {result!r}: return a number, a bool, or "
                        "dspy.Prediction(score=..., feedback=...).") from None


# ---------------------------------------------------------------- the teleprompter


def _teleprompter_base():
    return _dspy().teleprompt.Teleprompter


def DLMPO(metric: Callable, dlm: str = "embedded", *, rounds: int = 2, candidates: int = 2,
          max_calls: int | None = None, **kwargs: Any):
    """The DSPy teleprompter (see the module's docstring). Other keywords: `significance` (0.05;
    1 turns the sign test off), `batch_size` (8: train examples run per predictor per round),
    `context_traces` (6), `min_gain` (1), `task_lm` (a dspy.LM the program runs with; default the
    configured one), `run_dir`, `writer` (a ready `DLMWriter`), and any OptimizeSettings field of
    the DLM proposer (strategy, mask_tokens, steps, temperature, seed, device, adapter,
    readability, ...)."""
    cls = _dlmpo_class()
    return cls(metric, dlm, rounds=rounds, candidates=candidates, max_calls=max_calls, **kwargs)


_CLASS = None


def _dlmpo_class():
    global _CLASS
    if _CLASS is not None:
        return _CLASS
    dspy = _dspy()

    class DLMPOTeleprompter(_teleprompter_base()):
        def __init__(self, metric, dlm="embedded", *, rounds=2, candidates=2, max_calls=None, significance=0.05,
                     batch_size=8, context_traces=6, min_gain=1, task_lm=None, run_dir=None, writer=None,
                     **dlm_settings):
            super().__init__()
            if rounds < 1 or candidates < 1 or batch_size < 1 or (max_calls is not None and max_calls < 1):
                raise UserError("DLMPO needs rounds, candidates, batch_size and max_calls of at least 1.")
            if not 0 < significance <= 1:
                raise UserError(f"DLMPO's significance must lie in (0, 1], got {significance}.")
            self.metric, self.rounds, self.candidates, self.max_calls = metric, rounds, candidates, max_calls
            self.batch_size, self.context_traces, self.task_lm = batch_size, context_traces, task_lm
            self.run_dir = None
            if run_dir is not None:
                from dlmpo.runs.rundir import RunDir

                self.run_dir = RunDir(run_dir)
            self.writer = writer or DLMWriter(dlm, **dlm_settings)
            self.dlm = dlm
            self.search = EditSearch(self.writer, candidates=candidates, min_gain=min_gain, significance=significance,
                                     max_calls=max_calls, who="predictor", what="instructions",
                                     on_record=None if self.run_dir is None else self.run_dir.append)
            self.per_predictor = _takes_predictor(metric)

        calls = property(lambda self: self.search.calls)  # program runs (metric calls) so far
        history = property(lambda self: self.search.history)  # one record per candidate judged, and the decisions

        # -------------------------------------------------- running the program

        def _run(self, program, example, name=None, predictor=None) -> Outcome:
            context = dict(trace=[])
            if self.task_lm is not None:
                context["lm"] = self.task_lm
            with dspy.context(**context):
                try:
                    prediction = program(**example.inputs())
                except Exception as exc:  # a failed run scores 0, its error is the feedback
                    return Outcome(0.0, f"The program failed: {type(exc).__name__}: {exc}",
                                   list(dspy.settings.trace), error=str(exc))
                trace = list(dspy.settings.trace)
            if predictor is not None and self.per_predictor:
                own = [t for t in trace if t[0] is predictor]
                result = self.metric(example, prediction, trace, name, own)
            else:
                result = self.metric(example, prediction, trace)
            score, feedback = read_metric(result)
            return Outcome(score, feedback, trace)

        def _evaluate(self, program, examples, name=None, predictor=None) -> list[Outcome]:
            self.search.charge(len(examples))
            return [self._run(program, ex, name, predictor) for ex in examples]

        def _context(self, outcomes: list[Outcome], predictor) -> list[ContextItem]:
            items = []
            for o in outcomes:
                for pred, inputs, outputs in o.trace:
                    if pred is predictor:
                        out = outputs.toDict() if hasattr(outputs, "toDict") else dict(outputs)
                        items.append(ContextItem(as_text(dict(inputs)), as_text(out), o.score, o.feedback))
                if o.error is not None and not any(t[0] is predictor for t in o.trace):
                    items.append(ContextItem("(the program failed before this step)", "", o.score, o.feedback))
            return failures_first(items, self.context_traces)

        # -------------------------------------------------- compile

        def compile(self, student, *, trainset, teacher=None, valset=None, **kwargs):
            if not trainset:
                raise UserError("DLMPO.compile needs a non-empty trainset.")
            valset = list(valset or trainset)
            trainset = list(trainset)
            program = student.deepcopy()
            names = [name for name, _ in program.named_predictors()]
            if not names:
                raise UserError("DLMPO.compile: the program has no predictors to optimize.")
            self.search.log({"type": "run_start", "optimizer": "dlmpo-dspy", "dlm": self.dlm, "predictors": names,
                       "train": len(trainset), "val": len(valset), "rounds": self.rounds,
                       "candidates": self.candidates, "max_calls": self.max_calls})
            stop = "rounds"
            try:
                incumbent_val = [o.score for o in self._evaluate(program, valset)]
                self.search.log({"type": "seed", "val": mean(incumbent_val)})
                start = 0
                for round_index in range(self.rounds):
                    for name in names:
                        batch = [trainset[(start + i) % len(trainset)] for i in range(min(self.batch_size, len(trainset)))]
                        start += len(batch)
                        program, incumbent_val = self._step(program, name, batch, valset, incumbent_val, round_index)
            except BudgetSpent:
                stop = "max_calls"
            best = {name: p.signature.instructions for name, p in program.named_predictors()}
            if self.run_dir is not None:
                self.run_dir.write_best(json.dumps(best, indent=2, ensure_ascii=False))
            self.search.log({"type": "run_end", "stop_reason": stop, "calls": self.calls, "instructions": best})
            program.dlmpo_history = self.history
            return program

        def _step(self, program, name, batch, valset, incumbent_val, round_index):
            predictor = dict(program.named_predictors())[name]
            traced = self._evaluate(program, batch, name, predictor)

            def scores(text, examples, *named):
                return [o.score for o in self._evaluate(self._with_instructions(program, name, text), examples, *named)]

            accepted, incumbent_val = self.search.turn(
                round_index, name, predictor.signature.instructions, self._context(traced, predictor),
                incumbent_screen=[o.score for o in traced], incumbent_val=incumbent_val,
                screen=lambda text: scores(text, batch, name), validate=lambda text: scores(text, valset))
            return (program if accepted is None else self._with_instructions(program, name, accepted)), incumbent_val

        @staticmethod
        def _with_instructions(program, name, text):
            copy = program.deepcopy()
            predictor = dict(copy.named_predictors())[name]
            predictor.signature = predictor.signature.with_instructions(text)
            return copy

    DLMPOTeleprompter.__name__ = DLMPOTeleprompter.__qualname__ = "DLMPO"
    _CLASS = DLMPOTeleprompter
    return _CLASS
