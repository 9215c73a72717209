"""Worker liveness, a second app on a busy checkpoint, the pace curves, the waste detail, lost
items and paged detail reads — against real worker processes, the simulator and real stores.

A worker killed with SIGKILL is a real process killed for real; "alive" comes from the
checkpoint (registered beats, leases) and the kernel (pid + start time), never from the test.
"""

from __future__ import annotations

import asyncio
import io
import json
import signal
import time
import tracemalloc
from pathlib import Path

import pytest
from rich.console import Console
from test_ui import (
    SIZE,
    header_text,
    make_checkpoint,
    make_worker,
    start_worker,
    static_text,
    until,
)
from textual.widgets import Sparkline, Static

from tuibatch.items import load_items
from tuibatch.sim import SimulatorThread
from tuibatch.states import ErrorClass, ItemState
from tuibatch.store import Attempt, Store
from tuibatch.store.monitor import HEAD_CHARS
from tuibatch.ui.app import BatchApp
from tuibatch.ui.detail import PAGE, DetailScreen
from tuibatch.ui.modals import AttachScreen
from tuibatch.ui.pace import PacePane
from tuibatch.ui.waste import WasteScreen, summary
from tuibatch.ui.worker import WorkerProcess


async def test_watch_says_when_no_worker_is_alive(
    tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    items, db = await make_checkpoint(tmp_path, 40)
    with SimulatorThread(run_seconds=30) as sim:  # runs stay in flight
        worker = start_worker(workers, items, db, sim.url, "--concurrency", "4")
        app = BatchApp(db, poll_interval=0.1)
        async with app.run_test(size=SIZE) as pilot:
            await asyncio.wait_for(app.loaded.wait(), 20)
            await until(
                pilot,
                lambda: f"1 worker alive: pid {worker.pid}" in header_text(app),
                what="the live worker in the header",
            )
            await until(pilot, lambda: "claiming" in header_text(app), what="claiming")
            await until(
                pilot,
                lambda: app.snap.totals.counts.get(ItemState.RUNNING, 0) == 4,
                what="4 runs in flight",
            )
            assert worker.proc is not None
            worker.proc.send_signal(signal.SIGKILL)  # no clean exit: no "stopped" mark
            assert worker.wait(10) == -signal.SIGKILL
            await until(
                pilot,
                lambda: "no worker running — 4 item(s) were in flight" in header_text(app),
                what="no worker running",
            )
            header = header_text(app)
            assert "claiming" not in header and "ETA" not in header
            full = app.worker_view().text()  # the header cuts it to the width
            assert full.endswith(f"start one with `tuibatch {items} --db {db}`"), full
            await pilot.press("q")


def asked(app: BatchApp) -> bool:
    return isinstance(app.screen, AttachScreen) and bool(app.screen.query(".question"))


async def test_a_second_app_offers_to_attach(tmp_path: Path, workers: list[WorkerProcess]) -> None:
    items, db = await make_checkpoint(tmp_path, 40)
    with SimulatorThread(run_seconds=30) as sim:
        first = start_worker(workers, items, db, sim.url, "--concurrency", "2")
        store = await Store.open(db)
        try:
            deadline = time.monotonic() + 20
            while not (await store.workers_alive()).alive:  # registered by its heartbeat
                assert time.monotonic() < deadline, "the worker never registered"
                await asyncio.sleep(0.05)
        finally:
            await store.close()
        # the default answer: attach as a viewer, start nothing
        second = make_worker(items, db, sim.url)
        workers.append(second)
        app = BatchApp(db, worker=second, poll_interval=0.1)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: asked(app), what="the question")
            assert f"pid {first.pid}" in static_text(app.screen.query_one(".question", Static))
            await pilot.press("enter")
            await asyncio.wait_for(app.loaded.wait(), 20)
            assert app.attached and app.worker is None and second.starts == 0
            await until(pilot, lambda: "watching · 1 worker alive" in header_text(app))
            await pilot.press("q")
        assert app.outcome == "quit" and second.starts == 0
        # start another anyway
        third = make_worker(items, db, sim.url)
        workers.append(third)
        app = BatchApp(db, worker=third, poll_interval=0.1)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: asked(app), what="the question")
            await pilot.press("s")
            await asyncio.wait_for(app.loaded.wait(), 20)
            assert app.worker is third and third.starts == 1
            await until(
                pilot, lambda: "+ 1 other worker(s)" in header_text(app), what="two workers"
            )
        # quit
        fourth = make_worker(items, db, sim.url)
        app = BatchApp(db, worker=fourth, poll_interval=0.1)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: asked(app), what="the question")
            await pilot.press("q")
        assert app.outcome == "quit" and fourth.starts == 0


