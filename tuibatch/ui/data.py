"""What the screen reads from the checkpoint: small, windowed views, never the whole table.

Every read goes through a :class:`~tuibatch.store.Store` view; no SQL here. The names the
rest of the app uses (``TableRow``, ``Filter``, ``LogLine``) are the store's records.
"""

from __future__ import annotations

import shlex
from dataclasses import astuple, dataclass, field
from pathlib import Path

from ..store import ItemFilter, ItemSummary, KeyedEvent, Store, Totals
from ..store import checkpoint_ready as _checkpoint_ready
from ..store.monitor import Liveness, peek_liveness
from ..store.views import ItemLine

#: one line of the item table: the narrow columns, a prefix of the result, the item's job
TableRow = ItemLine
#: which rows the table shows: one state (or all) and a key / error substring
Filter = ItemFilter
#: an event with its item's key, for the log pane
LogLine = KeyedEvent


@dataclass
class Snapshot:
    """Everything the header and cost meter show, read in one go."""

    totals: Totals = field(default_factory=Totals)
    control: dict[str, str] = field(default_factory=dict)
    last_event_id: int = 0
    finished_recent: int = 0
    window: float = 0.0
    first_start: float | None = None
    #: what the Gemini Batch API jobs cost at the batch rate, and how many jobs there are
    batch_usd: float = 0.0
    batch_jobs: int = 0


async def count(store: Store, flt: Filter) -> int:
    return await store.count(flt)


def _line(row: ItemSummary) -> TableRow:
    return row if isinstance(row, ItemLine) else ItemLine(*astuple(row))


async def window(store: Store, flt: Filter, offset: int, limit: int) -> list[TableRow]:
    return [_line(r) for r in await store.window(flt, offset, limit)]


async def index_of(store: Store, flt: Filter, seq: int) -> int:
    """Position of an item in the filtered, seq-ordered view (for follow mode)."""
    return await store.index_of(flt, seq)


async def first_running(store: Store) -> int | None:
    return await store.first_in_flight()


async def snapshot(store: Store, now: float, rate_window: float = 60.0) -> Snapshot:
    since = now - rate_window
    o = await store.overview(since)
    start = max(since, o.first_start) if o.first_start is not None else now
    jobs = await store.jobs()
    return Snapshot(
        totals=o.totals,
        control=o.control,
        last_event_id=o.last_event_id,
        finished_recent=o.finished_recent,
        window=max(0.0, now - start),
        first_start=o.first_start,
        batch_usd=sum(j.cost_usd for j in jobs),
        batch_jobs=len(jobs),
    )


async def events(
    store: Store, *, after: int = 0, seq: int | None = None, limit: int = 300, tail: bool = False
) -> list[LogLine]:
    """Events with their keys; ``tail`` takes the last ``limit`` instead of the first."""
    return await store.keyed_events(after=after, seq=seq, limit=limit, tail=tail)


def checkpoint_ready(path: Path) -> bool:
    """Whether the worker has created the schema and loaded the items (read-only check)."""
    return _checkpoint_ready(path)


def live_workers(path: Path, now: float) -> Liveness | None:
    """Who works on the checkpoint at *path* before the app opens it (None: no checkpoint)."""
    return peek_liveness(path, now)


def start_hint(meta: dict[str, str], db: Path) -> str:
    """The command that starts a worker on this checkpoint, for "no worker running"."""
    items = meta.get("items_file") or "ITEMS"
    return f"tuibatch {shlex.quote(items)} --db {shlex.quote(str(db))}"
