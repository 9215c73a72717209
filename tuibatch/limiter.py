"""One pace for the whole pool: request and token quotas, 429 holds, adaptive concurrency.

Workers never back off on their own for a quota error: a 429 holds every launch of
the pool (and, through the checkpoint, of every process on it) until the service's
retry delay has passed, then lets launches back in gradually.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING

from .policy import Failure

if TYPE_CHECKING:
    from .store import Store


class Window:
    """Sliding 60 s window: never more than *limit* units in any 60 s, spaced evenly."""

    def __init__(self, per_minute: float, span: float = 60.0):
        self.limit = per_minute
        self.span = span
        self.sent: deque[tuple[float, float]] = deque()
        self.total = 0.0
        self.next_at = 0.0

    def delay(self, units: float, now: float) -> float:
        """Seconds until *units* may go; 0 means now."""
        while self.sent and self.sent[0][0] <= now - self.span:
            self.total -= self.sent.popleft()[1]
        wait = max(0.0, self.next_at - now)
        units = min(units, self.limit)
        if self.total + units > self.limit and self.sent:
            need = self.total + units - self.limit
            freed = 0.0
            for t, u in self.sent:
                freed += u
                if freed >= need:
                    wait = max(wait, t + self.span - now)
                    break
        return wait

    def take(self, units: float, now: float) -> None:
        self.sent.append((now, units))
        self.total += units
        self.next_at = max(self.next_at, now) + self.span / self.limit * min(units, self.limit) * 0.5

    def correct(self, delta: float) -> None:
        """Charge the difference between the estimate and the usage the service reported."""
        if self.sent and delta:
            t, u = self.sent[-1]
            self.sent[-1] = (t, max(0.0, u + delta))
            self.total = max(0.0, self.total + delta)


class Pacer:
    def __init__(self, *, concurrency: int = 8, rpm: float | None = None, tpm: float | None = None,
                 adaptive: bool = False, max_concurrency: int = 64, margin: float = 0.98):
        self.adaptive = adaptive
        self.max_concurrency = max(1, max_concurrency)
        self.limit = float(min(concurrency, self.max_concurrency) if not adaptive else min(4, self.max_concurrency))
        self.requests = Window(rpm * margin) if rpm else None
        self.tokens = Window(tpm * margin) if tpm else None
        self.hold_until = 0.0  # monotonic
        self.hold_reason = ""
        self.ramp_until = 0.0
        self._lock = asyncio.Lock()
        self._store: Store | None = None
        self._latency: float | None = None
        self._base_latency: float | None = None
        self.throttles = 0

    def attach(self, store: Store) -> None:
        self._store = store

    async def slot_free(self, busy: int) -> bool:
        return busy < max(1, int(self.limit))

    def holding(self) -> float:
        return max(0.0, self.hold_until - time.monotonic())

    async def _wait_hold(self, stop: asyncio.Event) -> None:
        while (left := self.holding()) > 0 and not stop.is_set():
            await _sleep_or_stop(min(left, 1.0), stop)

    async def before_launch(self, tokens: int, stop: asyncio.Event) -> None:
        await self._wait_hold(stop)
        async with self._lock:
            while not stop.is_set():
                now = time.monotonic()
                wait = 0.0
                if self.requests:
                    wait = max(wait, self.requests.delay(1, now))
                if self.tokens:
                    wait = max(wait, self.tokens.delay(tokens, now))
                if now < self.ramp_until:
                    # after a hold, let launches back in one at a time
                    wait = max(wait, 0.0)
                if wait <= 0:
                    if self.requests:
                        self.requests.take(1, now)
                    if self.tokens:
                        self.tokens.take(tokens, now)
                    return
                await _sleep_or_stop(wait, stop)

    async def before_poll(self, stop: asyncio.Event) -> None:
        """Polls use the request quota too, but never wait on a token quota."""
        await self._wait_hold(stop)
        if not self.requests:
            return
        async with self._lock:
            while not stop.is_set():
                now = time.monotonic()
                wait = self.requests.delay(1, now)
                if wait <= 0:
                    self.requests.take(1, now)
                    return
                await _sleep_or_stop(wait, stop)

    def on_failure(self, f: Failure) -> None:
        if f.code in (429, 503) or (f.code and f.code >= 500):
            if f.code == 429:
                self.throttles += 1
            delay = f.retry_delay if f.retry_delay is not None else (2.0 if f.code == 429 else 0.0)
            if delay > 0:
                until = time.monotonic() + delay
                if until > self.hold_until:
                    self.hold_until = until
                    self.hold_reason = f.short()
                    self.ramp_until = until + 5.0
            if self.adaptive:
                self.limit = max(1.0, self.limit * 0.5)

    def on_success(self, latency: float, tokens_used: int, tokens_guess: int) -> None:
        if self.tokens and tokens_used:
            self.tokens.correct(tokens_used - tokens_guess)
        if not self.adaptive:
            return
        self._latency = latency if self._latency is None else 0.8 * self._latency + 0.2 * latency
        if self._base_latency is None or latency < self._base_latency:
            self._base_latency = latency
        if self._base_latency and self._latency > 3 * self._base_latency + 0.05:
            self.limit = max(1.0, self.limit * 0.9)
        elif time.monotonic() >= self.ramp_until:
            self.limit = min(float(self.max_concurrency), self.limit + 1.0 / max(1.0, self.limit))

    async def sync(self) -> None:
        """Share holds with other processes on the same checkpoint."""
        if self._store is None:
            return
        ctl = await self._store.control()
        other = float(ctl.get("hold_until_wall", "0") or 0)
        wall_left = other - time.time()
        if wall_left > self.holding():
            self.hold_until = time.monotonic() + wall_left
            self.hold_reason = ctl.get("hold_reason", "")
        elif self.holding() > 0 and wall_left < self.holding() - 0.5:
            await self._store.set_control({"hold_until_wall": str(time.time() + self.holding()),
                                           "hold_reason": self.hold_reason})


async def _sleep_or_stop(seconds: float, stop: asyncio.Event) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))
    except asyncio.TimeoutError:
        pass
