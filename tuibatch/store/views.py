"""Every read: what the engine checks, what the app, `status`, `export` and a dry run show.

Functions of a connection, run on the store's thread; none writes. Reads that combine several
SELECTs run in one read transaction, so their numbers agree with each other.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..states import IN_FLIGHT, UNFINISHED, ItemState
from .connection import read
from .records import (
    EVENT_COLUMNS,
    EVENT_FIELDS,
    ITEM_COLUMNS,
    Event,
    ItemFilter,
    ItemSummary,
    KeyedEvent,
    Overview,
    Row,
    Totals,
    item_state,
)
from .schema import APP_ID

#: what a dry run does not count again: the result is there, or the user said no
FINISHED = frozenset({ItemState.DONE, ItemState.SKIPPED})
#: what the rate counts as an item got through
THROUGH = frozenset({ItemState.DONE, ItemState.FAILED})


def in_states(states: Collection[ItemState]) -> str:
    """``'a','b'`` for ``state IN (…)``: enum values only, so literal SQL is safe (indexable)."""
    return ",".join(f"'{ItemState(s).value}'" for s in sorted(states)) or "NULL"


IN_FLIGHT_SQL = in_states(IN_FLIGHT)
UNFINISHED_SQL = in_states(UNFINISHED)

# ----------------------------------------------------------------------------- items


def get(con: sqlite3.Connection, seq: int) -> Row | None:
    r = con.execute(f"SELECT {ITEM_COLUMNS} FROM items WHERE seq=?", (seq,)).fetchone()
    return Row.from_db(r) if r else None


def get_by_key(con: sqlite3.Connection, key: str) -> Row | None:
    r = con.execute(f"SELECT {ITEM_COLUMNS} FROM items WHERE key=?", (key,)).fetchone()
    return Row.from_db(r) if r else None


def items(
    con: sqlite3.Connection, states: Collection[ItemState] | None, limit: int | None, offset: int
) -> list[Row]:
    where = "1" if states is None else f"state IN ({in_states(states)})"
    sql = f"SELECT {ITEM_COLUMNS} FROM items WHERE {where} ORDER BY seq"
    params: tuple[int, ...] = ()
    if limit is not None:
        sql += " LIMIT ? OFFSET ?"
        params = (int(limit), int(offset))
    elif offset:
        sql += " LIMIT -1 OFFSET ?"
        params = (int(offset),)
    return [Row.from_db(r) for r in con.execute(sql, params)]


def finished_keys(con: sqlite3.Connection) -> set[str]:
    return {
        k for (k,) in con.execute(f"SELECT key FROM items WHERE state IN ({in_states(FINISHED)})")
    }


def work_left(con: sqlite3.Connection) -> tuple[int, int]:
    counts = dict(
        con.execute(
            f"SELECT state, count(*) FROM items WHERE state IN ({UNFINISHED_SQL}) GROUP BY state"
        ).fetchall()
    )
    return counts.get(ItemState.PENDING, 0), sum(counts.get(s, 0) for s in IN_FLIGHT)


def mine_to_cancel(con: sqlite3.Connection, owner: str) -> list[int]:
    sql = "SELECT seq FROM items WHERE owner=? AND cancel_requested=1"
    return [s for (s,) in con.execute(sql, (owner,))]


def cancel_requested(con: sqlite3.Connection, seq: int) -> bool:
    r = con.execute("SELECT cancel_requested FROM items WHERE seq=?", (seq,)).fetchone()
    return bool(r and r[0])


# ---------------------------------------------------------------------- meta, control


def meta(con: sqlite3.Connection) -> dict[str, str]:
    return dict(con.execute("SELECT k, v FROM meta").fetchall())


def control(con: sqlite3.Connection) -> dict[str, str]:
    return dict(con.execute("SELECT k, v FROM control").fetchall())


# ----------------------------------------------------------------------------- events


def events(con: sqlite3.Connection, after: int, seq: int | None, limit: int) -> list[Event]:
    if seq is None:
        sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE id>? ORDER BY id LIMIT ?"
        params: tuple[Any, ...] = (after, limit)
    else:
        sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE seq=? AND id>? ORDER BY id LIMIT ?"
        params = (seq, after, limit)
    return [Event.from_db(r) for r in con.execute(sql, params)]


def keyed_events(
    con: sqlite3.Connection, after: int, seq: int | None, limit: int, tail: bool
) -> list[KeyedEvent]:
    cols = ", ".join("e." + c for c in EVENT_FIELDS)
    where = "e.id > ?"
    params: list[Any] = [after]
    if seq is not None:
        where += " AND e.seq = ?"
        params.append(seq)
    order = "DESC" if tail else "ASC"
    sql = (
        f"SELECT {cols}, i.key FROM events e LEFT JOIN items i ON i.seq = e.seq WHERE {where}"
        f" ORDER BY e.id {order} LIMIT ?"
    )
    rows = con.execute(sql, (*params, limit)).fetchall()
    if tail:
        rows.reverse()
    n = len(EVENT_FIELDS)
    return [KeyedEvent(Event.from_db(r[:n]), r[n]) for r in rows]


def last_event_id(con: sqlite3.Connection) -> int:
    return int(con.execute("SELECT coalesce(max(id),0) FROM events").fetchone()[0])


# ----------------------------------------------------------------------------- totals


def totals(con: sqlite3.Connection) -> Totals:
    with read(con):
        return _totals(con)


def _totals(con: sqlite3.Connection) -> Totals:
    t = Totals()
    for state, n in con.execute("SELECT state, count(*) FROM items GROUP BY state"):
        t.counts[item_state(state)] = n
    t.total = sum(t.counts.values())
    (t.tokens_in, t.tokens_out, t.tokens_thought, t.cost_usd, t.unpriced, t.relaunches) = (
        con.execute(
            "SELECT coalesce(sum(tokens_in),0), coalesce(sum(tokens_out),0),"
            " coalesce(sum(tokens_thought),0), coalesce(sum(cost_usd),0),"
            " coalesce(sum(1-price_known),0), coalesce(sum(relaunches),0) FROM items"
        ).fetchone()
    )
    wasted = con.execute("SELECT coalesce(sum(cost_usd),0) FROM events WHERE wasted=1").fetchone()
    # An in-doubt relaunch paid for a run whose result is lost: estimate it at the item's own cost.
    relaunch_waste = con.execute(
        "SELECT coalesce(sum(cost_usd * relaunches * 1.0 / (relaunches + 1)), 0) FROM items"
        " WHERE relaunches>0"
    ).fetchone()
    t.wasted_usd = float(wasted[0]) + float(relaunch_waste[0])
    t.usage_unknown = int(
        con.execute("SELECT count(*) FROM items WHERE usage_known=0").fetchone()[0]
    )
    return t


def overview(con: sqlite3.Connection, since: float) -> Overview:
    with read(con):
        recent, first = con.execute(
            f"SELECT coalesce(sum(finished_at >= ? AND state IN ({in_states(THROUGH)})),0),"
            " min(started_at) FROM items WHERE started_at IS NOT NULL",
            (since,),
        ).fetchone()
        return Overview(_totals(con), control(con), last_event_id(con), int(recent or 0), first)


# ------------------------------------------------------------------- a list of items

_SUMMARY_COLUMNS = (
    "seq, key, state, attempts, tokens_in + tokens_out + tokens_thought, cost_usd, price_known,"
    " started_at, finished_at, err_message, cancel_requested"
)


def _where(flt: ItemFilter) -> tuple[str, tuple[Any, ...]]:
    parts: list[str] = []
    params: list[Any] = []
    if flt.state is not None:
        parts.append("state=?")
        params.append(flt.state)
    if flt.text:
        like = "%" + flt.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        parts.append("(key LIKE ? ESCAPE '\\' OR coalesce(err_message,'') LIKE ? ESCAPE '\\')")
        params += [like, like]
    return (" AND ".join(parts) or "1"), tuple(params)


def count(con: sqlite3.Connection, flt: ItemFilter) -> int:
    where, params = _where(flt)
    return int(con.execute(f"SELECT count(*) FROM items WHERE {where}", params).fetchone()[0])


#: characters of an item's result the table reads (a bounded prefix, never the whole output)
PREVIEW_CHARS = 400
#: the item states in which an item waits inside a Batch API job
IN_JOB_SQL = in_states(IN_FLIGHT)


@dataclass(frozen=True)
class ItemLine(ItemSummary):
    """A table row: the narrow columns, the first :data:`PREVIEW_CHARS` characters of the
    result (the checked JSON answer when there is one, else the text) and, while the item
    waits in a Gemini Batch API job, that job's number, phase, service state and start."""

    #: a prefix of ``output_json`` (``preview_json``) or of ``output``; None when not done
    preview: str | None = None
    preview_json: bool = False
    #: the job holding the item (claimed / running in a job); None otherwise
    job_id: int | None = None
    #: tuibatch's phase of that job (planned, submitted, ended …)
    job_phase: str | None = None
    #: the service's state (``JOB_STATE_RUNNING`` …); None before the job was created
    job_service_state: str | None = None
    #: when the job was created on the service (else when it was recorded)
    job_since: float | None = None


