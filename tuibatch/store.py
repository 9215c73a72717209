"""The SQLite checkpoint: the single source of truth for every item and decision.

Every transition is one short ``BEGIN IMMEDIATE`` transaction that also appends to
the event log, so a ``kill -9`` at any instant leaves a state the next run can
continue from. Other processes (a second worker, ``tuibatch skip``, the UI) talk
to a worker only through this file.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from . import owner as owner_mod
from .items import Item

SCHEMA_VERSION = 1
T = TypeVar("T")
#: how often a busy worker looks for items abandoned by dead workers
ORPHAN_SCAN_SECONDS = 2.0
APP_ID = "tuibatch"

STATES = ("pending", "claimed", "running", "done", "failed", "skipped")
TERMINAL = ("done", "failed", "skipped")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    seq INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    payload_hash TEXT NOT NULL,
    input TEXT NOT NULL,
    payload TEXT NOT NULL DEFAULT '',
    agent TEXT, model TEXT, instruction TEXT,
    state TEXT NOT NULL DEFAULT 'pending',
    run_id TEXT,
    run_target TEXT,
    owner TEXT,
    lease_until REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    round_base INTEGER NOT NULL DEFAULT 0,
    relaunches INTEGER NOT NULL DEFAULT 0,
    tokens_in INTEGER NOT NULL DEFAULT 0,
    tokens_out INTEGER NOT NULL DEFAULT 0,
    tokens_thought INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    price_known INTEGER NOT NULL DEFAULT 1,
    output TEXT,
    err_class TEXT, err_code INTEGER, err_message TEXT, err_delay REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    changed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS items_by_state ON items(state, seq);
CREATE INDEX IF NOT EXISTS items_by_changed ON items(changed);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    t REAL NOT NULL,
    seq INTEGER,
    kind TEXT NOT NULL,
    state TEXT,
    attempt INTEGER,
    outcome TEXT,
    http_code INTEGER,
    delay REAL,
    tokens_in INTEGER, tokens_out INTEGER, tokens_thought INTEGER,
    cost_usd REAL,
    wasted INTEGER NOT NULL DEFAULT 0,
    message TEXT
);
CREATE INDEX IF NOT EXISTS events_by_seq ON events(seq, id);
CREATE INDEX IF NOT EXISTS events_wasted ON events(wasted) WHERE wasted = 1;
CREATE TABLE IF NOT EXISTS control (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS pace (t REAL NOT NULL, req INTEGER NOT NULL, tok INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS pace_by_t ON pace(t);
"""

ITEM_COLUMNS = (
    "seq, key, payload_hash, input, payload, agent, model, instruction, state, run_id, run_target, "
    "owner, lease_until, attempts, round_base, relaunches, tokens_in, tokens_out, tokens_thought, "
    "cost_usd, price_known, output, err_class, err_code, err_message, err_delay, cancel_requested, "
    "created_at, updated_at, started_at, finished_at, changed"
)


class CheckpointError(Exception):
    """The checkpoint cannot be used; the message is the one line the user sees."""


@dataclass
class Row:
    """One item as the checkpoint holds it."""

    seq: int
    key: str
    payload_hash: str
    input: str
    payload: str
    agent: str | None
    model: str | None
    instruction: str | None
    state: str
    run_id: str | None
    run_target: str | None
    owner: str | None
    lease_until: float | None
    attempts: int
    round_base: int
    relaunches: int
    tokens_in: int
    tokens_out: int
    tokens_thought: int
    cost_usd: float
    price_known: int
    output: str | None
    err_class: str | None
    err_code: int | None
    err_message: str | None
    err_delay: float | None
    cancel_requested: int
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    changed: int

    @property
    def round_attempts(self) -> int:
        """Attempts since the last manual retry: what --max-attempts limits."""
        return self.attempts - self.round_base


@dataclass
class Event:
    id: int
    t: float
    seq: int | None
    kind: str
    state: str | None
    attempt: int | None
    outcome: str | None
    http_code: int | None
    delay: float | None
    tokens_in: int | None
    tokens_out: int | None
    tokens_thought: int | None
    cost_usd: float | None
    wasted: int
    message: str | None


EVENT_COLUMNS = (
    "id, t, seq, kind, state, attempt, outcome, http_code, delay, tokens_in, tokens_out, "
    "tokens_thought, cost_usd, wasted, message"
)


