"""Pilot tests of every key against a real checkpoint, a real worker subprocess and the simulator.

The worker is ``python -m tuibatch … --headless`` exactly as the app starts it; the simulator
counts what the service saw (creates, cancels), so "pause stops claims" and "skip cancels on
the service" are checked where they matter, not in the UI's own state.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from conftest import cli_env, write_items
from rich.console import Console
from textual.binding import Binding
from textual.command import CommandList
from textual.widgets import Markdown, Static

from tuibatch.cli import run_options
from tuibatch.items import load_items
from tuibatch.options import RunOptions
from tuibatch.runner import prepare_store
from tuibatch.sim import SimulatorThread
from tuibatch.states import IN_FLIGHT, ErrorClass, ItemState, PauseKind
from tuibatch.store import Attempt, Store
from tuibatch.ui.app import BatchApp
from tuibatch.ui.detail import PAGE, DetailScreen
from tuibatch.ui.help import HelpScreen, bindings_table
from tuibatch.ui.modals import ConfirmScreen, QuitScreen
from tuibatch.ui.table import ItemTable
from tuibatch.ui.worker import WorkerProcess

SIZE = (100, 30)


async def make_checkpoint(tmp: Path, n: int) -> tuple[Path, Path]:
    items = tmp / "items.jsonl"
    write_items(items, n, prefix="article")
    db = tmp / "items.tuibatch.db"
    # created as the worker will see it (the same target), so it resumes instead of refusing
    store, _n = await prepare_store(run_options([str(items), f"--db={db}", "--agent", "sim-agent"]))
    await store.close()
    return items, db


def make_worker(items: Path, db: Path, url: str, *extra: str) -> WorkerProcess:
    argv = [
        str(items),
        f"--db={db}",
        "--agent",
        "sim-agent",
        "--poll-interval",
        "0.1",
        "--retry-initial",
        "0.1",
        *extra,
    ]
    return WorkerProcess(run_options(argv), env=cli_env(url))


async def until(
    pilot: Any,
    pred: Callable[[], Awaitable[bool] | bool],
    timeout: float = 15.0,
    what: str = "condition",
) -> None:
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


def start_worker(
    workers: list[WorkerProcess], items: Path, db: Path, url: str, *args: str
) -> WorkerProcess:
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


def static_text(widget: Static) -> str:
    """The text a Static shows (it holds a Text or Content, never markup here)."""
    content = widget.content
    return content.plain if hasattr(content, "plain") else str(content)


def header_text(app: BatchApp) -> str:
    return str(app.query_one("#header", Static).render())


def palette_offers(app: BatchApp, name: str) -> bool:
    lists = app.screen.query(CommandList)
    return bool(lists) and any(name in str(o.prompt) for o in lists.first().options)


async def test_pause_stops_claims_then_quit_stops_worker(
    tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    items, db = await make_checkpoint(tmp_path, 200)
    with SimulatorThread(run_seconds=0.4) as sim:
        worker = start_worker(workers, items, db, sim.url, "--concurrency", "4")
        async with live_app(db, worker) as (app, pilot):
            await until(
                pilot,
                lambda: app.snap.totals.counts.get(ItemState.DONE, 0) >= 4,
                what="first items done",
            )
            await pilot.press("p")
            assert app.store is not None
            assert (await app.store.control()).get("paused") == "1"
            await until(
                pilot,
                lambda: sum(app.snap.totals.counts.get(s, 0) for s in IN_FLIGHT) == 0,
                what="in-flight runs to drain",
            )
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


async def test_skip_running_cancels_on_service_and_q_detaches(
    tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    items, db = await make_checkpoint(tmp_path, 3)
    with SimulatorThread(run_seconds=30) as sim:
        worker = start_worker(workers, items, db, sim.url, "--concurrency", "3")
        async with live_app(db, worker) as (app, pilot):
            await until(
                pilot,
                lambda: app.snap.totals.counts.get(ItemState.RUNNING, 0) == 3,
                what="3 running",
            )
            await pilot.press("3")  # only running
            await until(pilot, lambda: app.table.total == 3 and app.table.current is not None)
            assert app.table.current is not None
            key = app.table.current.key
            await pilot.press("s")
            await until(
                pilot, lambda: isinstance(app.screen, ConfirmScreen), what="skip confirmation"
            )
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


async def test_retry_filters_detail_and_navigation(
    tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    items, db = await make_checkpoint(tmp_path, 10)
    faults = [
        {
            "item": "article-0002",
            "fault": "http",
            "code": 400,
            "times": 1,
            "message": "bad document",
        },
        {
            "item": "article-0005",
            "fault": "http",
            "code": 400,
            "times": 1,
            "message": "bad document",
        },
    ]
    with SimulatorThread(run_seconds=0.1, faults=faults) as sim:
        worker = start_worker(workers, items, db, sim.url, "--concurrency", "4")
        async with live_app(db, worker) as (app, pilot):
            await until(
                pilot, lambda: worker.poll() is not None, timeout=30, what="worker to finish"
            )
            await until(
                pilot, lambda: app.snap.totals.counts.get(ItemState.FAILED) == 2, what="2 failed"
            )
            # the header says how the worker ended, not "claiming"
            await until(
                pilot,
                lambda: "worker exited 1 (some failed)" in header_text(app),
                what="worker exit in the header",
            )
            assert "claiming" not in header_text(app) and "ETA" not in header_text(app)
            assert "0 left" in header_text(app)
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
            head = static_text(app.screen.query_one("#detail-head", Static))
            assert "no run: failed before launch (HTTP 400: bad document)" in head, head
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
            await until(
                pilot, lambda: isinstance(app.screen, ConfirmScreen), what="bulk confirmation"
            )
            await pilot.press("n")
            assert app.table.tagged == {"article-0002", "article-0003"}
            await pilot.press("k", "k", "space", "space")  # space again untags
            assert app.table.tagged == set()
            # r on the failed item: re-runs it (the exited worker is started again)
            await pilot.press("g", "j", "j", "r")
            await until(
                pilot,
                lambda: _is(state_of(app, "article-0002"), "done"),
                timeout=30,
                what="retried item done",
            )
            assert worker.starts == 2
            # R asks first; "n" changes nothing, "y" re-runs every failed item
            await pilot.press("R")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="R confirmation")
            await pilot.press("n")
            await until(
                pilot, lambda: not isinstance(app.screen, ConfirmScreen), what="dialog closed"
            )
            assert await state_of(app, "article-0005") == "failed"
            await pilot.press("R")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="R confirmation")
            await pilot.press("y")
            await until(
                pilot,
                lambda: _is(state_of(app, "article-0005"), "done"),
                timeout=30,
                what="R re-ran the failed item",
            )
            # follow toggles
            await pilot.press("f")
            assert app.following
            await pilot.press("f")
            assert not app.following
            await until(
                pilot, lambda: worker.poll() is not None, timeout=30, what="worker to finish"
            )
            await pilot.press("q")  # worker gone: q quits without asking
        assert app.outcome == "quit"
        assert sim.stats()["by_code"].get("400") == 2


async def test_worker_bad_input_exits_with_its_error(
    tmp_path: Path, workers: list[WorkerProcess]
) -> None:
    items = tmp_path / "bad.jsonl"
    items.write_text('{"key": "a", "payload": 1}\n{not json\n', encoding="utf-8")
    db = tmp_path / "bad.tuibatch.db"
    worker = WorkerProcess(RunOptions(items=items, db=db, agent="sim-agent"), env=cli_env())
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
        # the state counts in the header are filters too (clicked, not only keyed)
        counts = header_text(app).splitlines()[1]
        assert "7?lost" not in counts, "lost is shown only when there is something to see"
        await pilot.click("#header", offset=(1 + counts.index("2◔claimed"), 1))
        await until(pilot, lambda: app.filter.state == "claimed" and app.table.total == 0)
        await pilot.click("#header", offset=(1 + counts.index("0 all"), 1))
        await until(pilot, lambda: app.filter.state is None and app.table.total == 5)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        console = Console(width=120, record=True, file=io.StringIO())
        assert isinstance(app.screen, HelpScreen)
        console.print(bindings_table(app.screen.groups))
        text = console.export_text()
        for b in [*BatchApp.BINDINGS, *ItemTable.BINDINGS, *DetailScreen.BINDINGS]:
            assert isinstance(b, Binding)
            if b.group is None:
                assert b.description in text and b.tooltip in text
            else:  # the number keys: one line, "1 only pending, 2 only claimed, …" (wrapped)
                flat = " ".join(text.split())
                assert b.group.description in flat and f"{b.key} {b.description.lower()}" in flat
        keys = [line.split()[0] for line in text.splitlines() if line.strip()]
        assert keys.count("p") == 1, "one key, one help line (pause and resume are one toggle)"
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("ctrl+p")
        await until(
            pilot, lambda: app.screen.__class__.__name__ == "CommandPalette", what="palette"
        )
        await pilot.press(*"Pause")
        await until(pilot, lambda: palette_offers(app, "Pause"), what="Pause in the palette")
        await pilot.press("enter")
        assert app.store is not None
        await until(pilot, lambda: _control_paused(app), what="pause from the command palette")
        await pilot.press("q")
    assert app.outcome == "quit"


def test_no_sdk_in_ui_process() -> None:
    """The screen never imports the engine, backends or google-genai (SDK calls stutter it)."""
    code = (
        "import sys, tuibatch.ui.app; bad=[m for m in sys.modules if m.startswith(('google.genai',"
        " 'tuibatch.engine', 'tuibatch.backends'))]; print(bad); sys.exit(1 if bad else 0)"
    )
    import subprocess

    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


# ------------------------------------------------------------ hostile text, cursor, big items

EVIL = "\x1b]0;pwned-title\x07\x1b]52;c;SGVsbG8=\x07\x1b[2J"
EVIL_SHOWN = "␛]0;pwned-title\\x07␛]52;c;SGVsbG8=\\x07␛[2J"


def raw_control(text: str) -> bool:
    return any(ch in text for ch in ("\x1b", "\x07", "\x9b", "\x9d"))


def strips_text(strips: Any) -> str:
    return "\n".join("".join(seg.text for seg in strip) for strip in strips)


def table_text(app: BatchApp) -> str:
    table = app.table
    return strips_text(table.render_line(y) for y in range(table.scrollable_content_region.height))


async def evil_checkpoint(tmp: Path) -> tuple[Path, str]:
    """Three items; the middle one's key and error message carry OSC 0, OSC 52, CSI 2J and a newline."""
    key = f"evil{EVIL}\nforged"
    items = tmp / "items.jsonl"
    with open(items, "w", encoding="utf-8") as f:
        for k in ("plain-0", key, "plain-2"):
            f.write(json.dumps({"key": k, "payload": {"text": f"body{EVIL}"}}) + "\n")
    db = tmp / "items.tuibatch.db"
    store = await Store.open(db, create=True)
    try:
        await store.sync_items(load_items(items))
        for _ in range(2):
            claim = await store.claim()
            assert claim is not None
            if claim.row.key != key:  # done, with an answer that carries escapes too
                await store.mark_running(claim.row.seq, "int_1", "sim-agent")
                await store.finish(
                    claim.row.seq,
                    ItemState.DONE,
                    run_id="int_1",
                    output=json.dumps(f"summary{EVIL}\nend"),
                    a=Attempt(outcome="completed"),
                )
            else:
                msg = f"400 INVALID_ARGUMENT{EVIL}\nsecond line"
                await store.record_attempt(
                    claim.row.seq,
                    Attempt(outcome="permanent", http_code=400, message=msg),
                    error_class=ErrorClass.PERMANENT,
                )
                await store.finish(
                    claim.row.seq,
                    ItemState.FAILED,
                    error_class=ErrorClass.PERMANENT,
                    a=Attempt(outcome="failed", http_code=400, message=msg),
                )
        await store.set_control(
            {"hold_until_wall": str(time.time() + 3600), "hold_reason": f"429{EVIL}"}
        )
    finally:
        await store.close()
    return db, key