def window(con: sqlite3.Connection, flt: ItemFilter, offset: int, limit: int) -> list[ItemSummary]:
    """A page of the filtered list, as :class:`ItemLine` rows: each result read as a bounded
    prefix (``substr``) and the job of an item in one joined from ``jobs``, for the page's
    rows only, never the table. (Typed as the summaries :meth:`Store.window` promises.)"""
    where, params = _where(flt)
    done = ItemState.DONE.value
    sql = (
        "SELECT w.*, j.id, j.state, j.service_state, coalesce(j.submitted_at, j.created_at)"
        f" FROM (SELECT {_SUMMARY_COLUMNS},"
        f" CASE WHEN state='{done}' THEN substr(coalesce(output_json, output), 1, {PREVIEW_CHARS})"
        f" END, state='{done}' AND output_json IS NOT NULL, job_id, state IN ({IN_JOB_SQL})"
        f" FROM items WHERE {where} ORDER BY seq LIMIT ? OFFSET ?) w"
        " LEFT JOIN jobs j ON j.id = w.job_id AND w.job_id IS NOT NULL ORDER BY w.seq"
    )
    out: list[ItemSummary] = []
    for r in con.execute(sql, (*params, int(limit), int(offset))):
        in_job = bool(r[14]) and r[15] is not None
        out.append(
            ItemLine(
                r[0],
                r[1],
                item_state(r[2], r[0]),
                r[3],
                r[4] or 0,
                r[5] or 0.0,
                bool(r[6]),
                r[7],
                r[8],
                r[9],
                bool(r[10]),
                preview=r[11],
                preview_json=bool(r[12]),
                job_id=r[15] if in_job else None,
                job_phase=r[16] if in_job else None,
                job_service_state=r[17] if in_job else None,
                job_since=r[18] if in_job else None,
            )
        )
    return out


