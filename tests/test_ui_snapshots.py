"""Snapshot tests of the screen on a fixed checkpoint (no live worker: deterministic).

The checkpoint is built through the store API (claim, mark_running, finish, skip …) and then
its timestamps are pinned, and the app's clock is frozen, so every run draws the same frame.
Each test waits for what it is about to photograph (the rows read, the screen mounted), never
for a fixed time.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_ui import until

from tuibatch.items import load_items
from tuibatch.states import ErrorClass, ItemState
from tuibatch.store import Attempt, Store
from tuibatch.store.jobs import JobPhase, LineOutcome
from tuibatch.ui.app import BatchApp
from tuibatch.ui.detail import DetailScreen
from tuibatch.ui.help import HelpScreen

BASE = 1_750_000_000.0  # fixed wall clock for every timestamp in the checkpoint
NOW = BASE + 60.0


async def build_fixed_checkpoint(tmp: Path, n: int = 40) -> Path:
    """40 items mid-run: done (one unpriced), two failed, one skipped, running, claimed, pending."""
    items = tmp / "articles.jsonl"
    with open(items, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(
                json.dumps(
                    {
                        "key": f"article-{i:04d}",
                        "payload": {"title": f"Article {i}", "text": f"Body of article {i}."},
                    }
                )
                + "\n"
            )
    db = tmp / "articles.tuibatch.db"
    store = await Store.open(db, create=True)
    try:
        await store.sync_items(load_items(items))
        for i in range(28):
            claim = await store.claim()
            assert claim is not None
            seq = claim.row.seq
            if i < 20:
                await store.mark_running(seq, f"int_{seq:06d}", "sim-agent")
                await store.finish(
                    seq,
                    ItemState.DONE,
                    run_id=f"int_{seq:06d}",
                    output=json.dumps({"summary": f"Summary of article {i}."}),
                    a=Attempt(
                        outcome="completed",
                        tokens_in=120 + i,
                        tokens_out=300 + 7 * i,
                        tokens_thought=600 + 3 * i,
                        cost_usd=0.0011 + i * 0.0001,
                    ),
                    price_known=i != 5,
                )
            elif i == 20:
                await store.record_attempt(
                    seq,
                    Attempt(
                        outcome="permanent",
                        http_code=400,
                        message="400 INVALID_ARGUMENT: the document exceeds the allowed size.",
                    ),
                    error_class=ErrorClass.PERMANENT,
                )
                await store.finish(
                    seq,
                    ItemState.FAILED,
                    error_class=ErrorClass.PERMANENT,
                    a=Attempt(
                        outcome="failed",
                        http_code=400,
                        message="400 INVALID_ARGUMENT: the document exceeds the allowed size.",
                    ),
                )
            elif i == 21:
                for _ in range(4):
                    await store.record_attempt(
                        seq,
                        Attempt(
                            outcome="transient",
                            http_code=503,
                            delay=2.0,
                            message="503 UNAVAILABLE: The model is overloaded.",
                        ),
                        error_class=ErrorClass.TRANSIENT,
                    )
                await store.finish(
                    seq,
                    ItemState.FAILED,
                    error_class=ErrorClass.ATTEMPTS,
                    a=Attempt(
                        outcome="failed",
                        http_code=503,
                        message="503 UNAVAILABLE: gave up after 4 attempts",
                    ),
                )
            elif i == 22:
                await store.mark_running(seq, f"int_{seq:06d}", "sim-agent")
                await store.finish(
                    seq,
                    ItemState.SKIPPED,
                    a=Attempt(outcome="cancelled", message="skipped by user"),
                )
            elif i < 26:
                await store.mark_running(seq, f"int_{seq:06d}", "sim-agent")
        await store.set_control(
            {"hold_until_wall": str(NOW + 12), "hold_reason": "429 RESOURCE_EXHAUSTED"}
        )
        await pin_times(store)
    finally:
        await store.close()
    return db


async def pin_times(store: Store) -> None:
    def pin(con: sqlite3.Connection) -> None:
        con.execute("UPDATE items SET created_at=?, updated_at=?", (BASE, BASE))
        con.execute("UPDATE items SET started_at=?+seq*2 WHERE started_at IS NOT NULL", (BASE,))
        con.execute(
            "UPDATE items SET finished_at=started_at+3.5+(seq%5)*1.1 WHERE finished_at IS NOT NULL"
        )
        con.execute("UPDATE events SET t=?+id*0.4", (BASE,))
        # one live worker on another host (its beat is fresh whatever the clock says), holding
        # the in-flight items: the header's worker line does not depend on this test's pid
        con.execute(
            "UPDATE items SET owner=?, lease_until=? WHERE state IN ('claimed','running')",
            (WORKER, FAR),
        )
        con.execute(
            "INSERT INTO workers(owner, host, pid, role, started, beat, detail)"
            " VALUES (?, 'build-host', 4242, 'worker', ?, ?, '{\"every\": 30}')",
            (WORKER, BASE, FAR),
        )

    await store.transaction(pin)


#: the pinned worker: another host, pid 4242, beating "in the future" so it stays alive
WORKER = "build-host:4242:1"
FAR = 4_000_000_000.0


@pytest.fixture
def fixed_db(tmp_path: Path) -> Path:
    return asyncio.run(build_fixed_checkpoint(tmp_path))


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def make_app(db: Path) -> BatchApp:
    return BatchApp(db, title="articles.jsonl", budget=0.05, clock=lambda: NOW)


async def _settled(pilot: Any, rows: int) -> None:
    """The table shows *rows* rows, with no read in flight and nothing left to draw."""
    app: BatchApp = pilot.app
    await until(
        pilot,
        lambda: app.table.idle and app.table.total == rows and app.table.current is not None,
        what=f"{rows} rows on screen",
    )
    await pilot.wait_for_scheduled_animations()
    await pilot.pause()


async def _loaded(pilot: Any) -> None:
    app: BatchApp = pilot.app
    await asyncio.wait_for(app.loaded.wait(), 10)
    await _settled(pilot, 40)


def test_main_mid_run(snap_compare: Any, fixed_db: Path) -> None:
    assert snap_compare(make_app(fixed_db), terminal_size=(100, 30), run_before=_loaded)


def test_main_80x24(snap_compare: Any, fixed_db: Path) -> None:
    assert snap_compare(make_app(fixed_db), terminal_size=(80, 24), run_before=_loaded)


def test_detail_failed(snap_compare: Any, fixed_db: Path) -> None:
    async def open_failed(pilot: Any) -> None:
        await _loaded(pilot)
        app = pilot.app
        loads = app.table.loads
        await pilot.press("5")
        await until(pilot, lambda: app.table.loads > loads, what="the filtered rows")
        await _settled(pilot, 2)
        await pilot.press("enter")
        await until(
            pilot,
            lambda: (
                isinstance(app.screen, DetailScreen) and bool(app.screen.query("#detail-history"))
            ),
            what="the detail screen",
        )
        await pilot.wait_for_scheduled_animations()
        await pilot.pause()

    assert snap_compare(make_app(fixed_db), terminal_size=(100, 30), run_before=open_failed)


def test_main_no_worker(snap_compare: Any, fixed_db: Path) -> None:
    """The worker stopped beating and its leases ran out: the header says nobody is working."""

    def gone(con: sqlite3.Connection) -> None:
        con.execute("UPDATE workers SET beat=?", (BASE,))
        con.execute("UPDATE items SET lease_until=? WHERE lease_until IS NOT NULL", (BASE,))
        con.execute(
            "INSERT OR REPLACE INTO meta(k, v) VALUES ('items_file', '/data/articles.jsonl')"
        )

    async def edit() -> None:
        store = await Store.open(fixed_db)
        try:
            await store.transaction(gone)
        finally:
            await store.close()

    asyncio.run(edit())
    assert snap_compare(make_app(fixed_db), terminal_size=(100, 30), run_before=_loaded)


def test_help(snap_compare: Any, fixed_db: Path) -> None:
    async def open_help(pilot: Any) -> None:
        await _loaded(pilot)
        app = pilot.app
        await pilot.press("question_mark")
        await until(
            pilot,
            lambda: isinstance(app.screen, HelpScreen) and bool(app.screen.query("#help-table")),
            what="the help screen",
        )
        await pilot.wait_for_scheduled_animations()
        await pilot.pause()

    assert snap_compare(make_app(fixed_db), terminal_size=(100, 40), run_before=open_help)


def test_monochrome(snap_compare: Any, fixed_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(fixed_db)
    assert app.no_color
    assert snap_compare(app, terminal_size=(80, 24), run_before=_loaded)


async def add_batch_jobs(db: Path) -> None:
    """The fixed checkpoint's pending items through Batch API jobs: job 1 delivered four JSON
    answers at the batch rate and is settled; job 2 (the other eight) has run for 4m05s."""
    store = await Store.open(db)
    try:
        batch_id = (await store.meta())["batch_id"]
        pending = [r.seq for r in await store.items([ItemState.PENDING])]
        first, rest = pending[:4], pending[4:]
        job = await store.plan_job(batch_id, "gemini-2.5-flash", first, 4000, "inline")
        assert job is not None
        await store.job_submitted(job.id, "batches/job-one", "JOB_STATE_RUNNING", "created")
        await store.job_state(job.id, "JOB_STATE_SUCCEEDED", ended=True)
        lines = [
            LineOutcome(
                seq,
                ItemState.DONE,
                Attempt(
                    outcome="line ok", tokens_in=400, tokens_out=90, cost_usd=0.000137 + i * 1e-5
                ),
                output=json.dumps(
                    {"title": f"Article {seq}", "authors": ["Ng", "Ott"], "year": 2001 + i}
                ),
            )  # fmt: skip
            for i, seq in enumerate(first)
        ]
        assert await store.commit_job_lines(job.id, lines) == 4
        await store.close_job(job.id, JobPhase.SETTLED)
        job2 = await store.plan_job(batch_id, "gemini-2.5-flash", rest, 8000, "inline")
        assert job2 is not None
        await store.job_submitted(job2.id, "batches/job-two", "JOB_STATE_RUNNING", "created")
        await store.release_jobs()

        def pin_jobs(con: sqlite3.Connection) -> None:
            con.execute("UPDATE items SET created_at=?, updated_at=?", (BASE, BASE))
            con.execute("UPDATE items SET started_at=?+seq*2 WHERE started_at IS NOT NULL", (BASE,))
            con.execute(
                "UPDATE items SET finished_at=started_at+3.5+(seq%5)*1.1"
                " WHERE finished_at IS NOT NULL"
            )
            con.execute("UPDATE events SET t=?+id*0.4", (BASE,))
            con.execute(
                "UPDATE jobs SET created_at=?, submitted_at=?, updated_at=?, finished_at=NULL",
                (BASE - 245, NOW - 245, BASE),
            )
            con.execute("UPDATE jobs SET finished_at=? WHERE id=1", (BASE + 30,))

        await store.transaction(pin_jobs)
    finally:
        await store.close()


def test_main_batch_jobs(snap_compare: Any, fixed_db: Path) -> None:
    """Items done through a job show their JSON answers; queued ones their job, its state and
    age; the cost meter the batch rate and the interactive price of the same work."""
    asyncio.run(add_batch_jobs(fixed_db))

    async def bottom(pilot: Any) -> None:
        await _loaded(pilot)
        await pilot.press("G")
        await _settled(pilot, 40)

    assert snap_compare(make_app(fixed_db), terminal_size=(100, 30), run_before=bottom)


def test_main_batch_jobs_80x24(snap_compare: Any, fixed_db: Path) -> None:
    asyncio.run(add_batch_jobs(fixed_db))

    async def bottom(pilot: Any) -> None:
        await _loaded(pilot)
        await pilot.press("G")
        await _settled(pilot, 40)

    assert snap_compare(make_app(fixed_db), terminal_size=(80, 24), run_before=bottom)
