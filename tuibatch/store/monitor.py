"""What a screen watching a batch needs beyond the item list: liveness, pace, changes, slices.

- **Liveness**: every worker process registers in ``workers`` and beats (:func:`beat`); a clean
  exit marks it ``stopped`` (:func:`retire`). :func:`workers_alive` says which are alive: on
  this host the pid decides (a SIGKILLed worker is dead at once), elsewhere a beat younger than
  :data:`STALE_BEATS` intervals. Holders of in-flight leases that never registered (an older
  worker) count by their lease the same way.
- **Changes**: :func:`changes` is the one cheap query an idle screen runs per poll.
- **Pace**: launches, completions and 429s per minute over the last minutes (:func:`pace`),
  read from the events the window covers only.
- **Slices**: :func:`item_head` and :func:`item_slice` read an item's big texts a page at a
  time (SQL ``substr``), so a detail view never loads a 50 MB payload whole.
- **Waste**: wasted spend and failures grouped by cause (:func:`waste_by_cause`,
  :func:`failures_by_cause`), from the events and items.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from .. import owner as owner_mod
from ..states import IN_FLIGHT, ItemState
from .connection import read, write
from .jobs import job_owner
from .records import ITEM_FIELDS, Row
from .views import in_states

#: a worker elsewhere is alive while its last beat is younger than this many intervals
STALE_BEATS = 3.0
#: the texts an item may hold that can be large: read in slices, never whole
BIG_FIELDS = ("input", "payload", "output", "request", "output_json", "err_message")
#: characters of each big text :func:`item_head` returns
HEAD_CHARS = 64 * 1024
#: how the owner of an item a Batch API job holds begins (``job:<id>``)
JOB_OWNER_PREFIX = job_owner(0).removesuffix("0")

# -------------------------------------------------------------------------- liveness


@dataclass(frozen=True)
class WorkerInfo:
    """One live worker: who, where, since when, and how often it beats."""

    owner: str
    host: str
    pid: int
    role: str
    started: float
    beat: float
    every: float
    #: registered in ``workers`` (False: known only as the holder of a lease)
    registered: bool = True


@dataclass(frozen=True)
class Liveness:
    """Which workers are alive on a checkpoint, and how many items are in flight there."""

    workers: tuple[WorkerInfo, ...] = ()
    in_flight: int = 0

    @property
    def alive(self) -> bool:
        return bool(self.workers)


def _split_owner(owner: str) -> tuple[str, int]:
    try:
        host, pid_s, _start = owner.rsplit(":", 2)
        return host, int(pid_s)
    except ValueError:
        return owner, 0


def beat(
    con: sqlite3.Connection, owner: str, role: str, every: float, detail: str | None, now: float
) -> None:
    """Register (first call) or refresh this process's row in ``workers``."""
    host, pid = _split_owner(owner)
    info = json.dumps({"every": every, **({"detail": detail} if detail else {})})
    with write(con):
        con.execute(
            "INSERT INTO workers(owner, host, pid, role, started, beat, stopped, detail)"
            " VALUES (?,?,?,?,?,?,NULL,?) ON CONFLICT(owner) DO UPDATE SET"
            " beat=excluded.beat, stopped=NULL, detail=excluded.detail, role=excluded.role",
            (owner, host, pid, role, now, now, info),
        )


def retire(con: sqlite3.Connection, owner: str, now: float) -> None:
    """A clean exit: this worker is not coming back."""
    with write(con):
        con.execute("UPDATE workers SET stopped=? WHERE owner=?", (now, owner))


def _alive(owner: str, host: str, fresh: bool) -> bool:
    """On this host the process decides (its pid and start time); elsewhere *fresh* does."""
    if host == owner_mod.hostname():
        return not owner_mod.is_dead(owner)
    return fresh


def workers_alive(con: sqlite3.Connection, now: float) -> Liveness:
    with read(con):
        rows = con.execute(
            "SELECT owner, host, pid, role, started, beat, detail FROM workers"
            " WHERE stopped IS NULL"
        ).fetchall()
        leases = con.execute(
            f"SELECT owner, count(*), max(lease_until), min(started_at) FROM items"
            f" WHERE state IN ({in_states(IN_FLIGHT)}) GROUP BY owner"
        ).fetchall()
    alive: list[WorkerInfo] = []
    for owner, host, pid, role, started, last, detail in rows:
        try:
            every = float(json.loads(detail or "{}").get("every", 30.0))
        except (ValueError, TypeError, AttributeError):
            every = 30.0
        if _alive(owner, host, now - last <= STALE_BEATS * every):
            alive.append(WorkerInfo(owner, host, pid, role, started, last, every))
    known = {w.owner for w in alive} | {r[0] for r in rows}
    in_flight = 0
    for owner, n, until, started in leases:
        in_flight += n
        if not owner or owner in known or owner.startswith(JOB_OWNER_PREFIX):
            continue  # items a Batch API job holds: a job, not a process (jobs.job_owner)
        host, pid = _split_owner(owner)
        if _alive(owner, host, (until or 0) > now):
            alive.append(WorkerInfo(owner, host, pid, "worker", started or now, now, 0.0, False))
            known.add(owner)
    return Liveness(tuple(alive), in_flight)


