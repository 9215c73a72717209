"""Contract tests: the real google-genai SDK against the local simulator over HTTP.

If these pass, code that works against the simulator meets the same shapes, errors and
exception classes as against Google; the stats prove what would have been paid.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from google import genai
from google.genai import _interactions_errors as ierr
from google.genai import errors, types

from tuibatch.items import key_label, sha256_hex
from tuibatch.sim import (
    SimConfig,
    Simulator,
    SimulatorThread,
    content_item_id,
    demo_fault_plan,
    load_fault_plan,
    output_text_for,
    parse_fault_plan,
)

AGENT = "sim-agent"
MODEL = "sim-model"


@pytest.fixture(autouse=True)
def _no_real_google(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never let a real key or endpoint from the developer's shell leak into a test."""
    for name in (
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
        "GOOGLE_GEMINI_BASE_URL",
        "GOOGLE_GENAI_API_VERSION",
        "GOOGLE_GENAI_USE_VERTEXAI",
    ):
        monkeypatch.delenv(name, raising=False)


def make_client(url: str, *, timeout_ms: int = 5000, api_version: str | None = None) -> Any:
    options = types.HttpOptions(
        base_url=url,
        retry_options=types.HttpRetryOptions(attempts=1),
        timeout=timeout_ms,
        api_version=api_version,
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
    return {"tuibatch_item": key_label(key), "tuibatch_batch": "b-test"}


async def launch(client: Any, key: str, text: str = "some input", **kw: Any) -> Any:
    return await client.interactions.create(
        agent=AGENT, input=text, background=True, labels=labels(key), **kw
    )


# ------------------------------------------------------------------ happy paths


async def test_agent_run_is_polled_to_completion() -> None:
    sim = await start(run_seconds=0.3)
    try:
        client = make_client(sim.url)
        text = "Summarise the paper on sparse attention."
        created = await launch(client, "a-1", text, system_instruction="Be brief.")
        assert created.status == "queued"
        assert created.id
        first = await client.interactions.get(created.id)
        assert first.status == "in_progress"
        await asyncio.sleep(0.35)
        done = await client.interactions.get(created.id)
        assert done.status == "completed"
        assert done.output_text == output_text_for(text)
        out = json.loads(done.output_text)
        assert out["input_sha256"] == sha256_hex(text)[:16]
        assert out["summary"] == text[:60]
        usage = done.usage
        assert usage.total_input_tokens == len(text) // 4 + 1 + len("Be brief.") // 4 + 1
        assert usage.total_output_tokens == len(done.output_text) // 4 + 1
        assert usage.total_thought_tokens == 2 * usage.total_output_tokens
        assert usage.total_tokens == (
            usage.total_input_tokens + usage.total_output_tokens + usage.total_thought_tokens
        )
        stats = sim.stats()
        item = stats["items"][key_label("a-1")]
        assert item == {
            "launches": 1,
            "creates": 1,
            "gets": 2,
            "cancels": 0,
            "completed": 1,
            "runs": [created.id],
        }
        assert stats["runs"][created.id] == {"item": key_label("a-1"), "status": "completed"}
        assert stats["by_route"] == {"create": 1, "get": 2, "cancel": 0, "generate": 0}
        assert stats["by_code"] == {"200": 3}
    finally:
        await sim.stop()


async def test_article_metadata_is_reshaped(sim: Simulator) -> None:
    payload = {
        "title": "Attention Is All You Need",
        "authors": ["Vaswani, A.", "Shazeer, N."],
        "year": 2017,
        "doi": "10.48550/arXiv.1706.03762",
        "abstract": "The dominant sequence transduction models are based on recurrent networks.",
    }
    text = json.dumps(payload)
    result = await make_client(sim.url).interactions.create(
        model=MODEL, input=text, labels=labels("art")
    )
    out = json.loads(result.output_text)
    assert out["input_sha256"] == sha256_hex(text)[:16]
    assert out["summary"] == {
        "title": "Attention Is All You Need",
        "first_author": "Vaswani, A.",
        "year": 2017,
        "doi": "10.48550/arXiv.1706.03762",
        "keywords": ["dominant", "sequence", "transduction", "models", "based"],
    }


async def test_model_interaction_completes_in_create(sim: Simulator) -> None:
    result = await make_client(sim.url).interactions.create(model=MODEL, input="plain text input")
    assert result.status == "completed"
    assert json.loads(result.output_text)["summary"] == "plain text input"
    assert result.usage.total_thought_tokens == 0
    # Without labels the item is identified by the content hash.
    item = sim.stats()["items"][content_item_id("plain text input")]
    assert item["launches"] == 1 and item["completed"] == 1


async def test_generate_content_text_and_usage(sim: Simulator) -> None:
    response = await make_client(sim.url).models.generate_content(
        model=MODEL,
        contents="hello generate",
        config=types.GenerateContentConfig(system_instruction="sys"),
    )
    assert json.loads(response.text)["input_sha256"] == sha256_hex("hello generate")[:16]
    usage = response.usage_metadata
    assert usage.prompt_token_count == len("hello generate") // 4 + 1 + 1
    assert usage.candidates_token_count == len(response.text) // 4 + 1
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count
    assert response.response_id
    item = sim.stats()["items"][content_item_id("hello generate")]
    assert item["launches"] == 1 and item["creates"] == 1 and item["completed"] == 1
    assert sim.stats()["by_route"]["generate"] == 1


async def test_generate_content_item_label(sim: Simulator) -> None:
    """generateContent carries ``config.labels`` as top-level ``labels``: the item label wins."""
    await make_client(sim.url).models.generate_content(
        model=MODEL, contents="labelled", config=types.GenerateContentConfig(labels=labels("g-1"))
    )
    assert list(sim.stats()["items"]) == [key_label("g-1")]


async def test_generate_thinking_model_reports_thoughts(sim: Simulator) -> None:
    response = await make_client(sim.url).models.generate_content(
        model="gemini-2.5-flash", contents="think about it"
    )
    usage = response.usage_metadata
    assert usage.thoughts_token_count == usage.candidates_token_count
    assert usage.total_token_count == (
        usage.prompt_token_count + usage.candidates_token_count + usage.thoughts_token_count
    )


async def test_cancel_stops_a_running_run() -> None:
    sim = await start(run_seconds=30)
    try:
        client = make_client(sim.url)
        created = await launch(client, "c-1")
        cancelled = await client.interactions.cancel(created.id)
        assert cancelled.status == "cancelled"
        again = await client.interactions.get(created.id)
        assert again.status == "cancelled"
        assert not again.output_text
        item = sim.stats()["items"][key_label("c-1")]
        assert item["cancels"] == 1 and item["completed"] == 0 and item["launches"] == 1
    finally:
        await sim.stop()


async def test_v1beta_prefix_and_unknown_version(sim: Simulator) -> None:
    client = make_client(sim.url, api_version="v1beta")
    created = await launch(client, "beta")
    assert (await client.interactions.get(created.id)).status == "completed"
    with pytest.raises(ierr.NotFoundError):
        await make_client(sim.url, api_version="v9").interactions.create(model=MODEL, input="x")


# ------------------------------------------------------------- request errors


async def test_unknown_agent_and_model_are_404(sim: Simulator) -> None:
    client = make_client(sim.url)
    with pytest.raises(ierr.NotFoundError) as info:
        await client.interactions.create(agent="no-such-agent", input="x", background=True)
    assert info.value.status_code == 404
    assert info.value.body == {
        "error": {"code": "not_found", "message": "Agent 'no-such-agent' was not found."}
    }
    with pytest.raises(ierr.NotFoundError) as model_info:
        await client.interactions.create(model="gemini-0-nope", input="x")
    assert model_info.value.body["error"]["code"] == "model_not_found"
    with pytest.raises(errors.ClientError) as gen_info:
        await client.models.generate_content(model="gemini-0-nope", contents="x")
    assert gen_info.value.code == 404 and gen_info.value.status == "NOT_FOUND"
    assert all(item["launches"] == 0 for item in sim.stats()["items"].values())


async def test_agent_without_background_is_400(sim: Simulator) -> None:
    with pytest.raises(ierr.BadRequestError) as info:
        await make_client(sim.url).interactions.create(agent=AGENT, input="x")
    assert info.value.body["error"] == {
        "code": "invalid_request",
        "message": "Agent interactions require background=true.",
    }


async def test_missing_api_key_is_403(sim: Simulator) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{sim.url}/v1/interactions", json={"model": MODEL, "input": "x"}
        ) as resp:
            assert resp.status == 403
            assert (await resp.json())["error"]["code"] == "permission_denied"
        url = f"{sim.url}/v1beta/models/{MODEL}:generateContent"
        async with http.post(url, json={"contents": [{"parts": [{"text": "x"}]}]}) as resp:
            assert resp.status == 403
            assert (await resp.json())["error"]["status"] == "PERMISSION_DENIED"


