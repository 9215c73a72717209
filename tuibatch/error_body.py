"""Error bodies, read whatever their shape; no judgement here (that is tuibatch.policy).

The shapes the google-genai SDK (3.6.x) hands over:

* Google RPC (models endpoints: ``generateContent``, batches)::

    {"error": {"code": 429, "message": "...", "status": "RESOURCE_EXHAUSTED",
               "details": [{"@type": ".../google.rpc.QuotaFailure", "violations": [...]},
                           {"@type": ".../google.rpc.RetryInfo", "retryDelay": "47.43s"},
                           {"@type": ".../google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", ...}]}}

* Interactions (``_gaos/types/interactions/error.py``): ``{"error": {"code": "too_many_requests",
  "message": "..."}}``, a *string* code, no status, no details;
* no JSON at all (an HTML 502 from a proxy): the SDK hands over the text, or for
  ``generateContent`` ``{"message": <text>, "status": <reason phrase>}`` (``errors.py``).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any


@dataclass(frozen=True)
class ErrorBody:
    """Everything an error body says, whatever its shape."""

    status: str | None = (
        None  # RPC status ("RESOURCE_EXHAUSTED"), or the reason phrase of a non-JSON reply
    )
    message: str | None = None
    retry_delay: float | None = None
    quota_ids: tuple[str, ...] = ()
    #: a violation's quotaValue was "0", or the message says "limit: 0"
    limit_zero: bool = False
    reason: str | None = None  # ErrorInfo.reason
    metadata: tuple[tuple[str, str], ...] = ()  # ErrorInfo.metadata
    #: the Interactions shape's string code ("too_many_requests")
    text_code: str | None = None
    #: no JSON came back at all
    raw_text: bool = False

    @property
    def per_day(self) -> bool:
        return any(is_per_day(q) for q in self.quota_ids)

    @property
    def quota_id(self) -> str | None:
        """A per-day quota if any (it decides what happens), else the first one named."""
        day = [q for q in self.quota_ids if is_per_day(q)]
        first = day or self.quota_ids
        return first[0] if first else None


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")
_IN_TEXT = re.compile(r"retry in\s+(\d+(?:\.\d+)?)\s*(ms|s)\b", re.IGNORECASE)
_LIMIT_ZERO = re.compile(r"\blimit:\s*0\b(?!\.\d)")
#: quota ids named in free text, e.g. "quotaId: GenerateRequestsPerDayPerProjectPerModel-FreeTier"
_QUOTA_IN_TEXT = re.compile(r"\b([A-Z][A-Za-z]*Per(?:Minute|Day|Hour|Second)[A-Za-z-]*)\b")
_TAGS = re.compile(r"<[^>]+>")
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_SPACE = re.compile(r"\s+")
MESSAGE_MAX = 300


def is_per_day(quota_id: str) -> bool:
    return "perday" in quota_id.lower().replace("_", "").replace("-", "")


def parse_duration(value: Any) -> float | None:
    """Google's Duration JSON ("47.43s") to seconds."""
    if isinstance(value, bool):
        return None
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
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def plain_text(text: str, limit: int = MESSAGE_MAX) -> str:
    """An HTML or oversized error body as one short line (the page title if it has one)."""
    if "<" in text and ">" in text:
        title = _TITLE.search(text)
        text = title.group(1) if title else _TAGS.sub(" ", text)
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_error(body: Any) -> ErrorBody:
    """Read an error body in any of the shapes above; never raises."""
    if isinstance(body, list) and len(body) == 1:
        body = body[0]  # as the SDK's errors.APIError does with a one-element JSON list
    if isinstance(body, (str, bytes)):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        return ErrorBody(message=plain_text(text) or None, raw_text=True)
    if not isinstance(body, dict):
        return ErrorBody()
    err = body.get("error", body)
    if not isinstance(err, dict):
        return ErrorBody(message=plain_text(str(err)) or None)
    status = err.get("status") if isinstance(err.get("status"), str) else None
    message = err.get("message") if isinstance(err.get("message"), str) else None
    text_code = err.get("code") if isinstance(err.get("code"), str) else None
    raw_text = "error" not in body and message is not None and status is not None
    delay: float | None = None
    quotas: list[str] = []
    limit_zero = False
    reason: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()
    details = err.get("details")
    for detail in details if isinstance(details, list) else []:
        if not isinstance(detail, dict):
            continue
        kind = str(detail.get("@type", ""))
        if kind.endswith("RetryInfo"):
            delay = parse_duration(detail.get("retryDelay"))
        elif kind.endswith("QuotaFailure"):
            violations = detail.get("violations")
            for v in violations if isinstance(violations, list) else []:
                if not isinstance(v, dict):
                    continue
                if v.get("quotaId"):
                    quotas.append(str(v["quotaId"]))
                if str(v.get("quotaValue", "")).strip() == "0":
                    limit_zero = True
        elif kind.endswith("ErrorInfo") and isinstance(detail.get("reason"), str):
            reason = detail["reason"]
            meta = detail.get("metadata")
            if isinstance(meta, dict):
                metadata = tuple((str(k), str(v)) for k, v in meta.items())
    if message:
        if delay is None:
            m = _IN_TEXT.search(message)
            if m:
                delay = float(m.group(1)) / (1000 if m.group(2).lower() == "ms" else 1)
        quotas.extend(q for q in _QUOTA_IN_TEXT.findall(message) if q not in quotas)
        limit_zero = limit_zero or bool(_LIMIT_ZERO.search(message))
        message = plain_text(message, 500) if raw_text else message
    return ErrorBody(
        status=status,
        message=message,
        retry_delay=delay,
        quota_ids=tuple(quotas),
        limit_zero=limit_zero,
        reason=reason,
        metadata=metadata,
        text_code=text_code,
        raw_text=raw_text,
    )
