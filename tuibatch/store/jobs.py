"""Gemini Batch API jobs in the checkpoint: their records, claims and transitions.

A job is recorded (phase ``planned``, its stable display name, its items moved to it) in one
transaction *before* it is created on the service; its service name is recorded the moment
create returns (phase ``submitted``, items ``running`` with ``run_id`` = the job's name).
Items inside a job are held by the job, not by a process: their ``owner`` is ``job:<id>`` (never
"provably dead") and their lease lasts as long as a job can, so the interactive engine's orphan
scan never takes one over and relaunches it. The job row itself carries the driving process's
lease (``owner``, ``lease_until``): one process at a time creates, polls and commits a job.

    planned ──create returns──▶ submitted ──service ends──▶ ended ──lines committed──▶ settled
       └──nothing was created (refused, or stopped before create)──▶ dropped
"""

from __future__ import annotations

import enum
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields

from .. import owner as owner_mod
from ..states import ErrorClass, ItemState
from .connection import write
from .journal import append
from .records import Attempt, EventKind

#: how long the items of a job stay leased to it: longer than any job can live (48 h + margin)
JOB_HOLD_SECONDS = 10 * 365 * 24 * 3600.0


class JobPhase(str, enum.Enum):
    """The ``jobs.state`` column: where a job is in tuibatch's life cycle."""

    PLANNED = "planned"  # recorded, maybe being created: no service name yet
    SUBMITTED = "submitted"  # the service name is recorded; being polled
    ENDED = "ended"  # the service ended it; results being committed
    SETTLED = "settled"  # every item of it is committed or back to pending
    DROPPED = "dropped"  # nothing was created for it; its items went back

    def __str__(self) -> str:
        return str(self.value)


OPEN_PHASES = (JobPhase.PLANNED, JobPhase.SUBMITTED, JobPhase.ENDED)


@dataclass
class JobRow:
    id: int
    display_name: str
    name: str | None
    model: str
    source: str
    file_name: str | None
    state: str
    service_state: str | None
    item_count: int
    bytes: int
    created_at: float
    updated_at: float
    submitted_at: float | None
    finished_at: float | None
    error: str | None
    cost_usd: float
    owner: str | None
    lease_until: float | None

    @property
    def phase(self) -> JobPhase:
        return JobPhase(self.state)


JOB_FIELDS = tuple(f.name for f in fields(JobRow))
JOB_COLUMNS = ", ".join(JOB_FIELDS)


def job_owner(job_id: int) -> str:
    """The owner string of the items a job holds."""
    return f"job:{job_id}"


@dataclass
class LineOutcome:
    """What one result line does to its item (decided by ``batchmode.results``)."""

    seq: int
    state: ItemState  # DONE, FAILED, or PENDING (back for the next job)
    a: Attempt
    output: str | None = None
    error_class: ErrorClass | None = None
    price_known: bool = True
    stop_reason: str | None = None
    #: the checked JSON value of a structured answer, as JSON text (``--schema``)
    output_json: str | None = None
    #: ``policy.Cause`` value of a failure or wasted answer (the waste summary groups by it)
    cause: str | None = None
    #: an invalid structured answer: how many the item may have (--invalid-output-retries)
    #: before it fails; below that it goes back to pending. None: not an invalid answer.
    invalid_retries: int | None = None


# ------------------------------------------------------------------------ reads


def get(con: sqlite3.Connection, job_id: int) -> JobRow | None:
    r = con.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id=?", (job_id,)).fetchone()
    return None if r is None else JobRow(*r)


def all_jobs(con: sqlite3.Connection) -> list[JobRow]:
    return [JobRow(*r) for r in con.execute(f"SELECT {JOB_COLUMNS} FROM jobs ORDER BY id")]


def item_counts(con: sqlite3.Connection) -> dict[int, dict[str, int]]:
    """Per job: items it holds now, by state (claimed/running), plus done/failed it produced."""
    out: dict[int, dict[str, int]] = {}
    for job_id, state, n in con.execute(
        "SELECT job_id, state, count(*) FROM items WHERE job_id IS NOT NULL GROUP BY 1, 2"
    ):
        out.setdefault(job_id, {})[state] = n
    return out


def held_items(con: sqlite3.Connection, job_id: int) -> list[tuple[int, str, int]]:
    """(seq, key, cancel_requested) of the items the job still holds, in input order."""
    return con.execute(
        "SELECT seq, key, cancel_requested FROM items WHERE job_id=? AND owner=?"
        " AND state IN (?, ?) ORDER BY seq",
        (job_id, job_owner(job_id), ItemState.CLAIMED, ItemState.RUNNING),
    ).fetchall()


