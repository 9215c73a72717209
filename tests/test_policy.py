"""The failure table, pure: error bodies in every shape the SDK allows → what tuibatch does.

Bodies are copied from the google-genai SDK's types and Google's docs (sources inline), so a
classifier that only understood the simulator's convenient shapes would fail here.
"""

from __future__ import annotations

import random
import time
from dataclasses import replace
from email.utils import formatdate
from typing import Any

import pytest

from tuibatch.error_body import parse_duration, parse_error, parse_retry_after, plain_text
from tuibatch.policy import (
    Backoff,
    Cause,
    Failure,
    Kind,
    classify,
    http_failure,
    judge,
    read_error_body,
)
from tuibatch.states import ErrorClass

QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"

#: a real-world 429 from generateContent: three violations, the per-day one LAST and in the middle
#: of nothing special (ai.google.dev/gemini-api/docs/rate-limits; shape of google.rpc.QuotaFailure)
MULTI_429: dict[str, Any] = {"error": {
    "code": 429,
    "message": "You exceeded your current quota, please check your plan and billing details.\n"
               "* Quota exceeded for metric: generativelanguage.googleapis.com/"
               "generate_content_paid_tier_input_token_count, limit: 1000000, model: gemini-2.5-pro\n"
               "Please retry in 47.43s.",
    "status": "RESOURCE_EXHAUSTED",
    "details": [
        {"@type": QUOTA_FAILURE, "violations": [
            {"quotaMetric": "generativelanguage.googleapis.com/generate_content_paid_tier_input_token_count",
             "quotaId": "GenerateContentInputTokensPerModelPerMinute",
             "quotaDimensions": {"location": "global", "model": "gemini-2.5-pro"},
             "quotaValue": "1000000"},
            {"quotaMetric": "generativelanguage.googleapis.com/generate_content_paid_tier_requests",
             "quotaId": "GenerateRequestsPerMinutePerProjectPerModel", "quotaValue": "1000"},
            {"quotaMetric": "generativelanguage.googleapis.com/generate_content_paid_tier_requests",
             "quotaId": "GenerateRequestsPerDayPerProjectPerModel", "quotaValue": "10000"},
        ]},
        {"@type": "type.googleapis.com/google.rpc.Help", "links": [{"url": "https://ai.google.dev"}]},
        {"@type": RETRY_INFO, "retryDelay": "47.43s"},
    ],
}}  # fmt: skip

PER_MINUTE_429: dict[str, Any] = {"error": {
    "code": 429, "message": "Resource has been exhausted (e.g. check quota).",
    "status": "RESOURCE_EXHAUSTED",
    "details": [
        {"@type": QUOTA_FAILURE, "violations": [
            {"quotaId": "GenerateRequestsPerMinutePerProjectPerModel", "quotaValue": "1000"}]},
        {"@type": RETRY_INFO, "retryDelay": "15s"},
    ],
}}  # fmt: skip

#: a free tier without access to the model: "limit: 0" (ai.google.dev/gemini-api/docs/rate-limits)
FREE_TIER_429: dict[str, Any] = {"error": {
    "code": 429,
    "message": "You exceeded your current quota, please check your plan and billing details.\n"
               "* Quota exceeded for metric: generativelanguage.googleapis.com/"
               "generate_content_free_tier_requests, limit: 0, model: gemini-2.5-pro\n"
               "Please retry in 37025.72s.",
    "status": "RESOURCE_EXHAUSTED",
}}  # fmt: skip

#: a bad or expired key (Google's error docs; ErrorInfo is google.rpc.ErrorInfo)
BAD_KEY_400: dict[str, Any] = {"error": {
    "code": 400, "message": "API key not valid. Please pass a valid API key.",
    "status": "INVALID_ARGUMENT",
    "details": [
        {"@type": ERROR_INFO, "reason": "API_KEY_INVALID", "domain": "googleapis.com",
         "metadata": {"service": "generativelanguage.googleapis.com"}},
        {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US",
         "message": "API key not valid. Please pass a valid API key."},
    ],
}}  # fmt: skip

#: Google's troubleshooting table: 400 FAILED_PRECONDITION for location / billing
PRECONDITION_400 = {"error": {
    "code": 400, "status": "FAILED_PRECONDITION",
    "message": "Gemini API free tier is not available in your country. "
               "Please enable billing on your project in Google AI Studio.",
}}  # fmt: skip

#: no key at all
NO_KEY_403 = {"error": {
    "code": 403, "status": "PERMISSION_DENIED",
    "message": "Method doesn't allow unregistered callers (callers without established identity). "
               "Please use API Key or other form of API consumer identity to call this API.",
}}  # fmt: skip

