"""Pilot tests of every key against a real checkpoint, a real worker subprocess and the simulator.

The worker is ``python -m tuibatch … --headless`` exactly as the app starts it; the simulator
counts what the service saw (creates, cancels), so "pause stops claims" and "skip cancels on
the service" are checked where they matter, not in the UI's own state.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.binding import Binding

from tuibatch.items import load_items
from tuibatch.sim import SimulatorThread
from tuibatch.store import Store
from tuibatch.ui.app import BatchApp
from tuibatch.ui.detail import DetailScreen
from tuibatch.ui.help import HelpScreen, bindings_table
from tuibatch.ui.modals import ConfirmScreen, QuitScreen
from tuibatch.ui.table import ItemTable
from tuibatch.ui.worker import WorkerProcess, worker_argv

SIZE = (100, 30)


def write_items(path: Path, n: int) -> Path:
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"key": f"article-{i:04d}", "payload": {"text": f"article body {i}"}}) + "\n")
    return path


async def make_checkpoint(tmp: Path, n: int) -> tuple[Path, Path]:
    items = write_items(tmp / "items.jsonl", n)
    db = tmp / "items.tuibatch.db"
    store = await Store.open(db, create=True)
    await store.sync_items(load_items(items))
    await store.close()
    return items, db


def sim_env(url: str) -> dict[str, str]:
    env = dict(os.environ, GOOGLE_GEMINI_BASE_URL=url, GEMINI_API_KEY="dummy")
    env.pop("GOOGLE_API_KEY", None)
    return env


def make_worker(items: Path, db: Path, url: str, *extra: str) -> WorkerProcess:
    argv = [str(items), "--agent", "sim-agent", "--poll-interval", "0.1", "--retry-initial", "0.1", *extra]
    return WorkerProcess(argv, db, env=sim_env(url))


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    """Every worker a test starts is stopped afterwards, whatever the test did."""
    started: list[WorkerProcess] = []
    yield started
    for w in started:
        w.terminate()
        if w.wait(10) is None:
            w.kill()


async def until(pilot: Any, pred: Callable[[], Awaitable[bool] | bool], timeout: float = 15.0,
                what: str = "condition") -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        result = pred()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


async def state_of(app: BatchApp, key: str) -> str:
    assert app.store is not None
    row = await app.store.get_by_key(key)
    assert row is not None
    return row.state


def creates(sim: SimulatorThread) -> int:
    return int(sim.stats()["by_route"]["create"])


def cancels(sim: SimulatorThread) -> int:
    return sum(int(v["cancels"]) for v in sim.stats()["items"].values())


def start_worker(workers: list[WorkerProcess], items: Path, db: Path, url: str, *args: str) -> WorkerProcess:
    worker = make_worker(items, db, url, *args)
    workers.append(worker)
    worker.start()
    return worker


@asynccontextmanager
async def live_app(db: Path, worker: WorkerProcess) -> AsyncIterator[tuple[BatchApp, Any]]:
    """The real app on a checkpoint a real worker is filling, once its first data is on screen."""
    app = BatchApp(db, worker=worker, poll_interval=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await asyncio.wait_for(app.loaded.wait(), 20)
        yield app, pilot


def test_worker_argv_drops_ui_flags() -> None:
    argv = worker_argv(["a.jsonl", "--db", "x.db", "--quiet", "--budget", "2", "--db=y.db"], Path("z.db"))
    assert argv == ["a.jsonl", "--budget", "2", "--headless", "--quiet", "--db", "z.db"]


async def test_pause_stops_claims_then_quit_stops_worker(tmp_path: Path, workers: list[WorkerProcess]) -> None:
    items, db = await make_checkpoint(tmp_path, 200)
    with SimulatorThread(run_seconds=0.4) as sim:
        worker = start_worker(workers, items, db, sim.url, "--concurrency", "4")
        async with live_app(db, worker) as (app, pilot):
            await until(pilot, lambda: app.snap.totals.counts.get("done", 0) >= 4, what="first items done")
            assert app.check_action("pause", ()) and not app.check_action("resume", ())
            await pilot.press("p")
            assert app.store is not None
            assert (await app.store.control()).get("paused") == "1"
            assert app.check_action("resume", ()), "footer should offer Resume while paused"
            await until(pilot, lambda: sum(app.snap.totals.counts.get(s, 0) for s in ("claimed", "running")) == 0,
                        what="in-flight runs to drain")
            before = creates(sim)
            await pilot.pause(1.5)
            assert creates(sim) == before, "the worker launched while paused"
            assert "paused: by user" in str(app.query_one("#header").render())
            await pilot.press("p")
            await until(pilot, lambda: creates(sim) > before, what="launches after resume")
            await pilot.press("q")
            await until(pilot, lambda: isinstance(app.screen, QuitScreen), what="quit dialog")
            await pilot.press("s")
        assert app.outcome == "stop"
        assert worker.wait(15) == 130, "SIGTERM should stop the worker (exit 130)"


async def test_skip_running_cancels_on_service_and_q_detaches(tmp_path: Path,
                                                              workers: list[WorkerProcess]) -> None:
    items, db = await make_checkpoint(tmp_path, 3)
    with SimulatorThread(run_seconds=30) as sim:
        worker = start_worker(workers, items, db, sim.url, "--concurrency", "3")
        async with live_app(db, worker) as (app, pilot):
            await until(pilot, lambda: app.snap.totals.counts.get("running", 0) == 3, what="3 running")
            await pilot.press("3")  # only running
            await until(pilot, lambda: app.table.total == 3 and app.table.current is not None)
            assert app.table.current is not None
            key = app.table.current.key
            await pilot.press("s")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="skip confirmation")
            await pilot.press("y")
            await until(pilot, lambda: cancels(sim) == 1, what="cancel at the simulator")
            await until(pilot, lambda: _is(state_of(app, key), "skipped"), what="item skipped")
            assert cancels(sim) == 1
            await pilot.press("q")
            await until(pilot, lambda: isinstance(app.screen, QuitScreen), what="quit dialog")
            await pilot.press("d")
        assert app.outcome == "detach"
        assert worker.alive, "detach must leave the worker running"


async def _control_paused(app: BatchApp) -> bool:
    assert app.store is not None
    return (await app.store.control()).get("paused") == "1"


async def _is(value: Awaitable[str], expected: str) -> bool:
    return (await value) == expected


async def test_retry_filters_detail_and_navigation(tmp_path: Path, workers: list[WorkerProcess]) -> None:
    items, db = await make_checkpoint(tmp_path, 10)
    faults = [{"item": "article-0002", "fault": "http", "code": 400, "times": 1, "message": "bad document"},
              {"item": "article-0005", "fault": "http", "code": 400, "times": 1, "message": "bad document"}]
    with SimulatorThread(run_seconds=0.1, faults=faults) as sim:
        worker = start_worker(workers, items, db, sim.url, "--concurrency", "4")
        async with live_app(db, worker) as (app, pilot):
            await until(pilot, lambda: worker.poll() is not None, timeout=30, what="worker to finish")
            await pilot.pause(0.3)
            assert app.snap.totals.counts.get("failed") == 2
            # filters: 5 = failed only, 0 = all, / = text
            await pilot.press("5")
            await until(pilot, lambda: app.table.total == 2)
            assert app.table.current is not None and app.table.current.key == "article-0002"
            await pilot.press("0")
            await until(pilot, lambda: app.table.total == 10)
            await pilot.press("slash", "0", "0", "0", "7")
            await until(pilot, lambda: app.table.total == 1)
            await pilot.press("enter", "escape")
            await until(pilot, lambda: app.table.total == 10, what="esc clears the text filter")
            await pilot.press("slash", "b", "a", "d", "enter")  # matches the error text
            await until(pilot, lambda: app.table.total == 2)
            await pilot.press("escape")
            # navigation
            await until(pilot, lambda: app.table.total == 10)
            await pilot.press("G")
            assert app.table.cursor == 9
            await pilot.press("k", "k")
            assert app.table.cursor == 7
            await pilot.press("g", "j", "j")
            assert app.table.cursor == 2
            # detail of the failed item
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, DetailScreen), what="detail view")
            assert isinstance(app.screen, DetailScreen)
            assert app.screen.row.key == "article-0002" and app.screen.row.err_code == 400
            assert any(e.http_code == 400 for e in app.screen.events)
            await pilot.press("escape")
            assert not isinstance(app.screen, DetailScreen)
            # log narrowed to the selected item and back
            await pilot.press("l")
            assert app.log_seq == 2 and "article-0002" in str(app.log_pane.border_title)
            await pilot.press("l")
            assert app.log_seq is None
            # tags make skip/retry bulk: they ask first
            await pilot.press("space", "space")
            assert app.table.tagged == {"article-0002", "article-0003"}
            await pilot.press("r")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="bulk confirmation")
            await pilot.press("n")
            assert app.table.tagged == {"article-0002", "article-0003"}
            await pilot.press("k", "k", "space", "space")  # space again untags
            assert app.table.tagged == set()
            # r on the failed item: re-runs it (the exited worker is started again)
            await pilot.press("g", "j", "j", "r")
            await until(pilot, lambda: _is(state_of(app, "article-0002"), "done"), timeout=30,
                        what="retried item done")
            assert worker.starts == 2
            # R asks first; "n" changes nothing, "y" re-runs every failed item
            await pilot.press("R")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="R confirmation")
            await pilot.press("n")
            await pilot.pause(0.3)
            assert await state_of(app, "article-0005") == "failed"
            await pilot.press("R")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="R confirmation")
            await pilot.press("y")
            await until(pilot, lambda: _is(state_of(app, "article-0005"), "done"), timeout=30,
                        what="R re-ran the failed item")
            # follow toggles
            await pilot.press("f")
            assert app.following
            await pilot.press("f")
            assert not app.following
            await until(pilot, lambda: worker.poll() is not None, timeout=30, what="worker to finish")
            await pilot.press("q")  # worker gone: q quits without asking
        assert app.outcome == "quit"
        assert sim.stats()["by_code"].get("400") == 2


async def test_worker_bad_input_exits_with_its_error(tmp_path: Path, workers: list[WorkerProcess]) -> None:
    items = tmp_path / "bad.jsonl"
    items.write_text('{"key": "a", "payload": 1}\n{not json\n', encoding="utf-8")
    db = tmp_path / "bad.tuibatch.db"
    worker = WorkerProcess([str(items), "--agent", "sim-agent"], db, env=sim_env("http://127.0.0.1:9"))
    workers.append(worker)
    worker.start()
    app = BatchApp(db, worker=worker, poll_interval=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.error_message is not None, timeout=20, what="worker error")
    assert app.return_code == 2
    assert app.error_message is not None and "bad.jsonl" in app.error_message
    assert "bad.jsonl:2" in app.error_message


async def test_watch_mode_help_and_palette(tmp_path: Path) -> None:
    _items, db = await make_checkpoint(tmp_path, 5)
    app = BatchApp(db)
    async with app.run_test(size=SIZE) as pilot:
        await asyncio.wait_for(app.loaded.wait(), 10)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        console = Console(width=120, record=True, file=io.StringIO())
        console.print(bindings_table(app.screen.groups))
        text = console.export_text()
        for b in [*BatchApp.BINDINGS, *ItemTable.BINDINGS]:
            assert isinstance(b, Binding)
            assert b.description in text and b.tooltip in text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("ctrl+p")
        await until(pilot, lambda: app.screen.__class__.__name__ == "CommandPalette", what="palette")
        await pilot.press(*"Pause")
        await pilot.pause(0.5)
        await pilot.press("enter")
        assert app.store is not None
        await until(pilot, lambda: _control_paused(app), what="pause from the command palette")
        await pilot.press("q")
    assert app.outcome == "quit"


def test_no_sdk_in_ui_process() -> None:
    """The screen never imports the engine, backends or google-genai (SDK calls stutter it)."""
    code = ("import sys, tuibatch.ui.app; bad=[m for m in sys.modules if m.startswith(('google.genai',"
            " 'tuibatch.engine', 'tuibatch.backends'))]; print(bad); sys.exit(1 if bad else 0)")
    import subprocess

    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