def job_requests(
    con: sqlite3.Connection, job_id: int
) -> list[tuple[int, str, str | None, str, str | None]]:
    """(seq, key, request, input, instruction) of the items the job holds, in input order."""
    return con.execute(
        "SELECT seq, key, request, input, instruction FROM items WHERE job_id=? AND owner=?"
        " AND state IN (?, ?) ORDER BY seq",
        (job_id, job_owner(job_id), ItemState.CLAIMED, ItemState.RUNNING),
    ).fetchall()


def pending_model_items(
    con: sqlite3.Connection,
) -> list[tuple[int, str, str | None, str | None, int]]:
    """(seq, key, model, request, request bytes) of every pending item, in input order.

    The bytes are the stored request's, or (rows without one) the text's and instruction's."""
    return con.execute(
        "SELECT seq, key, model, request, coalesce(length(CAST(request AS BLOB)),"
        " length(CAST(input AS BLOB)) + coalesce(length(CAST(instruction AS BLOB)), 0) + 64)"
        " FROM items WHERE state=? AND agent IS NULL ORDER BY seq",
        (ItemState.PENDING,),
    ).fetchall()


# ------------------------------------------------------------------- transitions


def plan(
    con: sqlite3.Connection,
    batch_id: str,
    model: str,
    seqs: Sequence[int],
    nbytes: int,
    source: str,
    owner: str,
    lease_seconds: float,
) -> JobRow | None:
    """Record a job and move its still-pending items into it, in one transaction.

    Items another process took meanwhile are left out; None when none is left (nothing is
    recorded). The display name ``tuibatch-<batch_id>-<seq>`` is stable: it is what a later
    start looks for on the service to adopt a job whose create answer was lost.
    """
    now = time.time()
    with write(con):
        (n,) = con.execute("SELECT coalesce(max(id), 0) FROM jobs").fetchone()
        job_id = n + 1
        display = f"tuibatch-{batch_id}-{job_id:04d}"
        con.execute(
            "INSERT INTO jobs(id, display_name, model, source, state, created_at, updated_at,"
            " owner, lease_until) VALUES (?,?,?,?,?,?,?,?,?)",
            (job_id, display, model, source, JobPhase.PLANNED, now, now, owner,
             now + lease_seconds),
        )  # fmt: skip
        taken = []
        for seq in seqs:
            r = con.execute(
                "UPDATE items SET state=?, job_id=?, owner=?, lease_until=?, run_id=NULL,"
                " updated_at=?, started_at=? WHERE seq=? AND state=? RETURNING seq",
                (ItemState.CLAIMED, job_id, job_owner(job_id), now + JOB_HOLD_SECONDS, now, now,
                 seq, ItemState.PENDING),
            ).fetchone()  # fmt: skip
            if r is not None:
                taken.append(seq)
                append(con, seq, EventKind.STATE, state=ItemState.CLAIMED,
                       message=f"queued in job {job_id} ({display})", now=now)  # fmt: skip
        if not taken:
            con.execute("DELETE FROM jobs WHERE id=?", (job_id,))
            return None
        if len(taken) != len(seqs):
            nbytes = nbytes * len(taken) // len(seqs)
        con.execute(
            "UPDATE jobs SET item_count=?, bytes=? WHERE id=?", (len(taken), nbytes, job_id)
        )
        return get(con, job_id)


def claim_open(con: sqlite3.Connection, owner: str, lease_seconds: float) -> list[JobRow]:
    """Take every open job whose driver is this process, provably dead, or out of lease."""
    now = time.time()
    with write(con):
        rows = [
            JobRow(*r)
            for r in con.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE state IN (?,?,?) ORDER BY id", OPEN_PHASES
            )
        ]
        mine = []
        for job in rows:
            free = (
                job.owner == owner or owner_mod.is_dead(job.owner) or (job.lease_until or 0) < now
            )
            if not free:
                continue
            con.execute(
                "UPDATE jobs SET owner=?, lease_until=? WHERE id=?",
                (owner, now + lease_seconds, job.id),
            )
            job.owner, job.lease_until = owner, now + lease_seconds
            mine.append(job)
        return mine


def renew(con: sqlite3.Connection, owner: str, lease_seconds: float) -> None:
    with write(con):
        con.execute(
            "UPDATE jobs SET lease_until=? WHERE owner=? AND state IN (?,?,?)",
            (time.time() + lease_seconds, owner, *OPEN_PHASES),
        )


def release(con: sqlite3.Connection, owner: str) -> None:
    with write(con):
        con.execute("UPDATE jobs SET owner=NULL, lease_until=NULL WHERE owner=?", (owner,))


def _mine(con: sqlite3.Connection, job_id: int, owner: str) -> JobRow:
    job = get(con, job_id)
    if job is None or job.owner != owner:
        from .errors import LostLease

        raise LostLease(job_id)
    return job


