"""The simulator's Batch API, Files API and model list, read back through the real google-genai SDK.

Time is the subject of most of these tests, so the simulator runs on an injected clock that the
test moves: no test sleeps to let a job progress.
"""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from google import genai
from google.genai import errors, types

from tuibatch.sim import (
    MODELS,
    SimConfig,
    Simulator,
    SimulatorThread,
    add_arguments,
    config_from_args,
    output_text_for,
)
from tuibatch.sim.batches import render

MODEL = "gemini-2.5-flash"
PENDING, RUNNING = 10.0, 100.0


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def options(url: str) -> types.HttpOptions:
    return types.HttpOptions(
        base_url=url, retry_options=types.HttpRetryOptions(attempts=1), timeout=10_000
    )


def make_client(url: str) -> Any:
    return genai.Client(api_key="dummy", http_options=options(url)).aio


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


def inline(texts: dict[str, str]) -> list[types.InlinedRequest]:
    return [
        types.InlinedRequest(
            contents=text,
            config=types.GenerateContentConfig(system_instruction="Be brief."),
            metadata={"key": key},
        )
        for key, text in texts.items()
    ]


TEXTS = {f"k-{i}": f"Summarise paper number {i} on sparse attention." for i in range(4)}


# ------------------------------------------------------------------ inline jobs


