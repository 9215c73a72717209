"""Crash safety with real processes: SIGKILL at random moments and at named crash points.

The simulator's own counts are the judge of what was paid for: a finished item must
never be launched again, and every extra launch must be an in-doubt relaunch that the
checkpoint accounted for.
"""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import FAST, cli_env, export, new_batch, run_cli, start_cli, write_items

from tuibatch.items import key_label, sha256_hex
from tuibatch.sim import SimulatorThread


def run_crashing(
    point: str, args: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """The real CLI, dying with exit status 137 at the engine's probe *point* (``name:N``)."""
    return run_cli(args, env=env, timeout=60, probe=point)


def _checkpoint(db: Path) -> dict[str, dict]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    return {r["key"]: dict(r) for r in con.execute("SELECT * FROM items")}


def _count(db: Path, state: str) -> int:
    """Items in *state*, 0 while the worker is still creating the checkpoint."""
    try:
        return sum(1 for r in _checkpoint(db).values() if r["state"] == state) if db.exists() else 0
    except sqlite3.OperationalError:
        return 0


def _check_paid_once(sim: SimulatorThread, db: Path, keys: list[str]) -> int:
    """Every item done with its own output; returns the number of duplicate launches."""
    stats = sim.stats()["items"]
    rows = _checkpoint(db)
    by_key = {r["key"]: r for r in export(db)}
    duplicates = 0
    for key in keys:
        row, out = rows[key], by_key[key]
        assert row["state"] == "done", (key, row["state"], row["err_message"])
        assert row["run_id"], key
        payload = json.loads(row["payload"])
        expected_sha = sha256_hex(json.dumps(payload, ensure_ascii=False))[:16]
        assert json.loads(out["output"])["input_sha256"] == expected_sha, (
            f"{key} got another item's output"
        )
        seen = stats[key_label(key)]
        assert row["run_id"] in seen["runs"], key
        assert seen["launches"] >= 1
        # any launch beyond the first must be an in-doubt relaunch the checkpoint counted
        assert seen["launches"] <= 1 + row["relaunches"], (key, seen, row["relaunches"])
        duplicates += seen["launches"] - 1
    return duplicates


def _last_event(db: Path) -> int:
    """The checkpoint's last event id; 0 while the worker is still creating it."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return int(con.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def _wait_for(pred, proc, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    """Until *pred()* holds; a worker that exits or a condition never met fails the test."""
    deadline = time.monotonic() + timeout
    while not pred():
        assert proc.poll() is None, "the worker exited before it was killed"
        assert time.monotonic() < deadline, "the worker made no progress"
        time.sleep(0.02)


def test_random_sigkills_never_lose_or_repay_finished_work(tmp_path: Path) -> None:
    """Twelve kill -9s, each at a random moment while the worker is working (not while it is
    still importing, however slow a loaded machine makes that), then a run to the end."""
    items = tmp_path / "items.jsonl"
    db = tmp_path / "items.tuibatch.db"
    keys = write_items(items, 240)
    rng = random.Random(20261126)
    args = [str(items), "--headless", "--agent", "sim-agent", "--concurrency", "4", *FAST]
    kills = 0
    with SimulatorThread(run_seconds=0.15) as sim:
        env = cli_env(sim.url)
        while kills < 12:
            seen, done = _last_event(db), _count(db, "done")
            proc = start_cli(args, env=env)
            if kills % 2:  # every other round, let it finish something first
                _wait_for(lambda done=done: _count(db, "done") > done, proc)
            else:  # else from its first claim on
                _wait_for(lambda seen=seen: _last_event(db) > seen, proc)
            time.sleep(rng.uniform(0.0, 0.5))  # a random slice of work, then the kill
            assert proc.poll() is None, "the batch finished before enough kills: give it more work"
            proc.kill()
            proc.wait()
            kills += 1
        done_before = _count(db, "done")
        assert 0 < done_before < len(keys)
        out = run_cli(args, env=env, timeout=120)
        assert out.returncode == 0, out.stderr
        duplicates = _check_paid_once(sim, db, keys)
    assert duplicates <= kills
    relaunched = sum(r["relaunches"] for r in _checkpoint(db).values())
    assert duplicates <= relaunched  # never under-counted


@pytest.mark.parametrize("point", ["after_launch", "after_commit"])
def test_named_crash_points(tmp_path: Path, point: str) -> None:
    items, db, keys, args = new_batch(tmp_path, 6, "--concurrency", "1")
    with SimulatorThread(run_seconds=0.05) as sim:
        crashed = run_crashing(f"{point}:3", args, cli_env(sim.url))
        assert crashed.returncode == 137, crashed.stderr
        rows = _checkpoint(db)
        victim = keys[2] if point == "after_launch" else keys[1]
        if point == "after_launch":
            # the service created the run, but its id never reached the checkpoint
            assert rows[victim]["state"] == "claimed" and rows[victim]["run_id"] is None
        else:
            assert rows[victim]["state"] == "running" and rows[victim]["run_id"]
        out = run_cli(args, env=cli_env(sim.url))
        assert out.returncode == 0, out.stderr
        _check_paid_once(sim, db, keys)
        stats = sim.stats()["items"]
    rows = _checkpoint(db)
    con = sqlite3.connect(db)
    if point == "after_launch":
        assert stats[key_label(victim)]["launches"] == 2
        assert rows[victim]["relaunches"] == 1
        kinds = [
            k for (k,) in con.execute("SELECT kind FROM events WHERE seq=?", (rows[victim]["seq"],))
        ]
        assert "relaunch" in kinds
    else:
        assert all(stats[key_label(k)]["launches"] == 1 for k in keys)
        assert sum(r["relaunches"] for r in rows.values()) == 0
        msgs = [m for (m,) in con.execute("SELECT message FROM events WHERE kind='takeover'")]
        assert any("resume polling" in m for m in msgs)


def test_two_workers_on_one_checkpoint_launch_each_item_once(tmp_path: Path) -> None:
    items, db, keys, args = new_batch(tmp_path, 120, "--concurrency", "6")
    with SimulatorThread(run_seconds=0.05) as sim:
        env = cli_env(sim.url)
        procs = [start_cli(args, env=env) for _ in range(2)]
        results = [p.communicate(timeout=120) for p in procs]
        for p, (_out, err) in zip(procs, results, strict=True):
            assert p.returncode == 0, err
        stats = sim.stats()["items"]
        _check_paid_once(sim, db, keys)
    assert all(stats[key_label(k)]["launches"] == 1 for k in keys)
    # both workers really took part
    owners = {
        m
        for (m,) in sqlite3.connect(db).execute(
            "SELECT message FROM events WHERE kind='state' AND state='claimed'"
        )
    }
    assert len(owners) == 2, owners


def test_sigterm_stops_quickly_keeps_run_ids_and_resumes(tmp_path: Path) -> None:
    items, db, keys, args = new_batch(tmp_path, 10, "--concurrency", "5")
    with SimulatorThread(run_seconds=1.5) as sim:
        env = cli_env(sim.url)
        proc = start_cli(args, env=env)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if _count(db, "running") >= 5:
                break
            time.sleep(0.1)
        t0 = time.monotonic()
        proc.terminate()
        _out, err = proc.communicate(timeout=20)
        assert proc.returncode == 130, err
        assert time.monotonic() - t0 < 8
        running = [r for r in _checkpoint(db).values() if r["state"] == "running"]
        assert running and all(r["run_id"] and r["owner"] is None for r in running)
        out = run_cli(args, env=env, timeout=120)
        assert out.returncode == 0, out.stderr
        stats = sim.stats()["items"]
        _check_paid_once(sim, db, keys)
    assert all(stats[key_label(k)]["launches"] == 1 for k in keys)


def test_a_closed_output_pipe_neither_fails_items_nor_blocks_sigterm(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    db = tmp_path / "items.tuibatch.db"
    write_items(items, 40)
    args = [
        str(items),
        "--headless",
        "--agent",
        "sim-agent",
        "--concurrency",
        "4",
        *FAST[:-2],
        "--progress-every",
        "0.1",
    ]
    with SimulatorThread(run_seconds=0.3) as sim:
        sim.set_faults(
            [{"any": True, "fault": "http", "code": 503, "times": 3}]
        )  # log lines to write
        proc = start_cli(args, env=cli_env(sim.url))
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # like `tuibatch … | head -1` after head exits
        proc.stderr.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _count(db, "done") < 5:
            time.sleep(0.1)
        proc.terminate()
        assert proc.wait(timeout=10) == 130
    rows = _checkpoint(db).values()
    assert sum(r["state"] == "done" for r in rows) >= 5
    assert not [r for r in rows if r["state"] == "failed"]


def test_workers_started_together_all_open_a_fresh_checkpoint(tmp_path: Path) -> None:
    """Workers racing to create one checkpoint all get in (WAL switch, schema) and share it."""
    with SimulatorThread(run_seconds=0.05) as sim:
        env = cli_env(sim.url)
        for round_ in range(3):
            sim.reset()
            (tmp_path / f"r{round_}").mkdir()
            _items, db, keys, args = new_batch(tmp_path / f"r{round_}", 8, "--concurrency", "2")
            procs = [start_cli(args, env=env) for _ in range(4)]
            for p in procs:
                _out, err = p.communicate(timeout=60)
                assert p.returncode == 0, err
            _check_paid_once(sim, db, keys)
            assert all(sim.stats()["items"][key_label(k)]["launches"] == 1 for k in keys)


def test_cold_start_runs_the_same_batch(tmp_path: Path) -> None:
    """The other tests fork their workers from a warm launcher (``warm.py``); this one starts the
    installed console script from nothing, the way a user does, and resumes it cold after a crash."""
    items, db, keys, args = new_batch(tmp_path, 6, "--concurrency", "1")
    script = Path(sys.executable).with_name("tuibatch")
    with SimulatorThread(run_seconds=0.05) as sim:
        env = cli_env(sim.url)
        crashed = subprocess.run(
            [sys.executable, str(Path(__file__).with_name("crash_worker.py")), "after_commit:2", *args],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert crashed.returncode == 137, crashed.stderr
        out = subprocess.run(
            [str(script), *args], env=env, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        assert "6/6 done" in out.stdout.splitlines()[-1]
        _check_paid_once(sim, db, keys)
    assert all(r["state"] == "done" for r in _checkpoint(db).values())