async def test_429_fault_carries_retry_info_and_quota_failure(sim: Simulator) -> None:
    rule = {
        "fault": "http",
        "code": 429,
        "retry_delay": "1.5s",
        "quota_id": "GenerateRequestsPerMinutePerProjectPerModel",
        "retry_after": 2,
    }
    sim.set_faults([{"item": "r-1", **rule}, {"contains": "gen 429", **rule}])
    client = make_client(sim.url)
    with pytest.raises(ierr.RateLimitError) as info:
        await launch(client, "r-1")
    # Interactions: the SDK's string-coded shape, no details; the header survives.
    assert info.value.body == {
        "error": {
            "code": "too_many_requests",
            "message": "Resource has been exhausted (e.g. check quota).",
        }
    }
    with pytest.raises(errors.ClientError) as gen:
        await client.models.generate_content(model=MODEL, contents="gen 429")
    error = gen.value.details["error"]
    assert error["code"] == 429 and error["status"] == "RESOURCE_EXHAUSTED"
    by_type = {d["@type"].rsplit(".", 1)[1]: d for d in error["details"]}
    assert by_type["QuotaFailure"]["violations"][0]["quotaId"] == (
        "GenerateRequestsPerMinutePerProjectPerModel"
    )
    assert by_type["RetryInfo"]["retryDelay"] == "1.5s"
    assert info.value.response.headers["retry-after"] == "2"
    assert gen.value.response.headers["retry-after"] == "2"
    # times defaults to 1: the retry goes through, and the SDK made no hidden retry.
    assert (await launch(client, "r-1")).status in ("queued", "completed")
    item = sim.stats()["items"][key_label("r-1")]
    assert item["creates"] == 2 and item["launches"] == 1