def index_of(con: sqlite3.Connection, flt: ItemFilter, seq: int) -> int:
    where, params = _where(flt)
    sql = f"SELECT count(*) FROM items WHERE {where} AND seq < ?"
    return int(con.execute(sql, (*params, seq)).fetchone()[0])


def first_in_flight(con: sqlite3.Connection) -> int | None:
    r = con.execute(f"SELECT min(seq) FROM items WHERE state IN ({IN_FLIGHT_SQL})").fetchone()
    return r[0] if r and r[0] is not None else None


# ------------------------------------------------------------------ without a Store


def checkpoint_ready(path: Path) -> bool:
    """Whether a worker has created the schema and loaded the items (a read-only look)."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1.0)
        try:
            found = dict(con.execute("SELECT k, v FROM meta").fetchall())
            has_items = bool(con.execute("SELECT 1 FROM items LIMIT 1").fetchall())
        finally:
            con.close()
    except sqlite3.Error:
        return False
    return found.get("app") == APP_ID and ("items_count" in found or has_items)


def unknown_cost_targets(con: sqlite3.Connection) -> list[str | None]:
    """The billed target of every item whose runs reported no usage (the budget bounds them)."""
    sql = "SELECT coalesce(run_target, agent, model) FROM items WHERE usage_known=0"
    return [t for (t,) in con.execute(sql)]
