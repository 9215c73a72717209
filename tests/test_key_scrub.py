"""Low items of issue 13: no fragment of an API key survives a message cut, and a dry run
refuses a checkpoint it cannot read (corrupt, newer schema) with one line and exit 2."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from conftest import cli_env, export, new_batch, run_cli

from tuibatch.sim import SimulatorThread

CONFIGURED = "AIza" + "K" * 35
OTHER = "AIza" + "Q" * 35


def test_keys_straddling_the_cut_leave_no_fragment(tmp_path: Path) -> None:
    _items, db, keys, args = new_batch(tmp_path, 3, "--max-attempts", "1")
    faults = [
        # the configured key across the 500-character cut of an error answer
        {"fault": "http", "item": keys[0], "code": 400, "message": "x" * 490 + CONFIGURED},
        # any key-shaped string, in a run's error text
        {"fault": "run_failed", "item": keys[1], "message": "y" * 480 + OTHER + " end"},
        {"fault": "http", "item": keys[2], "code": 400, "message": "z" * 495 + OTHER},
    ]
    with SimulatorThread(run_seconds=0.05, faults=faults) as sim:
        out = run_cli(args, env=cli_env(sim.url, GEMINI_API_KEY=CONFIGURED))
    assert out.returncode == 1, out.stderr  # three failed items
    con = sqlite3.connect(db)
    dump = "\n".join(con.iterdump())
    rows = dict(con.execute("SELECT key, err_message FROM items"))
    assert all(rows[k] for k in keys), rows  # the messages were kept, only the keys went
    exported = "\n".join(str(r) for r in export(db))
    for text in (dump, exported, out.stdout, out.stderr):
        assert "AIza" not in text
        assert "KKKKKKKK" not in text and "QQQQQQQQ" not in text


def _refused(tmp_path: Path, db: Path) -> None:
    items = tmp_path / "items.jsonl"
    out = run_cli([str(items), "--db", str(db), "--dry-run", "--agent", "sim-agent"])
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert str(db) in out.stderr
    assert "newer" in out.stderr or "corrupt" in out.stderr
    assert "estimate" not in out.stdout.lower() and "$" not in out.stdout


def test_dry_run_refuses_a_newer_schema(tmp_path: Path) -> None:
    _items, db, _keys, args = new_batch(tmp_path, 2)
    with SimulatorThread(run_seconds=0.05) as sim:
        assert run_cli(args, env=cli_env(sim.url)).returncode == 0
    con = sqlite3.connect(db)
    con.execute("PRAGMA user_version=99")
    con.execute("UPDATE meta SET v='99' WHERE k='schema_version'")
    con.commit()
    con.close()
    _refused(tmp_path, db)


def test_dry_run_refuses_a_corrupt_checkpoint(tmp_path: Path) -> None:
    _items, db, _keys, args = new_batch(tmp_path, 20)
    with SimulatorThread(run_seconds=0.05) as sim:
        assert run_cli(args, env=cli_env(sim.url)).returncode == 0
    data = bytearray(db.read_bytes())
    assert len(data) > 8192
    data[4096:8192] = b"\xff" * 4096  # a page of garbage
    db.write_bytes(bytes(data))
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    _refused(tmp_path, db)
