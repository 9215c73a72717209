"""Per-minute quotas, enforced one of three ways, and the 429 bodies Google sends for them.

Google does not document how a per-minute quota is enforced, so the simulator offers three:

- ``sliding``: at most ``limit`` in any 60 s window (``tuibatch.ratewindow.SlidingWindow``);
- ``fixed``: at most ``limit`` per calendar minute (windows aligned to the minute on the clock);
- ``bucket``: a smooth token bucket refilling ``limit/60`` per second that holds
  ``burst_seconds`` of quota (2 s by default): a minute's allowance sent at once is refused.

Each limit reads time from its own ``clock`` callable, so tests drive it without sleeping.
``take(weight)`` either records the weight and returns 0, or returns the seconds until it would
fit (recording nothing: a refused request does not use quota).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, Protocol

from tuibatch.ratewindow import SlidingWindow
from tuibatch.sim.errors import ApiError, delay_text, quota_error, violation

Clock = Callable[[], float]
SPAN = 60.0

PER_MINUTE_QUOTA = "GenerateRequestsPerMinutePerProjectPerModel"
PER_DAY_QUOTA = "GenerateRequestsPerDayPerProjectPerModel"
TOKENS_PER_MINUTE_QUOTA = "GenerateContentInputTokensPerModelPerMinute"
_METRIC = "generativelanguage.googleapis.com/generate_content_{tier}_{what}"
RATE_LIMITS_DOC = "https://ai.google.dev/gemini-api/docs/rate-limits"


class Limit(Protocol):
    limit: float

    def take(self, weight: float = 1.0) -> float: ...


class SlidingLimit:
    """At most ``limit`` in any ``span`` seconds."""

    def __init__(self, limit: float, *, span: float = SPAN, clock: Clock = time.monotonic) -> None:
        self.limit = limit
        self.clock = clock
        self.window = SlidingWindow(span)

    def take(self, weight: float = 1.0) -> float:
        now = self.clock()
        delay = self.window.wait_for(now, weight, self.limit)
        if delay > 0:
            return delay
        self.window.add(now, weight)
        return 0.0


class FixedLimit:
    """At most ``limit`` per window; windows start at multiples of ``span`` on the clock."""

    def __init__(self, limit: float, *, span: float = SPAN, clock: Clock = time.time) -> None:
        self.limit = limit
        self.span = span
        self.clock = clock
        self._index: int | None = None
        self._used = 0.0

    def take(self, weight: float = 1.0) -> float:
        now = self.clock()
        index = math.floor(now / self.span)
        if index != self._index:
            self._index, self._used = index, 0.0
        need = min(weight, self.limit)  # an oversized request fits an empty window
        if self._used > 0 and self._used + need > self.limit + 1e-9:
            return max((index + 1) * self.span - now, 1e-3)
        self._used += weight
        return 0.0


class BucketLimit:
    """Token bucket: refills ``limit/span`` per second, holds ``burst`` seconds of it (>= 1)."""

    def __init__(
        self,
        limit: float,
        *,
        span: float = SPAN,
        burst: float = 2.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.limit = limit
        self.rate = limit / span
        self.capacity = max(1.0, self.rate * burst)
        self.clock = clock
        self._tokens = self.capacity
        self._last: float | None = None

    def take(self, weight: float = 1.0) -> float:
        now = self.clock()
        if self._last is not None:
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now
        need = min(weight, self.capacity)  # an oversized request waits for a full bucket
        if self._tokens + 1e-9 >= need:
            self._tokens -= weight
            return 0.0
        return max((need - self._tokens) / self.rate, 1e-3)


def make_limit(
    enforcement: str, limit: float, *, burst: float = 2.0, clock: Clock | None = None
) -> Limit:
    if enforcement == "sliding":
        return SlidingLimit(limit, clock=clock or time.monotonic)
    if enforcement == "fixed":
        return FixedLimit(limit, clock=clock or time.time)
    if enforcement == "bucket":
        return BucketLimit(limit, burst=burst, clock=clock or time.monotonic)
    raise ValueError(f"unknown enforcement {enforcement!r}")


def _exceeded(items: list[tuple[str, int]], model: str | None, delay: float | None) -> str:
    lines = [
        "You exceeded your current quota, please check your plan and billing details."
        f" For more information on this error, head to: {RATE_LIMITS_DOC}."
    ]
    for metric, value in items:
        lines.append(f"* Quota exceeded for metric: {metric}, limit: {value}, model: {model}")
    if delay is not None:
        lines.append(f"Please retry in {delay:.3f}s.")
    return "\n".join(lines)


def metric(what: str, *, free: bool = False) -> str:
    return _METRIC.format(tier="free_tier" if free else "paid_tier", what=what)


def multi_quota_error(model: str | None, delay: float = 47.43) -> ApiError:
    """One 429 listing three violations: per-minute tokens, per-minute and per-day requests."""
    found = [
        (TOKENS_PER_MINUTE_QUOTA, metric("input_token_count"), 1_000_000),
        (PER_MINUTE_QUOTA, metric("requests"), 1000),
        (PER_DAY_QUOTA, metric("requests"), 10_000),
    ]
    violations = [violation(q, metric=m, value=v, model=model) for q, m, v in found]
    message = _exceeded([(m, v) for _, m, v in found], model, delay)
    return quota_error(violations, delay_text(delay), message)


def free_tier_error(model: str | None, delay: float = 37025.72) -> ApiError:
    """The free tier has no quota for this model: ``limit: 0`` (waiting does not help)."""
    found = [
        (PER_DAY_QUOTA + "-FreeTier", metric("requests", free=True)),
        (PER_MINUTE_QUOTA + "-FreeTier", metric("requests", free=True)),
    ]
    violations = [violation(q, metric=m, value=0, model=model) for q, m in found]
    message = _exceeded([(m, 0) for _, m in found], model, delay)
    return quota_error(
        violations, delay_text(delay), message, error_code="quota_exceeded",
        interactions_message=message,
    )  # fmt: skip


def per_day_error(quota_id: str, retry_delay: str | None, message: str | None) -> ApiError:
    return quota_error(
        [violation(quota_id)],
        retry_delay,
        message or "You exceeded your current quota: requests per day.",
        error_code="quota_exceeded",
        interactions_message=message or "You exceeded your daily quota.",
    )


class Quotas:
    """The requests-per-minute and input-tokens-per-minute quotas of one simulator."""

    def __init__(
        self,
        *,
        rpm: int | None,
        tpm: int | None,
        enforcement: str = "sliding",
        polls_count: bool = True,
        burst: float = 2.0,
        clock: Clock | None = None,
    ) -> None:
        self.rpm = rpm
        self.tpm = tpm
        self.enforcement = enforcement
        self.polls_count = polls_count
        self.requests = make_limit(enforcement, rpm, burst=burst, clock=clock) if rpm else None
        self.tokens = make_limit(enforcement, tpm, burst=burst, clock=clock) if tpm else None

    def counts(self, route: str) -> bool:
        """Launches always count against the request quota; polls only if ``polls_count``."""
        return route in ("create", "generate") or self.polls_count

    def check_request(self, route: str, model: str | None = None) -> None:
        if self.requests is None or not self.counts(route):
            return
        delay = self.requests.take(1.0)
        if delay > 0:
            raise self._error(PER_MINUTE_QUOTA, "requests", self.rpm, model, delay)

    def check_tokens(self, tokens: int, model: str | None = None) -> None:
        if self.tokens is None:
            return
        delay = self.tokens.take(float(tokens))
        if delay > 0:
            raise self._error(TOKENS_PER_MINUTE_QUOTA, "input_token_count", self.tpm, model, delay)

    @staticmethod
    def _error(
        quota_id: str, what: str, limit: int | None, model: str | None, delay: float
    ) -> ApiError:
        name = metric(what)
        found: list[dict[str, Any]] = [violation(quota_id, metric=name, value=limit, model=model)]
        return quota_error(found, delay_text(delay), _exceeded([(name, limit or 0)], model, delay))