def peek_liveness(path: Path, now: float) -> Liveness | None:
    """Without a Store: who is alive on the checkpoint at *path* (None: no readable checkpoint
    with a workers table yet). For an app deciding whether to start a second worker."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)
        try:
            con.isolation_level = None
            return workers_alive(con, now)
        finally:
            con.close()
    except sqlite3.Error:
        return None


# --------------------------------------------------------------------------- changes


def changes(con: sqlite3.Connection) -> tuple[int, str]:
    """(last event id, the control table as one string): unchanged means nothing to re-read."""
    r = con.execute(
        "SELECT (SELECT coalesce(max(id),0) FROM events),"
        " (SELECT coalesce(group_concat(k || '=' || v, char(31)),'')"
        "  FROM (SELECT k, v FROM control ORDER BY k))"
    ).fetchone()
    return int(r[0]), str(r[1])


# ------------------------------------------------------------------------------ pace


@dataclass(frozen=True)
class Pace:
    """Counts per bucket of ``bucket`` seconds, oldest first; the last bucket ends at ``end``."""

    end: float = 0.0
    launches: tuple[int, ...] = ()
    done: tuple[int, ...] = ()
    limited: tuple[int, ...] = ()
    bucket: float = 60.0

    @property
    def buckets(self) -> int:
        return len(self.launches)

    @property
    def span(self) -> float:
        """Seconds the buckets cover."""
        return self.buckets * self.bucket

    def per_min(self, values: tuple[int, ...]) -> list[float]:
        """Counts as rates per minute (buckets may be shorter than a minute)."""
        return [v * 60.0 / self.bucket for v in values]


def _first_id_at(con: sqlite3.Connection, t: float) -> int:
    """The lowest event id written at or after *t*: a binary search on the id (events are
    appended in time order), a few indexed look-ups instead of a scan of the whole log."""
    lo_hi = con.execute("SELECT coalesce(min(id),0), coalesce(max(id),0) FROM events").fetchone()
    lo, hi = int(lo_hi[0]), int(lo_hi[1]) + 1
    while lo < hi:
        mid = (lo + hi) // 2
        r = con.execute("SELECT id, t FROM events WHERE id >= ? ORDER BY id LIMIT 1", (mid,))
        row = r.fetchone()
        if row is None or row[1] >= t:
            hi = mid
        else:
            lo = int(row[0]) + 1
    return lo


def pace(con: sqlite3.Connection, now: float, buckets: int = 10, bucket: float = 60.0) -> Pace:
    """Launches, completions and 429s per bucket. A 429 is an event with HTTP code 429, or the
    engine's "rate limited (…)" note (a rate-limited launch is not an attempt, so it is noted
    without a code)."""
    bucket = max(1.0, float(bucket))
    start = now - buckets * bucket
    with read(con):
        first = _first_id_at(con, start)
        rows = con.execute(
            "SELECT CAST((t - ?) / ? AS INTEGER) b,"
            " sum(kind='attempt' AND outcome='launched'),"
            " sum(kind='state' AND state=?),"
            " sum(coalesce(http_code,0)=429 OR (kind='info' AND message LIKE 'rate limited (%'))"
            " FROM events WHERE id >= ? AND t >= ? GROUP BY b",
            (start, bucket, ItemState.DONE.value, first, start),
        ).fetchall()
    launches, done, limited = [0] * buckets, [0] * buckets, [0] * buckets
    for b, n_launch, n_done, n_429 in rows:
        i = min(buckets - 1, max(0, int(b)))
        launches[i] += int(n_launch or 0)
        done[i] += int(n_done or 0)
        limited[i] += int(n_429 or 0)
    return Pace(now, tuple(launches), tuple(done), tuple(limited), bucket)


# ---------------------------------------------------------------------------- slices


@dataclass
class ItemHead:
    """An item with its big texts cut to :data:`HEAD_CHARS`, and their full lengths."""

    row: Row
    sizes: dict[str, int] = field(default_factory=dict)

    def cut(self, name: str) -> bool:
        """Whether *name* holds more than :attr:`row` carries."""
        return self.sizes.get(name, 0) > HEAD_CHARS


def item_head(con: sqlite3.Connection, seq: int) -> ItemHead | None:
    cols = [f"substr({f}, 1, {HEAD_CHARS})" if f in BIG_FIELDS else f for f in ITEM_FIELDS] + [
        f"coalesce(length({f}),0)" for f in BIG_FIELDS
    ]
    r = con.execute(f"SELECT {', '.join(cols)} FROM items WHERE seq=?", (seq,)).fetchone()
    if r is None:
        return None
    n = len(ITEM_FIELDS)
    return ItemHead(Row.from_db(r[:n]), dict(zip(BIG_FIELDS, r[n:], strict=True)))


def item_slice(
    con: sqlite3.Connection, seq: int, name: str, offset: int, limit: int
) -> tuple[str, int]:
    """Characters ``offset`` … ``offset+limit`` of one big text, and its whole length."""
    if name not in BIG_FIELDS:
        raise ValueError(f"item_slice: {name!r} is not one of {', '.join(BIG_FIELDS)}")
    r = con.execute(
        f"SELECT substr(coalesce({name},''), ?, ?), coalesce(length({name}),0)"
        " FROM items WHERE seq=?",
        (int(offset) + 1, int(limit), seq),
    ).fetchone()
    return ("", 0) if r is None else (str(r[0]), int(r[1]))


# ----------------------------------------------------------------------------- waste


@dataclass(frozen=True)
class CauseLine:
    """One cause: how many, what it cost, and one example (an item key and its message)."""

    cause: str
    count: int
    cost_usd: float = 0.0
    example_key: str | None = None
    example: str | None = None


def waste_by_cause(con: sqlite3.Connection) -> list[CauseLine]:
    """Wasted spend by cause: billed attempts marked wasted, plus in-doubt relaunches."""
    with read(con):
        rows = con.execute(
            "SELECT coalesce(e.cause, e.outcome, e.kind), count(*), coalesce(sum(e.cost_usd),0),"
            " min(e.id) FROM events e WHERE e.wasted = 1 GROUP BY 1 ORDER BY 3 DESC"
        ).fetchall()
        out = [_with_event_example(con, c, n, cost, first) for c, n, cost, first in rows]
        n, cost, seq = con.execute(
            "SELECT count(*), coalesce(sum(cost_usd * relaunches * 1.0 / (relaunches + 1)),0),"
            " min(seq) FROM items WHERE relaunches > 0"
        ).fetchone()
        if n:
            key = con.execute("SELECT key FROM items WHERE seq=?", (seq,)).fetchone()
            out.append(CauseLine("in-doubt relaunch", int(n), float(cost), key and key[0]))
    return sorted(out, key=lambda c: -c.cost_usd)


def _with_event_example(
    con: sqlite3.Connection, cause: str, n: int, cost: float, first: int
) -> CauseLine:
    r = con.execute(
        "SELECT i.key, e.message FROM events e LEFT JOIN items i ON i.seq = e.seq WHERE e.id=?",
        (first,),
    ).fetchone()
    return CauseLine(str(cause), int(n), float(cost), r and r[0], r and r[1])


def failures_by_cause(con: sqlite3.Connection) -> list[CauseLine]:
    """Failed and lost items grouped by cause, each with one example."""
    states = in_states({ItemState.FAILED, ItemState.LOST})
    with read(con):
        rows = con.execute(
            "SELECT CASE WHEN state=? THEN 'lost run' ELSE coalesce(cause, err_class, 'unknown')"
            f" END c, count(*), coalesce(sum(cost_usd),0), min(seq) FROM items"
            f" WHERE state IN ({states}) GROUP BY c ORDER BY 2 DESC",
            (ItemState.LOST.value,),
        ).fetchall()
        out = []
        for cause, n, cost, seq in rows:
            key, msg = con.execute(
                "SELECT key, substr(err_message, 1, 300) FROM items WHERE seq=?", (seq,)
            ).fetchone()
            out.append(CauseLine(str(cause), int(n), float(cost), key, msg))
    return out


__all__ = [
    "CauseLine",
    "ItemHead",
    "Liveness",
    "Pace",
    "WorkerInfo",
    "beat",
    "changes",
    "failures_by_cause",
    "item_head",
    "item_slice",
    "pace",
    "peek_liveness",
    "retire",
    "waste_by_cause",
    "workers_alive",
]
