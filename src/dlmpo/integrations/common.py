"""What the integrations share: the DLM writer (the optimizer's own DLM proposer, built from
OptimizeSettings so that its defaults live once), the readability gate, running a coroutine from
synchronous code, and the one sentence for a missing package."""

from __future__ import annotations

import asyncio
import importlib
import threading
from typing import Any, Sequence

from dlmpo.dlm import ContextItem
from dlmpo.errors import UserError
from dlmpo.optimizer.proposers import Proposal, prompt_key

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
