"""The engine on every answer the real service can give: lost runs, skip racing completion, runs
that never end, answers cut short, runs without usage. Real SDK over HTTP against the simulator;
each test asserts the item's state, the requests the simulator saw for it, and the money.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import cli_env, new_batch, run_cli, start_cli, wait_until, write_items
from test_errors import AGENT, K0, KEY, MODEL, Outcome, _model_item, item_stats

from tuibatch.backends.base import LaunchSpec
from tuibatch.backends.gemini import Credentials, GeminiBackend
from tuibatch.engine import Engine, EngineConfig
from tuibatch.items import load_items
from tuibatch.itemsfile import SpecDefaults, parse_lines
from tuibatch.policy import Backoff
from tuibatch.pricing import load_prices
from tuibatch.sim import SimulatorThread
from tuibatch.store import Row, Store


async def go(
    tmp_path: Path,
    sim: SimulatorThread,
    faults: list[dict[str, Any]],
    *,
    items: Path | None = None,
    n: int = 1,
    during: Any = None,
    bound: float = 15.0,
    engine_cls: type[Engine] = Engine,
    base_url: str | None = None,
    **cfg: Any,
) -> Outcome:
    """Run the real engine (real SDK backend) with *cfg* until it stops by itself within *bound*."""
    if items is None:
        items = tmp_path / "items.jsonl"
        write_items(items, n)
    sim.set_faults(faults)
    cfg.setdefault("agent", AGENT)
    store = await Store.open(tmp_path / "batch.db", create=True)
    try:
        await store.sync_items(load_items(items))
        backend = GeminiBackend(
            Credentials(api_key=KEY, base_url=base_url or sim.url), timeout_s=5.0
        )
        engine = engine_cls(
            store,
            backend,
            load_prices(),
            EngineConfig(
                poll_initial=0.05, poll_max=0.2, backoff=Backoff(initial=0.05, maximum=0.2), **cfg
            ),
        )
        try:
            task = asyncio.create_task(engine.run())
            if during is not None:
                await during(store)
            await asyncio.wait_for(task, bound)  # every run ends: a hang fails the test
        finally:
            await backend.close()
        rows = {r.key: r for r in await store.items()}
        events = {k: await store.events(seq=r.seq) for k, r in rows.items()}
        pause = await store.pause_state()
        return Outcome(
            rows,
            events,
            [],
            (pause.active, pause.reason, str(pause.kind or "")),
            await store.control(),
            sim.stats(),
        )
    finally:
        await store.close()


async def skip_when_running(store: Store) -> None:
    for _ in range(400):
        row = await store.get_by_key(K0)
        if row is not None and row.state == "running":
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("never running")
    assert await store.skip([K0]) == {K0: "cancelling"}


def wasted(out: Outcome, key: str) -> list[tuple[str | None, float]]:
    return [(e.cause, e.cost_usd or 0.0) for e in out.attempts(key) if e.wasted]


# --------------------------------------------------------- no network: pause, fail nothing


async def test_no_route_to_the_api_pauses_the_batch_and_fails_no_item(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    # port 9 (discard) on loopback: connection refused, the request never left this machine
    out = await go(
        tmp_path, sim, [], n=2, concurrency=1, max_attempts=2, base_url="http://127.0.0.1:9"
    )
    assert out.states() == {"item-0000": "pending", "item-0001": "pending"}
    for row in out.rows.values():
        assert row.attempts == 0 and row.relaunches == 0 and row.err_class is None
    assert out.paused[0] and out.paused[2] == "batch" and "cannot reach the API" in out.paused[1]
    assert sim.requests() == []


# ------------------------------------------------------------- never pay twice on a resume


def _count(db: Path, state: str) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return int(con.execute("SELECT count(*) FROM items WHERE state=?", (state,)).fetchone()[0])
    except sqlite3.OperationalError:  # the worker has not created the schema yet
        return 0
    finally:
        con.close()


def test_resume_against_a_service_that_forgot_the_runs_launches_nothing(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    sim.set_faults([{"any": True, "fault": "slow", "seconds": 600, "times": None}])
    _items, db, keys, args = new_batch(tmp_path, 6, "--concurrency", "4")
    env = cli_env(sim.url)
    proc = start_cli(args, env=env)
    wait_until(lambda: db.exists() and _count(db, "running") == 4, timeout=30, what="4 runs")
    proc.kill()  # SIGKILL: the run ids are recorded, nothing else happens
    proc.wait()
    before = sim.stats()["items"]
    assert sum(s["launches"] for s in before.values()) == 4
    sim.forget_runs()  # another key or project: every recorded run now answers 404

    out = run_cli(args, env=env, timeout=60)
    assert out.returncode == 3, out.stderr  # paused, work left
    after = sim.stats()["items"]
    # zero launches: nothing paid twice, the pending items wait for the user too
    assert sum(s["launches"] for s in after.values()) == 4
    assert sum(s["creates"] for s in after.values()) == 4
    lost, running = _count(db, "lost"), _count(db, "running")
    assert lost >= 1 and lost + running == 4 and _count(db, "pending") == 2
    assert out.stderr.count("does not know runs this checkpoint recorded") == 1
    assert "different API key or project" in out.stderr

    status = run_cli(["status", "--db", str(db)], env=env)
    assert status.returncode == 0
    assert f"lost  {lost}" in status.stdout
    assert "lost run" in status.stdout  # the failure summary by cause

    con = sqlite3.connect(db)
    (lost_key,) = con.execute("SELECT key FROM items WHERE state='lost' LIMIT 1").fetchone()
    con.close()
    # `--failed` leaves lost items alone (their runs may still bill); naming the key relaunches
    retry = run_cli(["retry", "--db", str(db), "--failed"], env=env)
    assert "0 item(s) back to pending" in retry.stdout
    retry = run_cli(["retry", "--db", str(db), lost_key], env=env)
    assert retry.returncode == 0
    assert "may pay twice" in retry.stdout and "paid so far $" in retry.stdout
    assert "1 item(s) back to pending" in retry.stdout


async def test_several_runs_of_this_process_lost_pause_the_batch_once(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    out = await go(
        tmp_path,
        sim,
        [{"any": True, "fault": "lost", "on": "get", "times": None}],
        n=4,
        concurrency=1,
        lost_pause_after=2,
    )
    states = out.states()
    assert list(states.values()).count("lost") == 2 and list(states.values()).count("pending") == 2
    assert out.paused[0] and out.paused[2] == "batch" and "404" in out.paused[1]
    launches = sum(s["launches"] for s in out.sim["items"].values())
    assert launches == 2  # the two lost ones, once each; nothing after the pause


# ----------------------------------------------------------------- never lose paid work


async def test_skip_racing_completion_keeps_the_paid_answer(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    out = await go(
        tmp_path,
        sim,
        [
            {"item": K0, "fault": "slow", "seconds": 30},
            {"item": K0, "fault": "cancel_race"},
        ],
        during=skip_when_running,
    )
    row = out.rows[K0]
    assert row.state == "done" and row.output and row.cost_usd > 0 and row.price_known == 1
    st = item_stats(out, K0)
    assert st["launches"] == 1 and st["cancels"] == 1 and st["completed"] == 1
    assert wasted(out, K0) == []


async def test_skip_that_cancels_counts_what_ran_as_wasted(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    out = await go(
        tmp_path, sim, [{"item": K0, "fault": "slow", "seconds": 30}], during=skip_when_running
    )
    row = out.rows[K0]
    assert row.state == "skipped" and row.output is None
    st = item_stats(out, K0)
    assert st["launches"] == 1 and st["cancels"] == 1 and st["completed"] == 0
    assert [c for c, _ in wasted(out, K0)] == ["cancelled"]


# ---------------------------------------------------------------------- every run ends


@pytest.mark.parametrize(
    "status,words",
    [
        ("idle", "idle"),
        ("requires_continuation", "requires_continuation"),
        ("paused_for_review", "unknown status 'paused_for_review'"),
        ("queued", "status 'queued'"),
    ],
)
async def test_run_that_stops_making_progress_fails_as_stuck(
    tmp_path: Path, sim: SimulatorThread, status: str, words: str
) -> None:
    t0 = time.monotonic()
    out = await go(
        tmp_path,
        sim,
        [{"item": K0, "fault": "run_status", "status": status, "seconds": 0.05}],
        stuck_after=0.5,
    )
    assert time.monotonic() - t0 < 10
    row = out.rows[K0]
    assert row.state == "failed" and row.err_class == "stuck" and row.cause == "stuck run"
    assert row.stop_reason == status
    assert words in (row.err_message or "")
    st = item_stats(out, K0)
    assert st["launches"] == 1 and st["cancels"] == 1  # cancelled so it stops billing
    assert st["gets"] >= 2


async def test_run_in_progress_forever_ends_at_max_run_seconds(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    out = await go(
        tmp_path,
        sim,
        [{"item": K0, "fault": "run_status", "status": "in_progress"}],
        stuck_after=0.2,
        max_run_seconds=1.0,
    )
    row = out.rows[K0]
    assert row.state == "failed" and row.err_class == "stuck"
    assert "--max-run-seconds" in (row.err_message or "")
    assert item_stats(out, K0)["launches"] == 1


async def test_permanent_error_while_polling_ends_the_item(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    out = await go(
        tmp_path,
        sim,
        [
            {"item": K0, "fault": "slow", "seconds": 30},
            {"item": K0, "fault": "http", "code": 400, "on": "get", "times": None},
        ],
    )
    row = out.rows[K0]
    assert row.state == "failed" and row.err_class == "permanent"
    assert "failed for good" in (row.err_message or "")
    st = item_stats(out, K0)
    assert st["launches"] == 1 and st["gets"] == 1  # not polled forever


# ------------------------------------------------------------------------- output checks


@pytest.mark.parametrize(
    "fault,stop",
    [
        ({"fault": "finish", "reason": "MAX_TOKENS"}, "MAX_TOKENS"),
        ({"fault": "finish", "reason": "SAFETY"}, "SAFETY"),
        ({"fault": "finish", "reason": "RECITATION"}, "RECITATION"),
        ({"fault": "blocked", "reason": "SAFETY"}, "prompt blocked: SAFETY"),
        ({"fault": "empty_candidates"}, "no candidates"),
    ],
)
async def test_answer_cut_short_is_not_done(
    tmp_path: Path, sim: SimulatorThread, fault: dict[str, Any], stop: str
) -> None:
    items, sim_id = _model_item(tmp_path)
    out = await go(tmp_path, sim, [{"item": sim_id, **fault}], items=items, agent=None, model=MODEL)
    row = out.rows[K0]
    assert (
        row.state == "failed" and row.err_class == "truncated" and row.cause == "truncated output"
    )
    assert (row.stop_reason or "").startswith(stop) and stop in (row.err_message or "")
    assert (
        out.sim["items"][sim_id]["creates"] == 1
    )  # not retried: the same request stops the same way
    # it was paid for: the cost is kept and counted as wasted under its cause
    assert [c for c, _ in wasted(out, K0)] == ["truncated output"]
    assert row.cost_usd == pytest.approx(sum(c for _, c in wasted(out, K0)))


async def test_accept_truncated_keeps_the_answer_with_its_reason(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    items, sim_id = _model_item(tmp_path)
    out = await go(
        tmp_path,
        sim,
        [{"item": sim_id, "fault": "finish", "reason": "MAX_TOKENS"}],
        items=items,
        agent=None,
        model=MODEL,
        accept_truncated=True,
    )
    row = out.rows[K0]
    assert row.state == "done" and row.output and (row.stop_reason or "").startswith("MAX_TOKENS")
    assert wasted(out, K0) == []


# -------------------------------------------------------------------------- honest money


async def test_run_without_usage_costs_unknown_and_the_budget_counts_the_worst_case(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    agent = "deep-research-pro-preview-12-2025"
    worst = load_prices().worst_case(agent)
    assert worst is not None
    out = await go(
        tmp_path,
        sim,
        [{"any": True, "fault": "usage", "usage": "none", "times": None}],
        n=3,
        concurrency=1,
        agent=agent,
        budget_usd=worst * 1.5,
    )
    done = [r for r in out.rows.values() if r.state == "done"]
    assert len(done) == 2 and list(out.states().values()).count("pending") == 1
    for r in done:
        assert r.usage_known == 0 and r.price_known == 0 and r.cost_usd == 0
    assert out.paused[0] and "budget reached" in out.paused[1]
    assert "without usage at the worst case" in out.paused[1]
    assert sum(s["launches"] for s in out.sim["items"].values()) == 2


# ------------------------------------------------------------ invalid output (issue 11)

SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "year": {"type": "integer"}},
    "required": ["title", "year"],
}


class SchemaEngine(Engine):
    """The engine with each item's request as the items file builds it with ``--schema``.

    Stands in for the checkpoint's ``items.request`` column until sync stores it: the request is
    the real one (parse_lines), sent by the real backend; only where the engine reads it differs.
    """

    requests: dict[str, str] = {}

    def spec_for(self, row: Row) -> LaunchSpec:
        return replace(super().spec_for(row), request_json=self.requests[row.key])


async def go_schema(
    tmp_path: Path, sim: SimulatorThread, faults: list[dict[str, Any]], **cfg: Any
) -> Outcome:
    items = tmp_path / "items.jsonl"
    write_items(items, 1)
    specs = parse_lines(items, items.read_bytes(), SpecDefaults(model=MODEL, schema=SCHEMA))
    SchemaEngine.requests = {i.key: i.request_json for i in specs if i.request_json}
    assert SchemaEngine.requests, "the items file gave no request"
    return await go(
        tmp_path, sim, faults, items=items, agent=None, model=MODEL, engine_cls=SchemaEngine, **cfg
    )


@pytest.mark.parametrize("fault", ["invalid_json", "schema_mismatch"])
async def test_invalid_output_is_launched_again_then_failed(
    tmp_path: Path, sim: SimulatorThread, fault: str
) -> None:
    out = await go_schema(
        tmp_path, sim, [{"any": True, "fault": fault, "times": None}], invalid_output_retries=1
    )
    row = out.rows[K0]
    assert row.state == "failed" and row.err_class == "invalid_output"
    assert row.cause == "invalid output" and "invalid output" in (row.err_message or "")
    reqs = [r for r in sim.requests() if r["route"] == "generate"]
    assert len(reqs) == 2  # the first answer, and one new launch
    both = wasted(out, K0)
    assert [c for c, _ in both] == ["invalid output", "invalid output"]
    assert row.cost_usd == pytest.approx(sum(c for _, c in both)) and row.cost_usd > 0
    assert row.output_json is None


async def test_invalid_output_then_valid_is_done_with_its_json(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    out = await go_schema(tmp_path, sim, [{"any": True, "fault": "invalid_json", "times": 1}])
    row = out.rows[K0]
    assert row.state == "done" and row.output_json is not None
    value = json.loads(row.output_json)
    assert isinstance(value["title"], str) and isinstance(value["year"], int)
    assert len([r for r in sim.requests() if r["route"] == "generate"]) == 2
    ((cause, cost),) = wasted(out, K0)
    assert cause == "invalid output" and 0 < cost < row.cost_usd


def test_a_lost_network_pauses_then_the_batch_resumes_by_itself_when_it_is_back(
    tmp_path: Path,
) -> None:
    """No route to the API: nothing fails, the worker waits; the API comes back: it carries on."""
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on (yet)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _items, db, keys, args = new_batch(tmp_path, 3, "--concurrency", "1")
    env = cli_env(f"http://127.0.0.1:{port}", TUIBATCH_NETWORK_PROBE_SECONDS="0.2")
    proc = start_cli(args, env=env)

    def pause_reason() -> str:
        if not db.exists():
            return ""
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            r = con.execute("SELECT v FROM control WHERE k='pause_reason'").fetchone()
        except sqlite3.OperationalError:  # the schema is not there yet
            return ""
        finally:
            con.close()
        return str(r[0]) if r else ""

    wait_until(lambda: "cannot reach the API" in pause_reason(), timeout=60, what="the pause")
    assert proc.poll() is None, "the worker must wait for the network, not exit"
    assert _count(db, "failed") == 0 and _count(db, "done") == 0
    with SimulatorThread(port=port, run_seconds=0.05) as sim:
        _out, err = proc.communicate(timeout=90)
        assert proc.returncode == 0, err
        assert "trying again every" in err and "the API answers again" in err, err
        stats = sim.stats()["items"]
    assert _count(db, "done") == 3
    assert all(s["launches"] == 1 for s in stats.values()) and len(stats) == 3


@pytest.mark.parametrize("target", [["--model", "sim-model"], ["--agent", "sim-agent"]])
def test_a_bad_key_pauses_the_batch_once_with_exit_3_and_fails_no_item(
    tmp_path: Path, target: list[str]
) -> None:
    """400 API_KEY_INVALID (models) / the Interactions shape of it: one pause, exit 3, no failure."""
    items = tmp_path / "items.jsonl"
    write_items(items, 4)
    db = tmp_path / "items.tuibatch.db"
    env = cli_env()
    with SimulatorThread(invalid_keys=[env["GEMINI_API_KEY"]]) as sim:
        env["GOOGLE_GEMINI_BASE_URL"] = sim.url
        out = run_cli([str(items), "--headless", *target, "--progress-every", "60"], env=env)
        creates = sum(s["creates"] for s in sim.stats()["items"].values())
    assert out.returncode == 3, out.stderr
    assert "bad API key" in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert _count(db, "failed") == 0 and _count(db, "pending") == 4
    assert creates <= 1, "the batch pauses at the first bad-key answer"
