"""Opening a checkpoint: versions, migrations, refusals in one line, read-only access.

Every refusal must be one line naming the file, never a traceback or a hang, and must leave
the file exactly as it was.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import run_cli

from tuibatch.items import Item
from tuibatch.states import ExitCode, ItemState
from tuibatch.store import Attempt, CheckpointError, Store
from tuibatch.store.schema import APP_ID, BASE, LATEST


def _items(n: int, prefix: str = "k") -> list[Item]:
    return [
        Item(seq=i, key=f"{prefix}{i}", input_text=f"in {i}", payload_hash=f"h{i}", line=i + 1)
        for i in range(n)
    ]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sql(db: Path, *statements: str) -> None:
    con = sqlite3.connect(db, isolation_level=None)
    try:
        for stmt in statements:
            con.execute(stmt)
    finally:
        con.close()


def _version(db: Path) -> tuple[int, str]:
    con = sqlite3.connect(db)
    try:
        uv = con.execute("PRAGMA user_version").fetchone()[0]
        sv = con.execute("SELECT v FROM meta WHERE k='schema_version'").fetchone()[0]
        return uv, sv
    finally:
        con.close()


def _columns(db: Path, table: str) -> set[str]:
    con = sqlite3.connect(db)
    try:
        return {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
    finally:
        con.close()


def _refused(db: Path, *, readonly: bool = False) -> str:
    """The one line Store.open refuses *db* with; the file must be unchanged."""
    before = _digest(db)
    with pytest.raises(CheckpointError) as caught:
        asyncio.run(asyncio.wait_for(Store.open(db, readonly=readonly), 20))
    message = str(caught.value)
    assert "\n" not in message and message.startswith(str(db)), message
    assert _digest(db) == before, "a refused checkpoint was changed"
    return message


def version_1_checkpoint(db: Path) -> None:
    """A checkpoint as the first release wrote it: meta.schema_version "1", user_version 0."""
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    for stmt in BASE.strip().split(";\n"):
        con.execute(stmt)
    now = time.time()
    con.executemany(
        "INSERT INTO meta(k, v) VALUES (?, ?)",
        [
            ("app", APP_ID),
            ("schema_version", "1"),
            ("created", str(now)),
            ("batch_id", "b0123456789ab"),
        ],
    )
    for i, state in enumerate(["done", "running", "pending", "failed"]):
        con.execute(
            "INSERT INTO items(seq, key, payload_hash, input, payload, state, run_id, owner,"
            " output, err_class, attempts, cost_usd, created_at, updated_at, changed)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                i,
                f"old-{i}",
                f"h{i}",
                f"in {i}",
                "{}",
                state,
                f"run-{i}" if state in ("done", "running") else None,
                "elsewhere:1:1" if state == "running" else None,
                "answer" if state == "done" else None,
                "permanent" if state == "failed" else None,
                1 if state != "pending" else 0,
                0.25 if state == "done" else 0.0,
                now,
                now,
                7,
            ),
        )
        con.execute(
            "INSERT INTO events(t, seq, kind, state) VALUES (?,?,?,?)", (now, i, "state", state)
        )
    con.execute("INSERT INTO pace(t, req, tok) VALUES (?,?,?)", (now, 1, 10))
    con.execute("INSERT INTO control(k, v) VALUES ('paused', '1')")
    con.close()
    assert _version(db) == (0, "1")


# --------------------------------------------------------------------------- versions


async def test_a_version_1_checkpoint_is_upgraded_in_place(tmp_path: Path) -> None:
    db = tmp_path / "old.tuibatch.db"
    version_1_checkpoint(db)
    store = await Store.open(db, owner="here:1:1")
    try:
        rows = {r.key: r for r in await store.items()}
        assert [rows[f"old-{i}"].state for i in range(4)] == [
            ItemState.DONE,
            ItemState.RUNNING,
            ItemState.PENDING,
            ItemState.FAILED,
        ]
        assert rows["old-0"].output == "answer" and rows["old-0"].run_id == "run-0"
        assert rows["old-3"].err_class == "permanent"
        assert (await store.totals()).cost_usd == pytest.approx(0.25)
        assert (await store.control()).get("paused") == "1"
        assert (await store.meta())["batch_id"] == "b0123456789ab"
        # and it works as a checkpoint of this version
        claim = await store.claim()
        assert claim is not None and claim.row.key == "old-2"
        await store.mark_running(claim.row.seq, "run-new", "sim-agent")
        await store.finish(
            claim.row.seq,
            ItemState.DONE,
            run_id="run-new",
            output="x",
            a=Attempt(outcome="completed"),
        )
    finally:
        await store.close()
    assert _version(db) == (LATEST, str(LATEST))
    if sqlite3.sqlite_version_info >= (3, 35, 0):
        assert "changed" not in _columns(db, "items")
    assert not _columns(db, "pace"), "the pace table is the limiter's from version 2"
    before = _digest(db)
    store = await Store.open(db)  # already current: opening changes nothing
    await store.close()
    assert _version(db) == (LATEST, str(LATEST)) and _digest(db) == before


async def test_a_version_1_checkpoint_can_be_read_without_upgrading_it(tmp_path: Path) -> None:
    db = tmp_path / "old.tuibatch.db"
    version_1_checkpoint(db)
    store = await Store.open(db, readonly=True)
    try:
        assert (await store.totals()).counts[ItemState.DONE] == 1
        assert await store.finished_keys() == {"old-0"}
    finally:
        await store.close()
    assert _version(db) == (0, "1")


def test_a_checkpoint_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "new.tuibatch.db"
    asyncio.run(_fresh(db))
    _sql(
        db,
        f"PRAGMA user_version = {LATEST + 1}",
        f"UPDATE meta SET v='{LATEST + 1}' WHERE k='schema_version'",
    )
    for readonly in (False, True):
        message = _refused(db, readonly=readonly)
        assert f"schema {LATEST + 1} is newer" in message and "upgrade tuibatch" in message
    # the command line: one line, exit 2, no traceback
    out = run_cli(["status", "--db", str(db)])
    assert out.returncode == ExitCode.USAGE
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "newer" in lines[0] and "Traceback" not in out.stderr, out.stderr


def test_a_version_1_file_claiming_a_newer_version_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    version_1_checkpoint(db)
    _sql(db, f"UPDATE meta SET v='{LATEST + 3}' WHERE k='schema_version'")
    assert f"schema {LATEST + 3} is newer" in _refused(db)


@pytest.mark.parametrize("old", [True, False], ids=["version-1", "current"])
def test_a_schema_version_that_is_not_a_number_is_refused(tmp_path: Path, old: bool) -> None:
    db = tmp_path / "c.db"
    version_1_checkpoint(db) if old else asyncio.run(_fresh(db))
    _sql(db, "UPDATE meta SET v='two' WHERE k='schema_version'")
    assert "schema_version 'two' is not a number" in _refused(db)
    assert "is not a number" in _refused(db, readonly=True)


@pytest.mark.parametrize("old", [True, False], ids=["version-1", "current"])
def test_a_renamed_column_is_refused(tmp_path: Path, old: bool) -> None:
    db = tmp_path / "c.db"
    version_1_checkpoint(db) if old else asyncio.run(_fresh(db))
    _sql(db, "ALTER TABLE items RENAME COLUMN output TO result")
    assert "items.output" in _refused(db)
    assert "items.output" in _refused(db, readonly=True)
    if old:  # the upgrade was rolled back with the refusal
        assert _version(db) == (0, "1")


def test_inconsistent_versions_are_refused(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    asyncio.run(_fresh(db))
    _sql(db, "UPDATE meta SET v='1' WHERE k='schema_version'")
    assert "inconsistent" in _refused(db)


async def _open_and_close(db: Path) -> None:
    store = await Store.open(db)
    await store.close()


async def _fresh(db: Path, n: int = 3) -> None:
    store = await Store.open(db, create=True)
    await store.sync_items(_items(n))
    await store.close()


# ------------------------------------------------------------------------- corruption


def test_corrupt_pages_are_one_line(tmp_path: Path) -> None:
    """quick_check may answer many lines (one row can hold several): the user sees one."""
    base = tmp_path / "base.db"
    asyncio.run(_fresh(base, 3000))
    pages = base.stat().st_size // 4096
    rng = random.Random(8)
    seen_many = False
    for trial in range(300):
        db = tmp_path / f"c{trial}.db"
        shutil.copy(base, db)
        with open(db, "r+b") as f:
            f.seek(rng.randrange(2, pages) * 4096 + rng.randrange(0, 4000))
            f.write(rng.randbytes(rng.choice((4, 16, 64))))
        con = sqlite3.connect(db)
        try:
            answer = [r[0] for r in con.execute("PRAGMA quick_check")]
        except sqlite3.DatabaseError:
            answer = ["error"]
        finally:
            con.close()
        many = len(answer) > 1 or any("\n" in str(a) for a in answer)
        if answer == ["ok"] or (seen_many and not many):
            db.unlink()
            continue
        message = _refused(db)
        assert "checkpoint is corrupt" in message and "refusing to touch it" in message
        seen_many = seen_many or many
        if seen_many:
            assert "problems found" in message or not many
            break
    assert seen_many, "no corruption gave a multi-line quick_check: try other seeds"


# -------------------------------------------------------------------------- read-only


async def test_a_read_only_file_can_be_read_but_not_written(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    await _fresh(db)
    db.chmod(0o444)
    try:
        store = await Store.open(db, readonly=True)
        try:
            assert (await store.totals()).total == 3
            assert [r.key for r in await store.items(limit=2)] == ["k0", "k1"]
            before = _digest(db)
            with pytest.raises(CheckpointError, match="read-only"):
                await store.skip(["k0"])
            assert _digest(db) == before
        finally:
            await store.close()
    finally:
        db.chmod(0o600)


@pytest.fixture
def unwritable_dir() -> Iterator[Path]:
    """A directory holding a checkpoint, readable by whoever runs the check but not writable."""
    d = Path(tempfile.mkdtemp(prefix="tb-ro-"))
    d.chmod(0o755)
    try:
        yield d
    finally:
        d.chmod(0o755)
        shutil.rmtree(d, ignore_errors=True)


def _as_someone_else(fn: Callable[[], str]) -> str:
    """Run *fn* where the directory is not writable: as nobody when we are root (root writes
    anywhere), in a forked child so nothing needs importing as that user."""
    if os.geteuid() != 0:
        return fn()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        try:
            os.close(r)
            os.setgid(65534)
            os.setuid(65534)
            out = fn()
        except BaseException as exc:
            out = f"child failed: {exc!r}"
        os.write(w, out.encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        answer = f.read()
    os.waitpid(pid, 0)
    return answer


def test_an_unwritable_directory_is_read_only_not_corrupt(unwritable_dir: Path) -> None:
    db = unwritable_dir / "c.tuibatch.db"
    asyncio.run(_fresh(db))
    db.chmod(0o644)
    assert not Path(str(db) + "-wal").exists()  # a clean close leaves no journal to share
    if os.geteuid() != 0:
        unwritable_dir.chmod(0o555)

    def check() -> str:
        async def go() -> str:
            store = await Store.open(db, readonly=True)
            try:
                total = (await store.totals()).total
            finally:
                await store.close()
            try:
                await Store.open(db)
            except CheckpointError as exc:
                return f"{total}|{exc}"
            return f"{total}|opened for writing"

        return asyncio.run(go())

    total, _, refusal = _as_someone_else(check).partition("|")
    assert total == "3", refusal
    assert "cannot write in" in refusal and "corrupt" not in refusal, refusal


def test_a_new_migration_upgrades_every_older_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the next schema change will do: one entry in MIGRATIONS, every file follows."""
    from tuibatch.store import schema

    v1, current, fresh = tmp_path / "v1.db", tmp_path / "current.db", tmp_path / "fresh.db"
    version_1_checkpoint(v1)
    asyncio.run(_fresh(current))
    step = schema.Migration(
        LATEST + 1,
        "a column for a later release",
        ("ALTER TABLE items ADD COLUMN later_thing INTEGER NOT NULL DEFAULT 0",),
    )
    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, step))
    monkeypatch.setattr(schema, "LATEST", LATEST + 1)
    for db in (v1, current):
        asyncio.run(_open_and_close(db))
    asyncio.run(_fresh(fresh))
    for db in (v1, current, fresh):
        assert _version(db) == (LATEST + 1, str(LATEST + 1)), db
        assert "later_thing" in _columns(db, "items"), db
    assert _columns(v1, "items") == _columns(fresh, "items")