async def test_no_question_when_no_worker_is_alive(tmp_path: Path) -> None:
    items, db = await make_checkpoint(tmp_path, 3)
    worker = make_worker(items, db, "http://127.0.0.1:9", "--max-attempts", "1")
    app = BatchApp(db, worker=worker, poll_interval=0.1)
    try:
        async with app.run_test(size=SIZE):
            await asyncio.wait_for(app.loaded.wait(), 20)
            assert worker.starts == 1 and not isinstance(app.screen, AttachScreen)
    finally:
        worker.terminate()
        if worker.wait(10) is None:
            worker.kill()


async def busy_checkpoint(tmp: Path) -> tuple[Path, int]:
    """Six items: three done (one after a 429), one failed (400), one lost, one pending."""
    _items, db = await make_checkpoint(tmp, 6)
    store = await Store.open(db)
    lost_seq = -1
    try:
        for i in range(5):
            claim = await store.claim()
            assert claim is not None
            seq = claim.row.seq
            if i == 0:
                await store.record_attempt(
                    seq,
                    Attempt(
                        outcome="retry",
                        http_code=429,
                        cost_usd=0.004,
                        wasted=True,
                        message="429 RESOURCE_EXHAUSTED",
                    ),
                    error_class=ErrorClass.TRANSIENT,
                )
            if i == 3:
                msg = "400 INVALID_ARGUMENT: bad document"
                await store.finish(
                    seq,
                    ItemState.FAILED,
                    error_class=ErrorClass.PERMANENT,
                    a=Attempt(outcome="failed", http_code=400, message=msg),
                )
                continue
            await store.mark_running(seq, f"int_{seq}", "sim-agent")
            if i == 4:
                await store.finish(
                    seq,
                    ItemState.LOST,
                    run_id=f"int_{seq}",
                    a=Attempt(outcome="lost", http_code=404, cost_usd=0.02, message="404"),
                )
                lost_seq = seq
                continue
            await store.finish(
                seq,
                ItemState.DONE,
                run_id=f"int_{seq}",
                output=json.dumps("ok"),
                a=Attempt(outcome="completed", cost_usd=0.01, tokens_out=10),
            )
    finally:
        await store.close()
    return db, lost_seq


