"""Every answer shape the simulator can script, read back through the real google-genai SDK.

Each test asserts that the SDK parses the answer (for Interactions errors: into the SDK's own
``...ClientError`` / ``...ServerError`` whose ``data.error`` is the typed ``Error``, not the
"did not match expected schema" fallback), raises the documented exception class, and that the
simulator's stats say what was billed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from google import genai
from google.genai import _interactions_errors as ierr
from google.genai import errors, types
from google.genai._gaos import errors as gaos_errors

from tuibatch.items import key_label
from tuibatch.sim import SimConfig, Simulator, output_text_for

AGENT = "sim-agent"
MODEL = "sim-model"


def make_client(url: str) -> Any:
    options = types.HttpOptions(
        base_url=url, retry_options=types.HttpRetryOptions(attempts=1), timeout=5000
    )
    return genai.Client(api_key="dummy", http_options=options).aio


async def start(**config: Any) -> Simulator:
    sim = Simulator(SimConfig(**config))
    await sim.start()
    return sim


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    s = await start()
    yield s
    await s.stop()


def labels(key: str) -> dict[str, str]:
    return {"tuibatch_item": key_label(key)}


async def launch(client: Any, key: str, text: str = "some input") -> Any:
    return await client.interactions.create(
        agent=AGENT, input=text, background=True, labels=labels(key)
    )


def assert_string_coded(exc: ierr.APIStatusError, code: str) -> dict[str, Any]:
    """The SDK parsed an Interactions error body into its typed ``Error`` (string code)."""
    cause = exc.__cause__
    assert isinstance(cause, gaos_errors.GenAiError)
    assert not isinstance(cause, gaos_errors.GenAiDefaultError), "body did not match the SDK type"
    assert cause.data.error.code == code  # type: ignore[attr-defined]
    body = exc.body
    assert isinstance(body, dict) and set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}, "no status, no details"
    assert body["error"]["code"] == code
    return body["error"]


def detail(err: errors.APIError, kind: str) -> dict[str, Any]:
    return next(d for d in err.details["error"]["details"] if d["@type"].endswith(kind))


# ------------------------------------------------------------- interaction errors


async def test_enforced_429_on_create_and_get_is_string_coded() -> None:
    sim = await start(rpm=2)
    try:
        client = make_client(sim.url)
        created = await launch(client, "q-1")
        await client.interactions.get(created.id)
        with pytest.raises(ierr.RateLimitError) as on_create:
            await launch(client, "q-2")
        error = assert_string_coded(on_create.value, "too_many_requests")
        assert error["message"].startswith("You do not have enough quota")
        assert isinstance(on_create.value.__cause__, gaos_errors.CreateInteractionClientError)
        with pytest.raises(ierr.RateLimitError) as on_get:
            await client.interactions.get(created.id)
        assert_string_coded(on_get.value, "too_many_requests")
        assert isinstance(on_get.value.__cause__, gaos_errors.GetInteractionByIDClientError)
        assert "retry-after" not in on_get.value.response.headers
        with pytest.raises(errors.ClientError) as on_generate:
            await client.models.generate_content(model=MODEL, contents="x")
        assert on_generate.value.code == 429 and on_generate.value.status == "RESOURCE_EXHAUSTED"
        assert detail(on_generate.value, "RetryInfo")["retryDelay"].endswith("s")
        assert sim.stats()["by_code"] == {"200": 2, "429": 3}
    finally:
        await sim.stop()


async def test_polls_free_lets_gets_through_a_spent_quota() -> None:
    sim = await start(rpm=1, polls_count=False)
    try:
        client = make_client(sim.url)
        created = await launch(client, "p-1")
        for _ in range(3):
            assert (await client.interactions.get(created.id)).status == "completed"
        with pytest.raises(ierr.RateLimitError):
            await launch(client, "p-2")
    finally:
        await sim.stop()


@pytest.mark.parametrize(
    ("fault", "extra", "exc_class", "code", "status"),
    [
        ("multi_quota", {}, ierr.RateLimitError, "too_many_requests", 429),
        ("free_tier", {}, ierr.RateLimitError, "quota_exceeded", 429),
        ("bad_key", {}, ierr.BadRequestError, "invalid_request", 400),
        ("bad_key", {"code": 401}, ierr.AuthenticationError, "authentication", 401),
        ("failed_precondition", {}, ierr.BadRequestError, "failed_precondition", 400),
        ("http", {"code": 499}, ierr.APIStatusError, "cancelled", 499),
        ("http", {"code": 503, "error_code": "overloaded"}, ierr.InternalServerError,
         "overloaded", 503),
    ],
)  # fmt: skip
async def test_request_faults_on_interactions_are_string_coded(
    sim: Simulator, fault: str, extra: dict[str, Any], exc_class: type, code: str, status: int
) -> None:
    sim.set_faults([{"item": "e-1", "fault": fault, **extra}])
    with pytest.raises(exc_class) as info:
        await launch(make_client(sim.url), "e-1")
    assert info.value.status_code == status
    assert_string_coded(info.value, code)
    item = sim.stats()["items"][key_label("e-1")]
    assert item["creates"] == 1 and item["launches"] == 0


async def test_free_tier_says_limit_zero(sim: Simulator) -> None:
    sim.set_faults([{"any": True, "fault": "free_tier", "times": None}])
    client = make_client(sim.url)
    with pytest.raises(ierr.RateLimitError) as inter:
        await client.interactions.create(model="gemini-2.5-pro", input="x")
    assert "limit: 0" in inter.value.body["error"]["message"]
    with pytest.raises(errors.ClientError) as gen:
        await client.models.generate_content(model="gemini-2.5-pro", contents="x")
    assert "limit: 0, model: gemini-2.5-pro" in gen.value.message
    violations = detail(gen.value, "QuotaFailure")["violations"]
    assert {v["quotaValue"] for v in violations} == {"0"}
    assert all(v["quotaId"].endswith("-FreeTier") for v in violations)


async def test_multi_violation_429_on_generate(sim: Simulator) -> None:
    sim.set_faults([{"any": True, "fault": "multi_quota"}])
    with pytest.raises(errors.ClientError) as info:
        await make_client(sim.url).models.generate_content(model=MODEL, contents="x")
    ids = [v["quotaId"] for v in detail(info.value, "QuotaFailure")["violations"]]
    assert ids == [
        "GenerateContentInputTokensPerModelPerMinute",
        "GenerateRequestsPerMinutePerProjectPerModel",
        "GenerateRequestsPerDayPerProjectPerModel",
    ]
    assert detail(info.value, "RetryInfo")["retryDelay"] == "47.430s"
    assert info.value.message.count("* Quota exceeded for metric:") == 3


async def test_invalid_key_from_config_and_fault_on_generate() -> None:
    sim = await start(invalid_keys=["dummy"])
    try:
        client = make_client(sim.url)
        with pytest.raises(errors.ClientError) as info:
            await client.models.generate_content(model=MODEL, contents="x")
        assert info.value.code == 400 and info.value.status == "INVALID_ARGUMENT"
        assert detail(info.value, "ErrorInfo")["reason"] == "API_KEY_INVALID"
        with pytest.raises(ierr.BadRequestError) as inter:
            await launch(client, "k-1")
        assert assert_string_coded(inter.value, "invalid_request")["message"] == (
            "API key not valid. Please pass a valid API key."
        )
        assert sim.stats()["items"] == {}  # refused at the door, before any item is read
    finally:
        await sim.stop()


async def test_failed_precondition_on_generate(sim: Simulator) -> None:
    sim.set_faults([{"any": True, "fault": "failed_precondition", "reason": "billing"}])
    with pytest.raises(errors.ClientError) as info:
        await make_client(sim.url).models.generate_content(model=MODEL, contents="x")
    assert info.value.code == 400 and info.value.status == "FAILED_PRECONDITION"
    assert "enable billing" in info.value.message


async def test_non_json_502_on_every_route(sim: Simulator) -> None:
    client = make_client(sim.url)
    created = await launch(client, "h-1")
    sim.set_faults([{"any": True, "on": "any", "fault": "html", "times": None}])
    with pytest.raises(ierr.InternalServerError) as on_create:
        await launch(client, "h-2")
    with pytest.raises(ierr.InternalServerError) as on_get:
        await client.interactions.get(created.id)
    for info in (on_create, on_get):
        assert info.value.status_code == 502
        assert isinstance(info.value.body, str) and "<html" in info.value.body
    with pytest.raises(errors.ServerError) as on_generate:
        await client.models.generate_content(model=MODEL, contents="x")
    assert on_generate.value.code == 502 and "<html" in on_generate.value.message


# ------------------------------------------------------------ billed, then failed


async def test_5xx_after_create_is_billed(sim: Simulator) -> None:
    sim.set_faults([{"item": "b-1", "fault": "error_after_create", "code": 503}])
    client = make_client(sim.url)
    with pytest.raises(ierr.InternalServerError) as info:
        await launch(client, "b-1")
    assert info.value.status_code == 503
    assert_string_coded(info.value, "unavailable")
    item = sim.stats()["items"][key_label("b-1")]
    assert item["launches"] == 1 and len(item["runs"]) == 1
    # The run exists and goes on: the client can find it.
    assert (await client.interactions.get(item["runs"][0])).status == "completed"
    assert sim.stats()["items"][key_label("b-1")]["completed"] == 1


async def test_5xx_after_generate_is_billed(sim: Simulator) -> None:
    sim.set_faults([{"contains": "paid", "fault": "error_after_create"}])
    with pytest.raises(errors.ServerError) as info:
        await make_client(sim.url).models.generate_content(model=MODEL, contents="paid")
    assert info.value.code == 500 and info.value.status == "INTERNAL"
    stats = sim.stats()
    (item,) = stats["items"].values()
    assert item["launches"] == 1 and item["completed"] == 0
    assert stats["runs"][item["runs"][0]]["status"] == "unanswered"


# ----------------------------------------------------------------- run statuses


async def test_cancel_racing_completion_returns_the_completed_run() -> None:
    sim = await start(run_seconds=30)
    try:
        sim.set_faults([{"item": "r-1", "fault": "cancel_race"}])
        client = make_client(sim.url)
        text = "race me"
        created = await launch(client, "r-1", text)
        result = await client.interactions.cancel(created.id)
        assert result.status == "completed"
        assert result.output_text == output_text_for(text)
        assert (await client.interactions.get(created.id)).status == "completed"
        item = sim.stats()["items"][key_label("r-1")]
        assert item["cancels"] == 1 and item["completed"] == 1 and item["launches"] == 1
        assert sim.stats()["runs"][created.id]["status"] == "completed"
    finally:
        await sim.stop()


async def test_cancel_after_completion_reports_completed(sim: Simulator) -> None:
    client = make_client(sim.url)
    created = await launch(client, "r-2", "done already")
    result = await client.interactions.cancel(created.id)
    assert result.status == "completed" and result.output_text == output_text_for("done already")


async def test_stuck_statuses_never_move_but_can_be_cancelled(sim: Simulator) -> None:
    sim.set_faults(
        [
            {"item": "s-q", "fault": "run_status", "status": "queued"},
            {"item": "s-i", "fault": "run_status", "status": "idle"},
        ]
    )
    client = make_client(sim.url)
    queued, idle = await launch(client, "s-q"), await launch(client, "s-i")
    for _ in range(3):
        assert (await client.interactions.get(queued.id)).status == "queued"
        assert (await client.interactions.get(idle.id)).status == "idle"
    assert (await client.interactions.cancel(idle.id)).status == "cancelled"


async def test_incomplete_run_with_partial_output_and_errors(sim: Simulator) -> None:
    sim.set_faults(
        [
            {
                "item": "i-1",
                "fault": "run_status",
                "status": "incomplete",
                "output": "partial",
                "error_code": "max_tokens",
                "message": "The output was cut at the token limit.",
            }
        ]
    )
    client = make_client(sim.url)
    created = await launch(client, "i-1", "cut me")
    result = await client.interactions.get(created.id)
    assert result.status == "incomplete"
    assert result.output_text and output_text_for("cut me").startswith(result.output_text)
    assert result.output_text != output_text_for("cut me")
    assert result.errors[0].code == "max_tokens"


async def test_completed_without_output(sim: Simulator) -> None:
    sim.set_faults(
        [{"item": "n-1", "fault": "run_status", "status": "completed", "output": "none"}]
    )
    client = make_client(sim.url)
    result = await client.interactions.get((await launch(client, "n-1")).id)
    assert result.status == "completed" and not result.output_text
    assert result.usage.total_output_tokens == 0


# ----------------------------------------------------------------------- usage


async def test_run_without_usage(sim: Simulator) -> None:
    sim.set_faults([{"item": "u-0", "fault": "usage", "usage": "none"}])
    client = make_client(sim.url)
    result = await client.interactions.get((await launch(client, "u-0", "no bill")).id)
    assert result.status == "completed" and result.output_text == output_text_for("no bill")
    assert result.usage is None


async def test_usage_with_cached_tool_use_and_grounding(sim: Simulator) -> None:
    sim.set_faults(
        [
            {
                "item": "u-1",
                "fault": "usage",
                "cached_tokens": 500,
                "tool_use_tokens": 40,
                "grounding": {"google_search": 3},
            }
        ]
    )
    client = make_client(sim.url)
    usage = (await client.interactions.get((await launch(client, "u-1")).id)).usage
    assert usage.total_cached_tokens == 500 and usage.total_input_tokens == 500
    assert usage.total_tool_use_tokens == 40
    assert [(g.type, g.count) for g in usage.grounding_tool_count] == [("google_search", 3)]
    assert usage.total_tokens == (
        usage.total_input_tokens
        + usage.total_output_tokens
        + usage.total_thought_tokens
        + usage.total_tool_use_tokens
    )


async def test_generate_usage_fields(sim: Simulator) -> None:
    sim.set_faults(
        [
            {"contains": "cached", "fault": "usage", "cached_tokens": 100, "tool_use_tokens": 7},
            {"contains": "unbilled", "fault": "usage", "usage": "none"},
        ]
    )
    client = make_client(sim.url)
    usage = (await client.models.generate_content(model=MODEL, contents="cached")).usage_metadata
    assert usage.cached_content_token_count == 100 and usage.prompt_token_count == 100
    assert usage.tool_use_prompt_token_count == 7
    assert usage.total_token_count == 100 + usage.candidates_token_count + 7
    response = await client.models.generate_content(model=MODEL, contents="unbilled")
    assert response.usage_metadata is None and response.text


# ------------------------------------------------------------ generate answers


@pytest.mark.parametrize(
    ("reason", "output", "expect"),
    [
        ("MAX_TOKENS", None, "partial"),
        ("SAFETY", None, "none"),
        ("RECITATION", None, "none"),
        ("RECITATION", "partial", "partial"),
        ("STOP", "none", "none"),
    ],
)
async def test_finish_reasons(sim: Simulator, reason: str, output: str | None, expect: str) -> None:
    rule: dict[str, Any] = {"contains": "finish", "fault": "finish", "reason": reason}
    if output is not None:
        rule["output"] = output
    sim.set_faults([rule])
    response = await make_client(sim.url).models.generate_content(model=MODEL, contents="finish")
    (candidate,) = response.candidates
    assert candidate.finish_reason == types.FinishReason(reason)
    full = output_text_for("finish")
    if expect == "partial":
        assert response.text and full.startswith(response.text) and response.text != full
    else:
        assert response.text is None
    (item,) = sim.stats()["items"].values()
    assert item["launches"] == 1 and item["completed"] == 0


async def test_blocked_prompt_and_empty_candidates(sim: Simulator) -> None:
    sim.set_faults(
        [
            {"contains": "blocked", "fault": "blocked", "reason": "PROHIBITED_CONTENT"},
            {"contains": "empty", "fault": "empty_candidates"},
        ]
    )
    client = make_client(sim.url)
    blocked = await client.models.generate_content(model=MODEL, contents="blocked")
    assert blocked.prompt_feedback.block_reason == types.BlockedReason.PROHIBITED_CONTENT
    assert not blocked.candidates and blocked.text is None
    assert blocked.usage_metadata.prompt_token_count
    empty = await client.models.generate_content(model=MODEL, contents="empty")
    assert empty.candidates == [] and empty.text is None
    statuses = sorted(r["status"] for r in sim.stats()["runs"].values())
    assert statuses == ["blocked", "empty"]


# ------------------------------------------------------------ forgotten runs


async def test_unknown_and_forgotten_runs_are_404(sim: Simulator) -> None:
    client = make_client(sim.url)
    with pytest.raises(ierr.NotFoundError) as never:
        await client.interactions.get("int_never_created")
    assert_string_coded(never.value, "not_found")
    a, b = await launch(client, "f-1"), await launch(client, "f-2")
    assert sim.forget_runs(items=["f-1"]) == 1
    with pytest.raises(ierr.NotFoundError) as forgotten:
        await client.interactions.cancel(a.id)
    assert isinstance(forgotten.value.__cause__, gaos_errors.CancelInteractionByIDClientError)
    assert (await client.interactions.get(b.id)).status == "completed"
    async with aiohttp.ClientSession() as http, http.post(f"{sim.url}/_sim/forget") as resp:
        assert (await resp.json()) == {"ok": True, "forgotten": 1}
    with pytest.raises(ierr.NotFoundError):
        await client.interactions.get(b.id)
    c = await launch(client, "f-3")
    await client.interactions.delete(c.id)
    with pytest.raises(ierr.NotFoundError):
        await client.interactions.get(c.id)
    stats = sim.stats()
    assert {stats["runs"][a.id]["status"], stats["runs"][b.id]["status"]} == {"forgotten"}
    assert stats["runs"][c.id]["status"] == "deleted"
    assert stats["items"][key_label("f-1")]["launches"] == 1  # billed stays billed


async def test_a_new_simulator_does_not_know_old_runs() -> None:
    first = await start()
    try:
        created = await launch(make_client(first.url), "old")
    finally:
        await first.stop()
    second = await start()
    try:
        with pytest.raises(ierr.NotFoundError):
            await make_client(second.url).interactions.get(created.id)
        assert second.stats()["items"] == {}
    finally:
        await second.stop()