async def test_503_is_internal_server_error_without_hidden_retries(sim: Simulator) -> None:
    sim.set_faults([{"item": "s-1", "fault": "http", "code": 503, "times": None}])
    with pytest.raises(ierr.InternalServerError) as info:
        await launch(make_client(sim.url), "s-1")
    assert info.value.status_code == 503
    assert info.value.body["error"]["code"] == "unavailable"
    stats = sim.stats()
    assert stats["items"][key_label("s-1")]["creates"] == 1
    assert stats["items"][key_label("s-1")]["launches"] == 0
    assert stats["by_code"] == {"503": 1}


async def test_per_day_quota(sim: Simulator) -> None:
    sim.set_faults([{"contains": "d-1", "fault": "per_day_quota", "times": None}])
    client = make_client(sim.url)
    with pytest.raises(ierr.RateLimitError) as info:
        await client.interactions.create(model=MODEL, input="d-1")
    assert info.value.body["error"]["code"] == "quota_exceeded"
    with pytest.raises(errors.ClientError) as gen:
        await client.models.generate_content(model=MODEL, contents="d-1")
    details = gen.value.details["error"]["details"]
    quota = next(d for d in details if d["@type"].endswith("QuotaFailure"))
    retry = next(d for d in details if d["@type"].endswith("RetryInfo"))
    assert "PerDay" in quota["violations"][0]["quotaId"]
    assert retry["retryDelay"] == "3600s"


