"""What the integrations share: the DLM writer (the optimizer's own DLM proposer, built from
OptimizeSettings so that its defaults live once) and its readability gate; `EditSearch`, the
propose -> screen -> sign-test turn of the DSPy teleprompter and the MLflow optimizer, under a
call budget; the traces the canvas shows (failures first); any value as canvas text; running a
coroutine from synchronous code, and a dlmpo target as a synchronous chat function
(`chat_function`, on a `LoopThread`); and the one sentence for a missing package."""

from __future__ import annotations

import asyncio
import importlib
import json
import threading
from collections.abc import Mapping
from typing import Any, Callable, Sequence

from dlmpo.dlm import ContextItem
from dlmpo.errors import UserError
from dlmpo.optimizer.proposers import Proposal, prompt_key
from dlmpo.optimizer.selection import judge, paired

EXTRA_HINT = {"dspy": "pip install 'dlmpo[dspy]' (or pip install dspy)",
              "gepa": "pip install 'dlmpo[gepa]' (or pip install gepa)",
              "mlflow": "pip install 'dlmpo[mlflow]' (or pip install mlflow)"}


def require(package: str, what: str) -> Any:
    """Import `package`, or one sentence naming the pip install that provides it."""
    try:
        return importlib.import_module(package)
    except ImportError:
        raise UserError(f"{what} needs the {package} package: {EXTRA_HINT[package]}.") from None


def run_sync(coro):
    """Run a coroutine to its end from synchronous code, also when this thread already runs an
    event loop (a notebook): then on a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target():
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


class LoopThread:
    """An event loop on a daemon thread, for async chat models called from synchronous code: calls
    from any number of threads share it (a local model batches them; one model is never driven by
    two loops at once). Shared, never copied, when a framework deep-copies its holder."""

    def __init__(self, name: str = "dlmpo-chat"):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def run(self, coro):
        """The coroutine's result, run on this loop; callable from any thread but the loop's own."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def __deepcopy__(self, memo):
        return self


def chat_function(target: str = "embedded", *, max_tokens: int = 256, temperature: float = 0.0,
                  **open_kwargs: Any) -> Callable[[Sequence[dict]], str]:
    """A dlmpo target (`lm.spec.open_target`: embedded, hf:, openai:, http://…#model; `open_kwargs`
    such as cache_path, concurrency) as a synchronous, thread-safe function: chat messages in, the
    answer's text out ("" for a call that failed after its retries). It is GEPA's
    `ChatCompletionCallable`, and the model an MLflow `predict_fn` can call from MLflow's worker
    threads. `.chat_model` is the dlmpo ChatModel (`.chat_model.accounting` counts its calls)."""
    from dlmpo.lm import ChatRequest, open_target

    model = open_target(target, **open_kwargs)
    runner = LoopThread()

    def chat(messages: Sequence[dict]) -> str:
        request = ChatRequest([dict(m) for m in messages], temperature=temperature, max_tokens=max_tokens)
        return runner.run(model.chat(request)).text

    chat.chat_model = model
    chat.runner = runner
    return chat


class DLMWriter:
    """The DLM proposer of `dlmpo optimize` (mask strategy + infill conditioned on traces, repeats
    drawn again) and its readability gate, for callers outside the loop. `settings` are any
    OptimizeSettings fields (dlm, adapter, strategy, mask_tokens, steps, temperature, seed, device,
    readability, readability_nll, ...); the rest keep the optimizer's defaults. `labels`, when the
    task has them, let the gate catch answers that contradict each other."""

    def __init__(self, dlm: str = "embedded", *, labels: Sequence[str] = (), **settings: Any):
        from pydantic import ValidationError

        from dlmpo.optimizer.registry import PROPOSERS
        from dlmpo.optimizer.settings import OptimizeSettings

        try:
            self.settings = OptimizeSettings(dlm=dlm, **settings)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise UserError(f"DLM writer setting {'.'.join(map(str, first['loc']))}: {first['msg']}.") from None
        self.proposer = PROPOSERS["dlm"].build(self.settings)
        self.gate = None
        if self.settings.readability:
            from dlmpo.optimizer.readability import ReadabilityGate

            self.gate = ReadabilityGate(list(labels), self.settings.readability_nll)
        self.rounds = 0
        self.rejected: list[tuple[str, str]] = []  # (candidate, reason) the gate turned away

    def propose(self, incumbent: str, context: list[ContextItem], k: int, *,
                avoid: frozenset[str] = frozenset()) -> list[Proposal]:
        """`k` proposals from the incumbent and the traces; a proposal the readability gate rejects
        keeps its text and carries the reason in `failure`."""
        round_index = self.rounds
        self.rounds += 1
        proposals = run_sync(self.proposer.propose(incumbent, context, k, round_index, avoid=avoid))
        known = " ".join(f"{c.query} {c.output}" for c in context)
        for p in proposals:
            if p.failure is None and self.gate is not None:
                reason = self.gate.reject_reason(p.prompt, incumbent, known)
                if reason is not None:
                    p.failure = reason
                    self.rejected.append((p.prompt, reason))
        return proposals

    def best_edit(self, incumbent: str, context: list[ContextItem], k: int = 1) -> str:
        """The first proposal that passes the gate and differs from the incumbent; the incumbent
        itself when none does."""
        for p in self.propose(incumbent, context, k):
            if p.failure is None and prompt_key(p.prompt) != prompt_key(incumbent):
                return p.prompt
        return incumbent


