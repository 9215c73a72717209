"""Learning a request quota nobody told us: AIMD of the launch rate.

A 429 (with or without details: the Interactions endpoint sends none) means "slower". The
learner keeps a rate in requests per second and:

* on a rate signal, at most once per ``COOLDOWN`` seconds, cuts it: to ``BETA`` of itself,
  but never below ``FLOOR`` of, nor above, what the service actually accepted from us lately
  (accepted requests over the last minute, or since we started if that is shorter). While
  we saturate a quota, what it accepts *is* the quota, however it is enforced: so a burst
  that filled a sliding window does not drive the rate to nothing, and a first guess that
  is far too high comes down in one step;
* while the pool is held back by the schedule and no 429 came for a while, raises it by
  ``FAST`` a second up to ``NEAR`` of the last estimate (the lower of what was accepted and
  ``BETA`` of the rate first refused; none when nearly everything was refused, as while a
  window filled earlier drains), then by ``SLOW`` a second past
  it (probing for a quota that grew), so the saw-tooth is long and the 429s few.

Time is passed in: tests drive it with any clock.
"""

from __future__ import annotations

from ..ratewindow import SlidingWindow

COOLDOWN = 2.0
BETA = 0.9
FLOOR = 0.9
FAST = 0.01
SLOW = 0.0005
NEAR = 0.95
#: a rate never goes below this (requests per second): one a minute
MIN_RATE = 1.0 / 60
SPAN = 60.0
#: 429s less than this apart are one burst
EPISODE = 10.0


class RateLearner:
    def __init__(self) -> None:
        self.rate: float | None = None  # requests per second; None until the first 429
        self.estimate: float | None = None  # what the service accepted when it last refused
        self.changed = 0.0  # when the rate was last set (for sharing across processes)
        self._started: float | None = None
        self._last_cut = -1e18
        self._last_raise: float | None = None
        self.sent = SlidingWindow(SPAN)
        self.refused = SlidingWindow(SPAN)

    def on_sent(self, now: float) -> None:
        if self._started is None:
            self._started = now
        self.sent.add(now)

    def accepted_rate(self, now: float) -> float:
        """Requests per second the service accepted from us over the last minute (or less)."""
        span = min(SPAN, max(1.0, now - (self._started if self._started is not None else now)))
        accepted = self.sent.used(now) - self.refused.used(now)
        return max(0.0, accepted) / span

    def on_refused(self, now: float, *, counted: bool = True) -> bool:
        """A rate signal; whether the rate was cut. *counted*: the refused request was one of
        ours on the schedule (a poll refused before polls were paced was not)."""
        if counted:
            self.refused.add(now)
        if now - self._last_cut < COOLDOWN:
            return False
        est = max(MIN_RATE, self.accepted_rate(now))
        current = self.rate if self.rate is not None else float("inf")
        if current > est:  # down towards what was accepted, but no lower than FLOOR of it
            new = max(est * FLOOR, min(current * BETA, 2 * est))
        else:  # already under what was accepted: others share the quota, or it shrank
            new = current * BETA
        self.rate = max(MIN_RATE, new)
        # growth is fast only back to just under the lower of what was accepted and the rate
        # that was first refused in this burst of 429s (a fixed window can accept twice its
        # quota in one 60 s span; later cuts of the same burst say nothing new)
        if self.estimate is None or now - self._last_cut > EPISODE:
            # ... but only when most of what we sent was accepted: while a window filled
            # earlier refuses everything, what it accepts says nothing about the quota
            sent = self.sent.used(now)
            reliable = self.refused.used(now) <= 0.5 * sent
            self.estimate = min(est, current * BETA) if reliable else None
        self._last_cut = now
        self._last_raise = now
        self.changed = now
        return True

    def on_limited(self, now: float) -> None:
        """The schedule made a request wait: the rate, not the work, is the limit; probe up."""
        if self.rate is None:
            return
        last = self._last_raise if self._last_raise is not None else now
        dt = min(5.0, max(0.0, now - last))
        self._last_raise = now
        if dt <= 0 or now - self._last_cut < COOLDOWN:
            return
        near = self.estimate is not None and self.rate >= NEAR * self.estimate
        self.rate *= 1.0 + (SLOW if near else FAST) * dt
        self.changed = now

    def adopt(self, rate: float, changed: float) -> None:
        """Another process on the checkpoint set the shared rate later than we did."""
        if changed > self.changed:
            self.rate, self.changed = rate, changed
