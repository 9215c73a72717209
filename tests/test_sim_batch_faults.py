"""Batch API faults: line errors, failed and expired jobs, a create whose answer is lost, quota
refusals, late output, unordered responses; each read back through the real google-genai SDK."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from google import genai
from google.genai import errors, types

from tuibatch.sim import SimConfig, Simulator, parse_fault_plan

MODEL = "gemini-2.5-flash"
PENDING, RUNNING = 10.0, 100.0


class FakeClock:
    def __init__(self) -> None:
        self.t = 50.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def make_client(url: str) -> Any:
    options = types.HttpOptions(
        base_url=url, retry_options=types.HttpRetryOptions(attempts=1), timeout=10_000
    )
    return genai.Client(api_key="dummy", http_options=options).aio


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def start(clock: FakeClock, **config: Any) -> Simulator:
    config.setdefault("batch_pending_seconds", PENDING)
    config.setdefault("batch_running_seconds", RUNNING)
    sim = Simulator(SimConfig(**config), clock=clock)
    await sim.start()
    return sim


@pytest.fixture
async def sim(clock: FakeClock) -> AsyncIterator[Simulator]:
    s = await start(clock)
    yield s
    await s.stop()


def inline(keys: list[str]) -> list[types.InlinedRequest]:
    return [types.InlinedRequest(contents=f"text of {key}", metadata={"key": key}) for key in keys]


KEYS = ["a", "b", "c", "d"]


async def finished(client: Any, clock: FakeClock, **create: Any) -> Any:
    create.setdefault("src", inline(KEYS))
    job = await client.batches.create(model=MODEL, **create)
    clock.advance(PENDING + RUNNING)
    return await client.batches.get(name=job.name)


# ------------------------------------------------------------------ line faults


async def test_item_rules_make_single_lines_fail(sim: Simulator, clock: FakeClock) -> None:
    sim.set_faults(
        [
            {"item": "a", "fault": "http", "code": 400, "message": "bad input", "times": None},
            {"item": "b", "fault": "http", "code": 503},
            {"item": "c", "fault": "finish", "reason": "MAX_TOKENS"},
            {"item": "d", "fault": "slow", "seconds": 5},  # not a line fault: never fires
        ]
    )
    client = make_client(sim.url)
    done = await finished(client, clock)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    a, b, c, d = done.dest.inlined_responses
    assert a.error.code == 3 and a.error.message == "bad input" and a.response is None
    assert b.error.code == 14  # UNAVAILABLE: gRPC codes, not HTTP ones
    assert c.response.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert d.error is None and d.response.candidates[0].finish_reason == types.FinishReason.STOP
    items = sim.stats()["batches"]["items"]
    assert items["a"]["errors"] == 1 and items["c"]["answered"] == 1
    # times: 1 is spent, times: null is not: a second job fails "a" again but answers "b".
    again = await finished(client, clock, src=inline(["a", "b"]))
    assert again.dest.inlined_responses[0].error.code == 3
    assert again.dest.inlined_responses[1].error is None
    assert sim.stats()["batches"]["items"]["a"]["jobs"] == 2


async def test_contains_rules_and_file_lines(sim: Simulator, clock: FakeClock) -> None:
    sim.set_faults([{"contains": "poison", "fault": "per_day_quota", "on": "batch_item"}])
    client = make_client(sim.url)
    lines = [
        {"key": "ok", "request": {"contents": [{"parts": [{"text": "fine"}]}]}},
        {"key": "bad", "request": {"contents": [{"parts": [{"text": "poison pill"}]}]}},
    ]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode() + b"not json\n"
    uploaded = await client.files.upload(file=io.BytesIO(data), config={"mime_type": "jsonl"})
    done = await finished(client, clock, src=uploaded.name)
    raw = await client.files.download(file=done.dest.file_name)
    got = [json.loads(line) for line in raw.decode().splitlines()]
    assert "response" in got[0] and got[0]["key"] == "ok"
    assert got[1] == {"key": "bad", "error": got[1]["error"]} and got[1]["error"]["code"] == 8
    assert "key" not in got[2] and got[2]["error"]["code"] == 3


async def test_metadata_can_go_missing_and_order_can_change(clock: FakeClock) -> None:
    sim = await start(clock, batch_echo_metadata=False, batch_response_order="reversed")
    try:
        done = await finished(make_client(sim.url), clock)
        responses = done.dest.inlined_responses
        assert all(r.metadata is None for r in responses)
        texts = [json.loads(r.response.text)["summary"] for r in responses]
        assert texts == [f"text of {k}" for k in reversed(KEYS)]
    finally:
        await sim.stop()


# -------------------------------------------------------------------- job faults


async def test_a_scripted_failed_job_delivers_nothing(sim: Simulator, clock: FakeClock) -> None:
    sim.set_faults(
        [{"item": "doomed", "fault": "job_state", "message": "Internal error.", "seconds": 30}]
    )
    client = make_client(sim.url)
    job = await client.batches.create(
        model=MODEL, src=inline(KEYS), config={"display_name": "doomed"}
    )
    clock.advance(29)
    assert (await client.batches.get(name=job.name)).state == types.JobState.JOB_STATE_RUNNING
    clock.advance(1)
    failed = await client.batches.get(name=job.name)
    assert failed.state == types.JobState.JOB_STATE_FAILED and failed.done
    assert failed.dest is None
    from tuibatch.sim.batches import render

    body = render(sim, sim.batch_jobs[job.name.removeprefix("batches/")])
    assert body["error"] == {"code": 13, "message": "Internal error."}  # the SDK drops it
    assert sim.stats()["batches"]["jobs"][job.name]["state"] == "JOB_STATE_FAILED"


async def test_a_scripted_expiry_cuts_the_run_off(sim: Simulator, clock: FakeClock) -> None:
    sim.set_faults(
        [{"any": True, "fault": "job_state", "state": "JOB_STATE_EXPIRED", "seconds": 35}]
    )
    client = make_client(sim.url)
    job = await client.batches.create(model=MODEL, src=inline(KEYS))
    clock.advance(40)
    expired = await client.batches.get(name=job.name)
    assert expired.state == types.JobState.JOB_STATE_EXPIRED
    assert [r.metadata["key"] for r in expired.dest.inlined_responses] == ["a"]  # 25 s of 100


async def test_output_can_arrive_after_the_state_says_succeeded(
    sim: Simulator, clock: FakeClock
) -> None:
    sim.set_faults([{"any": True, "fault": "output_late", "seconds": 20}])
    client = make_client(sim.url)
    early = await finished(client, clock)
    assert early.state == types.JobState.JOB_STATE_SUCCEEDED and early.dest is None
    clock.advance(20)
    late = await client.batches.get(name=early.name)
    assert len(late.dest.inlined_responses) == 4


async def test_lost_create_response_leaves_one_job_listed(sim: Simulator) -> None:
    sim.set_faults([{"any": True, "fault": "create_then_drop", "on": "batch_create"}])
    client = make_client(sim.url)
    with pytest.raises(Exception) as err:  # the SDK surfaces the transport's own error
        await client.batches.create(
            model=MODEL, src=inline(KEYS), config={"display_name": "tb-x-0001"}
        )
    assert not isinstance(err.value, errors.APIError)
    listed = [job async for job in await client.batches.list()]
    assert [job.display_name for job in listed] == ["tb-x-0001"]
    stats = sim.stats()
    assert stats["batches"]["display_names"] == {"tb-x-0001": 1}
    assert stats["by_code"] == {"dropped": 1, "200": 1}
    assert all(item["jobs"] == 1 for item in stats["batches"]["items"].values())


async def test_an_error_after_create_still_leaves_the_job(sim: Simulator) -> None:
    sim.set_faults(
        [{"item": "tb-e", "fault": "error_after_create", "code": 503, "on": "batch_create"}]
    )
    client = make_client(sim.url)
    with pytest.raises(errors.ServerError) as err:
        await client.batches.create(model=MODEL, src=inline(KEYS), config={"display_name": "tb-e"})
    assert err.value.code == 503
    assert [job["display_name"] for job in sim.jobs()] == ["tb-e"]


async def test_a_lost_job_is_404_from_then_on(sim: Simulator) -> None:
    sim.set_faults([{"any": True, "fault": "lost", "on": "batch_get"}])
    client = make_client(sim.url)
    job = await client.batches.create(model=MODEL, src=inline(KEYS))
    for _ in range(2):
        with pytest.raises(errors.ClientError) as err:
            await client.batches.get(name=job.name)
        assert err.value.code == 404


async def test_a_dropped_download(sim: Simulator, clock: FakeClock) -> None:
    # aiohttp re-sends a GET once when a reused connection closes: two drops reach the caller.
    sim.set_faults([{"any": True, "fault": "drop", "on": "download", "times": 2}])
    client = make_client(sim.url)
    data = b'{"key": "k", "request": {"contents": [{"parts": [{"text": "t"}]}]}}\n'
    uploaded = await client.files.upload(file=io.BytesIO(data), config={"mime_type": "jsonl"})
    done = await finished(client, clock, src=uploaded.name)
    with pytest.raises(Exception) as err:
        await client.files.download(file=done.dest.file_name)
    assert not isinstance(err.value, errors.APIError)
    assert sim.stats()["by_code"]["dropped"] == 2
    assert b'"key": "k"' in await client.files.download(file=done.dest.file_name)


# ---------------------------------------------------------------- create refusals


async def test_quota_rule_on_create_creates_nothing(sim: Simulator) -> None:
    sim.set_faults(
        [
            {
                "any": True,
                "on": "batch_create",
                "fault": "http",
                "code": 429,
                "quota_id": "BatchEnqueuedTokensPerModelPerProject",
                "retry_delay": "30s",
            }
        ]
    )
    with pytest.raises(errors.ClientError) as err:
        await make_client(sim.url).batches.create(model=MODEL, src=inline(KEYS))
    assert err.value.code == 429 and err.value.status == "RESOURCE_EXHAUSTED"
    kinds = [d["@type"].rsplit(".", 1)[1] for d in err.value.details["error"]["details"]]
    assert kinds == ["QuotaFailure", "RetryInfo"]
    assert sim.jobs() == []


async def test_active_job_and_enqueued_token_limits(clock: FakeClock) -> None:
    sim = await start(clock, batch_max_active_jobs=1, batch_max_enqueued_tokens=10)
    try:
        client = make_client(sim.url)
        await client.batches.create(model=MODEL, src=inline(["x"]))
        with pytest.raises(errors.ClientError) as err:
            await client.batches.create(model=MODEL, src=inline(["y"]))
        assert err.value.code == 429 and "in progress" in err.value.message
        clock.advance(PENDING + RUNNING)  # the first job ends: room again, but too many tokens
        with pytest.raises(errors.ClientError) as err:
            await client.batches.create(model=MODEL, src=inline([f"z{i}" for i in range(9)]))
        assert err.value.code == 429 and "Enqueued tokens" in err.value.message
        assert len(sim.jobs()) == 1
    finally:
        await sim.stop()


async def test_inline_size_limit_and_unknown_model(clock: FakeClock) -> None:
    sim = await start(clock, batch_inline_max_bytes=2000)
    try:
        client = make_client(sim.url)
        big = [types.InlinedRequest(contents="x" * 3000, metadata={"key": "big"})]
        with pytest.raises(errors.ClientError) as err:
            await client.batches.create(model=MODEL, src=big)
        assert err.value.code == 400 and "payload size" in err.value.message
        with pytest.raises(errors.ClientError) as err:
            await client.batches.create(model="no-such-model", src=inline(KEYS))
        assert err.value.code == 404
        assert sim.jobs() == []
    finally:
        await sim.stop()


def test_bad_batch_rules_are_refused_with_their_index() -> None:
    with pytest.raises(ValueError, match="#0.*'state' must be one of"):
        parse_fault_plan([{"any": True, "fault": "job_state", "state": "DONE"}])
    with pytest.raises(ValueError, match="#1.*'state' applies to job_state only"):
        parse_fault_plan(
            [
                {"any": True, "fault": "output_late"},
                {"any": True, "fault": "http", "state": "JOB_STATE_FAILED"},
            ]
        )
    with pytest.raises(ValueError, match="'on' must be one of"):
        parse_fault_plan([{"any": True, "fault": "http", "on": "batches"}])
