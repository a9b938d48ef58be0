"""The chat model every caller uses: bounded concurrency, RPM/TPM limits, retries with exponential
backoff and jitter, a persistent cache, and token / dollar accounting around any backend."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from dlmpo.errors import FatalTargetError, TargetError
from dlmpo.lm.budget import NOTHING, Budget, Spend
from dlmpo.lm.cache import CallCache
from dlmpo.lm.pricing import FREE, Price
from dlmpo.lm.ratelimit import RateLimiter
from dlmpo.lm.types import ChatBackend, ChatRequest, ChatResponse, Usage


@dataclass
class Accounting:
    calls: int = 0  # calls that reached the backend (paid)
    cache_hits: int = 0
    failures: int = 0
    retries: int = 0
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0

    def to_json(self) -> dict:
        return {
            "calls": self.calls,
            "cache_hits": self.cache_hits,
            "failures": self.failures,
            "retries": self.retries,
            "prompt_tokens": self.usage.prompt_tokens,
            "completion_tokens": self.usage.completion_tokens,
            "total_tokens": self.usage.total_tokens,
            "cost_usd": round(self.cost_usd, 6),
        }


@dataclass
class RetryPolicy:
    max_retries: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Exponential backoff with full jitter; a server's Retry-After is a floor."""
        ceiling = min(self.max_delay, self.base_delay * 2**attempt)
        wait = random.uniform(ceiling / 2, ceiling)
        return max(wait, retry_after or 0.0)


class ChatModel:
    def __init__(
        self,
        backend: ChatBackend,
        *,
        name: str,
        price: Price | None = FREE,
        cache: CallCache | None = None,
        concurrency: int | None = None,
        rpm: float | None = None,
        tpm: float | None = None,
        retry: RetryPolicy | None = None,
    ):
        self.backend = backend
        self.name = name
        self.price = price or FREE
        self.price_known = price is not None
        self.cache = cache
        self.concurrency = concurrency or backend.default_concurrency
        self._semaphore: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.limiter = RateLimiter(rpm, tpm)
        self.retry = retry or RetryPolicy()
        self.accounting = Accounting()
        self.budget: Budget | None = None  # the run's one budget, shared by all its models (set by Budget)

    def _sem(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._loop is not loop:  # asyncio primitives are per loop
            self._semaphore = asyncio.Semaphore(self.concurrency)
            self.limiter.rebind()
            self._loop = loop
        return self._semaphore

    def cached(self, request: ChatRequest) -> ChatResponse | None:
        return self.cache.get(request.cache_key(self.backend.model_id)) if self.cache else None

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """Never raises for a failed call: returns a response with `error` set (a scored failure).
        Raises FatalTargetError when the target cannot be used at all, BudgetExceeded when the run's
        budget has no room for another attempt."""
        key = request.cache_key(self.backend.model_id)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                self.accounting.cache_hits += 1
                return hit
        self.accounting.calls += 1
        estimate = request.prompt_tokens_bound() + request.max_tokens
        last_error = "unknown error"
        async with self._sem():
            for attempt in range(self.retry.max_retries + 1):
                await self.limiter.acquire(estimate)
                claim = self.budget.admit(self, request) if self.budget is not None else None
                paid = NOTHING
                try:
                    outcome = await self._attempt(key, request)
                    usage = outcome.usage if isinstance(outcome, ChatResponse) else Usage()
                    paid = Spend(1, usage.prompt_tokens, usage.completion_tokens, self.price.cost(usage))
                finally:
                    if claim is not None:
                        self.budget.settle(claim, paid)
                if isinstance(outcome, ChatResponse):
                    return outcome
                last_error = str(outcome)
                if not outcome.retryable or attempt == self.retry.max_retries:
                    if outcome.retryable and outcome.status is None and "cannot connect" in last_error:
                        raise FatalTargetError(
                            f"The target {self.name} is unreachable ({last_error}): is the server running?"
                        ) from None
                    break
                self.accounting.retries += 1
                await asyncio.sleep(self.retry.delay(attempt, getattr(outcome, "retry_after", None)))
        self.accounting.failures += 1
        return ChatResponse(text="", finish_reason="error", error=last_error)

    async def _attempt(self, key: str, request: ChatRequest) -> ChatResponse | TargetError:
        """One call to the backend, recorded in the cache whether it answered or failed; to a billing
        provider, recorded before it is sent too, so that a kill mid-call still counts it as paid."""
        model_id, attempt = self.backend.model_id, None
        if self.cache is not None and self.backend.billed_when_sent:
            attempt = self.cache.open_attempt(model_id, request.prompt_tokens_bound(), request.max_tokens)
        try:
            response = await self.backend.complete(request)
        except TargetError as exc:
            if self.cache is not None:
                self.cache.record_failure(model_id, str(exc), attempt)
            return exc
        self.accounting.usage.add(response.usage)
        self.accounting.cost_usd += self.price.cost(response.usage)
        if self.cache is not None:
            self.cache.put(key, model_id, response, attempt)
        return response

    async def aclose(self) -> None:
        await self.backend.aclose()