async def test_escape_sequences_never_reach_the_screen(tmp_path: Path) -> None:
    db, key = await evil_checkpoint(tmp_path)
    # a live worker (this process, registered) holds the back-off: the header shows it
    holder = await Store.open(db)
    await holder.beat("worker")
    app = BatchApp(db, poll_interval=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await asyncio.wait_for(app.loaded.wait(), 10)
        await until(pilot, lambda: app.table.total == 3 and app.table.idle, what="rows")
        table = table_text(app)
        assert "evil" + EVIL_SHOWN[:12] in table and not raw_control(table)
        assert "400 INVALID_ARGUMENT␛]0;pwned" in table
        log = strips_text(app.log_pane.lines)
        assert "evil" + EVIL_SHOWN + "\\nforged" in log, log
        assert not raw_control(log)
        header = header_text(app)
        assert (
            "backing off" in header
            and "429" + EVIL_SHOWN[:30] in header
            and not raw_control(header)
        )
        # the evil item: cursor on it, the log narrowed to it (border title), its detail
        await pilot.press("j")
        assert app.table.current is not None and app.table.current.key == key
        assert not raw_control(app.sub_title) and "\\nforged" in app.sub_title
        await pilot.press("l")
        title = str(app.log_pane.border_title)
        assert "\\nforged" in title and not raw_control(title)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), what="detail")
        await until(pilot, lambda: bool(app.screen.query("#detail-history")), what="detail body")
        texts = {w.id: static_text(w) for w in app.screen.query(Static) if w.id}
        assert (
            "\\nforged" in texts["detail-head"]
            and "no run: failed before launch" in texts["detail-head"]
        )
        assert EVIL_SHOWN in texts["detail-error"] and "\nsecond line" in texts["detail-error"]
        assert "pwned-title" in texts["detail-input"]  # JSON-escaped or made visible, never raw
        assert not any(raw_control(t) for t in texts.values()), texts
        svg = app.export_screenshot()
        assert not raw_control(svg), "a raw escape sequence reached the rendered screen"
        await pilot.press("escape", "k", "enter")  # the done item: its answer as Markdown
        await until(
            pilot,
            lambda: (
                isinstance(app.screen, DetailScreen)
                and app.screen.row.key == "plain-0"
                and bool(app.screen.query("#detail-history"))
            ),
            what="detail of plain-0",
        )
        assert "summary" + EVIL_SHOWN in app.screen.query_one("#detail-output", Markdown).source
        assert not raw_control(app.export_screenshot())
        await pilot.press("escape", "j")
        # a pause whose reason carries escapes, and a notification quoting the key
        assert app.store is not None
        await app.store.set_paused(True, f"budget{EVIL}", kind=PauseKind.BATCH)
        await until(pilot, lambda: "paused: budget" in header_text(app), what="pause in the header")
        assert "budget" + EVIL_SHOWN in header_text(app) and not raw_control(header_text(app))
        await pilot.press("s")  # a failed item: skipped without asking, the result is a toast
        await until(pilot, lambda: bool(app._notifications), what="notification")
        for note in app._notifications:
            assert not raw_control(note.message) and "\\nforged" in note.message
        assert not raw_control(app.export_screenshot())
    await holder.close()
    # stored data stays exact
    store = await Store.open(db)
    try:
        row = await store.get_by_key(key)
        assert row is not None and row.key == key and row.err_message is not None
        assert EVIL in row.err_message
    finally:
        await store.close()


