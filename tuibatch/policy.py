"""What to do about a failure: retry the item, fail the item, or pause the whole batch.

Backends translate their exceptions into :class:`Failure`; only this module decides what a
failure means, so the rules live in one table that tests can read (:func:`judge`). The error
bodies it judges are read by :mod:`tuibatch.error_body`, in every shape the SDK allows.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from typing import Any

from .error_body import ErrorBody, parse_duration, parse_error, parse_retry_after, plain_text
from .states import ErrorClass

__all__ = [
    "Backoff", "Cause", "ErrorBody", "Failure", "Kind", "Verdict", "classify", "http_failure",
    "judge", "parse_duration", "parse_error", "parse_retry_after", "plain_text", "read_error_body",
]  # fmt: skip


class Kind(enum.Enum):
    TRANSIENT = "transient"  # retried with backoff, up to --max-attempts (rate limits: see Failure)
    PERMANENT = "permanent"  # the item fails at once, never retried automatically
    BATCH = "batch"  # the whole batch pauses; no item is failed for it


class Cause(str, enum.Enum):
    """Why, in a few words: the failure summary groups by this and shows one example each.

    The backend sets the first group; the engine uses the second for outcomes it judges itself.
    """

    RATE_LIMIT = "rate limit"
    QUOTA_PER_DAY = "quota per day"
    NO_QUOTA = "no quota (limit 0)"
    AUTH = "auth"
    PERMISSION = "permission"
    BILLING_OR_LOCATION = "billing or location"
    UNKNOWN_TARGET = "unknown agent or model"
    BAD_REQUEST = "bad request"
    CONFLICT = "conflict"
    CANCELLED = "cancelled"
    SERVER_ERROR = "server error"
    TIMEOUT = "timeout"
    NETWORK = "network"
    LOST_RUN = "lost run"
    UNEXPECTED = "unexpected"
    # judged by the engine from a run's result, never raised by a backend
    RUN_FAILED = "run failed"
    NEEDS_ACTION = "needs action"
    TRUNCATED = "truncated output"
    INVALID_OUTPUT = "invalid output"
    STUCK = "stuck run"

    def __str__(self) -> str:
        return str(self.value)


#: what a paused batch says first, per cause (the rest is Failure.short())
HEADLINES: dict[Cause, str] = {
    Cause.AUTH: "bad API key",
    Cause.PERMISSION: "no permission",
    Cause.BILLING_OR_LOCATION: "billing or location problem (FAILED_PRECONDITION)",
    Cause.QUOTA_PER_DAY: "per-day quota exhausted",
    Cause.NO_QUOTA: "no quota for this model on this key's tier (limit 0)",
    Cause.UNKNOWN_TARGET: "unknown agent or model",
    Cause.NETWORK: "cannot reach the API",
}


@dataclass
class Failure(Exception):
    """One failed API call, in the engine's terms.

    Contract with the engine:

    * ``kind`` says what to do: retry, fail the item, or pause the batch.
    * ``rate_limited``: the service said "slow down" (a 429 that is not a per-day or ``limit: 0``
      quota, including the Interactions endpoint's detail-less ``too_many_requests``). The pacer
      holds and shrinks the pool; the attempt is **not** counted toward ``--max-attempts`` and a
      rate limit never fails an item by itself, however often it repeats.
    * ``unreachable``: the request never left this machine (DNS failure, connection refused,
      connect timeout). Nothing was sent, so nothing is in doubt and nothing was billed: the engine
      pauses the batch until the network is back instead of failing items.
    * ``in_doubt``: a launch that may have started a run (a timeout or a dropped connection after
      the request was sent, or a 500/502/504 answer): the run may exist and bill; a retry is an
      in-doubt relaunch.
    * ``lost``: the service answered 404 for a run it once created (poll or cancel): never
      "launch again" by itself.
    """

    kind: Kind
    message: str
    code: int | None = None
    status: str | None = None
    retry_delay: float | None = None
    #: the most telling QuotaFailure violation: a per-day one if any, else the first
    quota_id: str | None = None
    in_doubt: bool = False
    lost: bool = False
    cause: Cause = Cause.UNEXPECTED
    rate_limited: bool = False
    unreachable: bool = False
    #: every quotaId the error named, in order
    quota_ids: tuple[str, ...] = ()
    #: google.rpc.ErrorInfo reason (e.g. API_KEY_INVALID) or the Interactions string code
    reason: str | None = None

    def __post_init__(self) -> None:
        Exception.__init__(self, self.message)
        if self.cause is Cause.UNEXPECTED and self.code is not None:
            # built by hand with an HTTP code (the old constructor): the table knows the cause
            self.cause = judge(self.code, on_launch=not self.lost).cause

    def __str__(self) -> str:
        return self.short()

    @property
    def error_class(self) -> ErrorClass:
        """The ``items.err_class`` value; follows ``kind`` (so ``replace(f, kind=...)`` agrees)."""
        if self.lost:
            return ErrorClass.LOST
        if self.cause is Cause.UNEXPECTED:
            return ErrorClass.UNEXPECTED
        return _CLASS_OF_KIND[self.kind]

    @property
    def headline(self) -> str:
        """The few words a paused batch leads with: "bad API key", "per-day quota exhausted"..."""
        if self.cause is Cause.AUTH and self.code is None:
            return "no usable Google credentials"
        return HEADLINES.get(self.cause, str(self.cause))

    def short(self) -> str:
        head = f"{self.code} {self.status}" if self.code and self.status else None
        head = head or (str(self.code) if self.code else str(self.cause))
        return f"{head}: {self.message}" if self.message else head


_CLASS_OF_KIND = {
    Kind.TRANSIENT: ErrorClass.TRANSIENT,
    Kind.PERMANENT: ErrorClass.PERMANENT,
    Kind.BATCH: ErrorClass.BATCH,
}


def read_error_body(body: Any) -> tuple[str | None, str | None, float | None, str | None]:
    """(status, message, retryDelay seconds, quotaId) from Google's error JSON.

    Kept for callers of the old API; :func:`parse_error` reads everything (every violation,
    ErrorInfo, the Interactions string code). The quotaId is a per-day one if any violation is.
    """
    e = parse_error(body)
    return e.status, e.message, e.retry_delay, e.quota_id


# ----------------------------------------------------------------------------- the table


#: ErrorInfo reasons and Interactions string codes that mean the key itself is unusable
_BAD_KEY = frozenset(
    {"API_KEY_INVALID", "API_KEY_EXPIRED", "INVALID_API_KEY", "UNAUTHENTICATED", "AUTHENTICATION"}
)
#: what Google's bad-key messages say; read only where no ErrorInfo can be (the Interactions shape)
_BAD_KEY_TEXT = ("api key not valid", "api key expired", "api_key_invalid")
#: the 403 Google answers when no key was sent at all
_NO_KEY_TEXT = "unregistered callers"
#: Interactions string codes (Google's Interactions error table) → the RPC status they stand
#: for; others (failed_precondition, cancelled, deadline_exceeded...) are the status in lower case
_TEXT_STATUS = {
    "too_many_requests": "RESOURCE_EXHAUSTED",
    "rate_limit_exceeded": "RESOURCE_EXHAUSTED",
    "quota_exceeded": "RESOURCE_EXHAUSTED",
    "invalid_request": "INVALID_ARGUMENT",
    "authentication": "UNAUTHENTICATED",
    "model_not_found": "NOT_FOUND",
    "internal_error": "INTERNAL",
}


@dataclass(frozen=True)
class Verdict:
    kind: Kind
    cause: Cause
    rate_limited: bool = False


def judge(code: int | None, err: ErrorBody | None = None, *, on_launch: bool = True) -> Verdict:
    """The classification table: one HTTP answer → what it means."""
    err = err or ErrorBody()
    status = (
        err.status
        or _TEXT_STATUS.get((err.text_code or "").lower())
        or (err.text_code or "").upper()
        or None
    )
    reason = (err.reason or err.text_code or "").upper()
    text = (err.message or "").lower()
    if code is None:
        return Verdict(Kind.TRANSIENT, Cause.NETWORK)
    text_shaped = err.status is None and err.reason is None
    if (
        reason in _BAD_KEY
        or (code == 403 and _NO_KEY_TEXT in text)
        or (text_shaped and code in (400, 401, 403) and any(t in text for t in _BAD_KEY_TEXT))
    ):
        # ErrorInfo is authoritative; the Interactions shape has none, so its message decides
        return Verdict(Kind.BATCH, Cause.AUTH)
    if status == "FAILED_PRECONDITION":
        return Verdict(Kind.BATCH, Cause.BILLING_OR_LOCATION)
    if code == 429 or status == "RESOURCE_EXHAUSTED":
        if err.limit_zero:  # waiting does not help, not even until tomorrow
            return Verdict(Kind.BATCH, Cause.NO_QUOTA)
        if err.per_day or (err.text_code or "").lower() == "quota_exceeded":
            # Interactions' quota_exceeded is the daily quota (Google's error table)
            return Verdict(Kind.BATCH, Cause.QUOTA_PER_DAY)
        return Verdict(Kind.TRANSIENT, Cause.RATE_LIMIT, rate_limited=True)
    if code == 401:
        return Verdict(Kind.BATCH, Cause.AUTH)
    if code == 403:
        return Verdict(Kind.BATCH, Cause.PERMISSION)
    if code == 404:
        # On launch a 404 names an agent or model the service does not know: every item would fail.
        # On a poll or cancel it is a run the service no longer knows (Failure.lost).
        return (
            Verdict(Kind.BATCH, Cause.UNKNOWN_TARGET)
            if on_launch
            else Verdict(Kind.PERMANENT, Cause.LOST_RUN)
        )
    if code == 499 or status == "CANCELLED":
        return Verdict(
            Kind.TRANSIENT, Cause.CANCELLED
        )  # a cancel on the way, not a verdict on the input
    if code in (408, 504) or status == "DEADLINE_EXCEEDED":
        return Verdict(Kind.TRANSIENT, Cause.TIMEOUT)
    if code == 409:
        return Verdict(Kind.TRANSIENT, Cause.CONFLICT)
    if 400 <= code < 500:
        return Verdict(Kind.PERMANENT, Cause.BAD_REQUEST)
    return Verdict(Kind.TRANSIENT, Cause.SERVER_ERROR)


def classify(
    code: int | None, *, quota_id: str | None = None, network: bool = False, on_launch: bool = True
) -> Kind:
    """The kind alone, for callers of the old API (see :func:`judge`)."""
    if network:
        return Kind.TRANSIENT
    return judge(
        code, ErrorBody(quota_ids=(quota_id,) if quota_id else ()), on_launch=on_launch
    ).kind


#: answers to a launch that do not prove nothing was started: 500 INTERNAL and 504
#: DEADLINE_EXCEEDED come from a service that was working on it; a 502 from a proxy in front of
#: one. (503 UNAVAILABLE and 429 refuse the request before any work.)
IN_DOUBT_CODES = frozenset({500, 502, 504})


def http_failure(
    code: int, body: Any, *, launch: bool, retry_after: float | None = None, scrub: Any = None
) -> Failure:
    """A Failure for an HTTP error answer: the body read in full, then judged.

    ``scrub`` (str → str) removes secrets from the message before it is kept anywhere.
    """
    err = parse_error(body)
    verdict = judge(code, err, on_launch=launch)
    delay = err.retry_delay
    if retry_after is not None:
        delay = max(delay or 0.0, retry_after)
    message = err.message or (f"HTTP {code}" if code else "error")
    if scrub is not None:
        message = scrub(message)
    return Failure(
        verdict.kind,
        message[:500],
        code=code,
        status=err.status,
        retry_delay=delay,
        quota_id=err.quota_id,
        in_doubt=launch and code in IN_DOUBT_CODES,
        lost=code == 404 and not launch,
        cause=verdict.cause,
        rate_limited=verdict.rate_limited,
        quota_ids=err.quota_ids,
        reason=err.reason or err.text_code,
    )


# ----------------------------------------------------------------------------- backoff


@dataclass
class Backoff:
    """Exponential backoff with full jitter; never shorter than the service asked for.

    ``rng`` makes the jitter reproducible (tests pass ``random.Random(seed)``).
    """

    initial: float = 1.0
    maximum: float = 60.0
    honour_max: float = 900.0
    rng: random.Random | None = None

    def delay(self, attempt: int, failure: Failure | None = None) -> float:
        ceiling = min(self.maximum, self.initial * (2 ** max(0, attempt - 1)))
        draw = (self.rng or random).random()
        chosen = ceiling / 2 + draw * ceiling / 2
        if failure is not None and failure.retry_delay is not None:
            chosen = max(chosen, min(failure.retry_delay, self.honour_max))
        return chosen
