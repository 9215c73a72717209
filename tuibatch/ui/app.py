"""The app: a view of the checkpoint plus commands written into it; the worker is a subprocess.

The screen polls ``last_event_id()`` a few times a second and, only when it moved, re-reads
the header totals, the visible table window and the new events: one redraw per poll however
many events arrived. Commands (pause, skip, retry) are store writes that the worker polls.
Keys and messages are data: everything shown from the checkpoint goes through ``visible()``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Input

from ..options import RunOptions
from ..safe_text import visible
from ..states import IN_FLIGHT, ExitCode, ItemState
from ..store import CheckpointError, Store
from . import actions, data, fmt
from .data import Filter, Snapshot, TableRow
from .detail import DetailScreen
from .header import BatchHeader, CostMeter, WorkerView
from .help import HelpScreen
from .keys import APP_BINDINGS, PALETTE, bindings_of, palette_entries
from .log import EventLog
from .modals import QuitScreen
from .table import ItemTable
from .worker import WorkerProcess


class BatchApp(App[int]):
    """One batch on screen. ``worker`` is the subprocess this app started (None: watch mode)."""

    CSS_PATH = "app.tcss"
    TITLE = "tuibatch"
    BINDINGS: ClassVar[list[BindingType]] = APP_BINDINGS

    def __init__(
        self,
        db: Path,
        *,
        worker: WorkerProcess | None = None,
        budget: float | None = None,
        title: str | None = None,
        clock: Callable[[], float] | None = None,
        poll_interval: float = 0.25,
        open_timeout: float | None = None,
    ) -> None:
        super().__init__()
        self.db = Path(db)
        self.worker = worker
        self.budget = budget
        self.batch_title = title or self.db.name
        self.now = clock or time.time
        self.poll_interval = poll_interval
        self.open_timeout = open_timeout if open_timeout is not None else (60.0 if worker else 10.0)
        self.store: Store | None = None
        self.filter = Filter()
        self.snap = Snapshot()
        self.following = False
        self.log_seq: int | None = None
        self.outcome: str | None = None
        self.error_message: str | None = None
        self.loaded = asyncio.Event()
        self._last_id = -1
        self._last_snap_at = 0.0
        self._ticking = False
        self._painted_worker: WorkerView | None = None

    # ---------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        yield BatchHeader("opening checkpoint…", id="header")
        yield CostMeter("", id="cost")
        yield Input(placeholder="filter: key or error text (enter keeps, esc clears)", id="filter")
        yield ItemTable(self._load_rows, self._locate, id="items")
        yield EventLog(id="log")
        yield Footer(compact=True, show_command_palette=False)

    @property
    def table(self) -> ItemTable:
        return self.query_one(ItemTable)

    @property
    def log_pane(self) -> EventLog:
        return self.query_one(EventLog)

    async def on_mount(self) -> None:
        self.log_pane.border_title = "log: all items"
        self.table.focus()
        self.run_worker(self._open(), name="open", exclusive=True)

    async def on_unmount(self) -> None:
        if self.store is not None:
            await self.store.close()
            self.store = None

    # ------------------------------------------------------------ store / poll

    async def _open(self) -> None:
        """Wait for the worker to create the checkpoint, open it, paint, then poll."""
        deadline = time.monotonic() + self.open_timeout
        while not await asyncio.to_thread(data.checkpoint_ready, self.db):
            if self._worker_failed():
                return
            if time.monotonic() > deadline:
                self._fail(f"{self.db}: no such checkpoint (gave up waiting)")
                return
            self.query_one(BatchHeader).update(f"waiting for the worker to create {self.db.name}…")
            await asyncio.sleep(0.1)
        try:
            self.store = await Store.open(self.db)
        except CheckpointError as exc:
            self._fail(str(exc))
            return
        await self._refresh(force=True, first=True)
        self.loaded.set()
        self.set_interval(self.poll_interval, self._tick, name="poll")

    def _fail(self, message: str) -> None:
        self.error_message = message
        self.outcome = "error"
        self.exit(ExitCode.USAGE, return_code=ExitCode.USAGE)

    def _worker_failed(self) -> bool:
        """Exit status 2 from the worker is bad input or credentials: show its line, exit."""
        if self.worker is None:
            return False
        code = self.worker.poll()
        if code == ExitCode.USAGE:
            self._fail(self.worker.error_line() or "the worker refused to start (exit 2)")
            return True
        return False

    def worker_view(self) -> WorkerView:
        """Our worker's real state (pid, or how it exited), or watch mode."""
        if self.worker is None:
            return WorkerView(following=self.following)
        return WorkerView(
            ours=True, pid=self.worker.pid, exit_code=self.worker.poll(), following=self.following
        )

    async def _tick(self) -> None:
        if self._ticking or self.store is None:
            return
        self._ticking = True
        try:
            if self._worker_failed():
                return
            await self._refresh()
            if self.worker_view() != self._painted_worker:
                self._paint_header()  # the worker exited (or was started again): say so now
        finally:
            self._ticking = False

    async def _refresh(self, *, force: bool = False, first: bool = False) -> None:
        store = self.store
        if store is None:
            return
        last = await store.last_event_id()
        now = self.now()
        changed = last != self._last_id
        if changed or force or now - self._last_snap_at >= 1.0:
            self.snap = await data.snapshot(store, now)
            self._last_snap_at = now
            self._paint_header()
        if changed or force:
            if first:
                await self.table.load_now()
                await self._reload_log()
            else:
                lines = await data.events(
                    store, after=max(0, self._last_id), seq=self.log_seq, limit=200, tail=True
                )
                self.log_pane.add(lines)
                if self.following:
                    await self._follow()
                self.table.reload()
            self._last_id = last
            self.refresh_bindings()

    def _paint_header(self) -> None:
        width = self.size.width
        worker = self._painted_worker = self.worker_view()
        self.query_one(BatchHeader).show(
            self.snap,
            title=self.batch_title,
            now=self.now(),
            state_filter=self.filter.state,
            worker=worker,
            width=width,
        )
        self.query_one(CostMeter).show(self.snap, budget=self.budget, width=width)

    async def _load_rows(self, offset: int, limit: int) -> tuple[int, list[TableRow]]:
        if self.store is None:
            return 0, []
        total = await data.count(self.store, self.filter)
        return total, await data.window(self.store, self.filter, offset, limit)

    async def _locate(self, seq: int) -> int:
        """The item's index in the filtered view (if it left it: its next neighbour's)."""
        if self.store is None:
            return 0
        return await data.index_of(self.store, self.filter, seq)

    async def _reload_log(self) -> None:
        if self.store is None:
            return
        self.log_pane.clear()
        self.log_pane.add(await data.events(self.store, seq=self.log_seq, limit=200, tail=True))

    async def _follow(self) -> None:
        if self.store is None:
            return
        seq = await data.first_running(self.store)
        if seq is not None:
            self.table.move_to(await data.index_of(self.store, self.filter, seq), anchor=0.33)

    def _set_filter(self, flt: Filter) -> None:
        self.filter = flt
        self.table.reset_cursor()
        self.table.reload()
        self._paint_header()

    def restart_worker_if_idle(self) -> None:
        """After a retry or resume the exited worker has work again: start it once more."""
        if self.worker is not None and self.worker.poll() is not None:
            self.worker.start()

    async def poke(self) -> None:
        """Show the effect of a command now instead of at the next poll."""
        await self._refresh(force=True)

    # ----------------------------------------------------------------- actions

    @property
    def paused(self) -> bool:
        return self.snap.control.get("paused") == "1"

    async def action_toggle_pause(self) -> None:
        await actions.toggle_pause(self)

    @work(exclusive=True, group="command")
    async def action_skip(self) -> None:
        await actions.skip(self)

    @work(exclusive=True, group="command")
    async def action_retry(self) -> None:
        await actions.retry(self)

    @work(exclusive=True, group="command")
    async def action_retry_failed(self) -> None:
        await actions.retry_failed(self)

    async def action_detail(self) -> None:
        row = self.table.current
        if row is None or self.store is None:
            return
        full = await self.store.get(row.seq)
        if full is None:
            return
        events = await self.store.events(seq=row.seq, limit=500)
        await self.push_screen(DetailScreen(full, events))

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.add_class("visible")
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.remove_class("visible")
        self.table.focus()
        if box.value or self.filter.text:
            box.value = ""
            self._set_filter(Filter(self.filter.state, ""))

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self._set_filter(Filter(self.filter.state, event.value.strip()))

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            event.input.remove_class("visible")
        self.table.focus()

    def action_show_state(self, state: str) -> None:
        self._set_filter(Filter(ItemState(state) if state else None, self.filter.text))

    async def action_follow(self) -> None:
        self.following = not self.following
        self.notify("following running items" if self.following else "follow off", timeout=2)
        if self.following:
            await self._follow()
        self._paint_header()

    async def action_narrow_log(self) -> None:
        row = self.table.current
        if self.log_seq is None and row is not None:
            self.log_seq = row.seq
            self.log_pane.border_title = Content(f"log: {fmt.key(row.key, 60)}")
        else:
            self.log_seq = None
            self.log_pane.border_title = "log: all items"
        await self._reload_log()

    def action_help(self) -> None:
        groups: list[tuple[str, list[Binding]]] = [
            ("batch", bindings_of(self.BINDINGS)),
            ("table", bindings_of(ItemTable.BINDINGS)),
            ("detail", bindings_of(DetailScreen.BINDINGS)),
            ("app", [PALETTE]),
        ]
        self.push_screen(HelpScreen(groups))

    @work(exclusive=True, group="command")
    async def action_quit_app(self) -> None:
        if self.worker is None or not self.worker.alive:
            self.outcome = "quit"
            self.exit(0)
            return
        counts = self.snap.totals.counts
        in_flight = sum(counts.get(s, 0) for s in IN_FLIGHT)
        answer = await self.push_screen_wait(QuitScreen(in_flight, str(self.db)))
        if answer == "stop":
            self.worker.terminate()
            self.outcome = "stop"
            self.exit(0)
        elif answer == "detach":
            self.outcome = "detach"
            self.exit(0)

    def on_item_table_cursor_moved(self, message: ItemTable.CursorMoved) -> None:
        row = message.row
        self.sub_title = fmt.key(row.key, 80) if row else ""

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for name, help_text, action in palette_entries(self.paused):
            yield SystemCommand(name, help_text, lambda action=action: self.run_action(action))  # type: ignore[misc]


