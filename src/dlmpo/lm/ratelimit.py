"""Requests-per-minute and tokens-per-minute limits as async token buckets."""

from __future__ import annotations

import asyncio
import math
import time

from dlmpo.errors import UserError


class TokenBucket:
    """`capacity` units per minute, refilled continuously; `acquire(n)` waits until n are free."""

    def __init__(self, per_minute: float, clock=time.monotonic):
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._level = self.capacity
        self._clock = clock
        self._stamp = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._level = min(self.capacity, self._level + (now - self._stamp) * self.rate)
        self._stamp = now

    async def acquire(self, amount: float = 1.0) -> float:
        """Returns the seconds spent waiting."""
        amount = min(amount, self.capacity)  # one oversized request must still pass
        waited = 0.0
        async with self._lock:
            while True:
                self._refill()
                if self._level >= amount:
                    self._level -= amount
                    return waited
                delay = (amount - self._level) / self.rate
                await asyncio.sleep(delay)
                waited += delay


def check_limits(*, rpm: float | None = None, tpm: float | None = None, concurrency: int | None = None) -> None:
    """One meaning everywhere: a limit left out (None) is no limit; a given limit must be > 0 and finite
    (0 is not "no limit": it would allow nothing)."""
    for name, value, what in (("rpm", rpm, "requests per minute"), ("tpm", tpm, "tokens per minute")):
        if value is not None and not (isinstance(value, (int, float)) and 0 < value < math.inf):
            raise UserError(f"--{name} ({what}) must be a number greater than 0, not {value}: leave it out for no limit.")
    if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 1):
        raise UserError(f"--concurrency must be at least 1, not {concurrency}: leave it out for the backend's default.")


class RateLimiter:
    def __init__(self, rpm: float | None = None, tpm: float | None = None):
        check_limits(rpm=rpm, tpm=tpm)
        self.requests = TokenBucket(rpm) if rpm else None
        self.tokens = TokenBucket(tpm) if tpm else None

    def rebind(self) -> None:
        """Fresh locks for a new event loop (each `asyncio.run` has its own)."""
        for bucket in (self.requests, self.tokens):
            if bucket is not None:
                bucket._lock = asyncio.Lock()

    async def acquire(self, estimated_tokens: int) -> float:
        waited = 0.0
        if self.requests:
            waited += await self.requests.acquire(1)
        if self.tokens:
            waited += await self.tokens.acquire(estimated_tokens)
        return waited
