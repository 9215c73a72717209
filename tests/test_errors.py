"""Every failure class the real SDK raises, driven through the real engine against the simulator.

Each test asserts three things: the item's state in the checkpoint, its attempt count (and the
attempt events), and the exact requests the simulator saw. The SDK's own retries are off, so
one engine attempt is one request at the server.
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import FAST, cli_env, run_cli, write_items

from tuibatch.backends.gemini import Credentials, GeminiBackend
from tuibatch.engine import Engine, EngineConfig
from tuibatch.items import key_label, load_items
from tuibatch.policy import Backoff
from tuibatch.pricing import load_prices
from tuibatch.sim import SimulatorThread, content_item_id
from tuibatch.store import Event, Row, Store

KEY = "dummy-test-key"
AGENT = "sim-agent"
MODEL = "sim-model"


@dataclass
class Outcome:
    """What one engine run left behind: the checkpoint rows, their events, and the pause state."""

    rows: dict[str, Row]
    events: dict[str, list[Event]]
    batch_events: list[Event]
    paused: tuple[bool, str, str]
    control: dict[str, str]
    sim: dict[str, Any] = field(default_factory=dict)

    def attempts(self, key: str) -> list[Event]:
        return [e for e in self.events[key] if e.kind == "attempt"]

    def retries(self, key: str) -> list[Event]:
        return [e for e in self.attempts(key) if e.outcome == "retry"]

    def of_kind(self, key: str, kind: str) -> list[Event]:
        return [e for e in self.events[key] if e.kind == kind]

    def states(self) -> dict[str, str]:
        return {k: r.state for k, r in self.rows.items()}


async def run_engine(
    tmp_path: Path,
    sim: SimulatorThread,
    keys_or_n: int | list[str] = 1,
    *,
    faults: list[dict[str, Any]] | None = None,
    agent: str | None = AGENT,
    model: str | None = None,
    max_attempts: int = 5,
    concurrency: int = 1,
    timeout_s: float = 5.0,
    backoff: Backoff | None = None,
    items: Path | None = None,
    during: Any = None,
) -> Outcome:
    """Run the real engine with the real SDK backend until it stops by itself."""
    if items is None:
        items = tmp_path / "items.jsonl"
        assert isinstance(keys_or_n, int)
        write_items(items, keys_or_n)
    if faults is not None:
        sim.set_faults(faults)
    store = await Store.open(tmp_path / "batch.db", create=True)
    try:
        await store.sync_items(load_items(items))
        backend = GeminiBackend(Credentials(api_key=KEY, base_url=sim.url), timeout_s=timeout_s)
        cfg = EngineConfig(
            concurrency=concurrency,
            max_attempts=max_attempts,
            agent=agent,
            model=model,
            poll_initial=0.05,
            poll_max=0.2,
            backoff=backoff or Backoff(initial=0.05, maximum=0.2),
        )
        engine = Engine(store, backend, load_prices(), cfg)
        try:
            task = asyncio.create_task(engine.run())
            if during is not None:
                await during(store)
            # a hang is a failure, never a stuck test run
            await asyncio.wait_for(task, 15)
        finally:
            await backend.close()
        rows = {r.key: r for r in await store.items()}
        events = {k: await store.events(seq=r.seq) for k, r in rows.items()}
        batch_events = [e for e in await store.events(limit=100000) if e.seq is None]
        pause = await store.pause_state()  # what every worker on the checkpoint sees
        paused = (pause.active, pause.reason, str(pause.kind or ""))
        return Outcome(rows, events, batch_events, paused, await store.control(), sim.stats())
    finally:
        await store.close()


def item_stats(out: Outcome, key: str) -> dict[str, Any]:
    """The simulator's counters for one agent item (keyed by the item's label)."""
    return out.sim["items"].get(
        key_label(key),
        {"launches": 0, "creates": 0, "gets": 0, "cancels": 0, "completed": 0, "runs": []},
    )


def creates_at(sim: SimulatorThread, key: str) -> list[dict[str, Any]]:
    label = key_label(key)
    return [r for r in sim.requests() if r["item"] == label and r["route"] == "create"]


K0 = "item-0000"


def rate_notes(out: Outcome, key: str) -> list[Event]:
    """The "rate limited, waiting" notes of an item: a 429 that is not counted as an attempt."""
    return [e for e in out.of_kind(key, "info") if "rate limited" in (e.message or "")]


# ---------------------------------------------------------------- transient on launch


@pytest.mark.parametrize("code", [500, 503])
async def test_server_error_burst_is_retried_one_request_per_attempt(
    tmp_path: Path, sim: SimulatorThread, code: int
) -> None:
    out = await run_engine(
        tmp_path, sim, faults=[{"item": K0, "fault": "http", "code": code, "times": 2}]
    )
    row = out.rows[K0]
    assert row.state == "done" and row.output
    # two failed attempts and the one that launched the run
    assert row.attempts == 3
    retries = out.retries(K0)
    assert [e.http_code for e in retries] == [code, code]
    assert all(e.delay is not None and e.delay > 0 for e in retries)
    assert [(e.attempt, e.outcome) for e in out.attempts(K0)] == [
        (1, "retry"),
        (2, "retry"),
        (3, "launched"),
        (3, "completed"),
    ]
    # SDK retries are off: exactly one request per engine attempt reached the server
    st = item_stats(out, K0)
    assert st["creates"] == 3 and st["launches"] == 1 and st["completed"] == 1
    assert out.sim["by_route"]["create"] == 3
    assert out.sim["by_code"].get(str(code)) == 2
    # a 500 may come from a service that had started the run: those retries are in doubt
    assert row.relaunches == (2 if code == 500 else 0)
    assert out.paused[0] is False


async def test_transient_errors_until_max_attempts_fail_the_item(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    out = await run_engine(
        tmp_path,
        sim,
        2,
        max_attempts=3,
        faults=[{"item": K0, "fault": "http", "code": 503, "times": None}],
    )
    row = out.rows[K0]
    assert row.state == "failed"
    assert row.attempts == 3
    assert row.err_code == 503 and row.err_class == "transient"
    assert item_stats(out, K0)["creates"] == 3
    assert item_stats(out, K0)["launches"] == 0
    # the other item is untouched by it
    assert out.rows["item-0001"].state == "done"
    assert out.rows["item-0001"].attempts == 1
    assert out.paused[0] is False


async def test_429_retry_info_delay_is_honoured(tmp_path: Path, sim: SimulatorThread) -> None:
    # RetryInfo exists only in the models endpoints' Google-RPC bodies (Interactions errors carry
    # no details at all), so the delay is read on the generateContent path
    items, sim_id = _model_item(tmp_path)
    out = await run_engine(
        tmp_path,
        sim,
        items=items,
        agent=None,
        model=MODEL,
        faults=[
            {
                "item": sim_id,
                "fault": "http",
                "code": 429,
                "times": 1,
                "retry_delay": "0.6s",
                "quota_id": "GenerateRequestsPerMinutePerProjectPerModel",
            }
        ],
    )
    row = out.rows[K0]
    # a per-minute 429 is a "slow down": waited out, never counted toward --max-attempts
    assert row.state == "done" and row.attempts == 1 and out.retries(K0) == []
    (note,) = rate_notes(out, K0)
    assert "429" in (note.message or "") and "waiting 0.6s" in (note.message or "")
    reqs = [r for r in sim.requests() if r["route"] == "generate"]
    assert [r["code"] for r in reqs] == [429, 200]
    assert reqs[1]["t"] - reqs[0]["t"] >= 0.6
    assert out.paused[0] is False  # per-minute quota: retried, not a batch pause


@pytest.mark.parametrize(
    "quota_id,paused",
    [
        ("GenerateRequestsPerMinutePerProjectPerModel", False),
        ("GenerateRequestsPerDayPerProjectPerModel", True),
    ],
)
async def test_429_per_minute_and_per_day_are_told_apart_by_quota_id(
    tmp_path: Path, sim: SimulatorThread, quota_id: str, paused: bool
) -> None:
    # identical answers but for QuotaFailure.violations[].quotaId (models endpoint: RPC bodies)
    items, sim_id = _model_item(tmp_path)
    out = await run_engine(
        tmp_path,
        sim,
        items=items,
        agent=None,
        model=MODEL,
        faults=[
            {
                "item": sim_id,
                "fault": "http",
                "code": 429,
                "times": 1,
                "retry_delay": "0.1s",
                "quota_id": quota_id,
            }
        ],
    )
    row = out.rows[K0]
    assert out.paused[0] is paused
    if paused:
        assert row.state == "pending" and row.attempts == 0 and out.retries(K0) == []
        assert out.sim["items"][sim_id]["creates"] == 1
    else:
        assert row.state == "done" and row.attempts == 1 and len(rate_notes(out, K0)) == 1
        assert out.sim["items"][sim_id]["creates"] == 2
    assert row.err_code is None  # a per-minute 429 that cleared leaves no error behind


@pytest.mark.parametrize("fault,paused", [("http", False), ("per_day_quota", True)])
async def test_interactions_429_without_details_is_a_rate_limit_unless_quota_exceeded(
    tmp_path: Path, sim: SimulatorThread, fault: str, paused: bool
) -> None:
    # Interactions answer {"error": {"code": "<string>", "message": ...}}: too_many_requests is a
    # rate limit (retried), quota_exceeded is Google's daily quota (the batch pauses)
    out = await run_engine(
        tmp_path, sim, faults=[{"item": K0, "fault": fault, "code": 429, "times": 1}]
    )
    row = out.rows[K0]
    assert out.paused[0] is paused
    if paused:
        assert row.state == "pending" and row.attempts == 0
        assert item_stats(out, K0)["creates"] == 1
    else:
        assert row.state == "done" and row.attempts == 1 and len(rate_notes(out, K0)) == 1
        assert item_stats(out, K0)["creates"] == 2 and item_stats(out, K0)["launches"] == 1


async def test_retry_after_header_is_honoured(tmp_path: Path, sim: SimulatorThread) -> None:
    out = await run_engine(
        tmp_path,
        sim,
        faults=[{"item": K0, "fault": "http", "code": 429, "times": 1, "retry_after": 0.6}],
    )
    row = out.rows[K0]
    assert row.state == "done" and row.attempts == 1 and out.retries(K0) == []
    (note,) = rate_notes(out, K0)
    assert "waiting 0.6s" in (note.message or "")
    reqs = creates_at(sim, K0)
    assert [r["code"] for r in reqs] == [429, 200]
    assert reqs[1]["t"] - reqs[0]["t"] >= 0.6


async def test_timeout_on_create_is_an_in_doubt_launch(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    out = await run_engine(
        tmp_path,
        sim,
        timeout_s=0.4,
        faults=[{"item": K0, "fault": "hang", "seconds": 3, "times": 1}],
    )
    row = out.rows[K0]
    assert row.state == "done" and row.attempts == 2
    (retry,) = out.retries(K0)
    assert retry.http_code is None and "timed out" in (retry.message or "")
    # the request may have started a run: the relaunch is counted
    assert row.relaunches == 1
    assert len(out.of_kind(K0, "relaunch")) == 1
    st = item_stats(out, K0)
    assert st["creates"] == 2 and st["launches"] == 1
    assert out.sim["by_code"].get("hung") == 1


async def test_dropped_connection_on_create_is_an_in_doubt_launch(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    out = await run_engine(tmp_path, sim, faults=[{"item": K0, "fault": "drop", "times": 1}])
    row = out.rows[K0]
    assert row.state == "done" and row.attempts == 2
    (retry,) = out.retries(K0)
    assert retry.http_code is None and "connection" in (retry.message or "")
    assert row.relaunches == 1
    st = item_stats(out, K0)
    assert st["creates"] == 2 and st["launches"] == 1
    assert out.sim["by_code"].get("dropped") == 1


async def test_run_created_then_connection_dropped_is_relaunched_and_counted(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    out = await run_engine(
        tmp_path, sim, faults=[{"item": K0, "fault": "create_then_drop", "times": 1}]
    )
    row = out.rows[K0]
    assert row.state == "done" and row.attempts == 2
    assert row.relaunches == 1
    st = item_stats(out, K0)
    # the service did start (and bill) a run for the dropped request: two runs exist
    assert st["creates"] == 2 and st["launches"] == 2
    assert row.run_id == st["runs"][-1]


# ------------------------------------------------------------------ permanent on launch


async def test_400_fails_the_item_at_once(tmp_path: Path, sim: SimulatorThread) -> None:
    out = await run_engine(
        tmp_path, sim, 2, faults=[{"item": K0, "fault": "http", "code": 400, "times": None}]
    )
    row = out.rows[K0]
    assert row.state == "failed"
    assert row.attempts == 1
    assert row.err_code == 400 and row.err_class == "permanent"
    assert out.retries(K0) == []
    assert item_stats(out, K0)["creates"] == 1 and item_stats(out, K0)["launches"] == 0
    assert out.rows["item-0001"].state == "done"
    assert out.paused[0] is False


# --------------------------------------------------------------------- batch-level


def _assert_batch_paused(out: Outcome, n: int, first_creates: int = 1) -> None:
    assert out.paused[0] is True and out.paused[2] == "batch"
    assert out.control.get("paused") == "1" and out.control.get("pause_kind") == "batch"
    assert [e for e in out.batch_events if e.kind == "pause"]
    for i in range(n):
        key = f"item-{i:04d}"
        row = out.rows[key]
        assert row.state == "pending", (key, row.state)
        assert (
            row.attempts == 0 and row.err_code is None and row.run_id is None and row.owner is None
        )
        assert out.retries(key) == []
    assert item_stats(out, K0)["creates"] == first_creates
    for i in range(1, n):
        assert item_stats(out, f"item-{i:04d}")["creates"] == 0  # never claimed after the pause
    assert sum(s["launches"] for s in out.sim["items"].values()) == 0


@pytest.mark.parametrize("code,word", [(401, "bad API key"), (403, "no permission")])
async def test_auth_errors_pause_the_batch(
    tmp_path: Path, sim: SimulatorThread, code: int, word: str
) -> None:
    out = await run_engine(
        tmp_path, sim, 3, faults=[{"any": True, "fault": "http", "code": code, "times": None}]
    )
    _assert_batch_paused(out, 3)
    assert word in out.paused[1] and str(code) in out.paused[1]


async def test_unknown_agent_pauses_the_batch(tmp_path: Path, sim: SimulatorThread) -> None:
    out = await run_engine(tmp_path, sim, 3, agent="no-such-agent-12-2099")
    _assert_batch_paused(out, 3)
    assert "unknown agent" in out.paused[1]
    assert out.sim["by_code"] == {"404": 1}


async def test_per_day_quota_pauses_the_batch(tmp_path: Path, sim: SimulatorThread) -> None:
    out = await run_engine(
        tmp_path, sim, 3, faults=[{"any": True, "fault": "per_day_quota", "times": None}]
    )
    _assert_batch_paused(out, 3)
    assert "per-day quota" in out.paused[1]
    assert out.sim["by_code"] == {"429": 1}


async def test_per_day_quota_with_launches_in_flight_pauses_instead_of_waiting_a_day(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    """Its RetryInfo says 3600 s: other workers must not sit out that delay before the batch stops."""
    out = await run_engine(
        tmp_path,
        sim,
        6,
        concurrency=4,
        faults=[{"any": True, "fault": "per_day_quota", "times": None}],
    )
    assert out.paused[0] is True and "per-day quota" in out.paused[1]
    assert out.states() == {f"item-{i:04d}": "pending" for i in range(6)}
    assert all(r.attempts == 0 and r.err_code is None for r in out.rows.values())
    assert sum(s["launches"] for s in out.sim["items"].values()) == 0
    assert set(out.sim["by_code"]) == {"429"}
    assert out.sim["by_code"]["429"] <= 4  # only items already claimed when the batch paused


# ---------------------------------------------------------------------- while polling


async def test_transient_errors_while_polling_never_fail_the_item(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    # more failed polls than --max-attempts allows launches: polling errors are not attempts
    out = await run_engine(
        tmp_path,
        sim,
        max_attempts=2,
        timeout_s=0.4,
        faults=[
            {"item": K0, "fault": "http", "code": 503, "on": "get", "times": 3},
            {
                "item": K0,
                "fault": "http",
                "code": 429,
                "on": "get",
                "retry_delay": "0.1s",
                "times": 1,
            },
            {"item": K0, "fault": "drop", "on": "get", "times": 1},
            {"item": K0, "fault": "hang", "on": "get", "seconds": 3, "times": 1},
        ],
    )
    row = out.rows[K0]
    assert row.state == "done" and row.output
    assert row.attempts == 1 and row.relaunches == 0 and row.err_code is None
    poll_errors = out.of_kind(K0, "poll_error")
    assert len(poll_errors) == 6
    assert any("timed out" in (e.message or "") for e in poll_errors)
    st = item_stats(out, K0)
    assert st["launches"] == 1 and st["creates"] == 1 and len(st["runs"]) == 1
    assert st["gets"] >= 7
    # one request per poll the engine made: every failure at the server is one recorded poll error
    codes = out.sim["by_code"]
    assert codes.get("503") == 3 and codes.get("429") == 1 and codes.get("dropped") == 1
    assert codes.get("hung") == 1
    assert out.paused[0] is False


async def test_run_unknown_to_the_service_is_lost_never_launched_again(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    # a 404 for a recorded run: the run may still be going (and billing) under another key or
    # project; launching again could pay twice, so the item is "lost" until a user retries it
    out = await run_engine(
        tmp_path, sim, faults=[{"item": K0, "fault": "lost", "on": "get", "times": 1}]
    )
    row = out.rows[K0]
    assert row.state == "lost" and row.err_class == "lost" and row.cause == "lost run"
    assert row.relaunches == 0 and row.attempts == 1
    st = item_stats(out, K0)
    assert st["launches"] == 1 and st["creates"] == 1 and len(st["runs"]) == 1
    assert out.sim["runs"][st["runs"][0]]["status"] == "lost"
    assert out.of_kind(K0, "relaunch") == []
    (lost,) = [e for e in out.attempts(K0) if e.outcome == "lost"]
    assert lost.cause == "lost run" and lost.wasted == 1 and lost.http_code == 404
    assert out.paused[0] is False  # one run this process launched: not yet a batch problem


# ----------------------------------------------------------------- how the run ended


async def test_run_ended_failed_fails_the_item_without_retry(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    out = await run_engine(
        tmp_path,
        sim,
        faults=[
            {
                "item": K0,
                "fault": "run_failed",
                "status": "failed",
                "error_code": "INTERNAL",
                "message": "research step crashed",
                "times": None,
            }
        ],
    )
    row = out.rows[K0]
    assert row.state == "failed"
    assert row.attempts == 1
    assert row.err_class == "run"
    assert "run ended failed" in (row.err_message or "") and "research step crashed" in (
        row.err_message or ""
    )
    st = item_stats(out, K0)
    assert st["creates"] == 1 and st["launches"] == 1 and st["completed"] == 0


async def test_requires_action_is_reported_as_needing_a_human(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    out = await run_engine(
        tmp_path,
        sim,
        faults=[{"item": K0, "fault": "run_failed", "status": "requires_action", "times": None}],
    )
    row = out.rows[K0]
    assert row.state == "failed"
    assert row.attempts == 1
    assert "needs a human" in (row.err_message or "")
    st = item_stats(out, K0)
    assert st["creates"] == 1 and st["launches"] == 1


async def test_skip_cancels_the_run_on_the_service(tmp_path: Path, sim: SimulatorThread) -> None:
    async def skip_once_running(store: Store) -> None:
        for _ in range(200):
            row = await store.get_by_key(K0)
            if row is not None and row.state == "running":
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("never running")
        assert await store.skip([K0]) == {K0: "cancelling"}

    out = await run_engine(
        tmp_path,
        sim,
        faults=[{"item": K0, "fault": "slow", "seconds": 30, "times": 1}],
        during=skip_once_running,
    )
    row = out.rows[K0]
    assert row.state == "skipped"
    assert row.attempts == 1
    assert "cancelled" in (row.err_message or "")
    st = item_stats(out, K0)
    assert st["cancels"] == 1 and st["launches"] == 1 and st["completed"] == 0
    (run_id,) = st["runs"]
    assert out.sim["runs"][run_id]["status"] == "cancelled"
    assert row.run_id == run_id


# -------------------------------------------------------------------- --model path


def _model_item(tmp_path: Path) -> tuple[Path, str]:
    items = tmp_path / "items.jsonl"
    write_items(items, 1)
    (item,) = load_items(items)
    return items, content_item_id(item.input_text)


async def test_model_400_fails_at_once(tmp_path: Path, sim: SimulatorThread) -> None:
    items, sim_id = _model_item(tmp_path)
    out = await run_engine(
        tmp_path,
        sim,
        items=items,
        agent=None,
        model=MODEL,
        faults=[{"item": sim_id, "fault": "http", "code": 400, "times": None}],
    )
    row = out.rows[K0]
    assert row.state == "failed" and row.attempts == 1 and row.err_code == 400
    assert out.sim["by_route"]["generate"] == 1 and out.sim["by_route"]["create"] == 0
    assert out.sim["items"][sim_id]["creates"] == 1


async def test_model_503_is_retried(tmp_path: Path, sim: SimulatorThread) -> None:
    items, sim_id = _model_item(tmp_path)
    out = await run_engine(
        tmp_path,
        sim,
        items=items,
        agent=None,
        model=MODEL,
        faults=[{"item": sim_id, "fault": "http", "code": 503, "times": 2}],
    )
    row = out.rows[K0]
    assert row.state == "done" and row.output
    assert row.attempts == 3
    assert [e.http_code for e in out.retries(K0)] == [503, 503]
    # generate_content: one request per attempt, no hidden retry
    assert out.sim["by_route"]["generate"] == 3
    assert out.sim["items"][sim_id]["creates"] == 3 and out.sim["items"][sim_id]["completed"] == 1


@pytest.mark.parametrize("fault", ["drop", "hang"])
async def test_model_network_failure_is_retried_as_in_doubt(
    tmp_path: Path, sim: SimulatorThread, fault: str
) -> None:
    items, sim_id = _model_item(tmp_path)
    out = await run_engine(
        tmp_path,
        sim,
        items=items,
        agent=None,
        model=MODEL,
        timeout_s=0.4,
        faults=[{"item": sim_id, "fault": fault, "seconds": 3, "times": 1}],
    )
    row = out.rows[K0]
    assert row.state == "done" and row.output
    assert row.attempts == 2 and row.relaunches == 1
    (retry,) = out.retries(K0)
    assert retry.http_code is None
    assert out.sim["by_route"]["generate"] == 2
    assert out.sim["by_code"].get("hung" if fault == "hang" else "dropped") == 1


async def test_unknown_model_pauses_the_batch(tmp_path: Path, sim: SimulatorThread) -> None:
    out = await run_engine(tmp_path, sim, 3, agent=None, model="gemini-0-nonexistent")
    assert out.paused[0] is True and "unknown agent or model" in out.paused[1]
    assert out.states() == {f"item-{i:04d}": "pending" for i in range(3)}
    assert all(r.attempts == 0 and r.err_code is None for r in out.rows.values())
    assert out.sim["by_route"]["generate"] == 1 and out.sim["by_code"] == {"404": 1}


# ---------------------------------------------------------------------------- labels


LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")


async def test_labels_the_simulator_received_follow_googles_rules(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    items = tmp_path / "items.jsonl"
    keys = ["Ärger/ÜBER Größe " + "x" * 200, "UPPER case KEY", "doi:10.1000/XYZ-123"]
    items.write_text(
        "".join(json.dumps({"key": k, "payload": f"text {i}"}) + "\n" for i, k in enumerate(keys)),
        encoding="utf-8",
    )
    out = await run_engine(tmp_path, sim, items=items)
    assert out.states() == dict.fromkeys(keys, "done")
    seen = set()
    for key in keys:
        run_id = out.rows[key].run_id
        req = urllib.request.Request(
            f"{sim.url}/v1/interactions/{run_id}", headers={"x-goog-api-key": KEY}
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            labels = json.load(resp)["labels"]
        assert labels, key
        for k, v in labels.items():
            assert LABEL_KEY.match(k), k
            assert LABEL_VALUE.match(v), v
        seen.add(labels["tuibatch_item"])
        assert labels["tuibatch_item"] == key_label(key)
    assert len(seen) == len(keys)


# ------------------------------------------------------------------ the CLI, end to end


def _db_rows(db: Path) -> dict[str, tuple[str, int, int | None, str | None]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return {
            k: (st, att, code, run_id)
            for k, st, att, code, run_id in con.execute(
                "SELECT key, state, attempts, err_code, run_id FROM items ORDER BY seq"
            )
        }
    finally:
        con.close()


def test_no_key_is_one_clear_line_before_anything_is_claimed(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    items, db = tmp_path / "items.jsonl", tmp_path / "batch.db"
    write_items(items, 3)
    env = cli_env(sim.url)
    del env["GEMINI_API_KEY"]
    out = run_cli([str(items), "--headless", "--db", str(db), "--agent", AGENT, *FAST], env=env)
    assert out.returncode == 2
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and "no API key" in lines[0] and "GEMINI_API_KEY" in lines[0]
    assert out.stdout == ""
    assert not db.exists()
    assert sim.stats()["requests"] == 0


@pytest.mark.parametrize("cause", ["401", "403", "unknown-agent", "per-day-quota"])
def test_batch_level_failure_exits_3_with_one_message_and_fails_nothing(
    tmp_path: Path, sim: SimulatorThread, cause: str
) -> None:
    items, db = tmp_path / "items.jsonl", tmp_path / "batch.db"
    keys = write_items(items, 6)
    agent, words = AGENT, ""
    if cause in ("401", "403"):
        sim.set_faults([{"any": True, "fault": "http", "code": int(cause), "times": None}])
        words = {"401": "bad API key", "403": "no permission"}[cause]
    elif cause == "per-day-quota":
        sim.set_faults([{"any": True, "fault": "per_day_quota", "times": None}])
        words = "per-day quota"
    else:
        agent, words = "no-such-agent-12-2099", "unknown agent"
    t0 = time.monotonic()
    out = run_cli(
        [str(items), "--headless", "--db", str(db), "--agent", agent, "--concurrency", "2", *FAST],
        env=cli_env(sim.url),
        timeout=30,
    )
    assert time.monotonic() - t0 < 20  # a per-day quota's hour-long RetryInfo is not waited out
    assert out.returncode == 3, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("tuibatch: batch paused with 6 item(s) left") and words in lines[0]
    # no item failed, none attempted, none holding a run id: all still pending
    rows = _db_rows(db)
    assert rows == {k: ("pending", 0, None, None) for k in keys}
    stats = sim.stats()
    assert sum(s["launches"] for s in stats["items"].values()) == 0
    touched = {label for label, s in stats["items"].items() if s["creates"]}
    assert 1 <= len(touched) <= 2 and touched <= {key_label(keys[0]), key_label(keys[1])}
    assert stats["requests"] == sum(s["creates"] for s in stats["items"].values())


def test_api_key_never_reaches_checkpoint_log_or_export(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    items, db = tmp_path / "items.jsonl", tmp_path / "batch.db"
    keys = write_items(items, 5)
    # a service or proxy that echoes the key back (not a bad-key message: that pauses the batch)
    echo = f"Request contains an invalid argument: {KEY}"
    sim.set_faults(
        [
            {"item": keys[0], "fault": "http", "code": 400, "message": echo, "times": None},
            {"item": keys[1], "fault": "http", "code": 503, "message": echo, "times": 1},
            {"item": keys[2], "fault": "drop", "times": 1},
            {
                "item": keys[3],
                "fault": "run_failed",
                "status": "failed",
                "message": echo,
                "times": None,
            },
            {
                "item": keys[4],
                "fault": "http",
                "code": 503,
                "on": "get",
                "message": echo,
                "times": 1,
            },
        ]
    )
    out = run_cli(
        [str(items), "--headless", "--db", str(db), "--agent", AGENT, *FAST], env=cli_env(sim.url)
    )
    assert out.returncode == 1, out.stderr  # two items failed
    rows = _db_rows(db)
    assert {k: v[0] for k, v in rows.items()} == {
        keys[0]: "failed",
        keys[1]: "done",
        keys[2]: "done",
        keys[3]: "failed",
        keys[4]: "done",
    }
    exported = run_cli(["export", "--db", str(db)])
    assert exported.returncode == 0
    assert "invalid argument" in exported.stdout  # the message is kept, only the key is not
    assert KEY not in out.stdout and KEY not in out.stderr and KEY not in exported.stdout
    for f in tmp_path.iterdir():
        if f.name.startswith("batch.db"):
            assert KEY.encode() not in f.read_bytes(), f.name
