"""When to look at a run: the first poll aimed past the runs' length under a quota, then backoff."""

from __future__ import annotations

from ..limiter import Pacer
from .config import EngineConfig


class PollSchedule:
    """Learns how long runs take, from the polls that find them still going."""

    def __init__(self, cfg: EngineConfig, pacer: Pacer) -> None:
        self.cfg = cfg
        self.pacer = pacer
        #: when to poll a fresh run first, under a quota
        self._first_target: float | None = None

    def first_delay(self) -> float:
        """Under a request quota a poll costs as much as a launch: aim just past the runs' length.

        Without a quota an early poll costs nothing but a request, and waiting would leave
        worker slots idle, so the usual schedule applies.
        """
        if self._first_target is None or not self.pacer.quota_limited():
            return self.cfg.poll_initial
        return min(self.cfg.poll_max, self._first_target)

    def learn(self, elapsed: float, terminal: bool, first: bool) -> None:
        """A poll that finds a run still going proves runs take longer than *elapsed*;
        a first poll that finds it over lets the target creep back down."""
        if not terminal:
            self._first_target = max(self._first_target or 0.0, 1.1 * elapsed)
        elif first and self._first_target is not None:
            self._first_target = max(self.cfg.poll_initial, 0.998 * self._first_target)

    def next_interval(self, interval: float) -> float:
        """The wait after a poll that found the run going, growing to ``poll_max``."""
        if not interval:
            return 0.0
        return min(self.cfg.poll_max, max(interval, 0.05) * self.cfg.poll_factor)
