"""The pace every worker process on one checkpoint shares, kept in the checkpoint file.

Two tables, both the limiter's (created here the first time they are needed, not by the
store), each written in one ``BEGIN IMMEDIATE`` transaction (:meth:`Store.transaction`):

* ``pace_gcra``: one row per schedule (``requests``) holding its GCRA theoretical arrival
  time and the rate it runs at (told, or learned by whichever process learned last). A
  launch reads and moves one number: cheap, whatever the rate.
* ``pace_peer``: per process, how many requests the service accepted from it over the last
  minute, refreshed every couple of seconds: a quota learned from what was accepted counts
  every process on the checkpoint, not only the one that was refused;
* ``pace``: a sliding window of input tokens, for ``--tpm`` (tokens are weighed, not spaced).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

from .gcra import gcra_take

T = TypeVar("T")

if TYPE_CHECKING:
    from ..store import Store

#: (span seconds, max requests, max tokens); 0 = no limit
Limit = tuple[float, float, float]

CREATE = (
    "CREATE TABLE IF NOT EXISTS pace (t REAL NOT NULL, req INTEGER NOT NULL, tok INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS pace_by_t ON pace(t)",
)
CREATE_GCRA = (
    "CREATE TABLE IF NOT EXISTS pace_gcra (k TEXT PRIMARY KEY, tat REAL NOT NULL,"
    " rate REAL NOT NULL, changed REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS pace_peer (k TEXT NOT NULL, who TEXT NOT NULL, n REAL NOT NULL,"
    " at REAL NOT NULL, PRIMARY KEY (k, who))",
)
#: a count older than this says nothing about the last minute (a process whose every item
#: sleeps in a backoff reports nothing for a while)
PEER_FRESH = 60.0


class SharedPace:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._created = False
        self._created_gcra = False

    async def take(self, req: int, tok: int, limits: Sequence[Limit], now: float) -> float:
        """Take *req* requests and *tok* tokens; 0 when taken, else the seconds to wait first."""
        create = not self._created

        def fn(con: sqlite3.Connection) -> float:
            if create:
                for stmt in CREATE:
                    con.execute(stmt)
            return take(con, now, req, tok, limits)

        wait = await self.store.transaction(fn)
        self._created = True
        return wait

    async def slot(
        self, key: str, now: float, rate: float, changed: float
    ) -> tuple[float, float, float]:
        """One request on schedule *key*: (wait, rate in force, when that rate was set).

        *rate* set at *changed* replaces the row's rate if it is newer; otherwise the row's
        (another process learned it later) is the one used, and returned for adoption.
        A rate of 0 paces nothing (and, being oldest, takes the row's rate if it has one).
        """
        return await self._on_gcra(lambda con: slot(con, key, now, rate, changed))

    async def report(self, key: str, who: str, n: float, now: float) -> tuple[float, int]:
        """Tell the other processes on the checkpoint how many requests of schedule *key* the
        service accepted from *who* over the last minute; (what it accepted from them, how
        many they are)."""
        return await self._on_gcra(lambda con: report(con, key, who, n, now))

    async def _on_gcra(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """*body* in one transaction on the schedule tables, created by the first call."""
        create = not self._created_gcra

        def fn(con: sqlite3.Connection) -> T:
            if create:
                for stmt in CREATE_GCRA:
                    con.execute(stmt)
            return body(con)

        out = await self.store.transaction(fn)
        self._created_gcra = True
        return out

    async def share_rate(self, key: str, rate: float, changed: float) -> None:
        """Tell every process on the checkpoint the rate just learned (set at *changed*)."""
        create = not self._created_gcra

        def fn(con: sqlite3.Connection) -> None:
            if create:
                for stmt in CREATE_GCRA:
                    con.execute(stmt)
            share_rate(con, key, rate, changed)

        await self.store.transaction(fn)
        self._created_gcra = True


def report(con: sqlite3.Connection, key: str, who: str, n: float, at: float) -> tuple[float, int]:
    """Inside a write transaction: record *who*'s count; (the sum of the other fresh counts,
    how many other processes reported lately)."""
    con.execute(
        "INSERT INTO pace_peer(k, who, n, at) VALUES (?,?,?,?)"
        " ON CONFLICT(k, who) DO UPDATE SET n=excluded.n, at=excluded.at",
        (key, who, n, at),
    )
    con.execute("DELETE FROM pace_peer WHERE k=? AND at < ?", (key, at - 10 * PEER_FRESH))
    others, peers = con.execute(
        "SELECT coalesce(sum(n), 0), count(*) FROM pace_peer WHERE k=? AND who<>? AND at >= ?",
        (key, who, at - PEER_FRESH),
    ).fetchone()
    return float(others), int(peers)


def share_rate(con: sqlite3.Connection, key: str, rate: float, changed: float) -> None:
    """Inside a write transaction: set the rate of *key* if *changed* is newer than the row's."""
    con.execute(
        "INSERT INTO pace_gcra(k, tat, rate, changed) VALUES (?,0,?,?)"
        " ON CONFLICT(k) DO UPDATE SET rate=excluded.rate, changed=excluded.changed"
        " WHERE excluded.changed > pace_gcra.changed",
        (key, rate, changed),
    )


def slot(
    con: sqlite3.Connection, key: str, now: float, rate: float, changed: float
) -> tuple[float, float, float]:
    """Inside a write transaction: GCRA on the row *key* (see :func:`SharedPace.slot`)."""
    row = con.execute("SELECT tat, rate, changed FROM pace_gcra WHERE k=?", (key,)).fetchone()
    tat = 0.0
    if row is not None:
        tat, row_rate, row_changed = row
        if row_changed > changed:
            rate, changed = row_rate, row_changed
    if rate <= 0:  # nothing paced here and nothing learned elsewhere: the schedule stays
        return 0.0, rate, changed
    new_tat, wait = gcra_take(tat, now, rate)
    con.execute(
        "INSERT INTO pace_gcra(k, tat, rate, changed) VALUES (?,?,?,?)"
        " ON CONFLICT(k) DO UPDATE SET tat=excluded.tat, rate=excluded.rate,"
        " changed=excluded.changed",
        (key, new_tat, rate, changed),
    )
    return wait, rate, changed


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
