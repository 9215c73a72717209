"""The launch schedule: GCRA (the generic cell rate algorithm, a leaky bucket as a meter).

One request every ``interval`` seconds, with ``tau`` seconds of slack for a small burst:
the state is a single number, the *theoretical arrival time* (TAT) of the next request. A
request may go at ``now`` when ``tat - tau <= now``; it then moves the TAT one interval
on. Requests spread evenly like this are safe under a sliding window, a fixed window on the
clock and a smooth token bucket alike, as long as the rate is a little under the quota and
the burst under the bucket's (a couple of seconds of quota).

Pure functions of the time they are given: the in-process schedule and the one shared by
every process on a checkpoint (:mod:`.shared`) run the same arithmetic.
"""

from __future__ import annotations

import math

#: the slack a schedule allows: about this many seconds of requests may go back to back
BURST_SECONDS = 1.0
#: a TAT further ahead than this is stale (a clock from another boot): start afresh
STALE_AHEAD = 120.0


def interval_and_tau(rate: float) -> tuple[float, float]:
    """(seconds between requests, burst slack) for *rate* requests per second."""
    interval = 1.0 / rate
    burst = max(1, round(rate * BURST_SECONDS))
    if burst < 2:
        # under two a second: no slack at all. A bucket that holds two seconds of such a
        # quota holds one request, and refuses any two sent closer than one interval
        return interval, 0.0
    return interval, (burst - 1) * interval


def gcra_take(tat: float, now: float, rate: float) -> tuple[float, float]:
    """(new TAT, wait): wait 0 means one request goes now and the TAT moved on.

    A positive wait is how long until the request could go; the TAT is unchanged then.
    """
    if not rate or rate <= 0 or math.isinf(rate):
        return tat, 0.0
    interval, tau = interval_and_tau(rate)
    if tat > now + STALE_AHEAD + tau:
        tat = now
    wait = tat - tau - now
    if wait > 1e-9:
        return tat, wait
    return max(tat, now) + interval, 0.0


class LocalSchedule:
    """A GCRA schedule kept in this process."""

    def __init__(self) -> None:
        self.tat = 0.0

    def take(self, now: float, rate: float) -> float:
        self.tat, wait = gcra_take(self.tat, now, rate)
        return wait
