"""Spending limits, checked before every batch of target calls so they are never exceeded.

Spend is read from the run's call cache, which holds exactly the calls this run has paid for,
across interruptions and resumes."""

from __future__ import annotations

from dataclasses import dataclass

from dlmpo.lm import ChatModel, ChatRequest, Usage


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


class Budget:
    def __init__(self, models: list[ChatModel], *, max_calls: int | None, max_cost: float | None,
                 max_tokens: int | None):
        self.models = models
        self.max_calls, self.max_cost, self.max_tokens = max_calls, max_cost, max_tokens

    def spend(self) -> Spend:
        calls = pt = ct = 0
        cost = 0.0
        unique = {m.backend.model_id: m for m in self.models}  # one model in two roles is paid once
        for m in unique.values():
            assert m.cache is not None, "a budgeted model needs its run cache"
            c, p, o = m.cache.totals(m.backend.model_id)
            calls, pt, ct = calls + c, pt + p, ct + o
            cost += m.price.cost(Usage(p, o))
        return Spend(calls, pt, ct, cost)

    @staticmethod
    def estimate(model: ChatModel, requests: list[ChatRequest]) -> Spend:
        """Upper-bound spend of the uncached requests (answers assumed to use max_tokens)."""
        todo = [r for r in requests if model.cached(r) is None]
        prompt = sum(sum(len(str(m.get("content", ""))) for m in r.messages) // 3 + 8 for r in todo)
        completion = sum(r.max_tokens for r in todo)
        return Spend(len(todo), prompt, completion, model.price.cost(Usage(prompt, completion)))

    def refusal(self, model: ChatModel, requests: list[ChatRequest], reserve: Spend | None = None) -> str | None:
        """Why this batch may not run, or None when it fits (with `reserve` kept for later)."""
        now, need = self.spend(), self.estimate(model, requests)
        keep = reserve or Spend(0, 0, 0, 0.0)
        if self.max_calls is not None and now.calls + need.calls + keep.calls > self.max_calls:
            return f"call budget: {now.calls} used, {need.calls} needed, {keep.calls} reserved, max {self.max_calls}"
        tokens = lambda s: s.prompt_tokens + s.completion_tokens  # noqa: E731
        if self.max_tokens is not None and tokens(now) + tokens(need) + tokens(keep) > self.max_tokens:
            return f"token budget: {tokens(now)} used, about {tokens(need)} needed, max {self.max_tokens}"
        if self.max_cost is not None and now.cost_usd + need.cost_usd + keep.cost_usd > self.max_cost:
            return f"cost budget: ${now.cost_usd:.4f} used, about ${need.cost_usd:.4f} needed, max ${self.max_cost}"
        return None
