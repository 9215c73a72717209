"""What the google-genai SDK hands back, read into tuibatch's terms.

Pure functions over the SDK's own objects (3.6.x): an ``Interaction`` or a
``GenerateContentResponse`` becomes a :class:`RunResult`, an exception becomes a
:class:`Failure`. Every value of the SDK's ``FinishReason`` and ``BlockedReason`` enums is
listed here on purpose; a test fails when the installed SDK adds one.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Callable
from typing import Any

from ..policy import Cause, Failure, Kind, http_failure, parse_retry_after
from .base import RunResult, Usage

Scrub = Callable[[str], str]

#: what a Google API key looks like: any such string is removed from service text, not only
#: the configured key (a message may quote another key, e.g. a proxy's)
KEY_SHAPED = re.compile(r"AIza[0-9A-Za-z_-]{35}")


def scrub_keys(text: str, scrub: Scrub) -> str:
    """*text* without the configured key (*scrub*) and without any key-shaped string.

    Always applied to the whole text, before any cut: a key straddling a length limit would
    otherwise leave a fragment behind."""
    return KEY_SHAPED.sub("***", scrub(text))


def _thorough(scrub: Scrub) -> Scrub:
    return lambda text: scrub_keys(text, scrub)


#: google.genai.types.FinishReason, value → what it means for the answer ("" = a normal stop)
FINISH_REASONS: dict[str, str] = {
    "STOP": "",
    "FINISH_REASON_UNSPECIFIED": "finish reason unspecified",
    "MAX_TOKENS": "output token limit reached",
    "SAFETY": "stopped by the safety filter",
    "RECITATION": "stopped: possible recitation of a source",
    "LANGUAGE": "unsupported language",
    "OTHER": "stopped for an unspecified reason",
    "BLOCKLIST": "stopped: a blocklisted term",
    "PROHIBITED_CONTENT": "stopped: prohibited content",
    "SPII": "stopped: sensitive personal information",
    "MALFORMED_FUNCTION_CALL": "malformed function call",
    "IMAGE_SAFETY": "image stopped by the safety filter",
    "IMAGE_PROHIBITED_CONTENT": "image: prohibited content",
    "IMAGE_OTHER": "image generation stopped",
    "NO_IMAGE": "no image generated",
    "IMAGE_RECITATION": "image: possible recitation",
    "UNEXPECTED_TOOL_CALL": "unexpected tool call",
    "TOO_MANY_TOOL_CALLS": "too many tool calls",
    "MISSING_THOUGHT_SIGNATURE": "a thought signature was missing",
    "MALFORMED_RESPONSE": "malformed response",
    "ESCALATION": "filtered by an escalation rule",
    "PUP_LIMITED_DISABLED": "account limited for policy violations",
    "CONTINUATION": "answer longer than one request (continuation is off)",
    "MODEL_ARMOR": "blocked by Model Armor",
}

#: google.genai.types.BlockedReason: the prompt itself was refused, no answer at all
BLOCK_REASONS: dict[str, str] = {
    "BLOCKED_REASON_UNSPECIFIED": "blocked, reason unspecified",
    "SAFETY": "blocked for safety",
    "OTHER": "blocked for another reason",
    "BLOCKLIST": "a blocklisted term",
    "PROHIBITED_CONTENT": "prohibited content",
    "IMAGE_SAFETY": "unsafe for image generation",
    "MODEL_ARMOR": "blocked by Model Armor",
    "JAILBREAK": "a jailbreak attempt",
}

NO_TEXT = "no text output"


def _name(value: Any) -> str | None:
    """An SDK enum member (or the pseudo-member it makes for an unknown string) as its value."""
    if value is None:
        return None
    raw = getattr(value, "value", value)
    return str(raw) if raw is not None else None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# ---------------------------------------------------------------------------- interactions


def interaction_usage(u: Any) -> Usage:
    """The Interactions ``Usage`` block (totals over the whole run); absent → unknown."""
    if u is None:
        return Usage.unknown()
    totals = (u.total_input_tokens, u.total_output_tokens, u.total_thought_tokens, u.total_tokens)
    if all(t is None for t in totals):
        return Usage.unknown()
    grounding = sum(_int(getattr(g, "count", None)) for g in (u.grounding_tool_count or []))
    return Usage(
        input_tokens=_int(u.total_input_tokens),
        output_tokens=_int(u.total_output_tokens),
        thought_tokens=_int(u.total_thought_tokens),
        cached_tokens=_int(u.total_cached_tokens),
        tool_use_tokens=_int(u.total_tool_use_tokens),
        grounding_calls=grounding,
    )


def interaction_result(it: Any, scrub: Scrub) -> RunResult:
    scrub = _thorough(scrub)
    status = getattr(it, "status", None)
    status = str(status) if status else "unknown"
    output = getattr(it, "output_text", None)
    output = output if isinstance(output, str) else None
    error = None
    errors = getattr(it, "errors", None)
    if errors:
        error = "; ".join(
            f"{getattr(e, 'code', '') or ''} {getattr(e, 'message', '') or ''}".strip()
            for e in errors
        )
        error = scrub(error)  # a run's error text goes to the checkpoint, the log and the export
    result = RunResult(
        run_id=str(getattr(it, "id", "") or ""),
        status=status,
        output=output,
        usage=interaction_usage(getattr(it, "usage", None)),
        error=error or None,
    )
    if status == "completed" and not (output or "").strip():
        result.truncated, result.stop_reason = True, NO_TEXT
    return result


# -------------------------------------------------------------------------- generate_content


def generate_usage(resp: Any) -> Usage:
    um = getattr(resp, "usage_metadata", None)
    if um is None:
        return Usage.unknown()
    grounding = 0
    for cand in getattr(resp, "candidates", None) or []:
        gm = getattr(cand, "grounding_metadata", None)
        if gm is not None:
            grounding += sum(
                len(getattr(gm, name, None) or [])
                for name in ("web_search_queries", "image_search_queries", "retrieval_queries")
            )
    return Usage(
        input_tokens=_int(um.prompt_token_count),
        output_tokens=_int(um.candidates_token_count),
        thought_tokens=_int(um.thoughts_token_count),
        cached_tokens=_int(um.cached_content_token_count),
        tool_use_tokens=_int(um.tool_use_prompt_token_count),
        grounding_calls=grounding,
    )


def generate_result(resp: Any) -> RunResult:
    """A direct model call: terminal at once. ``completed`` when there is text (possibly
    truncated: see ``stop_reason``), ``failed`` when there is none."""
    run_id = getattr(resp, "response_id", None) or f"gc-{os.urandom(8).hex()}"
    try:
        text = resp.text
    except Exception:  # a blocked or empty candidate has no text
        text = None
    stop: str | None = None
    feedback = getattr(resp, "prompt_feedback", None)
    block = _name(getattr(feedback, "block_reason", None))
    candidates = getattr(resp, "candidates", None) or []
    if block:
        stop = f"prompt blocked: {block} ({BLOCK_REASONS.get(block, 'unknown block reason')})"
    elif not candidates:
        stop = "no candidates"
    else:
        reason = _name(getattr(candidates[0], "finish_reason", None))
        if reason is None:
            stop = "no finish reason"
        elif reason != "STOP":
            stop = f"{reason} ({FINISH_REASONS.get(reason, 'unknown finish reason')})"
    if stop is None and not (text or "").strip():
        stop = NO_TEXT
    has_text = bool((text or "").strip())
    return RunResult(
        run_id=run_id,
        status="completed" if has_text else "failed",
        output=text if has_text else None,
        usage=generate_usage(resp),
        error=None if has_text else stop,
        stop_reason=stop,
        truncated=stop is not None,
    )


# ------------------------------------------------------------------------------ exceptions

#: exception classes (anywhere in a chain, matched by name along the MRO) that prove the
#: request never left this machine
_NEVER_SENT = frozenset(
    {
        "ConnectError",  # httpx/httpcore: DNS failure, refused, unreachable, TLS handshake
        "ConnectTimeout",
        "PoolTimeout",  # waiting for a free connection: nothing was written
        "ClientConnectorError",  # aiohttp (and its DNS / SSL / certificate subclasses)
        "ConnectionTimeoutError",  # aiohttp: timed out while connecting
        "ConnectionRefusedError",
        "gaierror",  # socket.gaierror: the name did not resolve
    }
)
_NEVER_SENT_TEXT = (
    "name or service not known",
    "temporary failure in name resolution",
    "nodename nor servname",
    "no address associated with hostname",
    "all connection attempts failed",
    "connection refused",
)
_TIMEOUTS = frozenset({"TimeoutError", "TimeoutException", "ServerTimeoutError", "APITimeoutError"})


def _chain(exc: BaseException, limit: int = 10) -> list[BaseException]:
    out: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(out) < limit and seen not in out:
        out.append(seen)
        seen = seen.__cause__ or seen.__context__
    return out


def _mro_names(exc: BaseException) -> set[str]:
    return {k.__name__ for k in type(exc).__mro__}


def never_sent(exc: BaseException) -> bool:
    """True when the request provably never reached the service (nothing to be in doubt about)."""
    for e in _chain(exc):
        if _mro_names(e) & _NEVER_SENT:
            return True
        if any(t in str(e).lower() for t in _NEVER_SENT_TEXT):
            return True
    return False


def is_network(exc: BaseException) -> bool:
    from google.genai import _interactions_errors as ie

    if isinstance(
        exc, (ie.APIConnectionError, asyncio.TimeoutError, TimeoutError, ConnectionError)
    ):
        return True
    mod = type(exc).__module__
    return mod.startswith(("httpx", "httpcore", "aiohttp")) or isinstance(exc, OSError)


def _is_timeout(exc: BaseException) -> bool:
    return any(_mro_names(e) & _TIMEOUTS for e in _chain(exc))


def _detail(exc: BaseException) -> str:
    chain = _chain(exc)
    root = next((e for e in reversed(chain) if str(e)), exc)
    text = f"{type(root).__name__}: {root}" if str(root) else type(exc).__name__
    return text[:200]


def failure_of(exc: BaseException, *, launch: bool, scrub: Scrub, lookup: bool = False) -> Failure:
    """Map the SDK's real exception classes onto the engine's failure kinds.

    ``launch``: the call creates a run (not idempotent: a timeout is in doubt). ``lookup``: a read
    that names no recorded run (listing models, an agent), so a 404 is not a lost run.
    """
    from google.genai import _interactions_errors as ie
    from google.genai import errors as ge

    scrub = _thorough(scrub)  # every message below is scrubbed whole, then cut
    code: int | None = None
    body: Any = None
    headers: Any = None
    if isinstance(exc, ie.APIStatusError):
        code, body = exc.status_code, exc.body
        headers = getattr(getattr(exc, "response", None), "headers", None)
    elif isinstance(exc, ge.APIError):
        code, body = exc.code, exc.details
        headers = getattr(getattr(exc, "response", None), "headers", None)
    if code is not None:
        try:
            retry_after = parse_retry_after(headers.get("retry-after")) if headers else None
        except Exception:
            retry_after = None
        f = http_failure(code, body, launch=launch or lookup, retry_after=retry_after, scrub=scrub)
        if lookup:  # judged as a launch (a 404 names something unknown), but it starts nothing
            f.lost = f.in_doubt = False
        return f
    if isinstance(exc, ie.APIResponseValidationError):
        # the service answered 2xx but not in the SDK's shape: a launch may well have started a run
        return Failure(
            Kind.PERMANENT,
            scrub(f"the response did not parse: {exc}")[:500],
            cause=Cause.UNEXPECTED,
            in_doubt=launch,
        )
    if never_sent(exc):
        return Failure(
            Kind.TRANSIENT,
            scrub(f"cannot reach the API ({_detail(exc)})"),
            cause=Cause.NETWORK,
            unreachable=True,
        )
    if type(exc).__module__.startswith("google.auth"):
        # no usable Google credentials (Vertex AI without ADC, an expired token): every call would fail
        return Failure(Kind.BATCH, scrub(str(exc))[:300], cause=Cause.AUTH)
    if is_network(exc):
        doubt = " — in doubt: the run may exist and bill" if launch else ""
        if _is_timeout(exc):
            return Failure(
                Kind.TRANSIENT,
                scrub(f"timed out after the request was sent{doubt} ({_detail(exc)})"),
                cause=Cause.TIMEOUT,
                in_doubt=launch,
            )
        return Failure(
            Kind.TRANSIENT,
            scrub(f"connection lost after the request was sent{doubt} ({_detail(exc)})"),
            cause=Cause.NETWORK,
            in_doubt=launch,
        )
    return Failure(
        Kind.PERMANENT,
        scrub(f"{type(exc).__name__}: {exc}")[:500],
        cause=Cause.UNEXPECTED,
        in_doubt=launch,
    )