# ----------------------------------------------------------------- entry points


def run_app(options: RunOptions) -> int:
    """Start the worker subprocess, open the screen on its checkpoint, handle how it ends."""
    worker = WorkerProcess(options)
    worker.start()
    app = BatchApp(options.db, worker=worker, budget=options.budget, title=options.items.name)
    try:
        app.run()
    finally:
        if app.outcome is None and worker.alive:
            app.outcome = "detach"
    return _after(app, worker, options.db)


def _after(app: BatchApp, worker: WorkerProcess, db: Path) -> int:
    if app.error_message:
        worker.wait(5)
        print(f"tuibatch: {visible(app.error_message)}", file=sys.stderr)
        return ExitCode.USAGE
    if app.outcome == "detach" and worker.alive:
        print(
            f"tuibatch: still running (worker pid {worker.pid}, log {worker.log_path});"
            f" `tuibatch watch --db {db}` re-attaches",
            file=sys.stderr,
        )
        return 0
    if app.outcome == "stop":
        print(
            "tuibatch: stopping the worker; run ids are kept — run the same command to resume",
            file=sys.stderr,
        )
        code = worker.wait(30)
        if code is None:
            print(
                f"tuibatch: worker pid {worker.pid} still stopping; it exits on its own",
                file=sys.stderr,
            )
            return 130
        return code
    code = worker.poll()
    return code if code is not None else 0


def run_watch(db: Path) -> int:
    """The same screen on a checkpoint a headless worker runs elsewhere (q just quits)."""
    app = BatchApp(db)
    app.run()
    if app.error_message:
        print(f"tuibatch: {visible(app.error_message)}", file=sys.stderr)
        return ExitCode.USAGE
    return 0
