"""The event log: every transition appends here, in the transaction that makes it."""

from __future__ import annotations

import sqlite3
import time

from ..states import ItemState
from .records import Attempt, EventKind


def append(
    con: sqlite3.Connection,
    seq: int | None,
    kind: EventKind,
    *,
    state: ItemState | None = None,
    attempt: int | None = None,
    a: Attempt | None = None,
    message: str | None = None,
    now: float | None = None,
) -> int:
    """Append one event; its id."""
    now = now or time.time()
    if a is None:
        cur = con.execute(
            "INSERT INTO events(t, seq, kind, state, attempt, message) VALUES (?,?,?,?,?,?)",
            (now, seq, kind, state, attempt, message),
        )
    else:
        cur = con.execute(
            "INSERT INTO events(t, seq, kind, state, attempt, outcome, http_code, delay, tokens_in,"
            " tokens_out, tokens_thought, cost_usd, wasted, message)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                now,
                seq,
                kind,
                state,
                attempt,
                a.outcome,
                a.http_code,
                a.delay,
                a.tokens_in,
                a.tokens_out,
                a.tokens_thought,
                a.cost_usd,
                int(a.wasted),
                a.message or message,
            ),
        )
    event_id = cur.lastrowid
    assert event_id is not None
    return event_id
