"""The :class:`Store`: one checkpoint file, as the engine, the commands and the app use it.

Each method sends one function of :mod:`.queue`, :mod:`.commands`, :mod:`.sync` or
:mod:`.views` to the connection's thread: one hop, one transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from .. import owner as owner_mod
from ..items import Item
from ..states import ErrorClass, ItemState, PauseKind, PauseState
from . import commands, views
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
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

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

    async def claim(self) -> Claim | None:
        """Take one item for this worker: an abandoned one first, else the next pending one."""
        return await self._w(self._queue.claim)

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
