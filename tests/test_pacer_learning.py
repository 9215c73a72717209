"""Learning a quota nobody told us, against the simulator's own quota classes, on one clock.

A pool that always has work asks the pacer for a launch as soon as it may (at most
``POOL_RATE`` a second: what the workers manage unpaced); each launch is checked against a
per-minute quota enforced as a sliding window, a fixed window on the clock or a smooth
bucket with a 2 s burst, all reading the same injected clock. Refusals are the Interactions
shape: a 429 with no details and no delay. No sleeping: minutes of traffic take milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tuibatch.limiter import Pacer
from tuibatch.policy import Failure, Kind
from tuibatch.sim.quotas import make_limit

RPM = 120
POOL_RATE = 10.0


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@dataclass
class Log:
    accepted: list[float] = field(default_factory=list)
    refused: list[float] = field(default_factory=list)

    def used(self, t0: float, t1: float, rpm: float) -> float:
        """Share of the quota used in [t0, t1)."""
        n = sum(1 for t in self.accepted if t0 <= t < t1)
        return n / ((t1 - t0) / 60 * rpm)

    def refused_share(self, t0: float, t1: float) -> float:
        ok = sum(1 for t in self.accepted if t0 <= t < t1)
        bad = sum(1 for t in self.refused if t0 <= t < t1)
        return bad / max(1, ok + bad)


async def drive(
    enforcement: str,
    seconds: float,
    rpm: float = RPM,
    start: float = 1_000_030.0,
    told: float | None = None,
) -> Log:
    clock = Clock(start)
    quota = make_limit(enforcement, rpm, burst=2.0, clock=clock)
    pacer = Pacer(concurrency=32, rpm=told, clock=clock)
    rate_429 = Failure(Kind.TRANSIENT, "too_many_requests", code=429, rate_limited=True)
    log = Log()
    end = start + seconds
    while clock.t < end:
        wait = await pacer.try_request()
        if wait > 0:
            clock.t += wait
            continue
        if quota.take(1.0) > 0:
            log.refused.append(clock.t - start)
            await pacer.on_failure(rate_429)
        else:
            log.accepted.append(clock.t - start)
        clock.t += 1.0 / POOL_RATE
    return log


@pytest.mark.parametrize("enforcement", ["sliding", "fixed", "bucket"])
async def test_a_told_rate_is_safe_under_every_enforcement(enforcement: str) -> None:
    log = await drive(enforcement, 300.0, told=RPM)
    assert log.refused == []
    assert log.used(60, 300, RPM) >= 0.97


@pytest.mark.parametrize("enforcement", ["sliding", "fixed", "bucket"])
async def test_the_launch_rate_is_learned_within_two_minutes(enforcement: str) -> None:
    log = await drive(enforcement, 600.0)
    # after the first two minutes: at least 90% of the quota used, at most 2% refused
    assert log.used(120, 600, RPM) >= 0.90, log.used(120, 600, RPM)
    assert log.refused_share(120, 600) <= 0.02, log.refused_share(120, 600)
    # and never more than the quota accepted (the simulator's enforcement, checked)
    assert log.used(120, 600, RPM) <= 1.02


async def test_a_small_quota_is_learned_too() -> None:
    """One a second: the first estimate is far too high, and comes down in a few cuts."""
    low = await drive("bucket", 300.0, rpm=60)
    assert low.used(120, 300, 60) >= 0.90
