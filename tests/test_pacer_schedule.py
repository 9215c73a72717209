"""The even launch schedule (GCRA), with an injected clock: spacing, burst, shared by processes."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from tuibatch.limiter import Pacer, gcra_take
from tuibatch.limiter.gcra import interval_and_tau
from tuibatch.policy import Failure, Kind
from tuibatch.store import Store


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _429(delay: float | None = None) -> Failure:
    return Failure(Kind.TRANSIENT, "slow down", code=429, retry_delay=delay, rate_limited=True)


async def _launch_times(pacer: Pacer, clock: Clock, n: int) -> list[float]:
    """When *n* launches go if every worker asks as soon as the schedule lets it."""
    times = []
    while len(times) < n:
        wait = await pacer.try_request()
        if wait > 0:
            clock.t += wait
        else:
            times.append(clock.t)
    return times


def test_gcra_spaces_requests_one_interval_apart_after_a_small_burst() -> None:
    rate = 2.0  # 120 a minute
    interval, tau = interval_and_tau(rate)
    assert interval == 0.5 and tau == pytest.approx(0.5)  # a burst of 2, one second of quota
    tat, now, sent = 0.0, 100.0, []
    while len(sent) < 10:
        tat, wait = gcra_take(tat, now, rate)
        if wait > 0:
            now += wait
        else:
            sent.append(now)
    assert sent[:2] == [100.0, 100.0]  # the burst
    gaps = [b - a for a, b in zip(sent[1:], sent[2:], strict=False)]
    assert gaps == pytest.approx([0.5] * 8)
    # a refused request does not move the schedule
    assert gcra_take(tat, now, rate)[0] == tat


def test_a_worker_that_wakes_late_catches_up_half_an_interval_not_a_minute() -> None:
    rate = 1.0
    tat, wait = gcra_take(0.0, 10.0, rate)
    assert wait == 0
    # idle for a minute: no minute's worth of credit piles up, only the burst
    now, n = 70.0, 0
    while gcra_take(tat, now, rate)[1] == 0:
        tat, _ = gcra_take(tat, now, rate)
        n += 1
    assert n == 1


async def test_told_rpm_spreads_launches_evenly_whatever_the_enforcement() -> None:
    clock = Clock()
    pacer = Pacer(rpm=120, margin=0.98, clock=clock)
    times = await _launch_times(pacer, clock, 400)
    # in any 60 s: the told quota at most (98% of it, plus a one-second burst)
    j, most = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - 60:
            j += 1
        most = max(most, i - j + 1)
    assert 115 <= most <= 120
    # in any 2 s (a smooth bucket's burst): a little over 2 s of quota, never a minute's
    j, most = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - 2:
            j += 1
        most = max(most, i - j + 1)
    assert most <= 6


async def test_polls_are_not_charged_until_a_poll_is_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    pacer = Pacer(rpm=60, margin=1.0, clock=clock)
    stop = asyncio.Event()
    assert await pacer.try_request() == 0
    tat = pacer._local.tat
    for _ in range(50):
        await pacer.before_poll(stop)  # returns at once; the schedule is untouched
    assert pacer._local.tat == tat and not pacer.quota_limited()
    await pacer.on_failure(_429(), poll=False)  # a refused launch says nothing about polls
    assert not pacer.polls_paced
    with caplog.at_level(logging.WARNING, logger="tuibatch.limiter"):
        await pacer.before_poll(stop)
        await pacer.on_failure(_429())  # by default, a failure after a poll's turn is the poll's
        await pacer.on_failure(_429(), poll=True)
    assert pacer.polls_paced and pacer.quota_limited()
    warned = [r for r in caplog.records if "polls are rate-limited too" in r.getMessage()]
    assert len(warned) == 1
    # from now on a poll waits for its turn like a launch: the schedule is 1 a second
    assert await pacer.try_request() > 0


async def test_a_429_with_a_delay_holds_the_pool_and_one_without_does_not() -> None:
    clock = Clock()
    pacer = Pacer(rpm=60, clock=clock)
    await pacer.on_failure(_429())
    assert pacer.holding() == 0
    await pacer.on_failure(_429(7.5))
    assert pacer.holding() == pytest.approx(7.5)
    clock.t += 8
    assert pacer.holding() == 0


async def test_adaptive_concurrency_does_not_halve_on_a_429_the_pacer_explains() -> None:
    clock = Clock()
    told = Pacer(concurrency=16, rpm=60, adaptive=True, clock=clock)
    await told.on_failure(_429())
    assert told.limit == 16
    learning = Pacer(concurrency=16, adaptive=True, clock=clock)
    await learning.on_failure(_429())
    assert learning.limit == 16 and learning.rate is not None
    await learning.on_failure(Failure(Kind.TRANSIENT, "overloaded", code=503))
    assert learning.limit == 8  # an overloaded service is not a quota


async def test_two_processes_on_one_checkpoint_share_one_schedule(tmp_path: Path) -> None:
    """Two pacers, each with its own connection to one checkpoint, as two worker processes."""
    db = tmp_path / "items.tuibatch.db"
    a_store = await Store.open(db, create=True)
    b_store = await Store.open(db)
    try:
        clock = Clock()
        a = Pacer(rpm=60, margin=1.0, clock=clock)
        b = Pacer(rpm=60, margin=1.0, clock=clock)
        a.attach(a_store)
        b.attach(b_store)
        times: list[float] = []
        for i in range(40):
            p = (a, b)[i % 2]
            while (wait := await p.try_request()) > 0:
                clock.t += wait
            times.append(clock.t)
        # together, not each: one a second after a burst of one (half an interval of slack)
        assert times[-1] - times[0] == pytest.approx(39.0, abs=0.6)
        # a learned rate set by one process is adopted by the other on its next request
        c, d = Pacer(clock=clock), Pacer(clock=clock)
        c.attach(a_store)
        d.attach(b_store)
        clock.t += 100
        for _ in range(30):
            assert await c.try_request() == 0
            clock.t += 0.1
        await c.on_failure(_429())
        assert c.rate is not None and d.rate is None
        await d.try_request()
        assert d.rate == pytest.approx(c.rate)
        assert d.source == "learned"
    finally:
        await a_store.close()
        await b_store.close()


async def test_auto_concurrency_grows_for_long_runs_but_not_past_the_quota() -> None:
    """Runs that take minutes launch rarely: auto grows by the second while every slot is taken
    and nothing holds work back, and stops growing once the schedule is what limits."""
    clock = Clock()
    pacer = Pacer(concurrency=8, adaptive=True, max_concurrency=32, clock=clock)
    for _ in range(40):  # a minute-long run in every slot: a free worker looks every 0.25 s
        for _ in range(4):
            await pacer.slot_free(int(pacer.limit))  # (true when it just grew a slot)
            clock.t += 0.25
    assert pacer.limit == 32  # a slot a second, up to the ceiling
    told = Pacer(concurrency=8, rpm=60, adaptive=True, max_concurrency=32, clock=clock)
    for _ in range(40):
        assert await told.try_request() >= 0  # launches wait on the schedule now and then
        await told.slot_free(int(told.limit))
        clock.t += 0.25
    assert told.limit < 9  # the quota is the limit: more in flight would only wait
    await pacer.on_failure(Failure(Kind.TRANSIENT, "overloaded", code=503))
    assert pacer.limit == 16
    for _ in range(40):  # an overloaded service is not answered with a slot a second
        await pacer.slot_free(int(pacer.limit))
        clock.t += 0.25
    assert pacer.limit == 16
    fixed = Pacer(concurrency=8, clock=clock)
    for _ in range(40):
        assert not await fixed.slot_free(8)
        clock.t += 0.25
    assert fixed.limit == 8
