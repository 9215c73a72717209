"""Claims and the transitions of a claimed item: the work queue every worker on a file shares.

Every method is one ``BEGIN IMMEDIATE`` transaction that also appends to the event log, so a
``kill -9`` at any instant leaves a state the next run can continue from. A write for an item
this worker no longer holds raises :class:`LostLease` and changes nothing.

    pending ──claim──▶ claimed ──mark_running──▶ running ──finish──▶ done / failed / skipped
       ▲                  │  ▲                      │
       └──unclaim─────────┘  └──note_relaunch(back_to_claimed): the service lost the run
"""

from __future__ import annotations

import sqlite3
import time

from .. import owner as owner_mod
from ..states import SETTLED, ErrorClass, ItemState
from . import views
from .connection import write
from .errors import LostLease
from .journal import append
from .records import ITEM_COLUMNS, Attempt, Claim, EventKind, Row

#: how often a busy worker looks for items abandoned by dead workers
ORPHAN_SCAN_SECONDS = 2.0


def _launch_pending(con: sqlite3.Connection, seq: int) -> bool:
    """Whether the item's last word is "launching": a request may have been sent (and paid
    for) whose answer was never recorded. A claim that never reached the fence is not."""
    r = con.execute(
        "SELECT kind, message FROM events WHERE seq=? AND (kind IN (?, ?)"
        " OR (kind=? AND message LIKE 'launching%')) ORDER BY id DESC LIMIT 1",
        (seq, EventKind.ATTEMPT, EventKind.STATE, EventKind.INFO),
    ).fetchone()
    return r is not None and r[0] == EventKind.INFO


#: pending items an interactive worker takes in ``--mode auto``: agent items only
_AGENTS_ONLY = " AND (agent IS NOT NULL OR (model IS NULL AND ?))"


