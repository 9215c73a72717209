"""One pace for the whole pool: launches spread evenly, a quota learned, 429 holds, concurrency.

* **Told** (``--rpm``): launches go on a GCRA schedule (:mod:`.gcra`) at ``margin`` of the
  quota, one every ``60/rpm`` s with a burst of about a second, shared through the checkpoint
  by every worker process on it (:mod:`.shared`). Spread like that, the told rate is safe
  whether the service counts a sliding window, a fixed window or a smooth token bucket.
* **Not told**: nothing is paced until the first 429; then the quota is measured from what the
  service accepted over the last minute (:mod:`.learn`), launches go on the same schedule at
  just under it, and the rate is probed upwards slowly until the next 429 measures again.
* **Polls** are not charged to the schedule (launches and polls may be on different quotas)
  until a poll itself is answered 429; from then on they take their turn on it too, and a
  warning says so once.
* A 429 that names a delay holds every launch of the pool (and, through the checkpoint's
  control table, of every process on it) until the delay has passed.
* ``adaptive`` (``--concurrency auto``): the concurrency grows while every slot is taken and
  neither a hold nor the schedule keeps work waiting (a slot a second: runs that take minutes
  need many in flight), and by one per slot's worth of launches; rising latency takes 10% off
  (never below the start); a 503, or a 429 the pacer does not explain, halves it; a rate 429
  does not (the schedule answers those).

Every few seconds the rate in force is written to the control table (``pace_rate`` per
minute, ``pace_source`` told/learned) for the UI.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..policy import Failure
from .gcra import LocalSchedule
from .learn import RateLearner
from .shared import Limit, SharedPace

if TYPE_CHECKING:
    from ..store import Store

log = logging.getLogger("tuibatch.limiter")

Clock = Callable[[], float]

#: after a hold ends, concurrency comes back from a quarter to full over this many seconds
RAMP_SECONDS = 5.0
#: the pace is written to the control table at most this often
PUBLISH_SECONDS = 3.0
#: what the current task last asked for: a failure that follows a poll is a poll's
_ASKED: contextvars.ContextVar[str] = contextvars.ContextVar("tuibatch_pacer_asked", default="")
#: when the current task's last request went: a 429 is measured as of then, not as of when
#: its answer was read (a busy event loop reads answers late)
_SENT: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "tuibatch_pacer_sent", default=None
)

#: an unpaced process looks this often whether another one on the checkpoint learned a rate
LOOK_SECONDS = 1.0
#: the schedule's key in the shared table (launches, and polls once they are charged)
REQUESTS = "requests"
#: auto concurrency: a full pool that nothing else holds back grows by this many slots a second
GROW_PER_SECOND = 1.0
#: ... unless the schedule made a request wait this recently
PACED_RECENTLY = 5.0
#: ... nor for this long after a 503 (or a 429 the pacer does not explain) halved it
CALM_SECONDS = 60.0
#: not told: how often a process tells the others on the checkpoint what it got accepted
PEER_SECONDS = 2.0


class Pacer:
    def __init__(
        self,
        *,
        concurrency: int = 8,
        rpm: float | None = None,
        tpm: float | None = None,
        adaptive: bool = False,
        max_concurrency: int = 64,
        margin: float = 0.98,
        clock: Clock = time.monotonic,
        wall: Clock = time.time,
    ):
        self.adaptive = adaptive
        self.max_concurrency = max(1, max_concurrency)
        self.limit = float(min(concurrency, self.max_concurrency))
        #: rising latency alone does not take an adaptive pool below where it started
        self.floor = self.limit
        self.rpm = rpm * margin if rpm else None
        self.tpm = tpm * margin if tpm else None
        self.clock = clock
        self.wall = wall
        self.hold_until = 0.0  # on self.clock
        self.hold_reason = ""
        self.ramp_from = -1e18
        self.learner = RateLearner()
        #: polls take turns on the schedule too (a poll was answered 429)
        self.polls_paced = False
        self._local = LocalSchedule()
        self._store: Store | None = None
        self._shared: SharedPace | None = None
        self._published = -1e18
        self._looked = -1e18
        self._reported = -1e18
        self._me = uuid.uuid4().hex[:12]
        self._latency: float | None = None
        self._base_latency: float | None = None
        self._tok_debt = 0
        self._grown: float | None = None
        self._limited_at = -1e18
        self._halved_at = -1e18

    def attach(self, store: Store) -> None:
        """Share the schedule, holds and the learned rate with every process on *store*."""
        self._store = store
        self._shared = SharedPace(store)

    # ------------------------------------------------------------------ state

    @property
    def rate(self) -> float | None:
        """Requests per second the schedule lets go; None when nothing is paced."""
        if self.rpm:
            return self.rpm / 60.0
        return self.learner.rate

    @property
    def source(self) -> str:
        return "told" if self.rpm else "learned" if self.learner.rate is not None else ""

    def quota_limited(self) -> bool:
        """Whether polls are rationed (charged to the schedule), so every poll counts."""
        return self.polls_paced

    def holding(self) -> float:
        return max(0.0, self.hold_until - self.clock())

    # ----------------------------------------------------------- concurrency

    async def slot_free(self, busy: int) -> bool:
        now = self.clock()
        if self.adaptive:
            self._grow(now, busy)
        limit = self.limit
        since = now - self.ramp_from
        if 0 <= since < RAMP_SECONDS:
            limit *= 0.25 + 0.75 * since / RAMP_SECONDS
        return busy < max(1, int(limit))

    def _grow(self, now: float, busy: int) -> None:
        """Auto: every slot is taken, and neither a hold nor the schedule is what keeps work
        waiting: runs are long, so more of them in flight. ``GROW_PER_SECOND`` slots a second
        (per second, not per launch: a pool of runs that take minutes launches rarely)."""
        last, self._grown = self._grown, now
        if last is None or busy < int(self.limit) or self.holding() > 0:
            return
        if now - self._limited_at < PACED_RECENTLY:
            return  # the quota is the limit: more runs in flight would only wait for it
        if now - self._halved_at < CALM_SECONDS:
            return  # the service said it is overloaded: back by launches only
        dt = min(1.0, max(0.0, now - last))
        self.limit = min(float(self.max_concurrency), self.limit + GROW_PER_SECOND * dt)

    # -------------------------------------------------------------- schedule

    async def before_launch(self, tokens: int, stop: asyncio.Event) -> None:
        _ASKED.set("launch")
        await self._wait_hold(stop)
        if self.tpm and self._shared is not None:
            await self._take_tokens(tokens, stop)
        await self._take(stop)

    async def before_poll(self, stop: asyncio.Event) -> None:
        """Polls wait their turn only once the service has refused one."""
        _ASKED.set("poll")
        if self.polls_paced:
            await self._wait_hold(stop)
        await self._take(stop, poll=True)

    async def _take(self, stop: asyncio.Event, *, poll: bool = False) -> None:
        while not stop.is_set():
            wait = await self.try_request(poll=poll)
            if wait <= 0:
                return
            await _sleep_or_stop(min(wait, 1.0), stop)
            await self._wait_hold(stop)

    async def try_request(self, *, poll: bool = False) -> float:
        """One request (a launch, or a *poll*) on the schedule now: 0 when it may go (it is
        counted as sent), else the seconds to wait first. Never sleeps: the waiting is the
        caller's (tests drive a clock)."""
        now = self.clock()
        if poll and not self.polls_paced:  # not on the schedule, but recorded: should polls
            self.learner.on_sent(now, poll=True)  # turn out to count, they did
            _SENT.set(now)
            return 0.0
        rate = self.rate
        wait = 0.0
        if rate is None and self._shared is not None and now - self._looked >= LOOK_SECONDS:
            # unpaced here: has another process on the checkpoint learned a rate?
            self._looked = now
            _, in_force, changed = await self._shared.slot(REQUESTS, now, 0.0, 0.0)
            if in_force > 0:
                self.learner.adopt(in_force, changed)
                rate = self.rate
        if rate is not None:
            if self._shared is None:
                wait = self._local.take(now, rate)
            else:
                changed = 0.0 if self.rpm else self.learner.changed
                wait, in_force, changed = await self._shared.slot(REQUESTS, now, rate, changed)
                if not self.rpm:
                    self.learner.adopt(in_force, changed)
        if wait > 0:
            self._limited_at = now
            if not self.rpm:
                self.learner.on_limited(now)
            return wait
        self.learner.on_sent(now, poll=poll)
        _SENT.set(now)
        await self._report(now)
        await self._publish()
        return 0.0

    async def _report(self, now: float, every: float = PEER_SECONDS) -> None:
        """Not told, on a checkpoint: swap what the service accepted with the other processes."""
        if self.rpm or self._shared is None or now - self._reported < every:
            return
        self._reported = now
        accepted = self.learner.accepted(now)
        self.learner.others, self.learner.peers = await self._shared.report(
            REQUESTS, self._me, accepted, now
        )

    async def _take_tokens(self, tokens: int, stop: asyncio.Event) -> None:
        assert self._shared is not None and self.tpm
        tok = max(0, tokens + self._tok_debt)
        # 61 s, not 60: a request is counted when taken, the service counts it on arrival
        limits: list[Limit] = [(61.0, 0.0, self.tpm)]
        while not stop.is_set():
            wait = await self._shared.take(0, tok, limits, self.wall())
            if wait <= 0:
                self._tok_debt = 0
                return
            await _sleep_or_stop(min(wait, 1.0), stop)

    async def _wait_hold(self, stop: asyncio.Event) -> None:
        while (left := self.holding()) > 0 and not stop.is_set():
            await _sleep_or_stop(min(left, 0.5), stop)

    async def _publish(self) -> None:
        now = self.clock()
        if self._store is None or self.rate is None or now - self._published < PUBLISH_SECONDS:
            return
        self._published = now
        await self._store.set_control(
            {"pace_rate": f"{self.rate * 60:.1f}", "pace_source": self.source}
        )

    # -------------------------------------------------------------- feedback

    async def on_failure(self, f: Failure, *, poll: bool | None = None) -> None:
        """A failed launch or poll (by default: whichever this task last asked a turn for)."""
        if poll is None:
            poll = _ASKED.get() == "poll"
        explained = False
        if f.code == 429:
            now = self.clock()
            if poll and not self.polls_paced:
                self.polls_paced = True
                self.learner.count_polls()  # the quota measured from now on includes them
                log.warning("polls are rate-limited too: pacing them")
            if not self.rpm:
                await self._report(now, every=0.5)  # the others' counts, fresh for the measure
                sent = _SENT.get()
                at = now if sent is None else min(now, sent)
                if self.learner.on_refused(now, poll=poll, at=at) and self._shared is not None:
                    rate, changed = self.learner.rate or 0.0, self.learner.changed
                    await self._shared.share_rate(REQUESTS, rate, changed)
                explained = True
            else:
                explained = True
            if f.retry_delay is not None and f.retry_delay > 0:
                await self._hold(now, f.retry_delay, f.short())
            if explained:
                await self._publish()
        if self.adaptive and f.code in (429, 503) and not explained:
            self.limit = max(1.0, self.limit * 0.5)
            self._halved_at = self.clock()

    async def _hold(self, now: float, delay: float, reason: str) -> None:
        if now + delay <= self.hold_until:
            return
        self.hold_until = now + delay
        self.hold_reason = reason
        self.ramp_from = self.hold_until
        if self._store is not None:
            await self._store.set_control(
                {"hold_until_wall": f"{self.wall() + delay:.3f}", "hold_reason": reason}
            )

    def on_success(self, latency: float, tokens_used: int, tokens_guess: int) -> None:
        """A launch was answered (what a learned quota counts)."""
        self.learner.on_accepted(self.clock())
        if self.tpm and tokens_used:
            self._tok_debt += tokens_used - tokens_guess
        if not self.adaptive:
            return
        self._latency = latency if self._latency is None else 0.8 * self._latency + 0.2 * latency
        if self._base_latency is None or latency < self._base_latency:
            self._base_latency = latency
        if self._latency > 3 * self._base_latency + 0.05:
            self.limit = max(min(self.floor, self.limit), self.limit * 0.9)
        elif self.clock() >= self.ramp_from + RAMP_SECONDS:
            self.limit = min(float(self.max_concurrency), self.limit + 1.0 / max(1.0, self.limit))

    def absorb(self, control: dict[str, str]) -> None:
        """Honour a hold another process on this checkpoint recorded."""
        try:
            left = float(control.get("hold_until_wall", "0")) - self.wall()
        except ValueError:
            return
        if left > self.holding() + 0.05:
            self.hold_until = self.clock() + left
            self.hold_reason = control.get("hold_reason", "")
            self.ramp_from = self.hold_until


async def _sleep_or_stop(seconds: float, stop: asyncio.Event) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))
    except asyncio.TimeoutError:
        pass
