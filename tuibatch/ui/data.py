"""Reads the screen needs from the checkpoint: small, windowed queries, never the whole table.

The store's own ``rows()`` returns every column (input, output …); the table only needs a
dozen narrow ones, so the windows are read here with their own SELECT on the same connection.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..store import EVENT_COLUMNS, Event, Store, Totals

TABLE_COLUMNS = (
    "seq, key, state, attempts, tokens_in + tokens_out + tokens_thought, cost_usd, price_known,"
    " started_at, finished_at, err_message, cancel_requested"
)


@dataclass(frozen=True)
class TableRow:
    """One line of the item table."""

    seq: int
    key: str
    state: str
    attempts: int
    tokens: int
    cost_usd: float
    price_known: bool
    started_at: float | None
    finished_at: float | None
    error: str | None
    cancel_requested: bool

    @property
    def latency(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


@dataclass(frozen=True)
class Filter:
    """Which rows the table shows: one state (or all) and a key / error substring."""

    state: str | None = None
    text: str = ""

    def where(self) -> tuple[str, tuple[Any, ...]]:
        parts: list[str] = []
        params: list[Any] = []
        if self.state:
            parts.append("state=?")
            params.append(self.state)
        if self.text:
            like = "%" + self.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            parts.append("(key LIKE ? ESCAPE '\\' OR coalesce(err_message,'') LIKE ? ESCAPE '\\')")
            params += [like, like]
        return (" AND ".join(parts) or "1"), tuple(params)


@dataclass
class LogLine:
    """An event with its item's key, for the log pane."""

    event: Event
    key: str | None


@dataclass
class Snapshot:
    """Everything the header and cost meter show, read in one go."""

    totals: Totals = field(default_factory=Totals)
    control: dict[str, str] = field(default_factory=dict)
    last_event_id: int = 0
    finished_recent: int = 0
    window: float = 0.0
    first_start: float | None = None


async def count(store: Store, flt: Filter) -> int:
    where, params = flt.where()
    rows = list(await store.db.execute_fetchall(f"SELECT count(*) FROM items WHERE {where}", params))
    return int(rows[0][0])


async def window(store: Store, flt: Filter, offset: int, limit: int) -> list[TableRow]:
    where, params = flt.where()
    sql = f"SELECT {TABLE_COLUMNS} FROM items WHERE {where} ORDER BY seq LIMIT ? OFFSET ?"
    out = []
    for r in await store.db.execute_fetchall(sql, (*params, int(limit), int(offset))):
        out.append(TableRow(r[0], r[1], r[2], r[3], r[4] or 0, r[5] or 0.0, bool(r[6]), r[7], r[8],
                            r[9], bool(r[10])))
    return out


async def index_of(store: Store, flt: Filter, seq: int) -> int:
    """Position of an item in the filtered, seq-ordered view (for follow mode)."""
    where, params = flt.where()
    rows = list(await store.db.execute_fetchall(
        f"SELECT count(*) FROM items WHERE {where} AND seq < ?", (*params, seq)))
    return int(rows[0][0])


async def first_running(store: Store) -> int | None:
    rows = list(await store.db.execute_fetchall(
        "SELECT min(seq) FROM items WHERE state IN ('claimed','running')"))
    return rows[0][0] if rows and rows[0][0] is not None else None


async def snapshot(store: Store, now: float, rate_window: float = 60.0) -> Snapshot:
    s = Snapshot()
    s.totals = await store.totals()
    s.control = await store.control()
    s.last_event_id = await store.last_event_id()
    since = now - rate_window
    rows = list(await store.db.execute_fetchall(
        "SELECT coalesce(sum(finished_at >= ? AND state IN ('done','failed')),0), min(started_at)"
        " FROM items WHERE started_at IS NOT NULL", (since,)))
    s.finished_recent = int(rows[0][0] or 0)
    s.first_start = rows[0][1]
    start = max(since, s.first_start) if s.first_start is not None else now
    s.window = max(0.0, now - start)
    return s


async def events(store: Store, *, after: int = 0, seq: int | None = None, limit: int = 300,
                 tail: bool = False) -> list[LogLine]:
    """Events with their keys; ``tail`` takes the last ``limit`` instead of the first."""
    cols = ", ".join("e." + c.strip() for c in EVENT_COLUMNS.split(","))
    where = "e.id > ?"
    params: list[Any] = [after]
    if seq is not None:
        where += " AND e.seq = ?"
        params.append(seq)
    order = "DESC" if tail else "ASC"
    sql = (f"SELECT {cols}, i.key FROM events e LEFT JOIN items i ON i.seq = e.seq WHERE {where}"
           f" ORDER BY e.id {order} LIMIT ?")
    rows = list(await store.db.execute_fetchall(sql, (*params, limit)))
    if tail:
        rows.reverse()
    return [LogLine(Event(*r[:15]), r[15]) for r in rows]


def checkpoint_ready(path: Path) -> bool:
    """Whether the worker has created the schema and loaded the items (read-only check)."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
        try:
            meta = dict(con.execute("SELECT k, v FROM meta").fetchall())
            has_items = bool(con.execute("SELECT 1 FROM items LIMIT 1").fetchall())
        finally:
            con.close()
    except sqlite3.Error:
        return False
    return meta.get("app") == "tuibatch" and ("items_count" in meta or has_items)
