"""The checkpoint's tables, and how a checkpoint of any earlier version becomes the current one.

Versions
--------
A checkpoint's version is SQLite's ``PRAGMA user_version``. ``meta.schema_version`` holds the
same number, because the first release read only that (and refuses a checkpoint whose number is
higher than its own, which is what an upgraded file must get from it). Version 1 is the layout
the first release wrote: it set ``meta.schema_version`` to "1" and left ``user_version`` at 0.

A fresh checkpoint is built the way an old one is upgraded: :data:`BASE` (version 1), then every
migration in order. A new file and an upgraded one are the same tables, and this module's
history is the only description of the layout.

Adding a migration (a five-line change)
---------------------------------------
Append to :data:`MIGRATIONS`, e.g.::

    Migration(3, "a fencing token per lease", (
        "ALTER TABLE items ADD COLUMN fence INTEGER NOT NULL DEFAULT 0",
    )),

and add the field to :class:`~tuibatch.store.records.Row` if code reads it (the column check at
open then insists on it). A step is an SQL statement or a function of the connection. All steps
and the version bump run in one ``BEGIN IMMEDIATE`` transaction: a crash half-way leaves the old
version intact, and a second worker opening the file at the same moment waits, then finds it
upgraded. Never edit a released migration or :data:`BASE`; write a new migration instead.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import CheckpointError
from .records import EVENT_FIELDS, ITEM_FIELDS

APP_ID = "tuibatch"

#: version 1, as the first release created it (frozen: history, not the current layout)
BASE = """
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
CREATE INDEX IF NOT EXISTS pace_by_t ON pace(t)
"""
BASE_VERSION = 1

Step = str | Callable[[sqlite3.Connection], None]


@dataclass(frozen=True)
class Migration:
    #: the version this migration produces, from the one before it
    to: int
    why: str
    steps: tuple[Step, ...]


def _drop_changed(con: sqlite3.Connection) -> None:
    con.execute("DROP INDEX IF EXISTS items_by_changed")
    if sqlite3.sqlite_version_info >= (3, 35, 0):  # DROP COLUMN; an older SQLite keeps it unused
        con.execute("ALTER TABLE items DROP COLUMN changed")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        2,
        "items.changed was written on every event and never read; the pace table is "
        "the limiter's (tuibatch/limiter/shared.py creates it when --rpm/--tpm need it)",
        (_drop_changed, "DROP INDEX IF EXISTS pace_by_t", "DROP TABLE IF EXISTS pace"),
    ),
    Migration(
        3,
        "fencing tokens for leases; the request as sent and a structured answer; why a run "
        "stopped and what a failure or a wasted cost was caused by; worker heartbeats; "
        "Gemini Batch API jobs",
        (
            # bumped by every claim and takeover: a launch or commit carrying an older token
            # comes from a worker that lost the item, and is refused
            "ALTER TABLE items ADD COLUMN fence INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE items ADD COLUMN request TEXT",  # canonical request JSON (issue 11)
            "ALTER TABLE items ADD COLUMN output_json TEXT",  # a schema-valid answer, as JSON
            "ALTER TABLE items ADD COLUMN stop_reason TEXT",  # MAX_TOKENS, SAFETY, stuck status…
            "ALTER TABLE items ADD COLUMN cause TEXT",  # policy.Cause of the last failure
            "ALTER TABLE items ADD COLUMN usage_known INTEGER NOT NULL DEFAULT 1",
            "ALTER TABLE items ADD COLUMN job_id INTEGER",  # the Batch API job holding it
            "ALTER TABLE events ADD COLUMN cause TEXT",
            "CREATE TABLE IF NOT EXISTS workers (owner TEXT PRIMARY KEY, host TEXT NOT NULL,"
            " pid INTEGER NOT NULL, role TEXT NOT NULL DEFAULT 'worker', started REAL NOT NULL,"
            " beat REAL NOT NULL, stopped REAL, detail TEXT)",
            "CREATE TABLE IF NOT EXISTS jobs (id INTEGER PRIMARY KEY, display_name TEXT NOT NULL"
            " UNIQUE, name TEXT UNIQUE, model TEXT NOT NULL, source TEXT NOT NULL DEFAULT 'inline',"
            " file_name TEXT, state TEXT NOT NULL DEFAULT 'planned', service_state TEXT,"
            " item_count INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0,"
            " created_at REAL NOT NULL, updated_at REAL NOT NULL, submitted_at REAL,"
            " finished_at REAL, error TEXT, cost_usd REAL NOT NULL DEFAULT 0, owner TEXT,"
            " lease_until REAL)",
            "CREATE INDEX IF NOT EXISTS items_by_job ON items(job_id) WHERE job_id IS NOT NULL",
        ),
    ),
)
LATEST = MIGRATIONS[-1].to if MIGRATIONS else BASE_VERSION

#: what the code reads and writes, per table; a checkpoint without one of these is refused
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "meta": ("k", "v"),
    "items": ITEM_FIELDS,
    "events": EVENT_FIELDS,
    "control": ("k", "v"),
}


def version_of(con: sqlite3.Connection, path: Path) -> int | None:
    """The checkpoint's schema version; None for a file with no tables yet (being created).

    Refuses, with one line, a database of another program, a version this code cannot read,
    and a version number that is not a number.
    """
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    user_version = int(con.execute("PRAGMA user_version").fetchone()[0])
    if not tables and not user_version:
        return None
    if "meta" not in tables or "items" not in tables:
        raise CheckpointError(
            f"{path}: not a tuibatch checkpoint (an SQLite file of another program); "
            "refusing to touch it"
        )
    meta = dict(con.execute("SELECT k, v FROM meta WHERE k IN ('app', 'schema_version')"))
    if meta.get("app") != APP_ID:
        raise CheckpointError(f"{path}: not a tuibatch checkpoint; refusing to touch it")
    text = meta.get("schema_version", "")
    try:
        recorded = int(text)
    except ValueError:
        raise CheckpointError(
            f"{path}: checkpoint schema_version {text[:40]!r} is not a number; refusing to touch it"
        ) from None
    version = user_version or recorded
    if version > LATEST or recorded > LATEST:
        raise CheckpointError(
            f"{path}: checkpoint schema {max(version, recorded)} is newer than this tuibatch "
            f"understands ({LATEST}); upgrade tuibatch"
        )
    if user_version and recorded != user_version:
        raise CheckpointError(
            f"{path}: checkpoint schema version is inconsistent (meta says {recorded}, "
            f"the file says {user_version}); refusing to touch it"
        )
    return version


def create_or_upgrade(con: sqlite3.Connection, path: Path) -> None:
    """Inside a write transaction: build a fresh checkpoint, or bring an older one to LATEST."""
    version = version_of(con, path)  # again: another worker may have done it meanwhile
    if version == LATEST:
        return
    if version is None:
        for stmt in BASE.strip().split(";\n"):
            con.execute(stmt)
        con.executemany(
            "INSERT OR IGNORE INTO meta(k, v) VALUES (?, ?)",
            [
                ("app", APP_ID),
                ("schema_version", str(BASE_VERSION)),
                ("created", str(time.time())),
                ("batch_id", "b" + os.urandom(6).hex()),
            ],
        )
        version = BASE_VERSION
    for m in MIGRATIONS:
        if m.to <= version:
            continue
        try:
            _apply(con, m)
        except sqlite3.DatabaseError as exc:
            raise CheckpointError(
                f"{path}: cannot upgrade the checkpoint from schema {version} to {m.to} ({exc}); "
                "nothing was changed"
            ) from None
        version = m.to
    con.execute(f"PRAGMA user_version = {int(version)}")
    con.execute("UPDATE meta SET v=? WHERE k='schema_version'", (str(version),))


def _apply(con: sqlite3.Connection, m: Migration) -> None:
    for step in m.steps:
        if isinstance(step, str):
            con.execute(step)
        else:
            step(con)


def check_columns(con: sqlite3.Connection, path: Path, version: int) -> None:
    """Refuse a checkpoint that lacks a table or column the code reads (renamed, dropped)."""
    for table, wanted in REQUIRED_COLUMNS.items():
        have = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
        missing = [c for c in wanted if c not in have]
        if not missing:
            continue
        what = f"table {table}" if not have else f"column {table}.{missing[0]}"
        if version < LATEST and missing[0] not in _layout(version).get(table, set()):
            raise CheckpointError(
                f"{path}: checkpoint schema {version} has no {what} yet; open it once for writing "
                f"(any run) to upgrade it to {LATEST}"
            )
        raise CheckpointError(
            f"{path}: not a checkpoint this tuibatch can use: no {what} "
            f"(schema {version}); refusing to touch it"
        )


def shim_older_layout(con: sqlite3.Connection, version: int) -> None:
    """Read-only access to an older checkpoint, without upgrading it: TEMP views and tables
    give it the current layout (columns a later migration added read as their defaults; tables
    it added read empty). Unqualified names find ``temp`` before ``main``; the file is untouched.
    """
    if version >= LATEST:
        return
    latest = _latest_ddl()
    have_tables = {r[0] for r in con.execute("SELECT name FROM main.sqlite_master")}
    for table, (ddl, defaults) in latest.items():
        if table not in have_tables:
            con.execute(ddl.replace("CREATE TABLE", "CREATE TEMP TABLE", 1))
            continue
        have = {r[1] for r in con.execute(f"PRAGMA main.table_info({table})")}
        # only what a later migration adds: a renamed or dropped column is still refused
        had = _layout(version).get(table, set())
        missing = [c for c in defaults if c not in have and c not in had]
        if missing:
            extra = ", ".join(f"{defaults[c]} AS {c}" for c in missing)
            con.execute(f"CREATE TEMP VIEW {table} AS SELECT *, {extra} FROM main.{table}")


@functools.cache
def _latest_ddl() -> dict[str, tuple[str, dict[str, str]]]:
    """Per table of the current layout: its CREATE statement and each column's default (SQL)."""
    con = sqlite3.connect(":memory:", isolation_level=None)
    try:
        for stmt in BASE.strip().split(";\n"):
            con.execute(stmt)
        for m in MIGRATIONS:
            _apply(con, m)
        out: dict[str, tuple[str, dict[str, str]]] = {}
        for name, sql in con.execute(
            "SELECT name, sql FROM sqlite_master WHERE type='table' AND sql IS NOT NULL"
            " AND name NOT LIKE 'sqlite_%'"
        ):
            cols = {r[1]: r[4] or "NULL" for r in con.execute(f"PRAGMA table_info({name})")}
            out[name] = (sql, cols)
        return out
    finally:
        con.close()


@functools.cache
def _layout(version: int) -> dict[str, set[str]]:
    """The columns of each table at *version*, as its migrations built them (in memory)."""
    con = sqlite3.connect(":memory:", isolation_level=None)
    try:
        for stmt in BASE.strip().split(";\n"):
            con.execute(stmt)
        for m in MIGRATIONS:
            if m.to > version:
                break
            _apply(con, m)
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: {r[1] for r in con.execute(f"PRAGMA table_info({t})")} for t in tables}
    finally:
        con.close()
