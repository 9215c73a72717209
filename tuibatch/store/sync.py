"""The items file into the checkpoint: new keys are added, changed payloads refused or rerun."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence

from .. import owner as owner_mod
from ..items import Item
from ..states import IN_FLIGHT, ItemState
from . import views
from .connection import write
from .errors import ChangedKeys
from .journal import append
from .records import EventKind, SyncReport

#: up to this many new items get one "added" event each; more get one summary event
ADDED_EVENTS_MAX = 1000


def sync_items(con: sqlite3.Connection, items: Sequence[Item], rerun_changed: bool) -> SyncReport:
    """All or nothing: a refusal (:class:`ChangedKeys`) writes nothing."""
    report = SyncReport(total=len(items))
    with write(con):
        known = {
            k: (seq, h) for seq, k, h in con.execute("SELECT seq, key, payload_hash FROM items")
        }
        next_seq = max((v[0] for v in known.values()), default=-1) + 1
        # a checkpoint written before requests were fingerprinted holds the first release's hash:
        # the same request under the old hash is unchanged (its row keeps request NULL: sent as then)
        changed = [
            it
            for it in items
            if it.key in known and known[it.key][1] not in (it.payload_hash, it.legacy_hash)
        ]
        if changed and not rerun_changed:
            report.changed = [it.key for it in changed]
            raise ChangedKeys(report)
        now = time.time()
        added: list[int] = []

        def new_rows() -> Iterator[tuple[object, ...]]:
            # streamed into executemany: a row's texts (the request, the line's payload) are
            # made, written and dropped one at a time, never held for 100k items at once
            seq = next_seq
            for it in items:
                if it.key not in known:
                    added.append(seq)
                    yield (
                        seq,
                        it.key,
                        it.payload_hash,
                        it.input_text,
                        it.payload_json,
                        it.agent,
                        it.model,
                        it.instruction,
                        it.request_json,
                        now,
                        now,
                    )
                    seq += 1

        con.executemany(
            "INSERT INTO items(seq, key, payload_hash, input, payload, agent, model,"
            " instruction, request, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            new_rows(),
        )
        if added:
            if len(added) <= ADDED_EVENTS_MAX:
                for seq in added:
                    append(
                        con,
                        seq,
                        EventKind.STATE,
                        state=ItemState.PENDING,
                        message="added",
                        now=now,
                    )
            else:
                append(con, None, EventKind.INFO, message=f"{len(added)} items added", now=now)
            report.added = len(added)
        for it in changed:
            _rerun(con, known[it.key][0], it, now, report)
            report.rerun += 1
    return report


def _rerun(con: sqlite3.Connection, seq: int, it: Item, now: float, report: SyncReport) -> None:
    old = views.get(con, seq)
    assert old is not None
    if (
        old.state in IN_FLIGHT
        and old.owner
        and not owner_mod.is_dead(old.owner)
        and (old.lease_until or 0) > now
    ):
        report.changed = [it.key]
        raise ChangedKeys(
            report, f"key {it.key!r} changed but is running in another worker; nothing was changed"
        )
    append(
        con,
        seq,
        EventKind.RERUN,
        state=ItemState.PENDING,
        message=json.dumps(
            {
                "old_state": old.state.value,
                "old_run_id": old.run_id,
                "old_output": old.output,
                "old_output_json": old.output_json,
                "old_error": old.err_message,
            }
        ),
    )
    con.execute(
        "UPDATE items SET payload_hash=?, input=?, payload=?, agent=?, model=?, instruction=?,"
        " request=?, state=?, run_id=NULL, run_target=NULL, owner=NULL, lease_until=NULL,"
        " round_base=attempts, output=NULL, output_json=NULL, stop_reason=NULL, cause=NULL,"
        " err_class=NULL, err_code=NULL, err_message=NULL,"
        " err_delay=NULL, cancel_requested=0, finished_at=NULL, updated_at=? WHERE seq=?",
        (
            it.payload_hash,
            it.input_text,
            it.payload_json,
            it.agent,
            it.model,
            it.instruction,
            it.request_json,
            ItemState.PENDING,
            now,
            seq,
        ),
    )
