"""Rate limits: token buckets for requests-per-minute and tokens-per-minute, and a shared pause.

A bucket refills continuously at ``per_minute / 60`` per second and holds at
most one second's worth (at least 1), so traffic is smooth rather than bursty:
providers often enforce per-minute limits over shorter windows. A single
acquisition larger than the capacity waits for a full bucket and then goes into
debt, so a big request is never starved.
"""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    def __init__(self, per_minute: float, *, capacity: float | None = None, clock=time.monotonic):
        if per_minute <= 0:
            raise ValueError("a rate limit must be positive")
        self.rate = per_minute / 60.0
        self.capacity = float(capacity if capacity is not None else max(1.0, self.rate))
        self.level = self.capacity
        self._clock = clock
        self._stamp = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self.level = min(self.capacity, self.level + (now - self._stamp) * self.rate)
        self._stamp = now

    async def acquire(self, amount: float = 1.0) -> float:
        """Wait until ``amount`` may be spent; returns the seconds waited."""
        waited = 0.0
        need = min(float(amount), self.capacity)
        async with self._lock:  # FIFO: first come, first served
            while True:
                self._refill()
                if self.level >= need:
                    self.level -= amount
                    return waited
                delay = (need - self.level) / self.rate
                await asyncio.sleep(delay)
                waited += delay

    def refund(self, amount: float) -> None:
        """Give back (or, negative, charge more) once the true cost is known."""
        self._refill()
        self.level = min(self.capacity, self.level + amount)


class Limiter:
    """rpm + tpm buckets and a shared Retry-After pause for one engine run."""

    def __init__(self, rpm: float | None = None, tpm: float | None = None):
        self.rpm = TokenBucket(rpm) if rpm else None
        self.tpm = TokenBucket(tpm) if tpm else None
        self._pause_until = 0.0

    def pause(self, seconds: float) -> None:
        """Hold every new request for ``seconds`` (a 429 with Retry-After applies to the whole key)."""
        self._pause_until = max(self._pause_until, time.monotonic() + seconds)

    async def acquire(self, requests: int, tokens: int) -> None:
        while True:
            wait = self._pause_until - time.monotonic()
            if wait <= 0:
                break
            await asyncio.sleep(wait)
        if self.rpm is not None:
            await self.rpm.acquire(requests)
        if self.tpm is not None:
            await self.tpm.acquire(tokens)

    def settle(self, estimated_tokens: int, actual_tokens: int) -> None:
        if self.tpm is not None and actual_tokens:
            self.tpm.refund(estimated_tokens - actual_tokens)