#: the Interactions shape (google/genai/_gaos/types/interactions/error.py: code is a STRING)
INTERACTIONS_429 = {
    "error": {
        "code": "too_many_requests",
        "message": "You do not have enough quota to make this request.",
    }
}
INTERACTIONS_QUOTA = {
    "error": {"code": "quota_exceeded", "message": "You exceeded your daily quota."}
}
INTERACTIONS_BAD_KEY = {
    "error": {
        "code": "invalid_request",
        "message": "API key not valid. Please pass a valid API key.",
    }
}
INTERACTIONS_PRECONDITION = {
    "error": {
        "code": "failed_precondition",
        "message": "User location is not supported for the API use.",
    }
}

HTML_502 = ("<!DOCTYPE html>\n<html lang=en>\n  <meta charset=utf-8>\n"
            "  <title>Error 502 (Server Error)!!1</title>\n  <p><b>502.</b> <ins>That's an error.</ins>"
            + "<p>padding " * 500)  # fmt: skip


# ------------------------------------------------------------------------------ reading bodies


def test_every_violation_is_read_and_the_per_day_one_decides() -> None:
    e = parse_error(MULTI_429)
    assert e.quota_ids == ("GenerateContentInputTokensPerModelPerMinute",
                           "GenerateRequestsPerMinutePerProjectPerModel",
                           "GenerateRequestsPerDayPerProjectPerModel")  # fmt: skip
    assert e.per_day and e.quota_id == "GenerateRequestsPerDayPerProjectPerModel"
    assert e.retry_delay == pytest.approx(47.43)
    assert not e.limit_zero
    # the old API answers the telling violation, not merely the last one
    status, message, delay, quota = read_error_body(MULTI_429)
    assert status == "RESOURCE_EXHAUSTED" and message and delay == pytest.approx(47.43)
    assert quota == "GenerateRequestsPerDayPerProjectPerModel"
    reordered = {"error": dict(MULTI_429["error"])}
    details = reordered["error"]["details"]
    violations = list(reversed(details[0]["violations"]))
    reordered["error"]["details"] = [{"@type": QUOTA_FAILURE, "violations": violations}]
    assert read_error_body(reordered)[3] == "GenerateRequestsPerDayPerProjectPerModel"


def test_limit_zero_in_the_message_or_in_a_quota_value() -> None:
    assert parse_error(FREE_TIER_429).limit_zero
    in_value = {
        "error": {
            "code": 429,
            "status": "RESOURCE_EXHAUSTED",
            "message": "quota",
            "details": [
                {
                    "@type": QUOTA_FAILURE,
                    "violations": [
                        {
                            "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                            "quotaValue": "0",
                        }
                    ],
                }
            ],
        }
    }
    assert parse_error(in_value).limit_zero
    assert not parse_error({"error": {"message": "limit: 0.5 per second"}}).limit_zero
    assert not parse_error({"error": {"message": "limit: 10, model: x"}}).limit_zero


def test_error_info_reason_and_metadata() -> None:
    e = parse_error(BAD_KEY_400)
    assert e.reason == "API_KEY_INVALID"
    assert dict(e.metadata) == {"service": "generativelanguage.googleapis.com"}
    assert e.status == "INVALID_ARGUMENT" and e.text_code is None


def test_interactions_string_code_shape() -> None:
    e = parse_error(INTERACTIONS_429)
    assert e.text_code == "too_many_requests" and e.status is None
    assert e.quota_ids == () and e.retry_delay is None and e.reason is None


def test_quota_ids_named_only_in_the_message_count() -> None:
    e = parse_error(
        {
            "error": {
                "code": "quota_exceeded",
                "message": "quotaId: GenerateRequestsPerDayPerProjectPerModel-FreeTier",
            }
        }
    )
    assert e.per_day and e.quota_ids == ("GenerateRequestsPerDayPerProjectPerModel-FreeTier",)


def test_non_json_bodies_become_one_short_line() -> None:
    # the Interactions SDK hands over the text itself
    e = parse_error(HTML_502)
    assert e.raw_text and e.message == "Error 502 (Server Error)!!1"
    # google.genai.errors.APIError wraps a non-JSON body as {"message": text, "status": reason}
    e = parse_error({"message": HTML_502, "status": "Bad Gateway"})
    assert e.raw_text and e.status == "Bad Gateway" and e.message == "Error 502 (Server Error)!!1"
    long = parse_error("x " * 2000)
    assert long.message is not None and len(long.message) <= 300
    assert plain_text("<p>a\n\n   b</p>") == "a b"


@pytest.mark.parametrize(
    "body",
    [
        None,
        42,
        [],
        [1, 2],
        {"error": "boom"},
        {"error": {"details": "x"}},
        {"error": {"details": [None, {"@type": QUOTA_FAILURE, "violations": 3}]}},
    ],
)
def test_garbage_never_raises(body: Any) -> None:
    parse_error(body)
    assert len(read_error_body(body)) == 4


