"""The pool's own record of what it sent: a request window on :class:`SlidingWindow`."""

from __future__ import annotations

from ..ratewindow import SlidingWindow

#: no more than a twelfth of a minute's requests (plus a quarter) in any 5 s: no bursts
BURST_SPAN = 5.0


def burst_cap(limit: float) -> float:
    return max(1.0, limit / 12 * 1.25)


class Window:
    """Requests sent in this process; *limit* > 0 caps them in any *span* s (and in any 5 s)."""

    def __init__(self, limit: float = 0.0, span: float = 61.0):
        self.limit = limit
        self.span = span
        self._span = SlidingWindow(span)
        self._burst = SlidingWindow(BURST_SPAN)

    def count(self, now: float, span: float = 60.0) -> int:
        """Requests sent in the last *span* seconds (at most the window's span)."""
        return int(self._span.used_since(now, min(span, self.span)))

    def delay(self, now: float) -> float:
        """Seconds until one more request fits under the limit; 0 when it fits now."""
        if self.limit <= 0:
            return 0.0
        return max(
            self._span.wait_for(now, 1.0, self.limit),
            self._burst.wait_for(now, 1.0, burst_cap(self.limit)),
        )

    def take(self, now: float) -> None:
        self._span.add(now)
        self._burst.add(now)

    def times(self, now: float) -> list[float]:
        """When each request inside the window was sent, oldest first."""
        return self._span.times(now)

    def learned_from(self, sent: Window, now: float) -> Window:
        """This window with *sent*'s history: a limit learned now counts what was already sent."""
        for t in sent.times(now):
            self.take(t)
        return self