async def test_times_after_contains_and_content_hash_rules(sim: Simulator) -> None:
    text = "unlabelled input"
    sim.set_faults(
        [
            {"item": content_item_id(text), "fault": "http", "code": 500, "times": 2, "after": 1},
            {"contains": "poison", "fault": "http", "code": 400, "times": None},
        ]
    )
    client = make_client(sim.url)
    codes: list[int] = []
    for _ in range(4):
        try:
            await client.interactions.create(model=MODEL, input=text)
            codes.append(200)
        except ierr.APIStatusError as exc:
            codes.append(exc.status_code)
    assert codes == [200, 500, 500, 200]
    with pytest.raises(ierr.BadRequestError):
        await client.interactions.create(model=MODEL, input="a poison pill")


async def test_fail_rate_is_seeded() -> None:
    async def run(seed: int) -> list[int]:
        sim = await start(fail_rate=0.5, seed=seed)
        try:
            client = make_client(sim.url)
            codes = []
            for i in range(12):
                try:
                    await client.models.generate_content(model=MODEL, contents=f"x{i}")
                    codes.append(200)
                except errors.ServerError as exc:
                    codes.append(exc.code)
            return codes
        finally:
            await sim.stop()

    first = await run(7)
    assert first == await run(7)
    assert 200 in first and any(c >= 500 for c in first)


# --------------------------------------------------------------- run outcomes


async def test_run_failed_ends_with_errors(sim: Simulator) -> None:
    sim.set_faults([{"item": "f-1", "fault": "run_failed", "message": "agent gave up"}])
    client = make_client(sim.url)
    created = await launch(client, "f-1")
    result = await client.interactions.get(created.id)
    assert result.status == "failed"
    assert result.errors[0].message == "agent gave up"
    assert result.errors[0].code == "INTERNAL"
    assert not result.output_text
    item = sim.stats()["items"][key_label("f-1")]
    assert item["launches"] == 1 and item["completed"] == 0


async def test_run_failed_other_status(sim: Simulator) -> None:
    sim.set_faults([{"item": "f-2", "fault": "run_failed", "status": "budget_exceeded"}])
    client = make_client(sim.url)
    created = await launch(client, "f-2")
    assert (await client.interactions.get(created.id)).status == "budget_exceeded"


async def test_slow_item_takes_longer() -> None:
    sim = await start(run_seconds=0.0)
    try:
        sim.set_faults([{"item": "slow", "fault": "slow", "seconds": 0.4}])
        client = make_client(sim.url)
        slow, fast = await launch(client, "slow"), await launch(client, "fast")
        assert (await client.interactions.get(fast.id)).status == "completed"
        assert (await client.interactions.get(slow.id)).status == "in_progress"
        await asyncio.sleep(0.45)
        assert (await client.interactions.get(slow.id)).status == "completed"
    finally:
        await sim.stop()


async def test_lost_run_is_404_on_get(sim: Simulator) -> None:
    sim.set_faults([{"item": "lost", "fault": "lost"}])
    client = make_client(sim.url)
    created = await launch(client, "lost")
    for _ in range(2):
        with pytest.raises(ierr.NotFoundError):
            await client.interactions.get(created.id)
    assert sim.stats()["runs"][created.id]["status"] == "lost"


# ------------------------------------------------------------- network faults


async def test_drop_is_connection_error_and_not_billed(sim: Simulator) -> None:
    sim.set_faults([{"item": "x-1", "fault": "drop"}])
    with pytest.raises(ierr.APIConnectionError):
        await launch(make_client(sim.url), "x-1")
    stats = sim.stats()
    assert stats["items"][key_label("x-1")]["launches"] == 0
    assert stats["by_code"] == {"dropped": 1}