class Queue:
    """One worker's view of the queue: its owner id, its lease length, its orphan-scan clock."""

    def __init__(self, owner: str, lease_seconds: float) -> None:
        self.owner = owner
        self.lease_seconds = lease_seconds
        self._next_orphan_scan = 0.0
        #: seq → the fencing token this worker got when it claimed the item (only the store's
        #: thread touches it): a write for an item whose token moved on is refused
        self._fences: dict[int, int] = {}

    # ----------------------------------------------------------------------- claims

    def claim(
        self, con: sqlite3.Connection, only_agents: bool = False, default_agent: bool = False
    ) -> Claim | None:
        """Take one item: an abandoned one first (every few seconds), else the next pending one.

        *only_agents* (``--mode auto``): pending model items are left for Batch API jobs; an item
        naming neither is an agent item when the run's default target (*default_agent*) is one.
        """
        now = time.time()
        lease = now + self.lease_seconds
        with write(con):
            if now >= self._next_orphan_scan:
                claim = self._take_orphan(con, now, lease)
                if claim is not None:
                    return claim
                self._next_orphan_scan = now + ORPHAN_SCAN_SECONDS
            r = con.execute(
                "UPDATE items SET state=?, owner=?, lease_until=?, updated_at=?, started_at=?,"
                " fence=fence+1 WHERE seq=(SELECT seq FROM items WHERE state=?"
                f"{_AGENTS_ONLY if only_agents else ''} ORDER BY seq LIMIT 1)"
                f" RETURNING {ITEM_COLUMNS}",
                (ItemState.CLAIMED, self.owner, lease, now, now, ItemState.PENDING)
                + ((int(default_agent),) if only_agents else ()),
            ).fetchone()
            if r is None:
                self._next_orphan_scan = 0.0  # nothing pending: look for abandoned work every time
                return None
            row = Row.from_db(r)
            append(
                con,
                row.seq,
                EventKind.STATE,
                state=ItemState.CLAIMED,
                message=f"by {self.owner}",
                now=now,
            )
            self._fences[row.seq] = row.fence
            return Claim(row)

    def _take_orphan(self, con: sqlite3.Connection, now: float, lease: float) -> Claim | None:
        holders = con.execute(
            f"SELECT DISTINCT owner FROM items WHERE state IN ({views.IN_FLIGHT_SQL})"
            " AND owner IS NOT NULL AND owner != ?",
            (self.owner,),
        ).fetchall()
        dead = [o for (o,) in holders if owner_mod.is_dead(o)]
        marks = ",".join("?" * len(dead))
        r = con.execute(
            f"SELECT seq FROM items WHERE state IN ({views.IN_FLIGHT_SQL}) AND (owner IS NULL"
            f" OR lease_until < ?{f' OR owner IN ({marks})' if dead else ''})"
            " AND (owner IS NULL OR owner != ?) AND job_id IS NULL ORDER BY seq LIMIT 1",
            (now, *dead, self.owner),
        ).fetchone()
        if r is None:
            return None
        old = views.get(con, r[0])
        assert old is not None
        con.execute(
            "UPDATE items SET owner=?, lease_until=?, updated_at=?, fence=fence+1 WHERE seq=?",
            (self.owner, lease, now, old.seq),
        )
        resume = old.run_id is not None and old.state is ItemState.RUNNING
        doubt = not resume and _launch_pending(con, old.seq)
        then = (
            f"resume polling run {old.run_id}"
            if resume
            else "launch again (in doubt)"
            if doubt
            else "launch (never sent)"
        )
        append(
            con,
            old.seq,
            EventKind.TAKEOVER,
            state=old.state,
            message=f"taken over from {old.owner or 'no owner'}: {then}",
        )
        row = views.get(con, old.seq)
        assert row is not None
        self._fences[row.seq] = row.fence
        self._next_orphan_scan = 0.0  # there may be more
        return Claim(row, in_doubt=doubt, resume=resume)

    def _mine(self, con: sqlite3.Connection, seq: int) -> Row:
        """The item, if this worker still holds it: its owner AND the fencing token it got."""
        row = views.get(con, seq)
        if (
            row is None
            or row.owner != self.owner
            or row.state in SETTLED
            or row.fence != self._fences.get(seq)
        ):
            self._fences.pop(seq, None)
            raise LostLease(seq)
        return row

    def begin_launch(self, con: sqlite3.Connection, seq: int, fence: int) -> None:
        """The fence of every launch: right before the request is sent, in one transaction,
        check that this worker still owns the item with the token *fence* and that its lease
        has not expired; extend the lease and record "launching". Anything else raises
        :class:`LostLease` and nothing may be sent."""
        now = time.time()
        expired = False
        with write(con):
            row = views.get(con, seq)
            if (
                row is None
                or row.owner != self.owner
                or row.fence != fence
                or self._fences.get(seq) != fence
                or row.state is not ItemState.CLAIMED
            ):
                self._fences.pop(seq, None)
                raise LostLease(seq)
            if row.lease_until is None or row.lease_until < now:
                # nobody has taken it over yet, but anybody may: give it back, send nothing
                expired = True
                con.execute(
                    "UPDATE items SET owner=NULL, lease_until=NULL, updated_at=? WHERE seq=?",
                    (now, seq),
                )
                append(
                    con,
                    seq,
                    EventKind.INFO,
                    message=f"lease expired before launch (worker paused?): let go by {self.owner}",
                    now=now,
                )
            else:
                con.execute(
                    "UPDATE items SET lease_until=?, updated_at=? WHERE seq=?",
                    (now + self.lease_seconds, now, seq),
                )
                append(con, seq, EventKind.INFO, message=f"launching (fence {fence})", now=now)
        if expired:
            self._fences.pop(seq, None)
            raise LostLease(seq)

    # ----------------------------------------------------------------------- leases

    def renew(self, con: sqlite3.Connection) -> None:
        """Extend the leases this worker still holds: same owner AND same fencing token."""
        until = time.time() + self.lease_seconds
        with write(con):
            con.executemany(
                "UPDATE items SET lease_until=?"
                f" WHERE seq=? AND owner=? AND fence=? AND state IN ({views.IN_FLIGHT_SQL})",
                [(until, seq, self.owner, fence) for seq, fence in self._fences.items()],
            )

    def release(self, con: sqlite3.Connection) -> int:
        """Keep states and run ids, drop the leases: the next run resumes at once."""
        self._fences.clear()
        with write(con):
            return con.execute(
                "UPDATE items SET owner=NULL, lease_until=NULL"
                f" WHERE owner=? AND state IN ({views.IN_FLIGHT_SQL})",
                (self.owner,),
            ).rowcount

    # ------------------------------------------------------------------ transitions

    def record_attempt(
        self,
        con: sqlite3.Connection,
        seq: int,
        a: Attempt,
        error_class: ErrorClass | None,
        relaunch: bool,
    ) -> Row:
        """A launch attempt that did not start a run: counted, costed; the item stays claimed."""
        now = time.time()
        with write(con):
            row = self._mine(con, seq)
            row.attempts += 1
            con.execute(
                "UPDATE items SET attempts=?, err_class=?, err_code=?, err_message=?, err_delay=?,"
                " tokens_in=tokens_in+?, tokens_out=tokens_out+?, tokens_thought=tokens_thought+?,"
                " cost_usd=cost_usd+?, relaunches=relaunches+?, lease_until=?, updated_at=?"
                " WHERE seq=?",
                (
                    row.attempts,
                    error_class,
                    a.http_code,
                    a.message,
                    a.delay,
                    a.tokens_in,
                    a.tokens_out,
                    a.tokens_thought,
                    a.cost_usd,
                    int(relaunch),
                    now + self.lease_seconds,
                    now,
                    seq,
                ),
            )
            append(con, seq, EventKind.ATTEMPT, attempt=row.attempts, a=a, now=now)
            if relaunch:
                append(
                    con,
                    seq,
                    EventKind.RELAUNCH,
                    now=now,
                    message="in-doubt relaunch: the failed launch may have started a run",
                )
            return row

    def mark_running(self, con: sqlite3.Connection, seq: int, run_id: str, target: str) -> None:
        """Record the run id in the same transaction that moves the item to running."""
        now = time.time()
        with write(con):
            attempt = self._mine(con, seq).attempts + 1
            con.execute(
                "UPDATE items SET state=?, run_id=?, run_target=?, attempts=?, lease_until=?,"
                " updated_at=? WHERE seq=?",
                (ItemState.RUNNING, run_id, target, attempt, now + self.lease_seconds, now, seq),
            )
            append(
                con,
                seq,
                EventKind.ATTEMPT,
                attempt=attempt,
                a=Attempt(outcome="launched", message=run_id),
                now=now,
            )
            append(
                con,
                seq,
                EventKind.STATE,
                state=ItemState.RUNNING,
                attempt=attempt,
                message=run_id,
                now=now,
            )

    def note_relaunch(
        self, con: sqlite3.Connection, seq: int, why: str, back_to_claimed: bool
    ) -> None:
        """Count a launch that may pay twice; with *back_to_claimed* the lost run id goes too."""
        with write(con):
            self._mine(con, seq)
            if back_to_claimed:
                con.execute(
                    "UPDATE items SET state=?, run_id=NULL, relaunches=relaunches+1, updated_at=?"
                    " WHERE seq=?",
                    (ItemState.CLAIMED, time.time(), seq),
                )
            else:
                con.execute("UPDATE items SET relaunches=relaunches+1 WHERE seq=?", (seq,))
            append(
                con,
                seq,
                EventKind.RELAUNCH,
                state=ItemState.CLAIMED if back_to_claimed else None,
                message=why,
            )

    def finish(
        self,
        con: sqlite3.Connection,
        seq: int,
        state: ItemState,
        run_id: str | None,
        output: str | None,
        a: Attempt,
        error_class: ErrorClass | None,
        count_attempt: bool,
        price_known: bool,
    ) -> Row:
        """Commit a settled state with its result; a finished result is never overwritten."""
        from .results import Facts, settle  # results builds on the queue: imported when used

        with write(con):
            return settle(
                self,
                con,
                seq,
                state,
                a=a,
                facts=Facts(),
                run_id=run_id,
                output=output,
                error_class=error_class,
                count_attempt=count_attempt,
                price_known=price_known,
            )

    def unclaim(self, con: sqlite3.Connection, seq: int, why: str) -> None:
        """Give an unlaunched item back (batch-level pause, stop): not failed, not attempted."""
        fence = self._fences.pop(seq, None)
        with write(con):
            row = views.get(con, seq)
            if row is None or row.owner != self.owner or row.fence != fence:
                return
            if row.state is ItemState.CLAIMED and row.run_id is None:
                con.execute(
                    "UPDATE items SET state=?, owner=NULL, lease_until=NULL, updated_at=?"
                    " WHERE seq=?",
                    (ItemState.PENDING, time.time(), seq),
                )
                append(con, seq, EventKind.STATE, state=ItemState.PENDING, message=why)
            else:
                con.execute("UPDATE items SET owner=NULL, lease_until=NULL WHERE seq=?", (seq,))