def as_text(value: Any) -> str:
    """A value as canvas text: strings as they are, mappings as `key: value` lines, the rest as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return "\n".join(f"{k}: {as_text(v)}" for k, v in value.items())
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def failures_first(items: list[ContextItem], limit: int) -> list[ContextItem]:
    """The traces the canvas shows: lowest scores first (unscored ones after), at most `limit`."""
    ranked = sorted(items, key=lambda c: (c.score is None, c.score if c.score is not None else 0.0))
    return ranked[:limit]


def mean(scores: list[float]) -> float:
    return sum(scores) / len(scores)


class BudgetSpent(Exception):
    """The next batch would cross the caller's call budget: the search stops cleanly."""


class EditSearch:
    """One component's turn of a round, as the DSPy teleprompter and the MLflow optimizer take it:
    the DLM writes `candidates` edits of the incumbent from the traces (earlier challengers of the
    same component are drawn again), each is screened on the incumbent's own batch (paired wins -
    losses >= `min_gain`), and the best must pass the sign test on val (`significance`) to replace
    the incumbent. `max_calls` bounds the scored examples, charged before every batch. Every
    candidate and decision is a record in `history` (and handed to `on_record`); `who` and `what`
    name the component and its text in them (predictor/instructions, prompt/template)."""

    def __init__(self, writer: DLMWriter, *, candidates: int, min_gain: int, significance: float,
                 max_calls: int | None, who: str, what: str,
                 on_record: Callable[[dict], None] | None = None):
        self.writer, self.candidates, self.min_gain, self.significance = writer, candidates, min_gain, significance
        self.max_calls, self.who, self.what = max_calls, who, what
        self.on_record = on_record
        self.calls = 0
        self.history: list[dict] = []

    def log(self, record: dict) -> None:
        self.history.append(record)
        if self.on_record is not None:
            self.on_record(record)

    def charge(self, n: int) -> None:
        """Count `n` scored examples, or BudgetSpent (nothing counted) when they do not fit."""
        if self.max_calls is not None and self.calls + n > self.max_calls:
            raise BudgetSpent
        self.calls += n

    def turn(self, round_index: int, name: str, incumbent: str, context: list[ContextItem], *,
             incumbent_screen: list[float], incumbent_val: list[float],
             screen: Callable[[str], list[float]], validate: Callable[[str], list[float]],
             reject: Callable[[str], str | None] = lambda text: None) -> tuple[str | None, list[float]]:
        """(the accepted edit or None, the val scores of the incumbent after the turn). `screen`
        and `validate` score a text on the screening batch and on val (charging the budget);
        `reject` is the caller's own check of an edit (a reason, or None)."""
        judged = {prompt_key(r[self.what]) for r in self.history if r.get(self.who) == name and self.what in r}
        best: tuple[int, str] | None = None
        for p in self.writer.propose(incumbent, context, self.candidates, avoid=frozenset(judged)):
            record = {"type": "candidate", "round": round_index, self.who: name, self.what: p.prompt,
                      "traces": len(context)}
            reason = p.failure or reject(p.prompt)
            if reason is None and prompt_key(p.prompt) == prompt_key(incumbent):
                reason = "repeats the incumbent"
            if reason is not None:
                self.log({**record, "rejected": reason})
                continue
            wins, losses = paired(screen(p.prompt), incumbent_screen)
            self.log({**record, "screen": {"wins": wins, "losses": losses}})
            if wins - losses >= self.min_gain and (best is None or wins - losses > best[0]):
                best = (wins - losses, p.prompt)
        decision = {"type": "decision", "round": round_index, self.who: name}
        if best is None:
            self.log({**decision, "accepted": False, "reason": "no candidate ahead on the screening batch"})
            return None, incumbent_val
        text = best[1]
        val = validate(text)
        verdict = judge(val, incumbent_val, self.significance)
        self.log({**decision, "accepted": verdict.significant, self.what: text, "val": mean(val),
                  "verdict": verdict.to_json(), "describe": verdict.describe(mean(val), mean(incumbent_val))})
        return (text, val) if verdict.significant else (None, incumbent_val)