def test_a_one_element_json_list_is_unwrapped_as_the_sdk_does() -> None:
    assert parse_error([PER_MINUTE_429]).quota_ids == (
        "GenerateRequestsPerMinutePerProjectPerModel",
    )


# ---------------------------------------------------------------------------------- the table


@pytest.mark.parametrize("code,body,launch,kind,cause,rate_limited", [
    (429, MULTI_429, True, Kind.BATCH, Cause.QUOTA_PER_DAY, False),
    (429, PER_MINUTE_429, True, Kind.TRANSIENT, Cause.RATE_LIMIT, True),
    (429, FREE_TIER_429, True, Kind.BATCH, Cause.NO_QUOTA, False),
    (429, INTERACTIONS_429, True, Kind.TRANSIENT, Cause.RATE_LIMIT, True),
    (429, INTERACTIONS_QUOTA, True, Kind.BATCH, Cause.QUOTA_PER_DAY, False),
    (400, BAD_KEY_400, True, Kind.BATCH, Cause.AUTH, False),
    (400, INTERACTIONS_BAD_KEY, True, Kind.BATCH, Cause.AUTH, False),
    (400, PRECONDITION_400, True, Kind.BATCH, Cause.BILLING_OR_LOCATION, False),
    (400, INTERACTIONS_PRECONDITION, True, Kind.BATCH, Cause.BILLING_OR_LOCATION, False),
    (403, NO_KEY_403, True, Kind.BATCH, Cause.AUTH, False),
    (403, {"error": {"code": 403, "status": "PERMISSION_DENIED", "message": "no access"}}, True,
     Kind.BATCH, Cause.PERMISSION, False),
    (401, {"error": {"code": "authentication", "message": "x"}}, True, Kind.BATCH, Cause.AUTH, False),
    (400, {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "bad field"}}, True,
     Kind.PERMANENT, Cause.BAD_REQUEST, False),
    # an RPC-shaped 400 that merely mentions a key is judged by its ErrorInfo, which it lacks
    (400, {"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "API key not valid: x"}},
     True, Kind.PERMANENT, Cause.BAD_REQUEST, False),
    (413, None, True, Kind.PERMANENT, Cause.BAD_REQUEST, False),
    (422, None, True, Kind.PERMANENT, Cause.BAD_REQUEST, False),
    (404, None, True, Kind.BATCH, Cause.UNKNOWN_TARGET, False),
    (404, None, False, Kind.PERMANENT, Cause.LOST_RUN, False),
    (499, {"error": {"code": 499, "status": "CANCELLED", "message": "cancelled"}}, True,
     Kind.TRANSIENT, Cause.CANCELLED, False),
    (408, None, True, Kind.TRANSIENT, Cause.TIMEOUT, False),
    (504, None, True, Kind.TRANSIENT, Cause.TIMEOUT, False),
    (409, None, True, Kind.TRANSIENT, Cause.CONFLICT, False),
    (500, None, True, Kind.TRANSIENT, Cause.SERVER_ERROR, False),
    (502, HTML_502, True, Kind.TRANSIENT, Cause.SERVER_ERROR, False),
    (503, {"error": {"code": "unavailable", "message": "overloaded"}}, True, Kind.TRANSIENT,
     Cause.SERVER_ERROR, False),
    (418, None, True, Kind.PERMANENT, Cause.BAD_REQUEST, False),
])  # fmt: skip
def test_judge(
    code: int, body: Any, launch: bool, kind: Kind, cause: Cause, rate_limited: bool
) -> None:
    v = judge(code, parse_error(body), on_launch=launch)
    assert (v.kind, v.cause, v.rate_limited) == (kind, cause, rate_limited)


def test_no_answer_at_all_is_a_network_failure() -> None:
    assert judge(None) == judge(None, parse_error(None))
    assert judge(None).kind is Kind.TRANSIENT and judge(None).cause is Cause.NETWORK


def test_classify_keeps_its_old_signature() -> None:
    assert classify(429, quota_id="GenerateRequestsPerDayPerProjectPerModel") is Kind.BATCH
    assert classify(429, quota_id="GenerateRequestsPerMinutePerProjectPerModel") is Kind.TRANSIENT
    assert classify(499) is Kind.TRANSIENT  # a cancel on the way, not a verdict on the input
    assert classify(401) is Kind.BATCH and classify(403) is Kind.BATCH
    assert classify(404) is Kind.BATCH and classify(404, on_launch=False) is Kind.PERMANENT
    assert classify(None) is Kind.TRANSIENT and classify(400, network=True) is Kind.TRANSIENT


