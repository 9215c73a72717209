"""Learning a request quota nobody told us, from what the service accepted when it refused.

A 429 (with or without details: the Interactions endpoint sends none) says "faster than the
quota". The learner does not halve on it: it *measures* the quota. Whatever the enforcement,
the requests the service accepted from us over the last minute, at the moment it refuses one
while we keep it busy, are the quota (or just over it):

* **sliding window**: it refuses exactly when the last 60 s hold ``limit`` accepted requests;
* **fixed window** (calendar minutes): a minute fills; paced evenly, what the previous minute
  accepted is more than 60 s old by then, so the count is ``limit`` (up to twice that just
  after a start-up burst, which the 429s up to the minute's end correct);
* **smooth bucket**: a minute of refill plus the bucket's burst (``limit`` plus a few seconds).

So a 429 sets the rate to ``MARGIN`` × accepted / (``SPAN`` + ``BURST_GUESS``) a second (the
*floor*: over a full minute the ``BURST_GUESS`` seconds are a bucket's burst, and a 3% margin
under a window). The **first** 429 cannot tell a window that filled in 30 s from a bucket that
emptied in 3, so it divides by the time since the first request instead (+ the burst guess):
right for a bucket, too high for a window; measured over less than ``PROVISIONAL`` seconds
it is a guess, and the rate grows fast (``FAST`` a second) until the next 429. Every later 429
cuts to the floor or by ``BETA``, whichever is higher: a window that keeps refusing is
followed down in steps, a bucket refused by a rate a little too high is not dropped to a floor
measured while it was not kept busy. A 429 never raises the rate, so the 429s that come while
a window filled earlier drains change little.

While the schedule holds requests back and no 429 comes, the rate grows slowly and then
faster (``PROBE_A`` of it a minute, plus ``PROBE_B`` a minute per minute), probing for a quota
that grew or was under-estimated; the next 429 measures again.

Polls are recorded too, and count once the pacer learned that they are rate-limited. Several
processes on one checkpoint share the quota: what the service accepted from the others
(``others``, kept up to date by the pacer through the checkpoint) counts too.
Time is passed in: tests drive it with any clock.
"""

from __future__ import annotations

import math

from ..ratewindow import SlidingWindow

SPAN = 60.0
#: seconds of quota a smooth bucket may let through at once (the simulator's: 2 s)
BURST_GUESS = 2.0
#: the rate is set to this share of the quota measured
MARGIN = 0.98
#: after the first, a 429 cuts the rate to the floor measured, or by this if that is higher
BETA = 0.9
#: growth while held back: this share of the base rate a minute ...
PROBE_A = 0.005
#: ... plus this much more a minute for each minute since the last 429 ...
PROBE_B = 0.005
#: ... where a "minute" is at least the time these many requests take at the base rate
PROBE_REQUESTS = 60.0
#: growth is counted only while the schedule holds requests back, at most this much per look
PROBE_STEP = 5.0
#: a quota first measured over less than this many seconds is provisional: the rate grows by
#: ``FAST`` a second (compounded) while held back, until a 429 measures it again
PROVISIONAL = 20.0
FAST = 0.03
#: in the first ``SETTLE`` seconds the rate is cut at most once per ``COOLDOWN`` seconds: a
#: bucket that holds one request refuses the schedule's own slack, which measures nothing
COOLDOWN = 5.0
SETTLE = 10.0
#: a rate never goes below this (requests per second): one a minute
MIN_RATE = 1.0 / 60


