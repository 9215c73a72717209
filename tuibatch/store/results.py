"""A run's result with its facts: settle, refuse an invalid answer, mark a run lost.

The transitions the engine's result handling needs beyond ``Queue.finish``: they also write the
stop reason, the checked JSON value, the cause (``items.cause`` and ``events.cause``, which the
failure and waste summaries group by) and whether usage was reported. They run inside
``Store.transaction`` (one BEGIN IMMEDIATE … COMMIT) and never begin or commit themselves; each
checks with the queue's fencing (``Queue._mine``) that this worker still holds the item.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from ..states import ErrorClass, ItemState
from .journal import append
from .queue import Queue
from .records import ITEM_COLUMNS, Attempt, EventKind, Row


@dataclass
class Facts:
    """What a result says beyond its text: the columns the failure and waste summaries read."""

    output_json: str | None = None
    stop_reason: str | None = None
    #: the policy.Cause value of a failure or of a wasted attempt
    cause: str | None = None
    usage_known: bool = True


def _attempt_event(
    con: sqlite3.Connection, seq: int, attempt: int, a: Attempt, cause: str | None, now: float
) -> None:
    event_id = append(con, seq, EventKind.ATTEMPT, attempt=attempt, a=a, now=now)
    if cause is not None:
        con.execute("UPDATE events SET cause=? WHERE id=?", (cause, event_id))


def settle(
    queue: Queue,
    con: sqlite3.Connection,
    seq: int,
    state: ItemState,
    *,
    a: Attempt,
    facts: Facts,
    run_id: str | None = None,
    output: str | None = None,
    error_class: ErrorClass | None = None,
    count_attempt: bool = False,
    price_known: bool = True,
) -> Row:
    """``finish`` with the result's facts (stop reason, JSON value, cause, usage known)."""
    now = time.time()
    row = queue._mine(con, seq)
    attempts = row.attempts + (1 if count_attempt else 0)
    ok = state is ItemState.DONE
    err = (None,) * 4 if ok else (error_class, a.http_code, a.message, a.delay)
    r = con.execute(
        "UPDATE items SET state=?, run_id=coalesce(?, run_id), output=?, output_json=?,"
        " stop_reason=?, cause=?, usage_known=usage_known*?, attempts=?,"
        " tokens_in=tokens_in+?, tokens_out=tokens_out+?, tokens_thought=tokens_thought+?,"
        " cost_usd=cost_usd+?, price_known=price_known*?, err_class=?, err_code=?,"
        " err_message=?, err_delay=?, owner=NULL, lease_until=NULL, cancel_requested=0,"
        f" finished_at=?, updated_at=? WHERE seq=? RETURNING {ITEM_COLUMNS}",
        (
            state,
            run_id,
            output,
            facts.output_json,
            facts.stop_reason,
            None if ok else facts.cause,
            int(facts.usage_known),
            attempts,
            a.tokens_in,
            a.tokens_out,
            a.tokens_thought,
            a.cost_usd,
            int(price_known),
            *err,
            now,
            now,
            seq,
        ),
    ).fetchone()
    if a.tokens_in or a.tokens_out or a.cost_usd or count_attempt or a.wasted:
        _attempt_event(con, seq, attempts, a, facts.cause if a.wasted or not ok else None, now)
    append(
        con,
        seq,
        EventKind.STATE,
        state=state,
        attempt=attempts,
        message=a.message if not ok or facts.stop_reason else None,
        now=now,
    )
    queue._fences.pop(seq, None)  # settled: this worker holds it no more
    return Row.from_db(r)


def retry_output(
    queue: Queue,
    con: sqlite3.Connection,
    seq: int,
    *,
    a: Attempt,
    facts: Facts,
    count_attempt: bool,
) -> Row:
    """A paid answer that is refused (invalid output): counted as wasted, the item launches anew."""
    now = time.time()
    row = queue._mine(con, seq)
    attempts = row.attempts + (1 if count_attempt else 0)
    r = con.execute(
        "UPDATE items SET state=?, run_id=NULL, attempts=?, tokens_in=tokens_in+?,"
        " tokens_out=tokens_out+?, tokens_thought=tokens_thought+?, cost_usd=cost_usd+?,"
        " usage_known=usage_known*?, err_class=?, err_message=?, cause=?, updated_at=?"
        f" WHERE seq=? RETURNING {ITEM_COLUMNS}",
        (
            ItemState.CLAIMED,
            attempts,
            a.tokens_in,
            a.tokens_out,
            a.tokens_thought,
            a.cost_usd,
            int(facts.usage_known),
            ErrorClass.INVALID_OUTPUT,
            a.message,
            facts.cause,
            now,
            seq,
        ),
    ).fetchone()
    _attempt_event(con, seq, attempts, a, facts.cause, now)
    append(con, seq, EventKind.STATE, state=ItemState.CLAIMED, message=a.message, now=now)
    return Row.from_db(r)


def refused_outputs(con: sqlite3.Connection, seq: int, cause: str, since_attempt: int) -> int:
    """How many answers of this item were refused for *cause* since attempt *since_attempt*."""
    r = con.execute(
        "SELECT count(*) FROM events WHERE seq=? AND kind=? AND cause=? AND wasted=1"
        " AND coalesce(attempt, 0) > ?",
        (seq, EventKind.ATTEMPT, cause, since_attempt),
    ).fetchone()
    return int(r[0])


def mark_lost(
    queue: Queue, con: sqlite3.Connection, seq: int, run_id: str, why: str, cause: str
) -> Row:
    """The service answered 404 for a recorded run: LOST, its paid cost kept, never relaunched."""
    now = time.time()
    row = queue._mine(con, seq)
    r = con.execute(
        "UPDATE items SET state=?, err_class=?, err_code=404, err_message=?, cause=?, owner=NULL,"
        " lease_until=NULL, cancel_requested=0, finished_at=?, updated_at=?"
        f" WHERE seq=? RETURNING {ITEM_COLUMNS}",
        (ItemState.LOST, ErrorClass.LOST, why, cause, now, now, seq),
    ).fetchone()
    lost = Attempt(outcome=ItemState.LOST.value, http_code=404, wasted=True, message=run_id)
    _attempt_event(con, seq, row.attempts, lost, cause, now)
    append(con, seq, EventKind.STATE, state=ItemState.LOST, message=why, now=now)
    queue._fences.pop(seq, None)
    return Row.from_db(r)