async def test_pace_waste_and_lost(tmp_path: Path) -> None:
    db, lost_seq = await busy_checkpoint(tmp_path)
    store = await Store.open(db)
    try:
        pace = await store.pace()
        assert pace.buckets == 10 and pace.bucket == 60
        assert sum(pace.launches) == 4 and sum(pace.done) == 3 and sum(pace.limited) == 1
        assert pace.launches[-1] == 4, "all of it happened in the last minute"
        old = await store.pace(time.time() + 3600)
        assert sum(old.launches) == 0, "an hour later the window is empty"
        failures = {c.cause: c for c in await store.failures_by_cause_monitor()}
        assert failures["lost run"].count == 1
        (other,) = [c for c in failures.values() if c.cause != "lost run"]
        assert other.count == 1 and "bad document" in (other.example or "")
    finally:
        await store.close()
    app = BatchApp(db, poll_interval=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await asyncio.wait_for(app.loaded.wait(), 10)
        pane = app.query_one(PacePane)
        assert not pane.display
        await pilot.press("t")
        await until(pilot, lambda: pane.display and sum(app.pace.launches) == 4, what="pace")
        line = app.query_one("#pace-launches-line", Sparkline)
        rates = list(line.data or [])
        assert len(rates) == 20 and sum(rates) * app.pace.bucket / 60 == pytest.approx(4)
        limited = sum(app.query_one("#pace-limited-line", Sparkline).data or [])
        assert limited * app.pace.bucket / 60 == pytest.approx(1)
        assert "now · peak" in static_text(app.query_one("#pace-limited-now", Static))
        assert "no rate told" in static_text(app.query_one("#pace-launches-now", Static))
        await pilot.press("w")
        await until(pilot, lambda: isinstance(app.screen, WasteScreen), what="waste screen")
        screen = app.screen
        assert isinstance(screen, WasteScreen)
        console = Console(width=120, record=True, file=io.StringIO())
        console.print(summary(screen.totals, screen.waste, screen.failures))
        text = console.export_text()
        assert "failures by cause (2)" in text and "lost run" in text
        assert "bad document" in text and "spent" in text
        assert "wasted spend by cause" in text and "$0.0040" in text
        await pilot.press("escape", "7")  # only lost items
        await until(
            pilot,
            lambda: app.table.idle and app.table.total == 1 and app.table.current is not None,
            what="the lost item",
        )
        assert app.table.current is not None and app.table.current.seq == lost_seq
        await pilot.press("enter")
        await until(
            pilot,
            lambda: isinstance(app.screen, DetailScreen) and bool(app.screen.query("#detail-head")),
            what="detail",
        )
        head = static_text(app.screen.query_one("#detail-head", Static))
        assert "r (retry) relaunches it" in head and "paid so far stays counted" in head
        await pilot.press("escape", "q")


@pytest.mark.parametrize("size_mb", [20])
async def test_detail_of_a_huge_payload_reads_one_page(tmp_path: Path, size_mb: int) -> None:
    big = "x" * (size_mb * 1_000_000)
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps({"key": "huge", "payload": {"text": big}}) + "\n")
    db = tmp_path / "items.tuibatch.db"
    store = await Store.open(db, create=True)
    await store.sync_items(load_items(items))
    await store.close()
    del big
    app = BatchApp(db, poll_interval=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await asyncio.wait_for(app.loaded.wait(), 10)
        await until(pilot, lambda: app.table.current is not None, what="the row")
        assert app.store is not None
        seq = app.table.current.seq if app.table.current else 0
        tracemalloc.start()
        try:
            head = await app.store.item_head(seq)
            _cur, peak = tracemalloc.get_traced_memory()
            assert head is not None and head.cut("payload")
            assert len(head.row.payload) == HEAD_CHARS
            assert peak < 2_000_000, f"item_head peaked at {peak:,} bytes"
            tracemalloc.reset_peak()
            await pilot.press("enter")
            await until(
                pilot,
                lambda: (
                    isinstance(app.screen, DetailScreen)
                    and bool(app.screen.query("#detail-history"))
                ),
                what="detail",
            )
            screen = app.screen
            assert isinstance(screen, DetailScreen)
            note = static_text(screen.query_one("#detail-input-note", Static))
            assert screen.input_pages.total > size_mb * 1_000_000
            assert f"of {screen.input_pages.total:,}" in note
            tracemalloc.reset_peak()
            await pilot.press("right_square_bracket")
            await until(pilot, lambda: screen.input_pages.page == 1, what="page 2")
            _cur, peak = tracemalloc.get_traced_memory()
            assert peak < 8_000_000, f"turning a page peaked at {peak:,} bytes"
        finally:
            tracemalloc.stop()
        shown = static_text(screen.query_one("#detail-input", Static))
        assert len(shown) <= PAGE and set(shown) == {"x"}
        text, total = await app.store.item_slice(seq, "payload", 10, 5)
        assert total == screen.input_pages.total and len(text) == 5
        await pilot.press("escape", "q")
