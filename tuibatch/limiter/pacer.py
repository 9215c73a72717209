"""One pace for the whole pool: request and token quotas, 429 holds, adaptive concurrency.

Workers never back off on their own for a quota error: a 429 holds every launch of
the pool (and, through the checkpoint, of every process on it) until the service's
retry delay has passed, then lets launches back in gradually. With ``--rpm``/``--tpm``
the quota is a sliding window kept in the checkpoint (:mod:`.shared`), shared by every
worker process; without them the pool learns the quota from the first 429.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from ..policy import Failure
from .shared import Limit, SharedPace
from .window import BURST_SPAN, Window, burst_cap

if TYPE_CHECKING:
    from ..store import Store

#: after a hold ends, concurrency comes back from a quarter to full over this many seconds
RAMP_SECONDS = 5.0
#: a learned quota is probed upwards by this factor each minute without a 429
PROBE_FACTOR = 1.02
#: fewer requests than this in the last minute are too few to learn a quota from
MIN_SAMPLE = 20


class Pacer:
    def __init__(
        self,
        *,
        concurrency: int = 8,
        rpm: float | None = None,
        tpm: float | None = None,
        adaptive: bool = False,
        max_concurrency: int = 64,
        margin: float = 0.99,
    ):
        self.adaptive = adaptive
        self.max_concurrency = max(1, max_concurrency)
        self.limit = float(min(concurrency, self.max_concurrency))
        #: rising latency alone does not take an adaptive pool below where it started
        self.floor = self.limit
        self.rpm = rpm * margin if rpm else None
        self.tpm = tpm * margin if tpm else None
        self.hold_until = 0.0  # monotonic
        self.hold_reason = ""
        self.ramp_from = 0.0
        self.sent = Window()  # every request we sent in the last minute, for learning the quota
        self.learned: Window | None = None
        self._learned_at = 0.0
        self._store: Store | None = None
        self._shared: SharedPace | None = None
        self._latency: float | None = None
        self._base_latency: float | None = None
        self._tok_debt = 0

    def attach(self, store: Store) -> None:
        """Share holds (and with --rpm/--tpm the quota) with every process on *store*."""
        self._store = store
        self._shared = SharedPace(store)

    # ----------------------------------------------------------- concurrency

    async def slot_free(self, busy: int) -> bool:
        limit = self.limit
        since = time.monotonic() - self.ramp_from
        if 0 <= since < RAMP_SECONDS:
            limit *= 0.25 + 0.75 * since / RAMP_SECONDS
        return busy < max(1, int(limit))

    # ---------------------------------------------------------------- quotas

    def quota_limited(self) -> bool:
        """Whether requests are rationed (a quota given or learned), so every poll counts."""
        return bool(self.rpm or self.learned is not None)

    def holding(self) -> float:
        return max(0.0, self.hold_until - time.monotonic())

    async def _wait_hold(self, stop: asyncio.Event) -> None:
        while (left := self.holding()) > 0 and not stop.is_set():
            await _sleep_or_stop(min(left, 0.5), stop)

    def _limits(self, tokens: int) -> list[Limit]:
        # 61 s, not 60: a request is counted when taken, the service counts it when it arrives,
        # which under CPU load can be half a second later (the SDK spends ~25 ms per create)
        limits = [(61.0, self.rpm or 0.0, self.tpm or 0.0)]
        if self.rpm:
            # no more than a twelfth of the minute's requests (plus a little) in any 5 s: no bursts
            limits.append((BURST_SPAN, burst_cap(self.rpm), 0.0))
        return limits

    async def _take(self, tokens: int, stop: asyncio.Event) -> None:
        await self._wait_hold(stop)
        while not stop.is_set():
            now = time.monotonic()
            wait = 0.0
            if (self.rpm or self.tpm) and self._shared is not None:
                tok = max(0, tokens + self._tok_debt)
                wait = await self._shared.take(1, tok, self._limits(tok))
                if wait <= 0:
                    self._tok_debt = 0
            elif self.learned is not None:
                self._probe(now)
                wait = self.learned.delay(now)
                if wait <= 0:
                    self.learned.take(now)
            if wait <= 0:
                self.sent.take(now)
                return
            await _sleep_or_stop(min(wait, 1.0), stop)
            await self._wait_hold(stop)

    async def before_launch(self, tokens: int, stop: asyncio.Event) -> None:
        await self._take(tokens, stop)

    async def before_poll(self, stop: asyncio.Event) -> None:
        """Polls use the request quota too."""
        await self._take(0, stop)

    def _probe(self, now: float) -> None:
        if self.learned is not None and now - self._learned_at >= 60.0:
            self.learned.limit *= PROBE_FACTOR
            self._learned_at = now

    # -------------------------------------------------------------- feedback

    async def on_failure(self, f: Failure) -> None:
        if f.code == 429:
            now = time.monotonic()
            delay = f.retry_delay if f.retry_delay is not None else 2.0
            if not (self.rpm or self.tpm) and "perminute" in (f.quota_id or "").lower():
                # Learn the quota. Over a sliding minute, "retry in d s" means the quota is about
                # what we sent in the last 60 - d s: the window frees when the older ones age out.
                # If none of ours ages out within d, our own requests do not explain the 429 (others
                # share the quota, or it is not a plain window): just hold. Likewise for a handful.
                seen = float(self.sent.count(now, span=max(1.0, 60.0 - min(delay, 59.0))))
                aging = self.sent.count(now, span=60.0) - seen
                if (
                    aging > 0
                    and seen >= MIN_SAMPLE
                    and (self.learned is None or seen < self.learned.limit)
                ):
                    self.learned = Window(seen).learned_from(self.sent, now)
                self._learned_at = now
            if now + delay > self.hold_until:
                self.hold_until = now + delay
                self.hold_reason = f.short()
                self.ramp_from = self.hold_until
                if self._store is not None:
                    await self._store.set_control(
                        {
                            "hold_until_wall": f"{time.time() + delay:.3f}",
                            "hold_reason": self.hold_reason,
                        }
                    )
        if self.adaptive and f.code in (429, 503):
            self.limit = max(1.0, self.limit * 0.5)

    def on_success(self, latency: float, tokens_used: int, tokens_guess: int) -> None:
        if self.tpm and tokens_used:
            self._tok_debt += tokens_used - tokens_guess
        if not self.adaptive:
            return
        self._latency = latency if self._latency is None else 0.8 * self._latency + 0.2 * latency
        if self._base_latency is None or latency < self._base_latency:
            self._base_latency = latency
        if self._latency > 3 * self._base_latency + 0.05:
            self.limit = max(min(self.floor, self.limit), self.limit * 0.9)
        elif time.monotonic() >= self.ramp_from + RAMP_SECONDS:
            self.limit = min(float(self.max_concurrency), self.limit + 1.0 / max(1.0, self.limit))

    def absorb(self, control: dict[str, str]) -> None:
        """Honour a hold another process on this checkpoint recorded."""
        try:
            left = float(control.get("hold_until_wall", "0")) - time.time()
        except ValueError:
            return
        if left > self.holding() + 0.05:
            self.hold_until = time.monotonic() + left
            self.hold_reason = control.get("hold_reason", "")
            self.ramp_from = self.hold_until


async def _sleep_or_stop(seconds: float, stop: asyncio.Event) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))
    except asyncio.TimeoutError:
        pass
