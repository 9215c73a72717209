"""The :class:`Store`: one checkpoint file, as the engine, the commands and the app use it.

Each method sends one function of :mod:`.queue`, :mod:`.commands`, :mod:`.sync` or
:mod:`.views` to the connection's thread: one hop, one transaction.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from .. import owner as owner_mod
from ..items import Item
from ..states import ErrorClass, ItemState, PauseKind, PauseState
from . import commands, fallback, monitor, views
from . import jobs as jobs_mod
from .connection import Connection, write
from .errors import CheckpointError
from .queue import Queue
from .records import (
    Attempt,
    Claim,
    Event,
    EventKind,
    ItemFilter,
    ItemSummary,
    KeyedEvent,
    Overview,
    Row,
    SyncReport,
    Totals,
)
from .sync import sync_items

T = TypeVar("T")


def default_db_path(items_path: Path) -> Path:
    name = items_path.name
    stem = name[: -len(".jsonl")] if name.endswith(".jsonl") else items_path.stem
    return items_path.with_name(stem + ".tuibatch.db")


class Store:
    """Async access to one checkpoint file. One instance per process."""

    def __init__(self, path: Path, *, owner: str | None = None, lease_seconds: float = 120.0):
        self.path = Path(path)
        self.owner = owner or owner_mod.current_owner()
        self.lease_seconds = lease_seconds
        self._queue = Queue(self.owner, lease_seconds)
        self._conn: Connection | None = None
        self._registered = False  # beat() registered this process in `workers`

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        create: bool = False,
        readonly: bool = False,
        owner: str | None = None,
        lease_seconds: float = 120.0,
    ) -> Store:
        """Open (with *create*, create) a checkpoint; an older one is upgraded in place.

        *readonly* opens it for reading only (``mode=ro``): for status, export, a dry run and
        the app's view, which then also work on a read-only file or directory. Any refusal is a
        :class:`CheckpointError` whose message is one line.
        """
        if create and readonly:
            raise ValueError("create and readonly exclude each other")
        store = cls(Path(path), owner=owner, lease_seconds=lease_seconds)
        store._conn = await Connection.open(store.path, create=create, readonly=readonly)
        return store

    @property
    def readonly(self) -> bool:
        return self._c.readonly

    @property
    def _c(self) -> Connection:
        if self._conn is None:
            raise CheckpointError(f"{self.path}: the checkpoint is closed")
        return self._conn

    async def _w(self, fn: Callable[..., T], *args: object) -> T:
        """Run a writing function; refused on a checkpoint opened read-only."""
        if self._c.readonly:
            raise CheckpointError(f"{self.path}: checkpoint is open read-only; nothing was changed")
        return await self._c.run(fn, *args)

    async def close(self) -> None:
        if self._conn is not None and self._registered:
            self._registered = False
            with contextlib.suppress(CheckpointError, sqlite3.Error):
                await self.retire()  # a clean exit: this worker is not coming back
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def with_leases(self, fn: Callable[..., T], *args: object, **kw: object) -> T:
        """Run a result transition of :mod:`.results` (``fn(queue, con, …)``) in one transaction,
        with this worker's leases and fencing tokens, so a worker that lost an item cannot write it.
        """
        queue = self._queue
        return await self.transaction(lambda con: fn(queue, con, *args, **kw))

    async def transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(con)`` inside ``BEGIN IMMEDIATE`` … ``COMMIT`` on the store's thread.

        For state that lives in the checkpoint but belongs to another module (the limiter's
        shared pace), and for tests that set up a file. *fn* must not BEGIN or COMMIT itself.
        """

        def run(con: sqlite3.Connection) -> T:
            with write(con):
                return fn(con)

        return await self._w(run)

    # ----------------------------------------------------------------- meta, items file

    async def meta(self) -> dict[str, str]:
        return await self._c.run(views.meta)

    async def set_meta(self, values: Mapping[str, str]) -> None:
        await self._w(commands.set_values, "meta", values)

    async def sync_items(self, items: Sequence[Item], *, rerun_changed: bool = False) -> SyncReport:
        """Add new keys; refuse (or with *rerun_changed* reset) keys whose payload changed.

        All or nothing: a refusal (:class:`ChangedKeys`) writes nothing.
        """
        return await self._w(sync_items, items, rerun_changed)

    # -------------------------------------------------------------------------- queue

    async def claim(
        self, *, only_agents: bool = False, default_agent: bool = False
    ) -> Claim | None:
        """Take one item for this worker: an abandoned one first, else the next pending one.

        ``only_agents`` leaves pending model items to Batch API jobs (``--mode auto``).
        """
        return await self._w(self._queue.claim, only_agents, default_agent)

    async def work_left(self) -> tuple[int, int]:
        """(pending, in flight anywhere): whether a worker still has a reason to stay."""
        return await self._c.run(views.work_left)

    async def renew_leases(self) -> None:
        await self._w(self._queue.renew)

    async def release_mine(self) -> int:
        """On a clean stop: keep states and run ids, drop the leases so the next run resumes."""
        return await self._w(self._queue.release)

    async def mine_to_cancel(self) -> list[int]:
        return await self._c.run(views.mine_to_cancel, self.owner)

    async def record_attempt(
        self, seq: int, a: Attempt, *, error_class: ErrorClass | None = None, relaunch: bool = False
    ) -> Row:
        """A launch attempt that did not start a run (error): counted, costed, still claimed."""
        ec = None if error_class is None else ErrorClass(error_class)
        return await self._w(self._queue.record_attempt, seq, a, ec, relaunch)

    async def begin_launch(self, seq: int, fence: int) -> None:
        """The fence before a launch request: still this worker's (owner and *fence*), lease
        not expired; extends the lease and records "launching". Else :class:`LostLease`."""
        await self._w(self._queue.begin_launch, seq, fence)

    @property
    def waiting_since(self) -> float | None:
        """Since when a transaction has waited for another process's lock (None: not waiting)."""
        return None if self._conn is None else self._conn.waiting_since

    async def fold_kept_runs(self) -> int:
        """Fold the fallback file of run ids (see :mod:`.fallback`) into the checkpoint, then
        remove it; how many items became running with a kept run id."""
        runs = fallback.read_kept(self.path)
        if not runs:
            return 0
        n = await self._w(fallback.fold, runs)
        fallback.runids_path(self.path).unlink(missing_ok=True)
        return n

    async def mark_running(self, seq: int, run_id: str, target: str) -> None:
        """Record the run id in the same transaction that moves the item to running."""
        await self._w(self._queue.mark_running, seq, run_id, target)

    async def note_relaunch(self, seq: int, why: str, *, back_to_claimed: bool = False) -> None:
        """Count a launch that may pay twice; with *back_to_claimed* the lost run id is dropped."""
        await self._w(self._queue.note_relaunch, seq, why, back_to_claimed)

    async def forget_run(self, seq: int, why: str) -> None:
        """The service no longer knows this run: back to claimed so it is launched again."""
        await self.note_relaunch(seq, why, back_to_claimed=True)

    async def finish(
        self,
        seq: int,
        state: ItemState,
        *,
        run_id: str | None = None,
        output: str | None = None,
        a: Attempt | None = None,
        error_class: ErrorClass | None = None,
        count_attempt: bool = False,
        price_known: bool = True,
    ) -> Row:
        """Commit a settled state with its result; a finished result is never overwritten."""
        state = ItemState(state)
        if state not in (ItemState.DONE, ItemState.FAILED, ItemState.SKIPPED, ItemState.LOST):
            raise ValueError(f"finish: {state} is not a settled state")
        ec = None if error_class is None else ErrorClass(error_class)
        a = a or Attempt(outcome=state.value)
        return await self._w(
            self._queue.finish, seq, state, run_id, output, a, ec, count_attempt, price_known
        )

    async def unclaim(self, seq: int, why: str) -> None:
        """Give an unlaunched item back (batch-level pause, stop): not failed, not attempted."""
        await self._w(self._queue.unclaim, seq, why)

    async def cancel_requested(self, seq: int) -> bool:
        return await self._c.run(views.cancel_requested, seq)

    # ----------------------------------------------------------------------- commands

    async def skip(self, keys: Sequence[str]) -> dict[str, str]:
        """pending/failed → skipped at once; claimed/running → flagged for the owner to cancel."""
        return await self._w(commands.skip, list(keys))

    async def retry(self, keys: Sequence[str] | None = None, *, failed: bool = False) -> int:
        """failed/skipped → pending; the attempt history stays, the attempt budget starts again."""
        return await self._w(commands.retry, None if keys is None else list(keys), failed)

    async def control(self) -> dict[str, str]:
        return await self._c.run(views.control)

    async def set_control(self, values: Mapping[str, str]) -> None:
        await self._w(commands.set_values, "control", dict(values))

    async def set_paused(
        self, paused: bool, reason: str = "", *, kind: PauseKind = PauseKind.USER
    ) -> bool:
        """Pause or resume claiming for every worker on this checkpoint; whether it changed."""
        return await self._w(commands.set_paused, paused, reason, PauseKind(kind))

    async def pause_state(self) -> PauseState:
        return commands.pause_state(await self.control())

    async def note(
        self, message: str, seq: int | None = None, kind: EventKind = EventKind.INFO
    ) -> None:
        await self._w(commands.note, message, seq, EventKind(kind))

    # -------------------------------------------------------------------------- views

    async def get(self, seq: int) -> Row | None:
        return await self._c.run(views.get, seq)

    async def get_by_key(self, key: str) -> Row | None:
        return await self._c.run(views.get_by_key, key)

    async def items(
        self,
        states: Collection[ItemState] | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Row]:
        """Items in input order, every column; *states* narrows them."""
        chosen = None if states is None else [ItemState(s) for s in states]
        return await self._c.run(views.items, chosen, limit, offset)

    async def finished_keys(self) -> set[str]:
        """Keys whose item is done or skipped: what a dry run does not count again."""
        return await self._c.run(views.finished_keys)

    async def events(
        self, *, after: int = 0, seq: int | None = None, limit: int = 1000
    ) -> list[Event]:
        return await self._c.run(views.events, after, seq, limit)

    async def keyed_events(
        self, *, after: int = 0, seq: int | None = None, limit: int = 300, tail: bool = False
    ) -> list[KeyedEvent]:
        """Events with their items' keys; *tail* takes the last *limit* instead of the first."""
        return await self._c.run(views.keyed_events, after, seq, limit, tail)

    async def totals(self) -> Totals:
        return await self._c.run(views.totals)

    async def last_event_id(self) -> int:
        return await self._c.run(views.last_event_id)

    async def overview(self, since: float) -> Overview:
        """Totals, control, last event id and the finished-since-*since* count, consistent."""
        return await self._c.run(views.overview, since)

    async def count(self, flt: ItemFilter) -> int:
        return await self._c.run(views.count, flt)

    async def window(self, flt: ItemFilter, offset: int, limit: int) -> list[ItemSummary]:
        """A page of the filtered list, in input order (narrow columns only)."""
        return await self._c.run(views.window, flt, offset, limit)

    async def index_of(self, flt: ItemFilter, seq: int) -> int:
        """Position of an item in the filtered, seq-ordered list."""
        return await self._c.run(views.index_of, flt, seq)

    async def first_in_flight(self) -> int | None:
        """The lowest seq a worker holds (claimed or running), if any."""
        return await self._c.run(views.first_in_flight)

    # ------------------------------------------ monitor.py: liveness, pace, slices, waste

    async def beat(self, role: str = "worker", detail: str | None = None) -> None:
        """Register this process in ``workers`` (first call) or refresh its beat; the interval
        recorded is the engine's heartbeat (a quarter of the lease). ``close()`` retires it."""
        every = max(1.0, self.lease_seconds / 4)
        await self._w(monitor.beat, self.owner, role, every, detail, time.time())
        self._registered = True

    async def retire(self) -> None:
        """Mark this process's worker row stopped (a clean exit)."""
        await self._w(monitor.retire, self.owner, time.time())

    async def workers_alive(self, now: float | None = None) -> monitor.Liveness:
        """The workers alive on this checkpoint (registered, or holding in-flight leases)."""
        return await self._c.run(monitor.workers_alive, time.time() if now is None else now)

    async def changes(self) -> tuple[int, str]:
        """(last event id, control digest): one cheap query; unchanged means nothing to re-read."""
        return await self._c.run(monitor.changes)

    async def pace(
        self, now: float | None = None, buckets: int = 10, bucket: float = 60.0
    ) -> monitor.Pace:
        """Launches, completions and 429s per *bucket* seconds over the last *buckets* of them."""
        at = time.time() if now is None else now
        return await self._c.run(monitor.pace, at, buckets, bucket)

    async def item_head(self, seq: int) -> monitor.ItemHead | None:
        """The item with its big texts cut to a page, and their full lengths."""
        return await self._c.run(monitor.item_head, seq)

    async def item_slice(self, seq: int, name: str, offset: int, limit: int) -> tuple[str, int]:
        """A slice of one big text (payload, output, …) and its whole length."""
        return await self._c.run(monitor.item_slice, seq, name, offset, limit)

    async def waste_by_cause_monitor(self) -> list[monitor.CauseLine]:
        """Wasted spend by cause with one example each (monitor.py's version)."""
        return await self._c.run(monitor.waste_by_cause)

    async def failures_by_cause_monitor(self) -> list[monitor.CauseLine]:
        """Failed and lost items by cause with one example each (monitor.py's version)."""
        return await self._c.run(monitor.failures_by_cause)

    # ------------------------------------------------------------ Batch API jobs (jobs.py)

    async def plan_job(
        self, batch_id: str, model: str, seqs: Sequence[int], nbytes: int, source: str
    ) -> jobs_mod.JobRow | None:
        """Record a job and move its still-pending items into it (before it is created)."""
        return await self._w(
            jobs_mod.plan, batch_id, model, list(seqs), nbytes, source, self.owner,
            self.lease_seconds,
        )  # fmt: skip

    async def claim_jobs(self) -> list[jobs_mod.JobRow]:
        """Open jobs this process may drive now (its own, or a dead or expired driver's)."""
        return await self._w(jobs_mod.claim_open, self.owner, self.lease_seconds)

    async def job(self, job_id: int) -> jobs_mod.JobRow | None:
        return await self._c.run(jobs_mod.get, job_id)

    async def jobs(self) -> list[jobs_mod.JobRow]:
        return await self._c.run(jobs_mod.all_jobs)

    async def job_item_counts(self) -> dict[int, dict[str, int]]:
        return await self._c.run(jobs_mod.item_counts)

    async def job_items(self, job_id: int) -> list[tuple[int, str, int]]:
        return await self._c.run(jobs_mod.held_items, job_id)

    async def job_requests(self, job_id: int) -> list[tuple[int, str, str | None, str, str | None]]:
        return await self._c.run(jobs_mod.job_requests, job_id)

    async def pending_model_items(self) -> list[tuple[int, str, str | None, str | None, int]]:
        return await self._c.run(jobs_mod.pending_model_items)

    async def renew_jobs(self) -> None:
        await self._w(jobs_mod.renew, self.owner, self.lease_seconds)

    async def release_jobs(self) -> None:
        await self._w(jobs_mod.release, self.owner)

    async def job_submitted(self, job_id: int, name: str, service_state: str, how: str) -> None:
        await self._w(jobs_mod.submitted, job_id, self.owner, name, service_state, how)

    async def job_state(
        self, job_id: int, service_state: str, *, ended: bool, error: str | None = None
    ) -> None:
        await self._w(jobs_mod.set_service_state, job_id, self.owner, service_state, ended, error)

    async def job_file(self, job_id: int, file_name: str) -> None:
        await self._w(jobs_mod.set_file, job_id, self.owner, file_name)

    async def commit_job_lines(self, job_id: int, outcomes: Sequence[jobs_mod.LineOutcome]) -> int:
        return await self._w(jobs_mod.commit_lines, job_id, self.owner, list(outcomes))

    async def job_give_back(self, job_id: int, why: str, *, count_attempt: bool) -> int:
        return await self._w(jobs_mod.give_back, job_id, self.owner, why, count_attempt)

    async def close_job(
        self, job_id: int, phase: jobs_mod.JobPhase, error: str | None = None
    ) -> None:
        await self._w(jobs_mod.close, job_id, self.owner, phase, error)

    async def flag_job_cancel(self, job_id: int) -> jobs_mod.JobRow | None:
        return await self._w(jobs_mod.flag_cancel, job_id)

    async def fail_exhausted(self, max_attempts: int) -> int:
        return await self._w(jobs_mod.fail_exhausted, max_attempts)
