"""Opening a checkpoint file, and running transactions on it: one thread hop per transaction.

A :class:`Connection` owns one stdlib ``sqlite3`` connection and the single thread it lives on
(:class:`~.thread.StoreThread`). Every store operation is a plain function of that connection,
sent whole to the thread:

* one hop per transaction, not one per statement (the engine shares its CPU with the SDK, and
  a hop per statement cost ~10% of throughput);
* the thread runs one function at a time, in order, so transactions of one process never
  interleave;
* a cancelled caller stops waiting, but a transaction that was sent always runs to COMMIT or
  ROLLBACK (a run id being recorded when Ctrl-C arrives is still recorded).

Only public APIs are used (``sqlite3``, ``threading``, ``queue``, ``asyncio``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from . import schema
from .errors import CheckpointError, StorageError
from .thread import StoreThread

T = TypeVar("T")
log = logging.getLogger("tuibatch.store")
#: how long SQLite itself waits for another process's transaction (busy_timeout) before a
#: transaction is retried from the start; ``TUIBATCH_BUSY_SECONDS`` overrides it (tests)
BUSY_SECONDS = 30.0
#: the longest pause between two retries of a transaction that found the checkpoint locked
RETRY_MAX_SECONDS = 2.0


def busy_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get("TUIBATCH_BUSY_SECONDS", "")))
    except ValueError:
        return BUSY_SECONDS


def is_busy(exc: BaseException) -> bool:
    """SQLITE_BUSY / SQLITE_LOCKED: another process holds the file; waiting is the answer."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    name = getattr(exc, "sqlite_errorname", "") or ""
    msg = str(exc)
    return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "database is locked" in msg


def storage_problem(exc: BaseException) -> str | None:
    """What a write failure means if the storage under the checkpoint is the problem (disk
    full, I/O error, read-only file system), else None."""
    if not isinstance(exc, sqlite3.Error):
        return None
    name = getattr(exc, "sqlite_errorname", "") or ""
    msg = _one_line(str(exc))
    if name.startswith("SQLITE_FULL") or "disk is full" in msg:
        return "database or disk is full"
    if name.startswith("SQLITE_IOERR") or "disk I/O error" in msg:
        return f"I/O error: {msg}"
    if name.startswith("SQLITE_READONLY") or "readonly database" in msg:
        return f"read-only: {msg}"
    if name.startswith("SQLITE_CANTOPEN"):
        return f"cannot open: {msg}"
    return None


@contextlib.contextmanager
def write(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``; ROLLBACK on any exception (or a failed COMMIT)."""
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        if con.in_transaction:
            con.execute("ROLLBACK")
        raise


@contextlib.contextmanager
def read(con: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A read transaction: several SELECTs that see one state of the file."""
    con.execute("BEGIN")
    try:
        yield con
    finally:
        if con.in_transaction:
            con.execute("COMMIT")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def describe(path: Path, exc: sqlite3.Error) -> CheckpointError | StorageError:
    """An SQLite error at open as the one line the user sees, by what it means."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    msg = _one_line(str(exc))
    if (
        name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))
        or "malformed" in msg
        or ("not a database" in msg)
    ):
        return CheckpointError(f"{path}: checkpoint is corrupt ({msg}); refusing to touch it")
    if name == "SQLITE_READONLY_DIRECTORY" or (
        "readonly" in msg and not os.access(path.parent, os.W_OK)
    ):
        return CheckpointError(
            f"{path}: cannot write in {path.parent} (SQLite keeps its journal beside the "
            "checkpoint); status and export can still read it"
        )
    if name.startswith("SQLITE_READONLY") or "readonly" in msg:
        return CheckpointError(f"{path}: checkpoint is read-only ({msg})")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in msg:
        return CheckpointError(f"{path}: checkpoint is locked by another process ({msg})")
    return CheckpointError(f"{path}: cannot open checkpoint ({msg})")


def check_header(path: Path) -> bool:
    """Whether the file has content; refuses, without writing, a file that is not SQLite."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint: {exc.strerror}") from None
    if head and head != b"SQLite format 3\x00":
        raise CheckpointError(
            f"{path}: not a tuibatch checkpoint (not an SQLite file); refusing to touch it"
        )
    return bool(head)


def _quick_check(con: sqlite3.Connection, path: Path) -> None:
    answer = [str(r[0]) for r in con.execute("PRAGMA quick_check(20)")]
    if answer == ["ok"]:
        return
    # one row may hold several lines, under a "*** in database main ***" heading
    problems = [ln.strip() for row in answer for ln in row.splitlines()]
    problems = [p for p in problems if p and not p.startswith("***")] or ["no answer"]
    first = problems[0] if len(problems[0]) <= 120 else problems[0][:119] + "…"
    more = f"; {len(problems)} problems found" if len(problems) > 1 else ""
    raise CheckpointError(f"{path}: checkpoint is corrupt ({first}{more}); refusing to touch it")


