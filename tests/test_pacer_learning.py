"""Learning a quota nobody told us, against the simulator's own quota classes, on one clock.

A discrete-event model of the engine's pool drives the real :class:`Pacer`: ``CONCURRENCY``
workers, each launching an item, polling it every second until its ``RUN`` seconds are over
(a poll that finds it done ends the item), and starting the next. Every request asks the pacer
first (a launch, or a poll); launches, and polls when the quota counts them, are checked
against a per-minute quota enforced as a sliding window, a fixed window on the clock or a
smooth bucket with a 2 s burst, all reading the same injected clock. Refusals are the
Interactions shape: a 429 with no details and no delay; a refused request is tried again after
the engine's backoff (doubling from 1 s, as ``policy.Backoff`` without the jitter).
No sleeping: minutes of traffic take milliseconds, and every run is the same.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tuibatch.limiter import Pacer
from tuibatch.policy import Failure, Kind
from tuibatch.sim.quotas import make_limit
from tuibatch.store import Store

RPM = 120
CONCURRENCY = 8
RUN = 2.0
POLL = 1.0
#: a worker's own time between two requests (the client's and the network's)
STEP = 0.01
ENFORCEMENTS = ["sliding", "fixed", "bucket"]


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@dataclass
class Log:
    accepted: list[float] = field(default_factory=list)  # what the quota counted
    launches: list[float] = field(default_factory=list)
    refused_launches: list[float] = field(default_factory=list)
    refused_polls: list[float] = field(default_factory=list)

    def used(self, t0: float, t1: float, rpm: float) -> float:
        """Share of the quota used in [t0, t1)."""
        n = sum(1 for t in self.accepted if t0 <= t < t1)
        return n / ((t1 - t0) / 60 * rpm)

    def refused_share(self, t0: float, t1: float) -> float:
        """Share of launches in [t0, t1) answered 429."""
        sent = sum(1 for t in self.launches if t0 <= t < t1)
        bad = sum(1 for t in self.refused_launches if t0 <= t < t1)
        return bad / max(1, sent)


RATE_429 = Failure(Kind.TRANSIENT, "too_many_requests", code=429, rate_limited=True)


async def drive(
    enforcement: str,
    seconds: float,
    *,
    rpm: float = RPM,
    polls_count: bool = False,
    start: float = 1_000_030.0,
    told: float | None = None,
    concurrency: int = CONCURRENCY,
    stores: Sequence[Store] = (),
) -> Log:
    """*stores*: one worker process per store (each with *concurrency* workers), all on one
    checkpoint; none: one process, nothing shared."""
    clock = Clock(start)
    quota = make_limit(enforcement, rpm, burst=2.0, clock=clock)
    pacers = [Pacer(concurrency=concurrency, rpm=told, clock=clock) for _ in stores or [None]]
    for pacer, store in zip(pacers, stores, strict=False):
        pacer.attach(store)
    log = Log()
    end = start + seconds
    # (when, worker, what, launched at, 429s in a row)
    events = [(start, w, "launch", 0.0, 0) for w in range(concurrency * len(pacers))]
    heapq.heapify(events)
    while events:
        t, w, what, launched, refusals = heapq.heappop(events)
        if t >= end:
            break
        clock.t = t
        pacer = pacers[w % len(pacers)]
        poll = what == "poll"
        wait = await pacer.try_request(poll=poll)
        if wait > 0:  # the engine sleeps at most a second at a time, then asks again
            heapq.heappush(events, (t + min(wait, 1.0), w, what, launched, refusals))
            continue
        if not poll:
            log.launches.append(t - start)
        if (not poll or polls_count) and quota.take(1.0) > 0:
            (log.refused_polls if poll else log.refused_launches).append(t - start)
            await pacer.on_failure(RATE_429, poll=poll)
            backoff = min(60.0, 2.0**refusals) * 0.75
            heapq.heappush(events, (t + backoff, w, what, launched, refusals + 1))
            continue
        if not poll or polls_count:
            log.accepted.append(t - start)
        if not poll:
            pacer.on_success(0.0, 0, 0)
            heapq.heappush(events, (t + POLL, w, "poll", t, 0))
        elif t - launched >= RUN:
            heapq.heappush(events, (t + STEP, w, "launch", 0.0, 0))
        else:
            heapq.heappush(events, (t + POLL, w, "poll", launched, 0))
    return log


@pytest.mark.parametrize("polls_count", [False, True], ids=["polls-free", "polls-counted"])
@pytest.mark.parametrize("enforcement", ENFORCEMENTS)
async def test_a_told_rate_is_safe_under_every_enforcement(
    enforcement: str, polls_count: bool
) -> None:
    log = await drive(enforcement, 300.0, told=RPM, polls_count=polls_count)
    # polls counted: the first poll refused is how the pacer learns that they count; until
    # then they were not paced, and the first minute has 429s
    if not polls_count:
        assert log.refused_launches == log.refused_polls == []
    assert log.refused_share(60, 300) == 0
    assert [t for t in log.refused_polls if t >= 60] == []
    # (polls counted: a sliding window still echoes the unpaced first minute a little)
    assert log.used(60, 300, RPM) >= (0.93 if polls_count else 0.95)


@pytest.mark.parametrize("polls_count", [False, True], ids=["polls-free", "polls-counted"])
@pytest.mark.parametrize("enforcement", ENFORCEMENTS)
@pytest.mark.parametrize("start", [1_000_030.0, 1_000_059.0], ids=["mid-minute", "minute-end"])
async def test_the_quota_is_learned_within_two_minutes(
    enforcement: str, polls_count: bool, start: float
) -> None:
    log = await drive(enforcement, 600.0, polls_count=polls_count, start=start)
    # after the first two minutes: at least 90% of the quota used, at most 2% of launches refused
    used, refused = log.used(120, 600, RPM), log.refused_share(120, 600)
    assert used >= 0.90, (used, refused)
    assert refused <= 0.02, (used, refused)
    # and no more than the quota accepted (the simulator's enforcement, checked)
    assert used <= 1.02


@pytest.mark.parametrize("enforcement", ENFORCEMENTS)
async def test_a_quota_learned_stays_learned_for_long(enforcement: str) -> None:
    """Twenty minutes: the probe for a grown quota costs at most 2% of launches refused."""
    log = await drive(enforcement, 1200.0)
    assert log.used(120, 1200, RPM) >= 0.93
    assert log.refused_share(120, 1200) <= 0.02


@pytest.mark.parametrize("enforcement", ENFORCEMENTS)
async def test_a_small_quota_is_learned_too(enforcement: str) -> None:
    """Thirty a minute, a tenth of what the pool launches unpaced (a 2 s bucket holds one)."""
    log = await drive(enforcement, 600.0, rpm=30)
    assert log.used(120, 600, 30) >= 0.90
    assert log.refused_share(120, 600) <= 0.02


async def test_many_workers_do_not_change_what_is_learned() -> None:
    """Thirty-two in flight against a smooth bucket (the issue's `--concurrency 32` case)."""
    log = await drive("bucket", 420.0, concurrency=32)
    assert log.used(120, 420, RPM) >= 0.90
    assert log.refused_share(120, 420) <= 0.02


@pytest.mark.parametrize("enforcement", ENFORCEMENTS)
async def test_three_processes_on_one_checkpoint_learn_the_whole_quota(
    enforcement: str, tmp_path: Path
) -> None:
    """Each process sees a third of what the service accepts; the checkpoint tells it the rest,
    so the rate they share is the quota's, not a third of it."""
    db = tmp_path / "items.tuibatch.db"
    stores = [await Store.open(db, create=True)]
    stores += [await Store.open(db) for _ in range(2)]
    try:
        log = await drive(enforcement, 420.0, concurrency=4, stores=stores)
    finally:
        for store in stores:
            await store.close()
    assert log.used(120, 420, RPM) >= 0.90
    assert log.refused_share(120, 420) <= 0.02
