"""Batch mode survives kill -9 at every step of a job's life without a duplicate job.

The worker dies with ``os._exit(137)`` at a named probe point (``tests/crash_worker.py``), as a
SIGKILL there would; the next run of the same command must create no second job with the same
display name, send no item in a second job, and lose no result.
"""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest
from conftest import FAST, cli_env, run_cli, start_cli, wait_until, write_items

from tuibatch.items import key_label
from tuibatch.sim import SimulatorThread

MODEL = "gemini-2.5-flash"
TIMINGS = {"batch_pending_seconds": 0.05, "batch_running_seconds": 0.2}


def args(items: Path, *flags: str) -> list[str]:
    return [str(items), "--headless", "--model", MODEL, "--mode", "batch", *flags, *FAST]


def run(
    argv: list[str], env: dict[str, str], point: str | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli(argv, env=env, timeout=90, probe=point)


def states(db: Path) -> dict[str, tuple[str, str | None]]:
    con = sqlite3.connect(db)
    try:
        return {k: (s, o) for k, s, o in con.execute("SELECT key, state, output FROM items")}
    finally:
        con.close()


def check_once(sim: SimulatorThread, db: Path, keys: list[str]) -> dict[str, int]:
    batches = sim.stats()["batches"]
    assert batches["display_names"] and all(n == 1 for n in batches["display_names"].values()), (
        batches["display_names"]
    )
    got = states(db)
    for k in keys:
        state, output = got[k]
        assert state == "done" and output, (k, state)
        # inline lines carry the item's label; file lines only their key
        seen = batches["items"].get(key_label(k)) or batches["items"][k]
        assert seen["jobs"] == 1, (k, seen)
    return dict(batches["display_names"])


@pytest.mark.parametrize(
    "point",
    [
        "before_create",
        "after_create",  # the job exists, its name is not recorded: adopted by display name
        "after_record",
        "after_poll",
        "after_download",
        "mid_commit",
        "after_settle",
        "after_create:2",  # the second job
    ],
)
@pytest.mark.parametrize("source", ["inline", "file"])
def test_kill_at_every_step_then_resume_without_duplicate(
    tmp_path: Path, point: str, source: str
) -> None:
    if source == "file" and point not in ("after_create", "after_download", "mid_commit"):
        pytest.skip("the file source shares the other steps with the inline one")
    items = tmp_path / "items.jsonl"
    keys = write_items(items, 6)
    db = tmp_path / "items.tuibatch.db"
    with SimulatorThread(**TIMINGS) as sim:
        env = cli_env(sim.url, TUIBATCH_BATCH_INLINE_MAX="0" if source == "file" else "10000000")
        argv = args(items, "--job-items", "3")
        crashed = run(argv, env, point)
        assert crashed.returncode == 137, crashed.stderr
        resumed = run(argv, env)
        assert resumed.returncode == 0, resumed.stderr
        names = check_once(sim, db, keys)
        assert len(names) == 2
        if point.startswith("after_create"):
            assert "adopted" in resumed.stderr + resumed.stdout


def test_a_lost_create_answer_is_adopted_in_the_same_run(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    keys = write_items(items, 4)
    with SimulatorThread(**TIMINGS) as sim:
        sim.set_faults([{"any": True, "on": "batch_create", "fault": "create_then_drop"}])
        out = run(args(items), cli_env(sim.url))
        assert out.returncode == 0, out.stderr
        check_once(sim, tmp_path / "items.tuibatch.db", keys)
        assert "adopted" in out.stderr + out.stdout


def test_an_error_after_create_is_adopted_and_a_refused_create_is_retried(
    tmp_path: Path,
) -> None:
    items = tmp_path / "items.jsonl"
    keys = write_items(items, 6)
    with SimulatorThread(**TIMINGS) as sim:
        sim.set_faults(
            [
                {"any": True, "on": "batch_create", "fault": "error_after_create", "code": 500},
                {"any": True, "on": "batch_create", "fault": "http", "code": 429},
            ]
        )
        out = run(args(items, "--job-items", "3"), cli_env(sim.url))
        assert out.returncode == 0, out.stderr
        names = check_once(sim, tmp_path / "items.tuibatch.db", keys)
        assert len(names) == 2


def test_two_processes_on_one_checkpoint_never_create_the_same_job(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    keys = write_items(items, 24)
    db = tmp_path / "items.tuibatch.db"
    with SimulatorThread(**TIMINGS) as sim:
        env = cli_env(sim.url)
        procs = [start_cli(args(items, "--job-items", "4"), env=env) for _ in range(2)]
        for p in procs:
            _out, err = p.communicate(timeout=90)
            assert p.returncode == 0, err
        leftover = run(args(items, "--job-items", "4"), env)  # anything a racer left pending
        assert leftover.returncode == 0, leftover.stderr
        names = check_once(sim, db, keys)
        assert len(names) == 6


def all_running(db: Path, n: int) -> bool:
    """All *n* items are recorded as running in their job (False while the file is created)."""
    try:
        got = states(db) if db.exists() else {}
        return len(got) == n and all(s == "running" for s, _o in got.values())
    except sqlite3.Error:
        return False


def test_skip_inside_a_running_job_ignores_its_result(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    keys = write_items(items, 3)
    db = tmp_path / "items.tuibatch.db"
    with SimulatorThread(batch_pending_seconds=0.05, batch_running_seconds=3.0) as sim:
        env = cli_env(sim.url)
        worker = start_cli(args(items), env=env)
        wait_until(lambda: all_running(db, len(keys)), timeout=60, what="the job to be recorded")
        skip = run(["skip", "--db", str(db), keys[0]], env)
        assert skip.returncode == 0, skip.stderr
        _out, err = worker.communicate(timeout=90)
        assert worker.returncode == 0, err
        got = states(db)
        assert got[keys[0]] == ("skipped", None)
        assert all(got[k][0] == "done" for k in keys[1:])
        assert sim.stats()["batches"]["created"] == 1


def test_cancel_job_cancels_it_whole_and_skips_its_items(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from tuibatch.batchmode.commands import cancel_job

    items = tmp_path / "items.jsonl"
    keys = write_items(items, 3)
    db = tmp_path / "items.tuibatch.db"
    with SimulatorThread(batch_pending_seconds=0.05, batch_running_seconds=30.0) as sim:
        env = cli_env(sim.url)
        worker = start_cli(args(items), env=env)
        wait_until(lambda: all_running(db, len(keys)), timeout=60, what="the job to be recorded")
        monkeypatch.setenv("GEMINI_API_KEY", "dummy-test-key")
        line = asyncio.run(cancel_job(db, 1, base_url=sim.url))
        assert "cancelled" in line
        _out, err = worker.communicate(timeout=90)
        assert worker.returncode == 0, err
        assert all(s == "skipped" for s, _o in states(db).values()), states(db)
        assert [j["state"] for j in sim.jobs()] == ["JOB_STATE_CANCELLED"]
        assert sim.stats()["batches"]["created"] == 1


def test_a_failing_list_never_leads_to_a_create(tmp_path: Path) -> None:
    """Killed after create, before recording; on resume the listing fails twice: the job is
    created nowhere again, and adopted once a listing answers."""
    items = tmp_path / "items.jsonl"
    keys = write_items(items, 4)
    with SimulatorThread(**TIMINGS) as sim:
        env = cli_env(sim.url)
        crashed = run(args(items), env, "after_create")
        assert crashed.returncode == 137, crashed.stderr
        sim.set_faults(
            [{"any": True, "on": "batch_list", "fault": "http", "code": 503, "times": 2}]
        )
        resumed = run(args(items), env)
        assert resumed.returncode == 0, resumed.stderr
        assert len(check_once(sim, tmp_path / "items.tuibatch.db", keys)) == 1
        lists = [r for r in sim.requests() if r["route"] == "batch_list"]
        assert [r["code"] for r in lists][:3] == [503, 503, 200]