async def test_create_then_drop_is_billed_but_unanswered(sim: Simulator) -> None:
    sim.set_faults([{"item": "x-2", "fault": "create_then_drop"}])
    client = make_client(sim.url)
    with pytest.raises(ierr.APIConnectionError):
        await launch(client, "x-2")
    item = sim.stats()["items"][key_label("x-2")]
    assert item["launches"] == 1 and len(item["runs"]) == 1
    # The run exists server-side: the in-doubt case a client must reconcile.
    assert (await client.interactions.get(item["runs"][0])).status == "completed"


async def test_generate_drop_surfaces_as_transport_error(sim: Simulator) -> None:
    sim.set_faults([{"contains": "drop me", "fault": "drop", "on": "generate"}])
    with pytest.raises(Exception) as info:
        await make_client(sim.url).models.generate_content(model=MODEL, contents="drop me")
    assert not isinstance(info.value, errors.APIError)


async def test_hang_times_out_without_blocking_others(sim: Simulator) -> None:
    sim.set_faults([{"item": "h-1", "fault": "hang"}])
    slow_client = make_client(sim.url, timeout_ms=600)
    client = make_client(sim.url)
    began = time.monotonic()
    hung = asyncio.ensure_future(launch(slow_client, "h-1"))
    await asyncio.sleep(0.05)
    ok = await launch(client, "h-2")
    assert ok.status in ("queued", "completed")
    assert time.monotonic() - began < 0.6  # answered while the other request hangs
    with pytest.raises(ierr.APITimeoutError):
        await hung
    assert time.monotonic() - began < 3
    await asyncio.sleep(0.1)
    stats = sim.stats()
    assert stats["items"][key_label("h-1")]["launches"] == 0
    assert stats["by_code"].get("hung") == 1


async def test_generate_content_errors(sim: Simulator) -> None:
    sim.set_faults(
        [
            {"contains": "bad", "fault": "http", "code": 400, "message": "bad input"},
            {"contains": "busy", "fault": "http", "code": 503},
        ]
    )
    client = make_client(sim.url)
    with pytest.raises(errors.ClientError) as bad:
        await client.models.generate_content(model=MODEL, contents="bad")
    assert bad.value.code == 400 and bad.value.status == "INVALID_ARGUMENT"
    assert bad.value.message == "bad input"
    with pytest.raises(errors.ServerError) as busy:
        await client.models.generate_content(model=MODEL, contents="busy")
    assert busy.value.code == 503 and busy.value.status == "UNAVAILABLE"


# ------------------------------------------------------------------- quotas


async def test_rpm_limit_counts_every_route_and_gives_retry_delay() -> None:
    sim = await start(rpm=3)
    try:
        client = make_client(sim.url)
        created = await launch(client, "q-1")
        await client.interactions.get(created.id)
        await client.models.generate_content(model=MODEL, contents="third")
        with pytest.raises(errors.ClientError) as info:
            await client.models.generate_content(model=MODEL, contents="fourth")
        assert info.value.code == 429
        details = info.value.details["error"]["details"]
        quota = next(d for d in details if d["@type"].endswith("QuotaFailure"))
        assert quota["violations"][0]["quotaId"] == "GenerateRequestsPerMinutePerProjectPerModel"
        delay = next(d for d in details if d["@type"].endswith("RetryInfo"))["retryDelay"]
        assert delay.endswith("s") and 55 < float(delay[:-1]) <= 60
        with pytest.raises(ierr.RateLimitError):
            await client.interactions.get(created.id)
        log = sim.requests()
        assert [r["code"] for r in log] == [200, 200, 200, 429, 429]
        assert [r["route"] for r in log] == ["create", "get", "generate", "generate", "get"]
        assert all(a["t"] <= b["t"] for a, b in zip(log, log[1:], strict=False))
    finally:
        await sim.stop()


async def test_tpm_limit() -> None:
    sim = await start(tpm=20)
    try:
        client = make_client(sim.url)
        await client.models.generate_content(model=MODEL, contents="a" * 40)  # 11 tokens
        with pytest.raises(errors.ClientError) as info:
            await client.models.generate_content(model=MODEL, contents="b" * 40)
        details = info.value.details["error"]["details"]
        assert details[0]["violations"][0]["quotaId"] == (
            "GenerateContentInputTokensPerModelPerMinute"
        )
    finally:
        await sim.stop()


