"""One spending limit for every chat model of a run: target, judge, writer and simulated user.

Every model of a run holds the same `Budget`, and asks it before each attempt that reaches its
backend (`admit`): an attempt that would take spend past a limit, counting the attempts in flight
and the reserve kept for the final test evaluation, raises `BudgetExceeded` instead of being made;
after the attempt the model reports what it cost (`settle`). Spend starts from the run's call
cache, which holds every paid call of earlier processes of this run (failed attempts included: a
provider may bill them), and is then kept in memory, so no check reads the cache again. Callers
also ask before a whole batch (`refusal`), so a run stops between batches rather than in one."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol

from dlmpo.errors import BudgetExceeded
from dlmpo.lm.types import ChatRequest, Usage


class ChatModel(Protocol):
    """What a budget needs of a model (`lm.managed.ChatModel` is one): its name, backend, price,
    run cache and cached answers, and a slot for the budget it asks before each attempt."""

    name: str
    backend: Any
    price: Any
    cache: Any
    budget: Any

    def cached(self, request: ChatRequest) -> Any: ...


@dataclass
class Spend:
    calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float

    def to_json(self) -> dict:
        return {"calls": self.calls, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens, "cost_usd": round(self.cost_usd, 6)}

    def __add__(self, other: Spend) -> Spend:
        return Spend(self.calls + other.calls, self.prompt_tokens + other.prompt_tokens,
                     self.completion_tokens + other.completion_tokens, self.cost_usd + other.cost_usd)

    def __sub__(self, other: Spend) -> Spend:
        return Spend(self.calls - other.calls, self.prompt_tokens - other.prompt_tokens,
                     self.completion_tokens - other.completion_tokens, self.cost_usd - other.cost_usd)


NOTHING = Spend(0, 0, 0, 0.0)


class Budget:
    def __init__(self, models: list[ChatModel], *, max_calls: int | None, max_cost: float | None,
                 max_tokens: int | None):
        self.max_calls, self.max_cost, self.max_tokens = max_calls, max_cost, max_tokens
        self.reserve = NOTHING  # kept for a later evaluation (the best prompt on test)
        self._in_flight = NOTHING
        self._paid = self._paid_before(models)
        self._lock = threading.Lock()  # peers call from their own threads
        for model in models:
            model.budget = self

    @staticmethod
    def _paid_before(models: list[ChatModel]) -> Spend:
        """What earlier processes of this run paid, from the run's call cache."""
        total = NOTHING
        unique = {m.backend.model_id: m for m in models}  # one model in two roles is paid once
        for m in unique.values():
            assert m.cache is not None, "a budgeted model needs its run cache"
            c, p, o = m.cache.totals(m.backend.model_id)
            total = total + Spend(c, p, o, m.price.cost(Usage(p, o)))
        return total

    def spend(self) -> Spend:
        with self._lock:
            return self._paid

    @staticmethod
    def estimate(model: ChatModel, requests: list[ChatRequest]) -> Spend:
        """Upper-bound spend of the uncached requests (answers assumed to use max_tokens)."""
        return Budget._upper_bound(model, [r for r in requests if model.cached(r) is None])

    @staticmethod
    def _upper_bound(model: ChatModel, requests: list[ChatRequest]) -> Spend:
        prompt = sum(r.prompt_tokens_bound() for r in requests)
        completion = sum(r.max_tokens for r in requests)
        return Spend(len(requests), prompt, completion, model.price.cost(Usage(prompt, completion)))

    def _over(self, now: Spend, need: Spend, keep: Spend) -> str | None:
        if self.max_calls is not None and now.calls + need.calls + keep.calls > self.max_calls:
            return f"call budget: {now.calls} used, {need.calls} needed, {keep.calls} reserved, max {self.max_calls}"
        tokens = lambda s: s.prompt_tokens + s.completion_tokens  # noqa: E731
        if self.max_tokens is not None and tokens(now) + tokens(need) + tokens(keep) > self.max_tokens:
            return f"token budget: {tokens(now)} used, about {tokens(need)} needed, max {self.max_tokens}"
        if self.max_cost is not None and now.cost_usd + need.cost_usd + keep.cost_usd > self.max_cost:
            return f"cost budget: ${now.cost_usd:.4f} used, about ${need.cost_usd:.4f} needed, max ${self.max_cost}"
        return None

    def refusal(self, model: ChatModel, requests: list[ChatRequest]) -> str | None:
        """Why this batch may not run, or None when it fits (with the reserve kept for later)."""
        need = self.estimate(model, requests)
        with self._lock:
            return self._over(self._paid + self._in_flight, need, self.reserve)

    def admit(self, model: ChatModel, request: ChatRequest) -> Spend:
        """Claim room for one attempt of `request`, which the model found uncached, or raise
        BudgetExceeded; `settle` the claim when the attempt is over."""
        need = self._upper_bound(model, [request])
        with self._lock:
            why = self._over(self._paid + self._in_flight, need, self.reserve)
            if why:
                raise BudgetExceeded(f"{model.name}: {why}")
            self._in_flight = self._in_flight + need
        return need

    def settle(self, claim: Spend, paid: Spend) -> None:
        """The attempt `claim` was made for is over and cost `paid` (NOTHING if it never reached
        the provider)."""
        with self._lock:
            self._in_flight = self._in_flight - claim
            self._paid = self._paid + paid

    def spend_reserve(self) -> None:
        """The reserved evaluation is about to run: its room is no longer kept aside."""
        with self._lock:
            self.reserve = NOTHING
