"""Failures through the real SDK over HTTP: every error shape the simulator scripts, read by
GeminiBackend into the Failure the engine acts on (kind, cause, flags), with the requests the
simulator saw. Network failures come from real sockets: a closed port and an RFC 6761 name."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from tuibatch.backends.base import LaunchSpec
from tuibatch.backends.gemini import (
    GENERATE_TIMEOUT_S,
    INTERACTIONS_TIMEOUT_S,
    Credentials,
    GeminiBackend,
    resolve_credentials,
    sdk_api_version,
)
from tuibatch.backends.gemini_shapes import never_sent
from tuibatch.policy import Cause, Failure, Kind
from tuibatch.sim import SimulatorThread
from tuibatch.states import ErrorClass

KEY = "dummy-test-key"
AGENT = LaunchSpec(key="k-1", input_text="a short question", agent="sim-agent",
                   labels={"tuibatch_item": "k-1"})  # fmt: skip
MODEL = LaunchSpec(key="k-1", input_text="a short question", model="sim-model")
SPECS = {"agent": AGENT, "model": MODEL}


@pytest.fixture
async def backend(sim: SimulatorThread) -> AsyncIterator[GeminiBackend]:
    b = GeminiBackend(Credentials(api_key=KEY, base_url=sim.url), timeout_s=5)
    yield b
    await b.close()


async def launch_failure(backend: GeminiBackend, spec: LaunchSpec) -> Failure:
    with pytest.raises(Failure) as err:
        await backend.launch(spec)
    return err.value


def launches(sim: SimulatorThread) -> int:
    return sum(s["launches"] for s in sim.stats()["items"].values())


def launch_requests(sim: SimulatorThread) -> int:
    by_route = sim.stats()["by_route"]
    return int(by_route["create"] + by_route["generate"])


# ---------------------------------------------------------------------------------- 429s


async def test_interactions_429_without_details_is_a_rate_limit(
    sim: SimulatorThread, backend: GeminiBackend
) -> None:
    sim.set_faults([{"any": True, "fault": "http", "code": 429, "times": None}])
    f = await launch_failure(backend, AGENT)
    assert (f.kind, f.cause, f.rate_limited, f.code) == (
        Kind.TRANSIENT,
        Cause.RATE_LIMIT,
        True,
        429,
    )
    assert f.reason == "too_many_requests" and f.retry_delay is None and f.quota_ids == ()
    assert not f.in_doubt and not f.unreachable
    assert launch_requests(sim) == 1 and launches(sim) == 0  # no hidden SDK retry


async def test_models_429_reads_every_violation(
    sim: SimulatorThread, backend: GeminiBackend
) -> None:
    sim.set_faults([{"any": True, "fault": "multi_quota", "times": None}])
    f = await launch_failure(backend, MODEL)
    assert f.kind is Kind.BATCH and f.cause is Cause.QUOTA_PER_DAY and not f.rate_limited
    assert len(f.quota_ids) == 3 and f.quota_id is not None and "PerDay" in f.quota_id
    assert f.retry_delay == pytest.approx(47.43)
    assert f.headline == "per-day quota exhausted"


async def test_models_per_minute_429_is_a_rate_limit_with_its_delay(
    sim: SimulatorThread, backend: GeminiBackend
) -> None:
    sim.set_faults([{"any": True, "fault": "http", "code": 429, "retry_delay": "2.5s",
                     "quota_id": "GenerateRequestsPerMinutePerProjectPerModel"}])  # fmt: skip
    f = await launch_failure(backend, MODEL)
    assert f.kind is Kind.TRANSIENT and f.rate_limited and f.retry_delay == pytest.approx(2.5)
    assert f.quota_ids == ("GenerateRequestsPerMinutePerProjectPerModel",)


# ---------------------------------------------------------------------------- batch-level


@pytest.mark.parametrize("endpoint", ["agent", "model"])
@pytest.mark.parametrize("rule,cause,words", [
    ({"fault": "free_tier"}, Cause.NO_QUOTA, "limit 0"),
    ({"fault": "per_day_quota"}, Cause.QUOTA_PER_DAY, "per-day quota"),
    ({"fault": "bad_key"}, Cause.AUTH, "bad API key"),
    ({"fault": "failed_precondition", "reason": "location"}, Cause.BILLING_OR_LOCATION, "location"),
    ({"fault": "failed_precondition", "reason": "billing"}, Cause.BILLING_OR_LOCATION, "billing"),
    ({"fault": "http", "code": 403}, Cause.PERMISSION, "no permission"),
    ({"fault": "http", "code": 401}, Cause.AUTH, "bad API key"),
])  # fmt: skip
async def test_key_or_project_problems_are_batch_level(
    sim: SimulatorThread,
    backend: GeminiBackend,
    endpoint: str,
    rule: dict[str, Any],
    cause: Cause,
    words: str,
) -> None:
    sim.set_faults([{"any": True, "times": None, **rule}])
    f = await launch_failure(backend, SPECS[endpoint])
    assert f.kind is Kind.BATCH and f.cause is cause and f.error_class is ErrorClass.BATCH
    assert words in f.headline
    assert not f.rate_limited and not f.in_doubt
    assert launch_requests(sim) == 1 and launches(sim) == 0


async def test_unknown_agent_on_launch_is_batch_level(
    sim: SimulatorThread, backend: GeminiBackend
) -> None:
    f = await launch_failure(backend, LaunchSpec(key="k", input_text="x", agent="no-such-agent"))
    assert f.kind is Kind.BATCH and f.cause is Cause.UNKNOWN_TARGET and f.code == 404 and not f.lost


# ------------------------------------------------------------------------------- transient


@pytest.mark.parametrize("endpoint", ["agent", "model"])
async def test_non_json_502_is_one_short_line(
    sim: SimulatorThread, backend: GeminiBackend, endpoint: str
) -> None:
    sim.set_faults([{"any": True, "fault": "html", "code": 502, "times": None}])
    f = await launch_failure(backend, SPECS[endpoint])
    assert (f.kind, f.cause, f.code) == (Kind.TRANSIENT, Cause.SERVER_ERROR, 502)
    assert f.message == "Error 502 (Server Error)!!1"
    assert f.in_doubt  # a proxy's 502: the service behind it may have started the run


@pytest.mark.parametrize("endpoint", ["agent", "model"])
@pytest.mark.parametrize(
    "code,cause,doubt",
    [
        (499, Cause.CANCELLED, False),
        (503, Cause.SERVER_ERROR, False),
        (500, Cause.SERVER_ERROR, True),
        (504, Cause.TIMEOUT, True),
    ],
)
async def test_transient_codes(
    sim: SimulatorThread,
    backend: GeminiBackend,
    endpoint: str,
    code: int,
    cause: Cause,
    doubt: bool,
) -> None:
    sim.set_faults([{"any": True, "fault": "http", "code": code, "times": None}])
    f = await launch_failure(backend, SPECS[endpoint])
    assert (f.kind, f.cause, f.code, f.in_doubt) == (Kind.TRANSIENT, cause, code, doubt)
    assert not f.rate_limited


@pytest.mark.parametrize("endpoint", ["agent", "model"])
async def test_an_error_after_the_run_was_created_is_in_doubt(
    sim: SimulatorThread, backend: GeminiBackend, endpoint: str
) -> None:
    sim.set_faults([{"any": True, "fault": "error_after_create", "code": 500, "times": None}])
    f = await launch_failure(backend, SPECS[endpoint])
    assert f.kind is Kind.TRANSIENT and f.in_doubt and f.code == 500
    assert launches(sim) == 1  # the service did start (and bill) a run


# ------------------------------------------------------------------------------ lost runs


async def test_a_recorded_run_the_service_forgot_is_lost_on_poll_and_cancel(
    sim: SimulatorThread, backend: GeminiBackend
) -> None:
    run = await backend.launch(AGENT)
    assert sim.forget_runs([run.run_id]) == 1
    for call in (backend.poll, backend.cancel):
        with pytest.raises(Failure) as err:
            await call(run.run_id)
        f = err.value
        assert f.lost and f.code == 404 and f.cause is Cause.LOST_RUN
        assert f.kind is Kind.PERMANENT and f.error_class is ErrorClass.LOST


async def test_the_key_never_reaches_a_failure_message(
    sim: SimulatorThread, backend: GeminiBackend
) -> None:
    sim.set_faults([{"any": True, "fault": "http", "code": 400, "message": f"bad value {KEY}"}])
    f = await launch_failure(backend, AGENT)
    assert KEY not in f.message and KEY not in f.short() and "***" in f.message
    assert f.kind is Kind.PERMANENT and f.cause is Cause.BAD_REQUEST


# -------------------------------------------------------------------------------- network


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()  # nothing listens there now: connecting is refused at once
    return port


@pytest.mark.parametrize("endpoint", ["agent", "model"])
@pytest.mark.parametrize("where", ["closed-port", "unresolvable"])
async def test_no_route_to_the_api_is_unreachable_not_in_doubt(endpoint: str, where: str) -> None:
    # RFC 6761: .invalid never resolves. glibc still asks the configured resolver, which answers
    # NXDOMAIN at once; the connect timeout bounds the wait if it does not answer at all.
    url = (
        f"http://127.0.0.1:{closed_port()}"
        if where == "closed-port"
        else "http://tuibatch-test.invalid"
    )
    b = GeminiBackend(Credentials(api_key=KEY, base_url=url), timeout_s=3)
    t0 = time.monotonic()
    try:
        f = await launch_failure(b, SPECS[endpoint])
    finally:
        await b.close()
    assert time.monotonic() - t0 < 10
    assert (f.kind, f.cause, f.unreachable, f.in_doubt) == (
        Kind.TRANSIENT,
        Cause.NETWORK,
        True,
        False,
    )
    assert f.code is None and f.message.startswith("cannot reach the API")
    assert f.headline == "cannot reach the API"


@pytest.mark.parametrize("endpoint", ["agent", "model"])
async def test_a_timeout_after_sending_a_launch_is_in_doubt(
    sim: SimulatorThread, endpoint: str
) -> None:
    sim.set_faults([{"any": True, "fault": "hang", "seconds": 5, "times": None}])
    b = GeminiBackend(Credentials(api_key=KEY, base_url=sim.url), timeout_s=0.3)
    try:
        f = await launch_failure(b, SPECS[endpoint])
    finally:
        await b.close()
    assert (f.kind, f.cause, f.in_doubt, f.unreachable) == (
        Kind.TRANSIENT,
        Cause.TIMEOUT,
        True,
        False,
    )
    assert "in doubt: the run may exist and bill" in f.message


async def test_a_timeout_on_a_poll_is_not_in_doubt(sim: SimulatorThread) -> None:
    b = GeminiBackend(Credentials(api_key=KEY, base_url=sim.url), timeout_s=0.3)
    try:
        run = await b.launch(AGENT)
        sim.set_faults([{"any": True, "fault": "hang", "on": "get", "seconds": 5, "times": None}])
        with pytest.raises(Failure) as err:
            await b.poll(run.run_id)
    finally:
        await b.close()
    f = err.value
    assert f.cause is Cause.TIMEOUT and not f.in_doubt and "in doubt" not in f.message


@pytest.mark.parametrize("endpoint", ["agent", "model"])
async def test_a_dropped_connection_is_in_doubt_but_not_unreachable(
    sim: SimulatorThread, backend: GeminiBackend, endpoint: str
) -> None:
    sim.set_faults([{"any": True, "fault": "drop", "times": None}])
    f = await launch_failure(backend, SPECS[endpoint])
    assert (f.cause, f.in_doubt, f.unreachable) == (Cause.NETWORK, True, False)


def test_never_sent_reads_the_whole_chain() -> None:
    # what the Interactions SDK raises for a DNS failure: APIConnectionError ← httpx ConnectError ← gaierror
    from google.genai import _interactions_errors as ie

    request = httpx2.Request("POST", "http://tuibatch-test.invalid/v1/interactions")
    dns = socket.gaierror(-3, "Temporary failure in name resolution")
    connect = httpx2.ConnectError(str(dns), request=request)
    connect.__cause__ = dns
    wrapped = ie.APIConnectionError(message=str(dns), request=request)
    wrapped.__cause__ = connect
    assert never_sent(wrapped)
    read = httpx2.ReadTimeout("", request=request)
    timeout = ie.APITimeoutError(request=request)
    timeout.__cause__ = read
    assert not never_sent(timeout)
    assert not never_sent(asyncio.TimeoutError())
    refused = OSError("Multiple exceptions: [Errno 111] Connect call failed")
    refused.__context__ = ConnectionRefusedError(111, "Connection refused")
    assert never_sent(refused)


# ------------------------------------------------------------------------ configuration


@pytest.mark.parametrize("raw,vertex,mapped", [
    ("beta", False, "v1beta"), ("beta", True, "v1beta1"), ("v1", False, "v1"), ("v1alpha", True, "v1alpha"),
    (None, False, None), ("", True, None),
])  # fmt: skip
def test_api_version_maps_as_the_sdk_maps_it(
    raw: str | None, vertex: bool, mapped: str | None
) -> None:
    assert sdk_api_version(raw, vertex=vertex) == mapped


@pytest.mark.parametrize("endpoint", ["agent", "model"])
async def test_api_version_beta_reaches_v1beta(sim: SimulatorThread, endpoint: str) -> None:
    env = {
        "GEMINI_API_KEY": KEY,
        "GOOGLE_GEMINI_BASE_URL": sim.url,
        "GOOGLE_GENAI_API_VERSION": "beta",
    }
    creds = resolve_credentials(env)
    assert creds.api_version == "v1beta"
    b = GeminiBackend(creds, timeout_s=5)
    try:
        result = await b.launch(SPECS[endpoint])  # /beta/... would be a 404 at the simulator
    finally:
        await b.close()
    assert result.run_id
    raw = GeminiBackend(Credentials(api_key=KEY, base_url=sim.url, api_version="beta"), timeout_s=5)
    try:
        f = await launch_failure(raw, SPECS[endpoint])  # what passing the raw value used to do
    finally:
        await raw.close()
    assert f.code == 404


def test_default_timeouts_fit_a_thinking_model() -> None:
    b = GeminiBackend(Credentials(api_key=KEY, base_url="http://127.0.0.1:9"))
    assert b.generate_timeout_s == GENERATE_TIMEOUT_S >= 600
    assert b.interactions_timeout_s == INTERACTIONS_TIMEOUT_S
    c = GeminiBackend(Credentials(api_key=KEY, base_url="http://127.0.0.1:9"), timeout_s=7)
    assert c.generate_timeout_s == c.interactions_timeout_s == 7
