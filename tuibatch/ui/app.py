"""The app: a view of the checkpoint plus commands written into it; the worker is a subprocess.

The screen polls ``changes()`` (the last event id and the control table, one cheap query) a
few times a second and, only when they moved, re-reads the header totals, the visible table
window and the new events: one redraw per poll however many events arrived, and an idle
screen costs what changed, not what exists. Which workers are alive (``workers_alive``) is
read every couple of seconds; the pace curves when shown. Commands (pause, skip, retry) are store writes that the worker polls.
Keys and messages are data: everything shown from the checkpoint goes through ``visible()``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer, Input

from ..states import ExitCode, ItemState
from ..store import CheckpointError, Store
from ..store.monitor import Liveness, Pace
from . import actions, data, fmt
from .data import Filter, Snapshot, TableRow
from .detail import DetailScreen
from .header import BatchHeader, CostMeter, WorkerView
from .help import HelpScreen
from .keys import APP_BINDINGS, PALETTE, bindings_of, palette_entries
from .log import EventLog
from .modals import AttachScreen
from .pace import BUCKETS as PACE_BUCKETS
from .pace import PacePane, rate_text
from .pace import window as pace_window
from .table import ItemTable
from .worker import WorkerProcess

#: seconds between full re-reads of the totals while nothing changes (the rate decays)
IDLE_RESNAP = 15.0
#: seconds between reads of which workers are alive
LIVENESS_EVERY = 2.0
#: seconds between reads of the pace curves (when shown): while busy, and while idle
PACE_EVERY = (5.0, 30.0)
#: seconds between re-reads of a table window showing items inside Batch API jobs: a job's
#: service state and age change without an event
JOBS_EVERY = 2.0


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
        self._seen: tuple[int, str] | None = None
        self._last_snap_at = 0.0
        self._painted_at = 0.0
        self._live_at = 0.0
        self._pace_at = 0.0
        self._pace_seen = -1
        self._jobs_at = 0.0
        self.liveness: Liveness | None = None
        self.pace = Pace()
        # kept, not queried: a poll that lands while the app shuts down finds them unmounted
        self.header_w = BatchHeader("opening checkpoint…", id="header")
        self.cost_w = CostMeter("", id="cost")
        self.pace_pane = PacePane(id="pace")
        self.meta: dict[str, str] = {}
        #: the user chose to watch the worker already running instead of starting ours
        self.attached = False
        self._ticking = False
        self._painted_worker: WorkerView | None = None

    # ---------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        yield self.header_w
        yield self.cost_w
        yield self.pace_pane
        yield Input(placeholder="filter: key or error text (enter keeps, esc clears)", id="filter")
        yield ItemTable(self._load_rows, self._locate, clock=self.now, id="items")
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

    async def _start_or_attach(self) -> bool:
        """Our worker is not started yet: if a live worker already runs this checkpoint, ask
        (attach as a viewer by default, start another anyway, or quit); else start ours.
        Whether to go on opening the screen."""
        worker = self.worker
        if worker is None or worker.starts:
            return True
        live = await asyncio.to_thread(data.live_workers, self.db, time.time())
        if live is not None and live.alive:
            text = WorkerView(liveness=live).text().removeprefix("watching · ")
            answer = await self.push_screen_wait(AttachScreen(text, str(self.db)))
            if answer == "quit":
                self.outcome = "quit"
                self.exit(0)
                return False
            if answer == "attach":
                self.worker = None
                self.attached = True
                self.notify("attached as a viewer: no worker started", timeout=4)
                return True
        worker.start()
        return True

    async def _open(self) -> None:
        """Wait for the worker to create the checkpoint, open it, paint, then poll."""
        if not await self._start_or_attach():
            return
        deadline = time.monotonic() + self.open_timeout
        while not await asyncio.to_thread(data.checkpoint_ready, self.db):
            if self._worker_failed():
                return
            if time.monotonic() > deadline:
                self._fail(f"{self.db}: no such checkpoint (gave up waiting)")
                return
            self.header_w.update(f"waiting for the worker to create {self.db.name}…")
            await asyncio.sleep(0.1)
        try:
            self.store = await Store.open(self.db)
        except CheckpointError as exc:
            self._fail(str(exc))
            return
        self.meta = await self.store.meta()
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
        hint = fmt.key(data.start_hint(self.meta, self.db))
        if self.worker is None:
            return WorkerView(following=self.following, liveness=self.liveness, start_hint=hint)
        return WorkerView(
            ours=True,
            pid=self.worker.pid,
            exit_code=self.worker.poll(),
            following=self.following,
            liveness=self.liveness,
            start_hint=hint,
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
                self._paint_header()  # a worker exited, died or started: say so now
        except NoMatches:  # a tick while the app closes: its widgets are already gone
            return
        finally:
            self._ticking = False

    async def _refresh(self, *, force: bool = False, first: bool = False) -> None:
        store = self.store
        if store is None:
            return
        seen = await store.changes()
        last = seen[0]
        now = self.now()
        mono = time.monotonic()
        moved = seen != self._seen
        changed = last != self._last_id
        repaint = False
        if moved or force or mono - self._last_snap_at >= IDLE_RESNAP:
            self.snap = await data.snapshot(store, now)
            self._seen = seen
            self._last_snap_at = mono
            repaint = True
        if force or mono - self._live_at >= LIVENESS_EVERY:
            self.liveness = await store.workers_alive(time.time())
            self._live_at = mono
        if self.pace_pane.display and self.pace_pane.is_mounted:
            every = PACE_EVERY[0] if last != self._pace_seen else PACE_EVERY[1]
            if force or mono - self._pace_at >= every:
                await self._read_pace()
        if repaint or mono - self._painted_at >= 1.0:
            self._paint_header()  # the back-off countdown moves even when nothing else does
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
            self._jobs_at = mono
            self.refresh_bindings()
        elif self.table.shows_jobs and mono - self._jobs_at >= JOBS_EVERY:
            self._jobs_at = mono
            self.table.reload()

    async def _read_pace(self) -> None:
        if self.store is None:
            return
        now = time.time()
        bucket = pace_window(now, self.snap.first_start)
        self.pace = await self.store.pace(now, PACE_BUCKETS, bucket)
        self._pace_at = time.monotonic()
        self._pace_seen = self._last_id
        if self.pace_pane.is_mounted:
            self.pace_pane.show(self.pace, rate_text(self.snap.control, self.meta))

    def _paint_header(self) -> None:
        self._painted_at = time.monotonic()
        width = self.size.width
        worker = self._painted_worker = self.worker_view()
        if not self.header_w.is_mounted:
            return
        self.header_w.show(
            self.snap,
            title=self.batch_title,
            now=self.now(),
            state_filter=self.filter.state,
            worker=worker,
            width=width,
        )
        self.cost_w.show(self.snap, budget=self.budget, width=width)

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
        await actions.detail(self)

    async def action_toggle_pace(self) -> None:
        pane = self.pace_pane
        pane.set_class(not pane.has_class("visible"), "visible")
        if pane.display:
            await self._read_pace()

    async def action_jobs(self) -> None:
        from .jobs import JobsScreen

        await self.push_screen(JobsScreen())

    async def action_waste(self) -> None:
        await actions.waste(self)

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
        await actions.quit_app(self)

    def on_item_table_cursor_moved(self, message: ItemTable.CursorMoved) -> None:
        row = message.row
        self.sub_title = fmt.key(row.key, 80) if row else ""

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for name, help_text, action in palette_entries(self.paused):
            yield SystemCommand(name, help_text, lambda action=action: self.run_action(action))  # type: ignore[misc]