def submitted(
    con: sqlite3.Connection, job_id: int, owner: str, name: str, service_state: str, how: str
) -> None:
    """The service name, recorded the moment create (or the adopting list) returns it."""
    now = time.time()
    with write(con):
        _mine(con, job_id, owner)
        con.execute(
            "UPDATE jobs SET name=?, state=?, service_state=?, submitted_at=?, updated_at=?"
            " WHERE id=?",
            (name, JobPhase.SUBMITTED, service_state, now, now, job_id),
        )
        seqs = [s for s, _k, _c in held_items(con, job_id)]
        con.execute(
            "UPDATE items SET state=?, run_id=?, run_target=(SELECT model FROM jobs WHERE id=?),"
            " updated_at=? WHERE job_id=? AND owner=? AND state=?",
            (ItemState.RUNNING, name, job_id, now, job_id, job_owner(job_id), ItemState.CLAIMED),
        )
        for seq in seqs:
            append(con, seq, EventKind.STATE, state=ItemState.RUNNING,
                   message=f"job {job_id} {how}: {name}", now=now)  # fmt: skip


def set_service_state(
    con: sqlite3.Connection, job_id: int, owner: str, service_state: str, ended: bool,
    error: str | None = None,
) -> None:  # fmt: skip
    now = time.time()
    with write(con):
        job = _mine(con, job_id, owner)
        phase = JobPhase.ENDED if ended else job.phase
        con.execute(
            "UPDATE jobs SET service_state=?, state=?, error=coalesce(?, error), updated_at=?,"
            " finished_at=CASE WHEN ? THEN coalesce(finished_at, ?) ELSE finished_at END"
            " WHERE id=?",
            (service_state, phase, error, now, int(ended), now, job_id),
        )


def set_file(con: sqlite3.Connection, job_id: int, owner: str, file_name: str) -> None:
    with write(con):
        _mine(con, job_id, owner)
        con.execute("UPDATE jobs SET file_name=? WHERE id=?", (file_name, job_id))


def commit_lines(
    con: sqlite3.Connection, job_id: int, owner: str, outcomes: Iterable[LineOutcome]
) -> int:
    """Commit result lines in one transaction; an item no longer in this job is left alone.

    Idempotent: a line whose item was already committed (a resume after a crash mid-commit) or
    taken out of the job changes nothing. Returns how many items it settled or requeued.
    """
    now = time.time()
    held = job_owner(job_id)
    n = 0
    with write(con):
        job = _mine(con, job_id, owner)
        for o in outcomes:
            row = con.execute(
                "SELECT attempts, cancel_requested FROM items WHERE seq=? AND job_id=?"
                " AND owner=? AND state IN (?, ?)",
                (o.seq, job_id, held, ItemState.CLAIMED, ItemState.RUNNING),
            ).fetchone()
            if row is None:
                continue
            attempts = row[0] + 1
            state, a = o.state, o.a
            if o.invalid_retries is not None:
                state = _invalid_answer(con, o, attempts)
            if row[1]:  # skipped while its job ran: whatever came back is not used
                state = ItemState.SKIPPED
                a.message = "skipped while its job ran: the result was ignored (cost kept)"
                a.wasted = True
            ok = state is ItemState.DONE
            settled = state is not ItemState.PENDING
            con.execute(
                "UPDATE items SET state=?, output=?, output_json=?, attempts=?,"
                " tokens_in=tokens_in+?, tokens_out=tokens_out+?,"
                " tokens_thought=tokens_thought+?, cost_usd=cost_usd+?,"
                " price_known=price_known*?, err_class=?, err_code=?, err_message=?, cause=?,"
                " stop_reason=?, owner=NULL, lease_until=NULL, cancel_requested=0,"
                " job_id=CASE WHEN ? THEN job_id ELSE NULL END,"
                " run_id=CASE WHEN ? THEN run_id ELSE NULL END,"
                " finished_at=CASE WHEN ? THEN ? ELSE finished_at END, updated_at=? WHERE seq=?",
                (state, o.output if ok else None, o.output_json if ok else None, attempts,
                 a.tokens_in, a.tokens_out, a.tokens_thought, a.cost_usd, int(o.price_known),
                 None if ok else o.error_class, None if ok else a.http_code,
                 None if ok else a.message, None if ok else o.cause, o.stop_reason,
                 int(settled), int(settled), int(settled), now, now, o.seq),
            )  # fmt: skip
            event = append(con, o.seq, EventKind.ATTEMPT, attempt=attempts, a=a, now=now)
            if o.cause is not None and (a.wasted or not ok):
                con.execute("UPDATE events SET cause=? WHERE id=?", (o.cause, event))
            append(con, o.seq, EventKind.STATE, state=state, attempt=attempts,
                   message=f"job {job_id}" + ("" if ok else f": {a.message}"), now=now)  # fmt: skip
            con.execute("UPDATE jobs SET cost_usd=cost_usd+? WHERE id=?", (a.cost_usd, job.id))
            n += 1
        con.execute("UPDATE jobs SET updated_at=? WHERE id=?", (now, job_id))
    return n