async def test_cursor_stays_on_its_item_when_others_leave_the_filter(tmp_path: Path) -> None:
    _items, db = await make_checkpoint(tmp_path, 12)
    store = await Store.open(db)
    try:
        running = []
        for _ in range(8):
            claim = await store.claim()
            assert claim is not None
            await store.mark_running(claim.row.seq, f"int_{claim.row.seq}", "sim-agent")
            running.append(claim.row.seq)
        app = BatchApp(db, poll_interval=0.05)
        async with app.run_test(size=SIZE) as pilot:
            await asyncio.wait_for(app.loaded.wait(), 10)
            await pilot.press("3")  # only running
            await until(pilot, lambda: app.table.total == 8 and app.table.idle, what="8 running")
            await pilot.press("j", "j", "j")
            seq = running[3]
            assert app.table.current is not None and app.table.current.seq == seq

            async def finish(done: int) -> None:
                loads = app.table.loads
                await store.finish(
                    done,
                    ItemState.DONE,
                    run_id=f"int_{done}",
                    output="{}",
                    a=Attempt(outcome="completed"),
                )
                await until(
                    pilot,
                    lambda: (
                        app.table.loads > loads
                        and app.table.idle
                        and app.table.total == app.snap.totals.counts.get(ItemState.RUNNING)
                    ),
                    what="the table to reload",
                )

            # two items above the cursor finish: the rows slide up, the cursor stays on its item
            await finish(running[0])
            await finish(running[1])
            assert app.table.total == 6
            assert app.table.current is not None and app.table.current.seq == seq
            assert app.table.cursor == 1
            # an item below it finishes: nothing moves
            await finish(running[6])
            assert app.table.current is not None and app.table.current.seq == seq
            # the item itself finishes: the cursor goes to its nearest neighbour
            await finish(seq)
            assert app.table.current is not None and app.table.current.seq == running[4]
            # the last one leaves: the cursor steps back to the one before it
            await pilot.press("G")
            assert app.table.current is not None and app.table.current.seq == running[7]
            await finish(running[7])
            assert app.table.current is not None and app.table.current.seq == running[5]
            await pilot.press("q")
    finally:
        await store.close()


