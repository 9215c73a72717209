"""A sliding window of weighted events: the one rate-window implementation.

Used wherever "how much happened in the last *span* seconds, and how long until
*weight* more fits under *limit*" is the question: the simulator's request and token
quotas, and the pacer's in-process record of what it sent. Time is passed in, never
read, so tests drive it with any clock.
"""

from __future__ import annotations

from collections import deque


class SlidingWindow:
    def __init__(self, span: float = 60.0) -> None:
        if span <= 0:
            raise ValueError("span must be positive")
        self.span = span
        self._events: deque[tuple[float, float]] = deque()
        self._sum = 0.0

    def _trim(self, now: float) -> None:
        cutoff = now - self.span
        events = self._events
        while events and events[0][0] <= cutoff:
            self._sum -= events.popleft()[1]
        if not events:
            self._sum = 0.0  # no float drift survives an empty window

    def used(self, now: float) -> float:
        """Total weight inside the window ending at *now*."""
        self._trim(now)
        return self._sum

    def used_since(self, now: float, seconds: float) -> float:
        """Total weight of the events in the last *seconds* (at most the span)."""
        self._trim(now)
        cutoff = now - seconds
        return sum(w for t, w in self._events if t > cutoff)

    def wait_for(self, now: float, weight: float, limit: float) -> float:
        """Seconds until *weight* more fits under *limit*; 0 when it fits now.

        A weight larger than the limit fits once the window is empty (it could never fit
        otherwise, and refusing it forever would hang the caller).
        """
        self._trim(now)
        weight = min(weight, limit)
        need = self._sum + weight - limit
        if need <= 1e-9:
            return 0.0
        for t, w in self._events:
            need -= w
            if need <= 1e-9:
                return max(0.0, t + self.span - now)
        return self.span

    def add(self, now: float, weight: float = 1.0) -> None:
        self._trim(now)
        self._events.append((now, weight))
        self._sum += weight

    def times(self, now: float) -> list[float]:
        """When each event inside the window happened, oldest first."""
        self._trim(now)
        return [t for t, _ in self._events]