# ----------------------------------------------------- admin API, thread, plans


async def test_admin_endpoints(sim: Simulator) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{sim.url}/_sim/faults", json=[{"item": "z", "fault": "http", "code": 500}]
        ) as resp:
            assert resp.status == 200
        async with http.post(f"{sim.url}/_sim/faults", json=[{"fault": "nope"}]) as resp:
            assert resp.status == 400
            assert "fault rule #0" in (await resp.json())["error"]["message"]
        client = make_client(sim.url)
        with pytest.raises(ierr.InternalServerError):
            await launch(client, "z")
        async with http.get(f"{sim.url}/_sim/stats") as resp:
            stats = await resp.json()
        assert stats["requests"] == 1 and stats["by_code"] == {"500": 1}
        async with http.get(f"{sim.url}/_sim/requests") as resp:
            assert [r["code"] for r in await resp.json()] == [500]
        async with http.post(f"{sim.url}/_sim/reset") as resp:
            assert resp.status == 200
        assert sim.stats()["requests"] == 0
        # Reset restores the budget: the rule fires again.
        with pytest.raises(ierr.InternalServerError):
            await launch(client, "z")


def test_simulator_thread_serves_sync_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    with SimulatorThread(SimConfig(run_seconds=0.0)) as sim:
        assert sim.url.startswith("http://127.0.0.1:")
        options = types.HttpOptions(
            base_url=sim.url, retry_options=types.HttpRetryOptions(attempts=1), timeout=5000
        )
        client = genai.Client(api_key="dummy", http_options=options)
        response = client.models.generate_content(model=MODEL, contents="threaded")
        assert json.loads(response.text)["summary"] == "threaded"
        sim.set_faults([{"contains": "threaded", "fault": "http", "code": 503}])
        with pytest.raises(errors.ServerError):
            client.models.generate_content(model=MODEL, contents="threaded")
        assert sim.stats()["by_code"] == {"200": 1, "503": 1}
        sim.reset()
        assert sim.stats()["requests"] == 0
    with pytest.raises(RuntimeError):
        sim.stats()


def test_fault_plan_validation(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps([{"item": "a", "fault": "drop"}, {"item": "b", "fault": "boom"}]))
    with pytest.raises(ValueError, match=r"plan\.json: fault rule #1: 'fault' must be one of"):
        load_fault_plan(plan)
    with pytest.raises(ValueError, match="fault rule #0: needs a match"):
        parse_fault_plan([{"fault": "http"}])
    with pytest.raises(ValueError, match="fault rule #0: unknown field"):
        parse_fault_plan([{"any": True, "fault": "http", "cod": 500}])
    plan.write_text(json.dumps({"faults": [{"item": "a", "fault": "hang", "seconds": 1}]}))
    (rule,) = load_fault_plan(plan)
    assert rule.on == "create" and rule.seconds == 1.0 and rule.item_label == key_label("a")


def test_demo_plan_shape() -> None:
    keys = [f"article-{i:04d}" for i in range(1, 201)]
    plan = demo_fault_plan(keys)
    rules = parse_fault_plan(plan)
    by_item: dict[str, list[dict[str, Any]]] = {}
    for rule in plan:
        by_item.setdefault(rule["item"], []).append(rule)
    assert all(by_item[f"article-{i:04d}"][0]["times"] == 2 for i in range(135, 141))
    assert all(by_item[f"article-{i:04d}"][0]["code"] == 503 for i in range(135, 141))
    assert sum(1 for r in plan if r.get("code") == 429) >= 10
    assert sum(1 for r in plan if r.get("code") == 400 and r.get("times") is None) == 2
    assert sum(1 for r in rules if r.fault == "run_failed") == 1
    assert demo_fault_plan(keys[:10]) == []