async def test_detail_renders_a_big_payload_a_page_at_a_time(tmp_path: Path) -> None:
    big = "".join(f"{i:07d} lorem ipsum\n" for i in range(250_000))  # ~5 MB, 250k lines
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps({"key": "huge", "payload": {"text": big}}) + "\n", encoding="utf-8")
    db = tmp_path / "items.tuibatch.db"
    store = await Store.open(db, create=True)
    try:
        await store.sync_items(load_items(items))
        claim = await store.claim()
        assert claim is not None
        await store.mark_running(claim.row.seq, "int_1", "sim-agent")
        await store.finish(
            claim.row.seq,
            ItemState.DONE,
            run_id="int_1",
            output=json.dumps(big),
            a=Attempt(outcome="completed"),
        )
        full = await store.get(claim.row.seq)
        assert full is not None
        payload = full.payload
    finally:
        await store.close()
    app = BatchApp(db, poll_interval=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await asyncio.wait_for(app.loaded.wait(), 10)
        await until(pilot, lambda: app.table.current is not None, what="the row")
        await pilot.press("enter")
        await until(
            pilot,
            lambda: (
                isinstance(app.screen, DetailScreen) and bool(app.screen.query("#detail-history"))
            ),
            what="detail",
            timeout=20,
        )
        screen = app.screen
        assert isinstance(screen, DetailScreen)

        def shown(name: str) -> str:
            return static_text(screen.query_one(f"#detail-{name}", Static))

        assert len(shown("input")) <= PAGE and len(shown("output")) <= PAGE
        assert shown("input") == payload[:PAGE]
        assert "more characters" in shown("input-note") and "] next" in shown("input-note")
        assert screen.check_action("page", (1,))
        await pilot.press("right_square_bracket")  # the page is read from the store
        await until(pilot, lambda: screen.input_pages.page == 1, what="page 2")
        assert shown("input") == payload[PAGE : 2 * PAGE]
        assert shown("input-note").startswith(
            f"characters {PAGE:,}–{2 * PAGE:,} of {len(payload):,}"
        )
        await pilot.press("left_square_bracket", "left_square_bracket")
        await until(pilot, lambda: screen.input_pages.page == 0, what="page 1")
        assert shown("input") == payload[:PAGE]
        # what is on screen is one page of widgets, not the whole text
        assert sum(len(static_text(w)) for w in screen.query(Static)) < 4 * PAGE