def _invalid_answer(con: sqlite3.Connection, o: LineOutcome, attempt: int) -> ItemState:
    """An invalid structured answer: back to pending while the item has invalid-output retries
    left since its last retry (the answers refused so far are this cause's wasted attempt
    events), else failed with the validation error. Like the interactive path (engine/runs)."""
    (base,) = con.execute("SELECT round_base FROM items WHERE seq=?", (o.seq,)).fetchone()
    (used,) = con.execute(
        "SELECT count(*) FROM events WHERE seq=? AND kind=? AND cause=? AND wasted=1"
        " AND coalesce(attempt, 0) > ?",
        (o.seq, EventKind.ATTEMPT, o.cause, base),
    ).fetchone()
    if used < (o.invalid_retries or 0):
        o.a.message = f"{o.a.message}; sent again in the next job"
        return ItemState.PENDING
    return ItemState.FAILED


def close(
    con: sqlite3.Connection, job_id: int, owner: str, phase: JobPhase, error: str | None = None
) -> None:
    """Settle (or drop) a job once it holds no item any more."""
    now = time.time()
    with write(con):
        _mine(con, job_id, owner)
        (left,) = con.execute(
            "SELECT count(*) FROM items WHERE job_id=? AND owner=? AND state IN (?, ?)",
            (job_id, job_owner(job_id), ItemState.CLAIMED, ItemState.RUNNING),
        ).fetchone()
        if left:
            raise RuntimeError(f"job {job_id} still holds {left} item(s)")
        con.execute(
            "UPDATE jobs SET state=?, error=coalesce(?, error), owner=NULL, lease_until=NULL,"
            " finished_at=coalesce(finished_at, ?), updated_at=? WHERE id=?",
            (phase, error, now, now, job_id),
        )


def give_back(
    con: sqlite3.Connection, job_id: int, owner: str, why: str, count_attempt: bool
) -> int:
    """Items a job holds back to pending without a result (job never created, or ended without
    delivering them). With *count_attempt* the attempt counts (the job ran and may have billed)."""
    now = time.time()
    with write(con):
        _mine(con, job_id, owner)
        seqs = [s for s, _k, _c in held_items(con, job_id)]
        for seq in seqs:
            cancel = con.execute(
                "SELECT cancel_requested FROM items WHERE seq=?", (seq,)
            ).fetchone()[0]
            state = ItemState.SKIPPED if cancel else ItemState.PENDING
            con.execute(
                "UPDATE items SET state=?, owner=NULL, lease_until=NULL, job_id=NULL, run_id=NULL,"
                " attempts=attempts+?, err_message=?, cancel_requested=0, updated_at=?,"
                " finished_at=CASE WHEN ? THEN ? ELSE finished_at END WHERE seq=?",
                (state, int(count_attempt), why, now, int(bool(cancel)), now, seq),
            )
            append(con, seq, EventKind.STATE, state=state, message=why, now=now)
        return len(seqs)


def fail_exhausted(con: sqlite3.Connection, max_attempts: int) -> int:
    """Pending model items whose attempts reached the limit → failed (attempts exhausted)."""
    now = time.time()
    with write(con):
        rows = con.execute(
            "SELECT seq, err_message FROM items WHERE state=? AND agent IS NULL"
            " AND attempts - round_base >= ?",
            (ItemState.PENDING, max_attempts),
        ).fetchall()
        for seq, msg in rows:
            why = f"gave up after {max_attempts} attempts: {msg or ''}".strip()
            con.execute(
                "UPDATE items SET state=?, err_class=?, err_message=?, finished_at=?,"
                " updated_at=? WHERE seq=?",
                (ItemState.FAILED, ErrorClass.ATTEMPTS, why, now, now, seq),
            )
            append(con, seq, EventKind.STATE, state=ItemState.FAILED, message=why, now=now)
        return len(rows)


def flag_cancel(con: sqlite3.Connection, job_id: int) -> JobRow | None:
    """``cancel-job``: every item the job holds is flagged like a skip (its result is ignored,
    it ends skipped); the caller cancels the job on the service."""
    now = time.time()
    with write(con):
        job = get(con, job_id)
        if job is None:
            return None
        for seq, _key, _c in held_items(con, job_id):
            con.execute("UPDATE items SET cancel_requested=1 WHERE seq=?", (seq,))
            append(con, seq, EventKind.CANCEL, message=f"job {job_id} cancelled by user", now=now)
        return job