def _wal(con: sqlite3.Connection) -> None:
    # Switching to WAL needs the file to itself, and SQLite may answer "locked" at once,
    # without waiting, while another worker is creating the same checkpoint: retry.
    deadline = time.monotonic() + max(busy_seconds(), 1.0)
    while True:
        try:
            con.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = "locked" in str(exc) or "busy" in str(exc)
            if not busy or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _open(path: Path, readonly: bool, has_content: bool) -> sqlite3.Connection:
    """On the store's thread: connect, check, set up and (read-write) create or upgrade."""
    if readonly:
        try:
            con = _connect(f"file:{path}?mode=ro")
            con.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError as exc:
            if "readonly" not in str(exc) and "unable to open" not in str(exc):
                raise
            # a WAL checkpoint in a directory we cannot write (no -shm to share): nobody can
            # be writing it either, so read the file as it is
            con = _connect(f"file:{path}?mode=ro&immutable=1")
    else:
        con = _connect(str(path))
    try:
        if has_content:
            _quick_check(con, path)
        version = schema.version_of(con, path)
        if readonly:
            if version is None:
                raise CheckpointError(f"{path}: checkpoint is empty (a worker is creating it?)")
            schema.shim_older_layout(con, version)
            schema.check_columns(con, path, version)
            return con
        if has_content and not os.access(path, os.W_OK):
            raise CheckpointError(
                f"{path}: checkpoint is read-only (file mode); status and export can still read it"
            )
        _wal(con)
        con.execute("PRAGMA synchronous=NORMAL")
        if version != schema.LATEST:
            with write(con):
                schema.create_or_upgrade(con, path)
                schema.check_columns(con, path, schema.LATEST)
        else:
            schema.check_columns(con, path, version)
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(OSError):
                os.chmod(str(path) + suffix, 0o600)
        return con
    except BaseException:
        con.close()
        raise


def _connect(target: str) -> sqlite3.Connection:
    busy = busy_seconds()
    con = sqlite3.connect(target, uri=True, isolation_level=None, timeout=busy)
    con.execute(f"PRAGMA busy_timeout={int(busy * 1000)}")
    return con


class Connection:
    """One checkpoint file opened on its own thread."""

    def __init__(self, path: Path, readonly: bool) -> None:
        self.path = path
        self.readonly = readonly
        self._thread: StoreThread | None = StoreThread()
        self._con: sqlite3.Connection | None = None
        #: since when (time.time()) a transaction has been waiting for another process's lock
        self.waiting_since: float | None = None
        self._closing = threading.Event()

    @classmethod
    async def open(cls, path: Path, *, create: bool, readonly: bool) -> Connection:
        exists = path.exists()
        if not exists and (readonly or not create):
            raise CheckpointError(f"{path}: no such checkpoint")
        has_content = check_header(path) if exists else False
        if not exists:
            try:
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600))
            except FileExistsError:  # another worker created it a moment ago: share it
                has_content = check_header(path)
            except OSError as exc:
                raise CheckpointError(f"{path}: cannot create checkpoint: {exc.strerror}") from None
        conn = cls(path, readonly)
        try:
            conn._con = await conn._hop(_open, path, readonly, has_content)
        except sqlite3.Error as exc:
            await conn.close()
            raise describe(path, exc) from None
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _hop(self, fn: Callable[..., T], *args: Any) -> T:
        if self._thread is None:
            raise CheckpointError(f"{self.path}: the checkpoint is closed")
        return await self._thread.call(fn, *args)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(con, *args)`` on the connection's thread; its result, or its exception."""
        return await self._hop(self._call, fn, *args)

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run *fn*; a locked checkpoint is waited for (the transaction is retried whole, with
        backoff, until it goes through or the connection closes); a storage failure becomes
        :class:`StorageError`, never an item's failure."""
        pause = 0.05
        while True:
            if self._con is None:
                raise CheckpointError(f"{self.path}: the checkpoint is closed")
            try:
                value = fn(self._con, *args)
            except sqlite3.Error as exc:
                if is_busy(exc) and not self._closing.is_set():
                    if self.waiting_since is None:
                        self.waiting_since = time.time()
                        log.warning("waiting for the checkpoint (locked by another process)")
                    self._closing.wait(pause)
                    pause = min(pause * 2, RETRY_MAX_SECONDS)
                    continue
                problem = storage_problem(exc)
                if problem is not None and not self.readonly:
                    raise StorageError(
                        f"{self.path}: cannot write the checkpoint ({problem})"
                    ) from exc
                raise
            if self.waiting_since is not None:
                waited = time.time() - self.waiting_since
                self.waiting_since = None
                log.warning("the checkpoint is free again (waited %.1f s)", waited)
            return value

    async def close(self) -> None:
        """Close after every transaction already sent has run; later calls are refused."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._closing.set()  # a transaction waiting for a lock gives up
        try:
            with contextlib.suppress(Exception):
                await thread.call(self._close_on_thread)
        finally:
            thread.finish()

    def _close_on_thread(self) -> None:
        con, self._con = self._con, None
        if con is not None:
            con.close()