def test_http_failure_carries_everything_the_engine_needs() -> None:
    f = http_failure(
        429, MULTI_429, launch=True, retry_after=60.0, scrub=lambda s: s.replace("pro", "***")
    )
    assert (
        f.kind is Kind.BATCH
        and f.cause is Cause.QUOTA_PER_DAY
        and f.headline == "per-day quota exhausted"
    )
    assert f.retry_delay == 60.0  # the longer of RetryInfo (47.43 s) and Retry-After
    assert f.quota_id == "GenerateRequestsPerDayPerProjectPerModel" and len(f.quota_ids) == 3
    assert "gemini-2.5-***" in f.message and not f.in_doubt and not f.lost
    r = http_failure(429, INTERACTIONS_429, launch=True)
    assert r.rate_limited and r.reason == "too_many_requests" and r.retry_delay is None
    assert r.short() == "429: You do not have enough quota to make this request."
    lost = http_failure(404, {"error": {"code": "not_found", "message": "gone"}}, launch=False)
    assert lost.lost and lost.error_class is ErrorClass.LOST and lost.cause is Cause.LOST_RUN
    key = http_failure(400, BAD_KEY_400, launch=True)
    assert key.reason == "API_KEY_INVALID" and key.headline == "bad API key"
    assert key.short() == "400 INVALID_ARGUMENT: API key not valid. Please pass a valid API key."


@pytest.mark.parametrize(
    "code,doubt", [(500, True), (502, True), (504, True), (503, False), (429, False), (400, False)]
)
def test_which_answers_leave_a_launch_in_doubt(code: int, doubt: bool) -> None:
    assert http_failure(code, None, launch=True).in_doubt is doubt
    assert http_failure(code, None, launch=False).in_doubt is False  # polls are idempotent


def test_error_class_follows_kind_and_cause() -> None:
    f = Failure(
        Kind.TRANSIENT,
        "quota",
        code=429,
        status="RESOURCE_EXHAUSTED",
        retry_delay=1.0,
        quota_id="GenerateRequestsPerMinutePerProjectPerModel",
    )  # the old constructor
    assert f.cause is Cause.RATE_LIMIT and f.error_class is ErrorClass.TRANSIENT
    assert Failure(Kind.PERMANENT, "odd").error_class is ErrorClass.UNEXPECTED
    net = Failure(Kind.TRANSIENT, "cannot reach the API", cause=Cause.NETWORK, unreachable=True)
    assert net.error_class is ErrorClass.TRANSIENT and net.headline == "cannot reach the API"
    paused = replace(net, kind=Kind.BATCH)
    assert paused.error_class is ErrorClass.BATCH and paused.unreachable
    assert str(net) == "network: cannot reach the API"
    assert (
        Failure(Kind.BATCH, "no ADC", cause=Cause.AUTH).headline == "no usable Google credentials"
    )
    assert str(Cause.RATE_LIMIT) == "rate limit"


# ---------------------------------------------------------------------------- delays


def test_backoff_is_reproducible_with_a_seed_and_stays_in_bounds() -> None:
    a = Backoff(initial=1.0, maximum=8.0, rng=random.Random(7))
    b = Backoff(initial=1.0, maximum=8.0, rng=random.Random(7))
    seq_a = [a.delay(n) for n in range(1, 8)]
    assert seq_a == [b.delay(n) for n in range(1, 8)]
    for n, d in enumerate(seq_a, start=1):
        ceiling = min(8.0, 2 ** (n - 1))
        assert ceiling / 2 <= d <= ceiling


def test_backoff_honours_the_service_delay_up_to_a_cap() -> None:
    b = Backoff(initial=1.0, maximum=4.0, honour_max=100.0, rng=random.Random(1))
    slow = Failure(Kind.TRANSIENT, "x", retry_delay=47.43)
    assert b.delay(1, slow) == pytest.approx(47.43)
    assert b.delay(1, Failure(Kind.TRANSIENT, "x", retry_delay=3600.0)) == 100.0
    assert b.delay(3, Failure(Kind.TRANSIENT, "x", retry_delay=0.01)) >= 2.0


@pytest.mark.parametrize(
    "value,seconds",
    [
        ("47.43s", 47.43),
        ("15s", 15.0),
        (" 2s ", 2.0),
        (3, 3.0),
        ("15", None),
        ("1m", None),
        (None, None),
        (True, None),
    ],
)
def test_parse_duration(value: Any, seconds: float | None) -> None:
    assert parse_duration(value) == seconds


def test_retry_after_seconds_or_http_date() -> None:
    assert parse_retry_after("12") == 12.0 and parse_retry_after("-3") == 0.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    later = parse_retry_after(formatdate(time.time() + 120, usegmt=True))
    assert later is not None and 100 < later <= 120


def test_retry_delay_read_from_the_message_when_no_retry_info() -> None:
    assert parse_error(FREE_TIER_429).retry_delay == pytest.approx(37025.72)
    assert parse_error({"error": {"message": "Please retry in 250ms."}}).retry_delay == 0.25
