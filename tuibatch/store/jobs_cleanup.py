"""``cleanup-jobs`` in the checkpoint: which finished jobs still have objects on the service,
and the record that they were deleted (a ``meta`` key per job, and an event)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from .jobs import JobPhase, JobRow, all_jobs
from .journal import append
from .records import EventKind

#: the meta key that records a job whose service objects ``cleanup-jobs`` deleted
CLEANED_KEY = "job_cleaned:{}"


def cleanable(con: sqlite3.Connection) -> list[JobRow]:
    """Finished jobs (settled or dropped) that left something on the service (a job or an
    uploaded file) and were not cleaned up yet. An open job is never one of them."""
    done = {
        int(k.removeprefix("job_cleaned:"))
        for (k,) in con.execute("SELECT k FROM meta WHERE k LIKE 'job_cleaned:%'")
    }
    return [
        j
        for j in all_jobs(con)
        if j.phase in (JobPhase.SETTLED, JobPhase.DROPPED)
        and (j.name or j.file_name)
        and j.id not in done
    ]


def mark_cleaned(con: sqlite3.Connection, job_id: int, deleted: Sequence[str]) -> None:
    """Record that the job's service objects (*deleted*: names) are gone, with an event.
    Runs inside ``Store.transaction`` (it opens none itself)."""
    now = time.time()
    con.execute(
        "INSERT OR REPLACE INTO meta(k, v) VALUES (?, ?)",
        (CLEANED_KEY.format(job_id), f"{now:.0f} " + " ".join(deleted)),
    )
    names = ", ".join(deleted) or "nothing left"
    append(con, None, EventKind.INFO, message=f"job {job_id} cleaned up: {names}", now=now)
