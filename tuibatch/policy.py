"""What to do about a failure: retry the item, fail the item, or pause the whole batch.

Backends translate their exceptions into :class:`Failure`; only this module decides
what a failure means, so the rules live in one table that tests can read.
"""

from __future__ import annotations

import enum
import random
import re
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any


class Kind(enum.Enum):
    TRANSIENT = "transient"  # retried with backoff, up to --max-attempts
    PERMANENT = "permanent"  # the item fails at once, never retried automatically
    BATCH = "batch"  # the whole batch pauses; no item is failed for it


TRANSIENT_CODES = frozenset({408, 409, 429, 500, 502, 503, 504})
PERMANENT_CODES = frozenset({400, 413, 422})
BATCH_CODES = frozenset({401, 403})


@dataclass
class Failure(Exception):
    """One failed API call, in the engine's terms."""

    kind: Kind
    message: str
    code: int | None = None
    status: str | None = None
    retry_delay: float | None = None
    quota_id: str | None = None
    #: the launch request may have reached the service (timeout, dropped connection)
    in_doubt: bool = False
    #: the service answered 404 for a run it once created
    lost: bool = False
    error_class: str = "error"

    def __post_init__(self) -> None:
        Exception.__init__(self, self.message)

    def __str__(self) -> str:
        return self.short()

    def short(self) -> str:
        head = f"{self.code} {self.status}" if self.code else self.error_class
        if self.status is None and self.code:
            head = str(self.code)
        return f"{head}: {self.message}" if self.message else head


def classify(code: int | None, *, quota_id: str | None = None, network: bool = False,
             on_launch: bool = True) -> Kind:
    if network or code is None:
        return Kind.TRANSIENT
    if code == 429 and quota_id and "perday" in quota_id.lower():
        return Kind.BATCH
    if code in TRANSIENT_CODES:
        return Kind.TRANSIENT
    if code in BATCH_CODES:
        return Kind.BATCH
    if code == 404:
        # On launch a 404 names an agent or model the service does not know: every item would fail.
        return Kind.BATCH if on_launch else Kind.TRANSIENT
    if code in PERMANENT_CODES or 400 <= code < 500:
        return Kind.PERMANENT
    return Kind.TRANSIENT


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
_IN_TEXT = re.compile(r"retry in\s+(\d+(?:\.\d+)?)\s*(ms|s)\b", re.IGNORECASE)


def parse_duration(value: Any) -> float | None:
    """Google's Duration JSON ("47.43s") to seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1))
    return None


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        import time

        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def read_error_body(body: Any) -> tuple[str | None, str | None, float | None, str | None]:
    """(status, message, retryDelay seconds, quotaId) from Google's error JSON."""
    if not isinstance(body, dict):
        return None, None, None, None
    err = body.get("error", body)
    if not isinstance(err, dict):
        return None, None, None, None
    status = err.get("status") if isinstance(err.get("status"), str) else None
    message = err.get("message") if isinstance(err.get("message"), str) else None
    delay = quota = None
    for detail in err.get("details") or []:
        if not isinstance(detail, dict):
            continue
        kind = str(detail.get("@type", ""))
        if kind.endswith("RetryInfo"):
            delay = parse_duration(detail.get("retryDelay"))
        elif kind.endswith("QuotaFailure"):
            for v in detail.get("violations") or []:
                if isinstance(v, dict) and v.get("quotaId"):
                    quota = str(v["quotaId"])
    if delay is None and message:
        m = _IN_TEXT.search(message)
        if m:
            delay = float(m.group(1)) / (1000 if m.group(2).lower() == "ms" else 1)
    return status, message, delay, quota


@dataclass
class Backoff:
    """Exponential backoff with full jitter; never shorter than the service asked for."""

    initial: float = 1.0
    maximum: float = 60.0
    honour_max: float = 900.0

    def delay(self, attempt: int, failure: Failure | None = None) -> float:
        ceiling = min(self.maximum, self.initial * (2 ** max(0, attempt - 1)))
        chosen = ceiling / 2 + random.random() * ceiling / 2
        if failure is not None and failure.retry_delay is not None:
            chosen = max(chosen, min(failure.retry_delay, self.honour_max))
        return chosen