async def test_inline_job_runs_to_success_with_answers_usage_and_metadata(
    sim: Simulator, clock: FakeClock
) -> None:
    client = make_client(sim.url)
    job = await client.batches.create(
        model=MODEL, src=inline(TEXTS), config={"display_name": "tb-1-0001"}
    )
    assert job.name.startswith("batches/") and job.display_name == "tb-1-0001"
    assert job.state == types.JobState.JOB_STATE_PENDING and not job.done
    assert job.model == f"models/{MODEL}" and job.create_time is not None
    assert job.dest is None
    clock.advance(PENDING)
    running = await client.batches.get(name=job.name)
    assert running.state == types.JobState.JOB_STATE_RUNNING and running.dest is None
    clock.advance(RUNNING)
    done = await client.batches.get(name=job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED and done.done
    assert done.end_time is not None and done.end_time > done.create_time
    responses = done.dest.inlined_responses
    assert [r.metadata for r in responses] == [{"key": k} for k in TEXTS]
    for r, text in zip(responses, TEXTS.values(), strict=True):
        assert r.error is None
        assert r.response.text == output_text_for(text)
        assert r.response.candidates[0].finish_reason == types.FinishReason.STOP
        usage = r.response.usage_metadata
        assert usage.prompt_token_count == len(text) // 4 + 1 + len("Be brief.") // 4 + 1
        assert usage.candidates_token_count == len(r.response.text) // 4 + 1
        assert usage.total_token_count == (
            usage.prompt_token_count + usage.candidates_token_count + usage.thoughts_token_count
        )
    stats = sim.stats()["batches"]
    assert stats["created"] == 1 and stats["display_names"] == {"tb-1-0001": 1}
    summary = stats["jobs"][job.name]
    assert summary["state"] == "JOB_STATE_SUCCEEDED" and summary["items"] == 4
    assert summary["delivered"] == 4 and summary["succeeded"] == 4
    assert {k: v["jobs"] for k, v in stats["items"].items()} == dict.fromkeys(TEXTS, 1)


def operation(sim: Simulator, name: str) -> dict[str, Any]:
    """The JSON the simulator answers for a job right now."""
    return render(sim, sim.batch_jobs[name.removeprefix("batches/")])


async def test_the_wire_is_the_developer_api_operation(sim: Simulator, clock: FakeClock) -> None:
    """Raw JSON: a long-running Operation whose metadata holds BATCH_STATE_* and string counts."""
    job = await make_client(sim.url).batches.create(model=MODEL, src=inline(TEXTS))
    pending = operation(sim, job.name)
    assert "done" not in pending and pending["metadata"]["state"] == "BATCH_STATE_PENDING"
    assert pending["metadata"]["batchStats"] == {"requestCount": "4", "pendingRequestCount": "4"}
    clock.advance(PENDING + RUNNING)
    body = operation(sim, job.name)
    meta = body["metadata"]
    assert body["name"] == job.name == meta["name"] and body["done"] is True
    assert meta["@type"].endswith("GenerateContentBatch")
    assert meta["state"] == "BATCH_STATE_SUCCEEDED"
    assert meta["batchStats"] == {"requestCount": "4", "successfulRequestCount": "4"}
    assert body["response"]["@type"].endswith("GenerateContentBatchOutput")
    assert body["response"]["inlinedResponses"] == meta["output"]["inlinedResponses"]
    assert "error" not in body


async def test_lines_finish_evenly_while_running(sim: Simulator, clock: FakeClock) -> None:
    job = await make_client(sim.url).batches.create(model=MODEL, src=inline(TEXTS))
    clock.advance(PENDING + RUNNING / 2)
    stats = operation(sim, job.name)["metadata"]["batchStats"]
    assert stats == {"requestCount": "4", "successfulRequestCount": "2", "pendingRequestCount": "2"}


# -------------------------------------------------------------------- file jobs


def jsonl(texts: dict[str, str]) -> bytes:
    lines = [
        {"key": key, "request": {"contents": [{"parts": [{"text": text}], "role": "user"}]}}
        for key, text in texts.items()
    ]
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


async def test_file_job_uploads_runs_and_downloads_results(
    sim: Simulator, clock: FakeClock
) -> None:
    client = make_client(sim.url)
    data = jsonl(TEXTS) + b'{"key": "broken", "request": {"contents": []}}\n'
    uploaded = await client.files.upload(
        file=io.BytesIO(data), config={"mime_type": "application/jsonl", "display_name": "in-1"}
    )
    assert uploaded.name.startswith("files/") and uploaded.size_bytes == len(data)
    assert uploaded.state == types.FileState.ACTIVE and uploaded.source == types.FileSource.UPLOADED
    assert (await client.files.get(name=uploaded.name)).display_name == "in-1"
    job = await client.batches.create(
        model=MODEL, src=uploaded.name, config={"display_name": "tb-file"}
    )
    clock.advance(PENDING + RUNNING)
    done = await client.batches.get(name=job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    assert done.dest.inlined_responses is None and done.dest.file_name.startswith("files/")
    results = await client.files.get(name=done.dest.file_name)
    assert results.source == types.FileSource.GENERATED and results.download_uri
    raw = await client.files.download(file=done.dest.file_name)
    lines = [json.loads(line) for line in raw.decode().splitlines()]
    assert [line["key"] for line in lines] == [*TEXTS, "broken"]
    for line, text in zip(lines, TEXTS.values(), strict=False):
        answer = line["response"]["candidates"][0]["content"]["parts"][0]["text"]
        assert answer == output_text_for(text)
        assert line["response"]["usageMetadata"]["promptTokenCount"] == len(text) // 4 + 1
    assert lines[-1]["error"]["code"] == 3 and "contents" in lines[-1]["error"]["message"]
    assert sim.stats()["batches"]["files"] == {"uploaded": 1, "downloads": 1}
    await client.files.delete(name=uploaded.name)
    with pytest.raises(errors.ClientError):
        await client.files.get(name=uploaded.name)


def test_sync_client_uploads_in_several_chunks_and_downloads() -> None:
    """A file over the SDK's 8 MB chunk: the resumable protocol's offsets line up."""
    body = "x" * 1000
    texts = {f"big-{i}": f"{i} {body}" for i in range(9000)}
    data = jsonl(texts)
    assert len(data) > 8 * 1024 * 1024
    with SimulatorThread(batch_pending_seconds=0, batch_running_seconds=0) as sim:
        client = genai.Client(api_key="dummy", http_options=options(sim.url))
        uploaded = client.files.upload(file=io.BytesIO(data), config={"mime_type": "jsonl"})
        assert uploaded.size_bytes == len(data)
        job = client.batches.create(model=MODEL, src=uploaded.name)
        done = client.batches.get(name=job.name)
        assert done.state == types.JobState.JOB_STATE_SUCCEEDED
        raw = client.files.download(file=done.dest.file_name)
        assert sum(1 for _ in raw.splitlines()) == 9000
        uploads = [r for r in sim.requests() if r["route"] == "upload"]
        assert [r["code"] for r in uploads] == [200, 200, 200]  # start, chunk, final chunk
        [summary] = sim.jobs()
        assert summary["name"] == job.name and summary["state"] == "JOB_STATE_SUCCEEDED"
        assert summary["source"] == "file" and summary["items"] == 9000


def test_cli_options_set_the_job_timings() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = config_from_args(parser.parse_args(["--batch-pending", "2", "--batch-running", "3"]))
    assert (config.batch_pending_seconds, config.batch_running_seconds) == (2.0, 3.0)
    assert "job_state" in (parser.epilog or "")


async def test_uploaded_files_cannot_be_downloaded(sim: Simulator) -> None:
    client = make_client(sim.url)
    uploaded = await client.files.upload(file=io.BytesIO(b"{}\n"), config={"mime_type": "jsonl"})
    with pytest.raises(errors.ClientError) as err:
        await client.files.download(file=uploaded.name)
    assert err.value.code == 400


async def test_a_missing_input_file_is_refused(sim: Simulator) -> None:
    with pytest.raises(errors.ClientError) as err:
        await make_client(sim.url).batches.create(model=MODEL, src="files/nosuchfile")
    assert err.value.code == 404
    assert sim.stats()["batches"]["created"] == 0


# ------------------------------------------------------------- list, cancel, delete


async def test_list_pages_newest_first_and_finds_a_job_by_display_name(sim: Simulator) -> None:
    client = make_client(sim.url)
    for i in range(5):
        await client.batches.create(
            model=MODEL, src=inline({f"l-{i}": f"text {i}"}), config={"display_name": f"tb-{i}"}
        )
    pager = await client.batches.list(config={"page_size": 2})
    names = [job.display_name async for job in pager]
    assert names == ["tb-4", "tb-3", "tb-2", "tb-1", "tb-0"]
    listed = [r for r in sim.requests() if r["route"] == "batch_list"]
    assert len(listed) == 3  # 2 + 2 + 1: the pager stops at the missing token


async def test_a_job_created_between_pages_neither_repeats_nor_hides_one(sim: Simulator) -> None:
    client = make_client(sim.url)
    for i in range(3):
        await client.batches.create(model=MODEL, src=inline({f"p-{i}": f"t {i}"}))
    pager = await client.batches.list(config={"page_size": 2})
    first = [job.name for job in pager.page]
    await client.batches.create(model=MODEL, src=inline({"p-new": "new"}))
    rest = await pager.next_page()
    names = first + [job.name for job in rest]
    assert len(names) == len(set(names)) == 3


async def test_cancel_ends_the_job_at_once_with_the_lines_done_so_far(
    sim: Simulator, clock: FakeClock
) -> None:
    client = make_client(sim.url)
    job = await client.batches.create(model=MODEL, src=inline(TEXTS), config={"display_name": "c"})
    clock.advance(PENDING + RUNNING * 0.5)
    await client.batches.cancel(name=job.name)
    cancelled = await client.batches.get(name=job.name)
    assert cancelled.state == types.JobState.JOB_STATE_CANCELLED and cancelled.done
    assert [r.metadata["key"] for r in cancelled.dest.inlined_responses] == ["k-0", "k-1"]
    clock.advance(RUNNING)
    await client.batches.cancel(name=job.name)  # a cancel of an ended job changes nothing
    again = await client.batches.get(name=job.name)
    assert again.state == types.JobState.JOB_STATE_CANCELLED
    assert len(again.dest.inlined_responses) == 2


async def test_cancel_while_pending_delivers_nothing(sim: Simulator) -> None:
    client = make_client(sim.url)
    job = await client.batches.create(model=MODEL, src=inline(TEXTS))
    await client.batches.cancel(name=job.name)
    got = await client.batches.get(name=job.name)
    assert got.state == types.JobState.JOB_STATE_CANCELLED and got.dest is None
    assert sim.stats()["batches"]["jobs"][job.name]["delivered"] == 0


async def test_cancel_race_succeeds_just_before_the_cancel(sim: Simulator) -> None:
    sim.set_faults([{"any": True, "fault": "cancel_race", "on": "batch_cancel"}])
    client = make_client(sim.url)
    job = await client.batches.create(model=MODEL, src=inline(TEXTS))
    await client.batches.cancel(name=job.name)
    got = await client.batches.get(name=job.name)
    assert got.state == types.JobState.JOB_STATE_SUCCEEDED
    assert len(got.dest.inlined_responses) == 4


async def test_delete_hides_the_job_and_stats_remember_it(sim: Simulator) -> None:
    client = make_client(sim.url)
    job = await client.batches.create(model=MODEL, src=inline(TEXTS), config={"display_name": "d"})
    await client.batches.delete(name=job.name)
    with pytest.raises(errors.ClientError) as err:
        await client.batches.get(name=job.name)
    assert err.value.code == 404
    assert [j async for j in await client.batches.list()] == []
    assert sim.stats()["batches"]["jobs"][job.name]["gone"] == "deleted"


# ----------------------------------------------------------------- expiry


async def test_a_job_not_done_after_48_hours_expires(clock: FakeClock) -> None:
    sim = await start(clock, batch_running_seconds=49 * 3600.0)
    try:
        client = make_client(sim.url)
        job = await client.batches.create(model=MODEL, src=inline(TEXTS))
        clock.advance(47 * 3600)
        assert (await client.batches.get(name=job.name)).state == types.JobState.JOB_STATE_RUNNING
        clock.advance(3600)
        expired = await client.batches.get(name=job.name)
        assert expired.state == types.JobState.JOB_STATE_EXPIRED and expired.done
        # 48 h into a 49 h run (after 10 s pending): the lines finished by then are delivered.
        assert len(expired.dest.inlined_responses) == 3
    finally:
        await sim.stop()


async def test_expiry_without_partial_results(clock: FakeClock) -> None:
    sim = await start(clock, batch_expire_seconds=50.0, batch_partial_results=False)
    try:
        client = make_client(sim.url)
        job = await client.batches.create(model=MODEL, src=inline(TEXTS))
        clock.advance(60)
        expired = await client.batches.get(name=job.name)
        assert expired.state == types.JobState.JOB_STATE_EXPIRED and expired.dest is None
    finally:
        await sim.stop()


# ------------------------------------------------------------------ models list


async def test_models_list_pages_every_model_with_batch_support(sim: Simulator) -> None:
    client = make_client(sim.url)
    models = [m async for m in await client.models.list(config={"page_size": 7})]
    assert sorted(m.name for m in models) == sorted(f"models/{m}" for m in MODELS)
    for model in models:
        assert model.display_name and model.input_token_limit and model.output_token_limit
        assert {"generateContent", "batchGenerateContent"} <= set(model.supported_actions)
    assert len([r for r in sim.requests() if r["route"] == "models_list"]) == 4  # 22 / 7
    one = await client.models.get(model=MODEL)
    assert one.name == f"models/{MODEL}" and one.input_token_limit == 1_048_576
    with pytest.raises(errors.ClientError):
        await client.models.get(model="no-such-model")