@dataclass
class Attempt:
    """What one API call did, as the event log records it."""

    outcome: str
    http_code: int | None = None
    delay: float | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_thought: int = 0
    cost_usd: float = 0.0
    wasted: bool = False
    message: str | None = None


@dataclass
class Claim:
    row: Row
    #: the item was claimed by a process that died before its run id was recorded
    in_doubt: bool = False
    #: the item already has a run id: poll it, never launch it again
    resume: bool = False


@dataclass
class Totals:
    counts: dict[str, int] = field(default_factory=dict)
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_thought: int = 0
    cost_usd: float = 0.0
    wasted_usd: float = 0.0
    unpriced: int = 0
    relaunches: int = 0
    total: int = 0

    @property
    def finished(self) -> int:
        return sum(self.counts.get(s, 0) for s in TERMINAL)


@dataclass
class SyncReport:
    added: int = 0
    changed: list[str] = field(default_factory=list)
    rerun: int = 0
    total: int = 0


def default_db_path(items_path: Path) -> Path:
    name = items_path.name
    stem = name[: -len(".jsonl")] if name.endswith(".jsonl") else items_path.stem
    return items_path.with_name(stem + ".tuibatch.db")


def _check_existing(path: Path) -> None:
    """Refuse, without writing, a file that is not a checkpoint we may use."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint: {exc.strerror}") from None
    if not head:
        return
    if head != b"SQLite format 3\x00":
        raise CheckpointError(f"{path}: not a tuibatch checkpoint (not an SQLite file); refusing to touch it")
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not tables:
                return  # an empty database: nothing to lose (or another worker is creating it right now)
            if "meta" not in tables or "items" not in tables:
                raise CheckpointError(f"{path}: not a tuibatch checkpoint (an SQLite file of another program); refusing to touch it")
            meta = dict(con.execute("SELECT k, v FROM meta").fetchall())
            if meta.get("app") != APP_ID:
                raise CheckpointError(f"{path}: not a tuibatch checkpoint; refusing to touch it")
            version = int(meta.get("schema_version", "0"))
            if version > SCHEMA_VERSION:
                raise CheckpointError(
                    f"{path}: checkpoint schema {version} is newer than this tuibatch understands "
                    f"({SCHEMA_VERSION}); upgrade tuibatch"
                )
            ok = con.execute("PRAGMA quick_check").fetchone()
            if not ok or ok[0] != "ok":
                raise CheckpointError(f"{path}: checkpoint is corrupt ({ok[0] if ok else 'no answer'}); refusing to touch it")
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise CheckpointError(f"{path}: checkpoint is corrupt or unreadable ({exc}); refusing to touch it") from None


class Store:
    """Async access to one checkpoint file. One instance per process."""

    def __init__(self, path: Path, *, owner: str | None = None, lease_seconds: float = 120.0):
        self.path = Path(path)
        self.owner = owner or owner_mod.current_owner()
        self.lease_seconds = lease_seconds
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._next_orphan_scan = 0.0

    # ---------------------------------------------------------------- opening

    @classmethod
    async def open(cls, path: Path, *, create: bool = False, **kw: Any) -> Store:
        path = Path(path)
        exists = path.exists()
        if exists:
            _check_existing(path)
        elif not create:
            raise CheckpointError(f"{path}: no such checkpoint")
        store = cls(path, **kw)
        if not exists:
            try:
                fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
                os.close(fd)
            except FileExistsError:  # another worker created it a moment ago: share it
                _check_existing(path)
            except OSError as exc:
                raise CheckpointError(f"{path}: cannot create checkpoint: {exc.strerror}") from None
        try:
            await store._connect()
            await store._init_schema()
        except BaseException as exc:
            await store.close()  # an open connection thread would keep the process alive
            if isinstance(exc, sqlite3.OperationalError):
                raise CheckpointError(f"{path}: cannot open checkpoint: {exc}") from None
            raise
        return store

    async def _connect(self) -> None:
        db = await aiosqlite.connect(self.path, isolation_level=None, timeout=30.0)
        self._db = db
        db.row_factory = None
        await db.execute("PRAGMA busy_timeout=30000")
        # Switching to WAL needs the file to itself, and SQLite may answer "locked" at once,
        # without waiting, while another worker is creating the same checkpoint: retry.
        deadline = time.monotonic() + 30.0
        while True:
            try:
                await db.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)
        await db.execute("PRAGMA synchronous=NORMAL")
        for suffix in ("-wal", "-shm"):
            p = Path(str(self.path) + suffix)
            if p.exists():
                try:
                    os.chmod(p, 0o600)
                except OSError:
                    pass

    async def _init_schema(self) -> None:
        async with self.tx() as db:
            for stmt in SCHEMA.strip().split(";\n"):
                if stmt.strip():
                    await db.execute(stmt)
            now = time.time()
            await db.executemany(
                "INSERT OR IGNORE INTO meta(k, v) VALUES (?, ?)",
                [
                    ("app", APP_ID),
                    ("schema_version", str(SCHEMA_VERSION)),
                    ("created", str(now)),
                    ("batch_id", "b" + os.urandom(6).hex()),
                ],
            )

    @property
    def db(self) -> aiosqlite.Connection:
        assert self._db is not None, "store is closed"
        return self._db

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    # ------------------------------------------------------------ transactions

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run *fn(con, …)* on the connection's own thread: one hop per transaction, not per statement.

        The engine shares its CPU with the SDK (20–32 ms per create); a hop per statement
        cost ~10% of throughput. aiosqlite runs every call on one thread, in order, so a
        transaction inside *fn* is never interleaved with another and cannot be torn by
        task cancellation.
        """
        return await self.db._execute(fn, self.db._conn, *args)  # type: ignore[no-any-return]

    def tx(self) -> _Tx:
        """``async with store.tx() as db`` for ad-hoc multi-statement work (tests, tools)."""
        return _Tx(self)

    @staticmethod
    @contextmanager
    def _write(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    @staticmethod
    def _ev(con: sqlite3.Connection, seq: int | None, kind: str, *, state: str | None = None,
            attempt: int | None = None, a: Attempt | None = None, message: str | None = None,
            now: float | None = None) -> int:
        now = now or time.time()
        if a is None:
            cur = con.execute("INSERT INTO events(t, seq, kind, state, attempt, message) VALUES (?,?,?,?,?,?)",
                              (now, seq, kind, state, attempt, message))
        else:
            cur = con.execute(
                "INSERT INTO events(t, seq, kind, state, attempt, outcome, http_code, delay, tokens_in,"
                " tokens_out, tokens_thought, cost_usd, wasted, message) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (now, seq, kind, state, attempt, a.outcome, a.http_code, a.delay, a.tokens_in,
                 a.tokens_out, a.tokens_thought, a.cost_usd, int(a.wasted), a.message or message))
        event_id = cur.lastrowid
        assert event_id is not None
        if seq is not None:
            con.execute("UPDATE items SET changed=? WHERE seq=?", (event_id, seq))
        return event_id

    @staticmethod
    def _get(con: sqlite3.Connection, seq: int) -> Row | None:
        r = con.execute(f"SELECT {ITEM_COLUMNS} FROM items WHERE seq=?", (seq,)).fetchone()
        return Row(*r) if r else None

    def _mine(self, con: sqlite3.Connection, seq: int) -> Row:
        row = self._get(con, seq)
        if row is None or row.owner != self.owner or row.state in TERMINAL:
            raise LostLease(seq)
        return row

    # ------------------------------------------------------------------- meta

    async def meta(self) -> dict[str, str]:
        rows = await self.db.execute_fetchall("SELECT k, v FROM meta")
        return {k: v for k, v in rows}

    async def set_meta(self, values: dict[str, str]) -> None:
        def fn(con: sqlite3.Connection) -> None:
            with self._write(con):
                con.executemany("INSERT OR REPLACE INTO meta(k, v) VALUES (?, ?)", list(values.items()))
        await self._call(fn)

    # ------------------------------------------------------------ items file

    async def sync_items(self, items: Sequence[Item], *, rerun_changed: bool = False) -> SyncReport:
        """Add new keys; refuse (or with *rerun_changed* reset) keys whose payload changed.

        All or nothing: a refusal writes nothing.
        """
        return await self._call(self._sync_items, items, rerun_changed)

    def _sync_items(self, con: sqlite3.Connection, items: Sequence[Item], rerun_changed: bool) -> SyncReport:
        report = SyncReport(total=len(items))
        with self._write(con):
            known = {k: (seq, h, st) for seq, k, h, st in con.execute(
                "SELECT seq, key, payload_hash, state FROM items")}
            next_seq = max((v[0] for v in known.values()), default=-1) + 1
            changed = [it for it in items if it.key in known and known[it.key][1] != it.payload_hash]
            if changed and not rerun_changed:
                report.changed = [it.key for it in changed]
                raise ChangedKeys(report)
            now = time.time()
            new_rows = []
            for it in items:
                if it.key not in known:
                    new_rows.append((next_seq, it.key, it.payload_hash, it.input_text, it.payload_json,
                                     it.agent, it.model, it.instruction, now, now))
                    next_seq += 1
            if new_rows:
                con.executemany(
                    "INSERT INTO items(seq, key, payload_hash, input, payload, agent, model, instruction,"
                    " created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?)", new_rows)
                if len(new_rows) <= 1000:
                    for r in new_rows:
                        self._ev(con, r[0], "state", state="pending", message="added", now=now)
                else:
                    self._ev(con, None, "info", message=f"{len(new_rows)} items added", now=now)
                report.added = len(new_rows)
            for it in changed:
                seq = known[it.key][0]
                old = self._get(con, seq)
                assert old is not None
                if old.state in ("claimed", "running") and old.owner and not owner_mod.is_dead(old.owner) \
                        and (old.lease_until or 0) > now:
                    report.changed = [it.key]
                    raise ChangedKeys(report, f"key {it.key!r} changed but is running in another worker;"
                                              " nothing was changed")
                self._ev(con, seq, "rerun", state="pending", message=json.dumps(
                    {"old_state": old.state, "old_run_id": old.run_id, "old_output": old.output,
                     "old_error": old.err_message}))
                con.execute(
                    "UPDATE items SET payload_hash=?, input=?, payload=?, agent=?, model=?, instruction=?,"
                    " state='pending', run_id=NULL, run_target=NULL, owner=NULL, lease_until=NULL,"
                    " round_base=attempts, output=NULL, err_class=NULL, err_code=NULL, err_message=NULL,"
                    " err_delay=NULL, cancel_requested=0, finished_at=NULL, updated_at=? WHERE seq=?",
                    (it.payload_hash, it.input_text, it.payload_json, it.agent, it.model,
                     it.instruction, now, seq))
                report.rerun += 1
        return report

    # ---------------------------------------------------------------- reading

    async def get(self, seq: int) -> Row | None:
        return await self._call(self._get, seq)

    async def get_by_key(self, key: str) -> Row | None:
        rows = list(await self.db.execute_fetchall(f"SELECT {ITEM_COLUMNS} FROM items WHERE key=?", (key,)))
        return Row(*rows[0]) if rows else None

    async def rows(self, where: str = "1", params: Iterable[Any] = (), *, limit: int | None = None,
                   offset: int = 0) -> list[Row]:
        sql = f"SELECT {ITEM_COLUMNS} FROM items WHERE {where} ORDER BY seq"
        if limit is not None:
            sql += f" LIMIT {int(limit)} OFFSET {int(offset)}"
        return [Row(*r) for r in await self.db.execute_fetchall(sql, tuple(params))]

    async def events(self, *, after: int = 0, seq: int | None = None, limit: int = 1000) -> list[Event]:
        if seq is None:
            sql, params = f"SELECT {EVENT_COLUMNS} FROM events WHERE id>? ORDER BY id LIMIT ?", (after, limit)
        else:
            sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE seq=? AND id>? ORDER BY id LIMIT ?"
            params = (seq, after, limit)  # type: ignore[assignment]
        return [Event(*r) for r in await self.db.execute_fetchall(sql, params)]

    async def totals(self) -> Totals:
        return await self._call(self._totals)

    @staticmethod
    def _totals(con: sqlite3.Connection) -> Totals:
        t = Totals()
        for state, n in con.execute("SELECT state, count(*) FROM items GROUP BY state"):
            t.counts[state] = n
        t.total = sum(t.counts.values())
        (t.tokens_in, t.tokens_out, t.tokens_thought, t.cost_usd, t.unpriced, t.relaunches) = con.execute(
            "SELECT coalesce(sum(tokens_in),0), coalesce(sum(tokens_out),0), coalesce(sum(tokens_thought),0),"
            " coalesce(sum(cost_usd),0), coalesce(sum(1-price_known),0), coalesce(sum(relaunches),0)"
            " FROM items").fetchone()
        wasted = con.execute("SELECT coalesce(sum(cost_usd),0) FROM events WHERE wasted=1").fetchone()[0]
        # An in-doubt relaunch paid for a run whose result is lost: estimate it at the item's own cost.
        relaunch_waste = con.execute(
            "SELECT coalesce(sum(cost_usd * relaunches * 1.0 / (relaunches + 1)), 0) FROM items"
            " WHERE relaunches>0").fetchone()[0]
        t.wasted_usd = float(wasted) + float(relaunch_waste)
        return t

    async def last_event_id(self) -> int:
        return int(list(await self.db.execute_fetchall("SELECT coalesce(max(id),0) FROM events"))[0][0])

    # ---------------------------------------------------------------- control

    async def control(self) -> dict[str, str]:
        return {k: v for k, v in await self.db.execute_fetchall("SELECT k, v FROM control")}

    async def set_control(self, values: dict[str, str]) -> None:
        def fn(con: sqlite3.Connection) -> None:
            with self._write(con):
                con.executemany("INSERT OR REPLACE INTO control(k, v) VALUES (?, ?)", list(values.items()))
        await self._call(fn)

    async def set_paused(self, paused: bool, reason: str = "", *, kind: str = "user") -> bool:
        """Pause or resume claiming for every worker on this checkpoint; returns whether it changed."""
        def fn(con: sqlite3.Connection) -> bool:
            with self._write(con):
                cur = dict(con.execute("SELECT k, v FROM control").fetchall())
                was = cur.get("paused") == "1"
                if was == paused and (not paused or cur.get("pause_reason") == reason):
                    return False
                if paused:
                    con.executemany("INSERT OR REPLACE INTO control(k, v) VALUES (?, ?)",
                                    [("paused", "1"), ("pause_reason", reason), ("pause_kind", kind)])
                    self._ev(con, None, "pause", message=reason or "paused")
                else:
                    con.execute("DELETE FROM control WHERE k IN ('paused','pause_reason','pause_kind')")
                    self._ev(con, None, "resume", message=reason or "resumed")
                return True
        return await self._call(fn)

    async def note(self, message: str, seq: int | None = None, kind: str = "info") -> None:
        def fn(con: sqlite3.Connection) -> None:
            with self._write(con):
                self._ev(con, seq, kind, message=message)
        await self._call(fn)

    # ------------------------------------------------------------------- pace

    async def pace(self, req: int, tok: int, limits: Sequence[tuple[float, float, float]]) -> float:
        """Take *req* requests and *tok* tokens from the quotas every worker on this file shares.

        *limits* are ``(span_seconds, max_requests, max_tokens)`` sliding windows (0 = no
        limit). Returns 0 when the units were taken, else the seconds to wait before asking
        again. Atomic across processes, so N workers never add up to more than the quota.
        """
        def fn(con: sqlite3.Connection) -> float:
            now = time.time()
            longest = max(span for span, _, _ in limits)
            with self._write(con):
                con.execute("DELETE FROM pace WHERE t < ?", (now - longest,))
                wait = 0.0
                for span, max_req, max_tok in limits:
                    used_req, used_tok = con.execute(
                        "SELECT coalesce(sum(req),0), coalesce(sum(tok),0) FROM pace WHERE t >= ?",
                        (now - span,)).fetchone()
                    over_req = used_req + req - max_req if max_req else 0
                    over_tok = used_tok + min(tok, max_tok) - max_tok if max_tok else 0
                    if over_req <= 0 and over_tok <= 0:
                        continue
                    freed_req = freed_tok = 0
                    for t, r, k in con.execute("SELECT t, req, tok FROM pace WHERE t >= ? ORDER BY t", (now - span,)):
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
        return await self._call(fn)

    async def pace_correct(self, tok: int) -> None:
        """Charge the difference between the token estimate and the usage the service reported."""
        def fn(con: sqlite3.Connection) -> None:
            with self._write(con):
                con.execute("INSERT INTO pace(t, req, tok) VALUES (?,?,?)", (time.time(), 0, tok))
        await self._call(fn)

    # ------------------------------------------------------------------ claims

    async def claim(self) -> Claim | None:
        """Take one item for this worker: an abandoned one first, else the next pending one."""
        return await self._call(self._claim)

    def _claim(self, con: sqlite3.Connection) -> Claim | None:
        now = time.time()
        lease = now + self.lease_seconds
        with self._write(con):
            if now >= self._next_orphan_scan:
                claim = self._take_orphan(con, now, lease)
                if claim is not None:
                    return claim
                self._next_orphan_scan = now + ORPHAN_SCAN_SECONDS
            r = con.execute(
                "UPDATE items SET state='claimed', owner=?, lease_until=?, updated_at=?, started_at=?"
                " WHERE seq=(SELECT seq FROM items WHERE state='pending' ORDER BY seq LIMIT 1)"
                f" RETURNING {ITEM_COLUMNS}", (self.owner, lease, now, now)).fetchone()
            if r is None:
                self._next_orphan_scan = 0.0  # nothing pending: look for abandoned work every time
                return None
            row = Row(*r)
            row.changed = self._ev(con, row.seq, "state", state="claimed", message=f"by {self.owner}", now=now)
            return Claim(row)

    def _take_orphan(self, con: sqlite3.Connection, now: float, lease: float) -> Claim | None:
        holders = con.execute(
            "SELECT DISTINCT owner FROM items WHERE state IN ('claimed','running') AND owner IS NOT NULL"
            " AND owner != ?", (self.owner,)).fetchall()
        dead = [o for (o,) in holders if owner_mod.is_dead(o)]
        marks = ",".join("?" * len(dead))
        r = con.execute(
            f"SELECT seq FROM items WHERE state IN ('claimed','running') AND (owner IS NULL"
            f" OR lease_until < ?{f' OR owner IN ({marks})' if dead else ''}) AND (owner IS NULL OR owner != ?)"
            f" ORDER BY seq LIMIT 1", (now, *dead, self.owner)).fetchone()
        if r is None:
            return None
        old = self._get(con, r[0])
        assert old is not None
        con.execute("UPDATE items SET owner=?, lease_until=?, updated_at=? WHERE seq=?",
                    (self.owner, lease, now, old.seq))
        resume = old.run_id is not None and old.state == "running"
        self._ev(con, old.seq, "takeover", state=old.state, message=(
            f"taken over from {old.owner or 'no owner'}: "
            + (f"resume polling run {old.run_id}" if resume else "launch again (in doubt)")))
        row = self._get(con, old.seq)
        assert row is not None
        self._next_orphan_scan = 0.0  # there may be more
        return Claim(row, in_doubt=not resume, resume=resume)

    async def work_left(self) -> tuple[int, int]:
        """(pending, in flight anywhere) — whether a worker still has a reason to stay."""
        rows: dict[str, int] = {s: n for s, n in await self.db.execute_fetchall(
            "SELECT state, count(*) FROM items WHERE state IN ('pending','claimed','running') GROUP BY state")}
        return rows.get("pending", 0), rows.get("claimed", 0) + rows.get("running", 0)

    async def renew_leases(self) -> None:
        def fn(con: sqlite3.Connection) -> None:
            with self._write(con):
                con.execute("UPDATE items SET lease_until=? WHERE owner=? AND state IN ('claimed','running')",
                            (time.time() + self.lease_seconds, self.owner))
        await self._call(fn)

    async def release_mine(self) -> int:
        """On a clean stop: keep state and run ids, drop the leases so the next run resumes at once."""
        def fn(con: sqlite3.Connection) -> int:
            with self._write(con):
                return con.execute(
                    "UPDATE items SET owner=NULL, lease_until=NULL WHERE owner=? AND state IN ('claimed','running')",
                    (self.owner,)).rowcount
        return await self._call(fn)

    async def mine_to_cancel(self) -> list[int]:
        return [s for (s,) in await self.db.execute_fetchall(
            "SELECT seq FROM items WHERE owner=? AND cancel_requested=1", (self.owner,))]

    # ------------------------------------------------------------ transitions

    async def record_attempt(self, seq: int, a: Attempt, *, error_class: str | None = None,
                             relaunch: bool = False) -> Row:
        """A launch attempt that did not start a run (error): counted, costed, item stays claimed."""
        def fn(con: sqlite3.Connection) -> Row:
            now = time.time()
            with self._write(con):
                row = self._mine(con, seq)
                row.attempts += 1
                con.execute(
                    "UPDATE items SET attempts=?, err_class=?, err_code=?, err_message=?, err_delay=?,"
                    " tokens_in=tokens_in+?, tokens_out=tokens_out+?, tokens_thought=tokens_thought+?,"
                    " cost_usd=cost_usd+?, relaunches=relaunches+?, lease_until=?, updated_at=? WHERE seq=?",
                    (row.attempts, error_class, a.http_code, a.message, a.delay, a.tokens_in, a.tokens_out,
                     a.tokens_thought, a.cost_usd, int(relaunch), now + self.lease_seconds, now, seq))
                self._ev(con, seq, "attempt", attempt=row.attempts, a=a, now=now)
                if relaunch:
                    self._ev(con, seq, "relaunch", message="in-doubt relaunch: the failed launch may have"
                             " started a run", now=now)
                return row
        return await self._call(fn)

    async def mark_running(self, seq: int, run_id: str, target: str) -> None:
        """Record the run id in the same transaction that moves the item to running."""
        def fn(con: sqlite3.Connection) -> None:
            now = time.time()
            with self._write(con):
                attempt = self._mine(con, seq).attempts + 1
                con.execute(
                    "UPDATE items SET state='running', run_id=?, run_target=?, attempts=?, lease_until=?,"
                    " updated_at=? WHERE seq=?", (run_id, target, attempt, now + self.lease_seconds, now, seq))
                self._ev(con, seq, "attempt", attempt=attempt, a=Attempt(outcome="launched", message=run_id),
                         now=now)
                self._ev(con, seq, "state", state="running", attempt=attempt, message=run_id, now=now)
        await self._call(fn)

    async def note_relaunch(self, seq: int, why: str, *, back_to_claimed: bool = False) -> None:
        """Count a launch that may pay twice; with *back_to_claimed* the lost run id is dropped too."""
        def fn(con: sqlite3.Connection) -> None:
            with self._write(con):
                self._mine(con, seq)
                if back_to_claimed:
                    con.execute("UPDATE items SET state='claimed', run_id=NULL, relaunches=relaunches+1,"
                                " updated_at=? WHERE seq=?", (time.time(), seq))
                else:
                    con.execute("UPDATE items SET relaunches=relaunches+1 WHERE seq=?", (seq,))
                self._ev(con, seq, "relaunch", state="claimed" if back_to_claimed else None, message=why)
        await self._call(fn)

    async def forget_run(self, seq: int, why: str) -> None:
        """The service no longer knows this run: back to claimed so it is launched again."""
        await self.note_relaunch(seq, why, back_to_claimed=True)

    async def finish(self, seq: int, state: str, *, run_id: str | None = None, output: str | None = None,
                     a: Attempt | None = None, error_class: str | None = None, count_attempt: bool = False,
                     price_known: bool = True) -> Row:
        """Commit a terminal state with its result; a finished result is never overwritten."""
        assert state in TERMINAL
        a = a or Attempt(outcome=state)

        def fn(con: sqlite3.Connection) -> Row:
            now = time.time()
            with self._write(con):
                row = self._mine(con, seq)
                attempts = row.attempts + (1 if count_attempt else 0)
                err = (error_class, a.http_code, a.message, a.delay) if state != "done" else (None,) * 4
                r = con.execute(
                    "UPDATE items SET state=?, run_id=coalesce(?, run_id), output=?, attempts=?,"
                    " tokens_in=tokens_in+?, tokens_out=tokens_out+?, tokens_thought=tokens_thought+?,"
                    " cost_usd=cost_usd+?, price_known=price_known*?, err_class=?, err_code=?, err_message=?,"
                    " err_delay=?, owner=NULL, lease_until=NULL, cancel_requested=0, finished_at=?,"
                    f" updated_at=? WHERE seq=? RETURNING {ITEM_COLUMNS}",
                    (state, run_id, output, attempts, a.tokens_in, a.tokens_out, a.tokens_thought, a.cost_usd,
                     int(price_known), *err, now, now, seq)).fetchone()
                if a.tokens_in or a.tokens_out or a.cost_usd or count_attempt:
                    self._ev(con, seq, "attempt", attempt=attempts, a=a, now=now)
                new = Row(*r)
                new.changed = self._ev(con, seq, "state", state=state, attempt=attempts,
                                       message=a.message if state != "done" else None, now=now)
                return new
        return await self._call(fn)

    async def unclaim(self, seq: int, why: str) -> None:
        """Give an unlaunched item back (batch-level pause, stop): not failed, not attempted."""
        def fn(con: sqlite3.Connection) -> None:
            with self._write(con):
                row = self._get(con, seq)
                if row is None or row.owner != self.owner:
                    return
                if row.state == "claimed" and row.run_id is None:
                    con.execute("UPDATE items SET state='pending', owner=NULL, lease_until=NULL,"
                                " updated_at=? WHERE seq=?", (time.time(), seq))
                    self._ev(con, seq, "state", state="pending", message=why)
                else:
                    con.execute("UPDATE items SET owner=NULL, lease_until=NULL WHERE seq=?", (seq,))
        await self._call(fn)

    async def cancel_requested(self, seq: int) -> bool:
        rows = list(await self.db.execute_fetchall("SELECT cancel_requested FROM items WHERE seq=?", (seq,)))
        return bool(rows and rows[0][0])

    # -------------------------------------------------- commands (any process)

    async def skip(self, keys: Sequence[str]) -> dict[str, str]:
        """pending/failed → skipped at once; claimed/running → flagged for the owner to cancel."""
        def fn(con: sqlite3.Connection) -> dict[str, str]:
            out: dict[str, str] = {}
            now = time.time()
            with self._write(con):
                for key in keys:
                    r = con.execute(f"SELECT {ITEM_COLUMNS} FROM items WHERE key=?", (key,)).fetchone()
                    if r is None:
                        out[key] = "unknown key"
                        continue
                    row = Row(*r)
                    if row.state in ("pending", "failed"):
                        con.execute("UPDATE items SET state='skipped', owner=NULL, lease_until=NULL,"
                                    " finished_at=?, updated_at=? WHERE seq=?", (now, now, row.seq))
                        self._ev(con, row.seq, "state", state="skipped", message="skipped by user", now=now)
                        out[key] = "skipped"
                    elif row.state in ("claimed", "running"):
                        con.execute("UPDATE items SET cancel_requested=1, updated_at=? WHERE seq=?", (now, row.seq))
                        self._ev(con, row.seq, "cancel", message="skip requested: cancelling the run", now=now)
                        out[key] = "cancelling"
                    else:
                        out[key] = f"already {row.state}"
            return out
        return await self._call(fn)

    async def retry(self, keys: Sequence[str] | None = None, *, failed: bool = False) -> int:
        """failed/skipped → pending; the attempt history stays, the attempt budget starts again."""
        def fn(con: sqlite3.Connection) -> int:
            now = time.time()
            with self._write(con):
                if failed:
                    seqs = [s for (s,) in con.execute("SELECT seq FROM items WHERE state='failed'")]
                else:
                    marks = ",".join("?" * len(keys or []))
                    seqs = [s for (s,) in con.execute(
                        f"SELECT seq FROM items WHERE key IN ({marks}) AND state IN ('failed','skipped')",
                        tuple(keys or []))]
                for seq in seqs:
                    con.execute(
                        "UPDATE items SET state='pending', run_id=NULL, run_target=NULL, owner=NULL,"
                        " lease_until=NULL, round_base=attempts, output=NULL, cancel_requested=0,"
                        " finished_at=NULL, updated_at=? WHERE seq=?", (now, seq))
                    self._ev(con, seq, "state", state="pending", message="retry requested", now=now)
                return len(seqs)
        return await self._call(fn)


class LostLease(Exception):
    """Another worker took this item over (our lease lapsed): stop touching it."""


class ChangedKeys(Exception):
    """The items file changed payloads of keys already in the checkpoint."""

    def __init__(self, report: SyncReport, message: str | None = None):
        super().__init__(message or "changed payloads")
        self.report = report
        self.message = message


class _Tx:
    """One BEGIN IMMEDIATE … COMMIT through the async API, serialised within the process."""

    def __init__(self, store: Store):
        self.store = store

    async def __aenter__(self) -> aiosqlite.Connection:
        await self.store._lock.acquire()
        try:
            await self.store.db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.store._lock.release()
            raise
        return self.store.db

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            await self.store.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
        finally:
            self.store._lock.release()
