"""Run ids the checkpoint could not take (disk full, I/O error): kept beside it, folded back in.

When a run was created on the service but the transaction recording its id failed for lack of
storage, the id is appended (and fsynced) to ``<checkpoint>.runids.jsonl``, one JSON object a
line: ``key, seq, run_id, target, fence, time``. The next start folds the file into the
checkpoint before anything is claimed: each item becomes ``running`` with that run id and no
owner, so a worker takes it over and polls it; it is never launched again. Then the file goes.

A little space is set aside at the start of a run (:func:`reserve`) and given back first when
the disk fills, so the fallback line has room even on a full file system.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..states import SETTLED, ItemState
from . import views
from .connection import write
from .journal import append
from .records import EventKind

#: bytes set aside beside the checkpoint for the fallback lines
RESERVE_BYTES = 64 * 1024


@dataclass
class KeptRun:
    key: str
    seq: int
    run_id: str
    target: str
    fence: int
    time: float


def runids_path(db: Path) -> Path:
    return db.with_name(db.name + ".runids.jsonl")


def reserve_path(db: Path) -> Path:
    return db.with_name(db.name + ".reserve")


def reserve(db: Path) -> None:
    """Set RESERVE_BYTES aside beside the checkpoint (best effort: a full disk skips it)."""
    path = reserve_path(db)
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        try:
            if os.fstat(fd).st_size < RESERVE_BYTES:
                os.write(fd, b"\0" * RESERVE_BYTES)
                os.fsync(fd)
        finally:
            os.close(fd)


def unreserve(db: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(reserve_path(db))


def keep(db: Path, runs: list[KeptRun]) -> Path:
    """Append *runs* to the fallback file and fsync it; the reserve is given back first.

    Raises OSError when even that cannot be written (the caller then prints the ids)."""
    unreserve(db)
    path = runids_path(db)
    data = "".join(json.dumps(asdict(r), sort_keys=True) + "\n" for r in runs).encode()
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    with contextlib.suppress(OSError):
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return path


def read_kept(db: Path) -> list[KeptRun]:
    """The fallback file's complete lines (a torn last line, from a crash mid-write, is
    dropped: its run was never recorded as kept)."""
    path = runids_path(db)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    runs = []
    for line in text.splitlines():
        try:
            d = json.loads(line)
            runs.append(
                KeptRun(
                    str(d["key"]),
                    int(d["seq"]),
                    str(d["run_id"]),
                    str(d["target"]),
                    int(d.get("fence", 0)),
                    float(d.get("time", 0.0)),
                )
            )
        except (ValueError, KeyError, TypeError):
            continue
    return runs


def fold(con: sqlite3.Connection, runs: list[KeptRun]) -> int:
    """One transaction: every kept run id into its item (running, no owner); how many."""
    now = time.time()
    n = 0
    with write(con):
        for r in runs:
            row = views.get_by_key(con, r.key)
            if row is None or row.state in SETTLED or row.run_id is not None:
                continue
            con.execute(
                "UPDATE items SET state=?, run_id=?, run_target=?, owner=NULL, lease_until=NULL,"
                " updated_at=? WHERE seq=?",
                (ItemState.RUNNING, r.run_id, r.target, now, row.seq),
            )
            append(
                con,
                row.seq,
                EventKind.STATE,
                state=ItemState.RUNNING,
                message=f"{r.run_id} (kept aside when the checkpoint could not be written)",
                now=now,
            )
            n += 1
    return n
