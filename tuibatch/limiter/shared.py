"""The quota every worker process on one checkpoint shares, kept in the checkpoint file.

With ``--rpm``/``--tpm`` every launch and poll takes its units from sliding windows in the
``pace`` table, in one ``BEGIN IMMEDIATE`` transaction (:meth:`Store.transaction`), so N
workers on one file never add up to more than the quota. The table is the limiter's, not the
store's: it is created here, the first time a quota needs it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..store import Store

#: (span seconds, max requests, max tokens); 0 = no limit
Limit = tuple[float, float, float]

CREATE = (
    "CREATE TABLE IF NOT EXISTS pace (t REAL NOT NULL, req INTEGER NOT NULL, tok INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS pace_by_t ON pace(t)",
)


class SharedPace:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._created = False

    async def take(self, req: int, tok: int, limits: Sequence[Limit]) -> float:
        """Take *req* requests and *tok* tokens; 0 when taken, else the seconds to wait first."""
        create = not self._created

        def fn(con: sqlite3.Connection) -> float:
            if create:
                for stmt in CREATE:
                    con.execute(stmt)
            return take(con, time.time(), req, tok, limits)

        wait = await self.store.transaction(fn)
        self._created = True
        return wait


def take(con: sqlite3.Connection, now: float, req: int, tok: int, limits: Sequence[Limit]) -> float:
    """Inside a write transaction: record the units if every window has room for them."""
    longest = max(span for span, _, _ in limits)
    con.execute("DELETE FROM pace WHERE t < ?", (now - longest,))
    wait = 0.0
    for span, max_req, max_tok in limits:
        used_req, used_tok = con.execute(
            "SELECT coalesce(sum(req),0), coalesce(sum(tok),0) FROM pace WHERE t >= ?",
            (now - span,),
        ).fetchone()
        over_req = used_req + req - max_req if max_req else 0
        over_tok = used_tok + min(tok, max_tok) - max_tok if max_tok else 0
        if over_req <= 0 and over_tok <= 0:
            continue
        freed_req = freed_tok = 0
        rows = con.execute("SELECT t, req, tok FROM pace WHERE t >= ? ORDER BY t", (now - span,))
        for t, r, k in rows:
            freed_req += r
            freed_tok += k
            if freed_req >= over_req and freed_tok >= over_tok:
                wait = max(wait, t + span - now)
                break
        else:
            wait = max(wait, span / 10)
    if wait > 0:
        return wait
    con.execute("INSERT INTO pace(t, req, tok) VALUES (?,?,?)", (now, req, tok))
    return 0.0