class RateLearner:
    def __init__(self) -> None:
        #: requests per second set at the last 429 (None: not paced yet)
        self.base: float | None = None
        #: when the base was set (here, or by another process on the checkpoint)
        self.changed = 0.0
        #: seconds held back by the schedule since then (the probe's clock)
        self.probed = 0.0
        #: the base was measured over only the first seconds: a bucket's burst may be most of
        #: what was accepted, so it is a guess, and the probe is fast until the next 429
        self.provisional = False
        #: polls count against the quota (a poll was answered 429)
        self.polls_count = False
        self._recount = False
        #: what the service accepted over the last minute from the other processes on the
        #: checkpoint (they share the quota and the schedule)
        self.others = 0.0
        #: how many other processes reported lately
        self.peers = 0
        self._started: float | None = None
        self._last_limited: float | None = None
        #: launches accepted, when their answer came (never before the service counted them:
        #: a request recorded when it was sent can leave our window before the service's)
        self.launches = SlidingWindow(SPAN)
        self.polls = SlidingWindow(SPAN)
        self.refused_launches = SlidingWindow(SPAN)
        self.refused_polls = SlidingWindow(SPAN)

    # ---------------------------------------------------------------- state

    @property
    def rate(self) -> float | None:
        """Requests per second in force: the base, grown by the probe since the last 429."""
        if self.base is None:
            return None
        if self.provisional:
            return self.base * math.exp(FAST * self.probed)
        # a minute of probing, or the time the base rate takes to send PROBE_REQUESTS if
        # longer: one 429 per probe cycle is then the same small share at any quota
        m = self.probed / max(60.0, PROBE_REQUESTS / self.base)
        return self.base * (1.0 + PROBE_A * m + PROBE_B * m * m)

    def accepted(self, now: float) -> float:
        """Requests the quota counts that the service accepted from us over the last minute."""
        n = self.launches.used(now)
        if self.polls_count:  # polls: sent minus refused (no word comes when one is answered)
            n += self.polls.used(now) - self.refused_polls.used(now)
        return max(0.0, n)

    def floor(self, now: float) -> float:
        """The quota measured at a 429, in requests per second: accepted over the last
        minute, ours and the other processes'."""
        return (self.accepted(now) + self.others) / (SPAN + BURST_GUESS)

    def first_guess(self, now: float) -> float:
        """At the first 429: accepted over the time since we started (a bucket's refill).
        Seconds after a start the others' counts may not be in yet: each is taken to have
        had as many accepted as this process, if that is more."""
        own = self.accepted(now)
        total = max(own + self.others, own * (1 + self.peers))
        return total / (self._span(now) + BURST_GUESS)

    def _span(self, now: float) -> float:
        start = self._started if self._started is not None else now
        return min(SPAN, max(0.0, now - start))

    # ------------------------------------------------------------- feedback

    def on_sent(self, now: float, *, poll: bool = False) -> None:
        if self._started is None:
            self._started = now
        if poll:
            self.polls.add(now)

    def on_accepted(self, now: float) -> None:
        """A launch was answered (not 429)."""
        self.launches.add(now)

    def count_polls(self) -> None:
        """Polls turn out to count against the quota: the next 429 measures them too."""
        if not self.polls_count:
            self.polls_count = True
            self._recount = True

    def on_refused(self, now: float, *, poll: bool = False, at: float | None = None) -> bool:
        """A 429 read at *now* for a request sent *at*: measure the quota as of when it was
        sent; whether the rate in force was set (or went down)."""
        (self.refused_polls if poll else self.refused_launches).add(now)
        at = now if at is None else min(at, now)
        current = self.rate
        self._last_limited = now
        span = self._span(at)
        if current is None or self._recount:  # first: a window's count, or a bucket's refill
            self._set(MARGIN * self.first_guess(at), now, provisional=span < PROVISIONAL)
            self._recount = False
            return True
        if now - self.changed < COOLDOWN and span < SETTLE:
            return False  # seconds into a burst, the 429s of one moment measure one quota
        floor = MARGIN * self.floor(at)
        if floor < current:
            self._set(max(floor, BETA * current), now, provisional=False)
            return True
        # refused below what was measured: a window filled earlier still drains, or a burst;
        # stop growing here, but do not cut
        if self.probed > 0:
            self._set(current, now, provisional=False)
        return False

    def _set(self, rate: float, now: float, *, provisional: bool) -> None:
        self.base, self.probed, self.changed = max(MIN_RATE, rate), 0.0, now
        self.provisional = provisional

    def on_limited(self, now: float) -> None:
        """The schedule made a request wait: the rate, not the work, is the limit; probe up."""
        if self.base is None:
            return
        last = self._last_limited if self._last_limited is not None else now
        self._last_limited = now
        self.probed += min(PROBE_STEP, max(0.0, now - last))

    def adopt(self, rate: float, changed: float) -> None:
        """Another process on the checkpoint measured the quota later than we did."""
        if changed > self.changed and rate > 0:
            self._set(rate, changed, provisional=self._span(changed) < PROVISIONAL)
