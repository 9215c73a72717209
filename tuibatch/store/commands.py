"""What a user asks of a batch, from any process: pause, resume, skip, retry, notes, settings.

The checkpoint is the channel: a command writes here, and the workers read it on their next
control tick (pause, a skip of a held item) or their next claim (retry, a skip of a pending one).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Mapping, Sequence

from ..states import IN_FLIGHT, ItemState, PauseKind, PauseState
from . import views
from .connection import write
from .journal import append
from .records import EventKind

#: items a skip settles at once; a held item is flagged for its owner to cancel instead
SKIPPABLE = frozenset({ItemState.PENDING, ItemState.FAILED})
#: items a retry of named keys puts back to pending (`--failed` takes failed ones only: a lost
#: item's run may still be going and billing, so it is relaunched only when named)
RETRYABLE = frozenset({ItemState.FAILED, ItemState.SKIPPED, ItemState.LOST})
_PAUSE_KEYS = ("paused", "pause_reason", "pause_kind")


def skip(con: sqlite3.Connection, keys: Sequence[str]) -> dict[str, str]:
    """pending/failed → skipped at once; claimed/running → flagged for the owner to cancel."""
    out: dict[str, str] = {}
    now = time.time()
    with write(con):
        for key in keys:
            row = views.get_by_key(con, key)
            if row is None:
                out[key] = "unknown key"
            elif row.state in SKIPPABLE:
                con.execute(
                    "UPDATE items SET state=?, owner=NULL, lease_until=NULL, finished_at=?,"
                    " updated_at=? WHERE seq=?",
                    (ItemState.SKIPPED, now, now, row.seq),
                )
                append(
                    con,
                    row.seq,
                    EventKind.STATE,
                    state=ItemState.SKIPPED,
                    message="skipped by user",
                    now=now,
                )
                out[key] = ItemState.SKIPPED.value
            elif row.state in IN_FLIGHT:
                con.execute(
                    "UPDATE items SET cancel_requested=1, updated_at=? WHERE seq=?", (now, row.seq)
                )
                append(
                    con,
                    row.seq,
                    EventKind.CANCEL,
                    message="skip requested: cancelling the run",
                    now=now,
                )
                out[key] = "cancelling"
            else:
                out[key] = f"already {row.state}"
    return out


def retry(con: sqlite3.Connection, keys: Sequence[str] | None, failed: bool) -> int:
    """failed/skipped/lost → pending (with *failed*: every failed one); the history stays."""
    now = time.time()
    with write(con):
        if failed:
            sql = "SELECT seq FROM items WHERE state=?"
            params: tuple[str, ...] = (ItemState.FAILED,)
        else:
            chosen = tuple(keys or ())
            marks = ",".join("?" * len(chosen))
            retryable = views.in_states(RETRYABLE)
            sql = f"SELECT seq FROM items WHERE key IN ({marks}) AND state IN ({retryable})"
            params = chosen
        seqs = [s for (s,) in con.execute(sql, params)]
        for seq in seqs:
            con.execute(
                "UPDATE items SET state=?, run_id=NULL, run_target=NULL, owner=NULL,"
                " lease_until=NULL, round_base=attempts, output=NULL, output_json=NULL,"
                " stop_reason=NULL, cancel_requested=0, finished_at=NULL, updated_at=?"
                " WHERE seq=?",
                (ItemState.PENDING, now, seq),
            )
            append(
                con,
                seq,
                EventKind.STATE,
                state=ItemState.PENDING,
                message="retry requested",
                now=now,
            )
        return len(seqs)


def set_paused(con: sqlite3.Connection, paused: bool, reason: str, kind: PauseKind) -> bool:
    """Pause or resume claiming for every worker on the file; whether anything changed."""
    with write(con):
        was = pause_state(views.control(con))
        if was.active == paused and (not paused or was.reason == reason):
            return False
        if paused:
            con.executemany(
                "INSERT OR REPLACE INTO control(k, v) VALUES (?, ?)",
                [("paused", "1"), ("pause_reason", reason), ("pause_kind", kind)],
            )
            append(con, None, EventKind.PAUSE, message=reason or "paused")
        else:
            con.execute(
                f"DELETE FROM control WHERE k IN ({','.join('?' * len(_PAUSE_KEYS))})", _PAUSE_KEYS
            )
            append(con, None, EventKind.RESUME, message=reason or "resumed")
        return True


def pause_state(control: Mapping[str, str]) -> PauseState:
    """The pause recorded in the control table (an unknown kind counts as a user's pause)."""
    if control.get("paused") != "1":
        return PauseState()
    kind = control.get("pause_kind", "")
    known = kind in {k.value for k in PauseKind}
    return PauseState(
        True, control.get("pause_reason", ""), PauseKind(kind) if known else PauseKind.USER
    )


def set_values(con: sqlite3.Connection, table: str, values: Mapping[str, str]) -> None:
    """Set keys of the meta or control table."""
    assert table in ("meta", "control")
    with write(con):
        con.executemany(f"INSERT OR REPLACE INTO {table}(k, v) VALUES (?, ?)", list(values.items()))


def note(con: sqlite3.Connection, message: str, seq: int | None, kind: EventKind) -> None:
    with write(con):
        append(con, seq, kind, message=message)
