"""Batch mode, continued: liveness of a batch worker, open jobs seen by an interactive run, and
structured output (``--schema``) checked on batch lines; the real CLI and SDK, the simulator."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import FAST, cli_env, run_cli, start_cli, wait_until, write_items
from test_batch_mode import jobs, rows

from tuibatch.items import key_label
from tuibatch.sim import SimulatorThread
from tuibatch.store.monitor import Liveness, peek_liveness

MODEL = "gemini-2.5-flash"
TIMINGS = {"batch_pending_seconds": 0.05, "batch_running_seconds": 0.2}


def batch_args(items: Path, *flags: str, mode: str = "batch") -> list[str]:
    return [str(items), "--headless", "--model", MODEL, "--mode", mode, *flags, *FAST]


def run(
    argv: list[str], env: dict[str, str], point: str | None = None
) -> subprocess.CompletedProcess[str]:
    return run_cli(argv, env=env, timeout=120, probe=point)


# ------------------------------------------------------------------------ liveness


def _live(db: Path) -> Liveness | None:
    if not db.exists():
        return None
    try:
        return peek_liveness(db, time.time())
    except sqlite3.Error:
        return None


def _registered(live: Liveness | None) -> list[tuple[int, str]]:
    return [] if live is None else [(w.pid, w.role) for w in live.workers if w.registered]


def _kill_a_batch_worker_in_its_job(
    tmp_path: Path, mode: str
) -> tuple[Liveness, int, Liveness | None]:
    """Liveness while a ``--mode batch|auto`` worker waits on its job, its pid, and liveness
    once it was SIGKILLed (its job still running on the service)."""
    items = tmp_path / "items.jsonl"
    write_items(items, 3)
    db = tmp_path / "items.tuibatch.db"
    with SimulatorThread(batch_pending_seconds=0.05, batch_running_seconds=120.0) as sim:
        worker = start_cli(batch_args(items, mode=mode), env=cli_env(sim.url))

        def alive_in_job() -> Liveness | None:
            live = _live(db)
            try:
                submitted = bool(jobs(db)) and jobs(db)[0]["state"] == "submitted"
            except sqlite3.Error:
                return None
            return live if submitted and _registered(live) else None

        live = wait_until(alive_in_job, timeout=60, what="a live batch worker with its job")
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        assert sim.stats()["batches"]["created"] == 1
        return live, worker.pid, peek_liveness(db, time.time())


@pytest.mark.parametrize(("mode", "role"), [("batch", "batch"), ("auto", "worker")])
def test_a_batch_worker_registers_beats_and_is_dead_once_killed(
    tmp_path: Path, mode: str, role: str
) -> None:
    live, pid, after = _kill_a_batch_worker_in_its_job(tmp_path, mode)
    assert _registered(live) == [(pid, role)]
    assert len(live.workers) == 1  # the items the job holds are no worker of their own
    assert live.in_flight == 3
    assert after is not None and not after.alive, after.workers
    assert after.in_flight == 3  # the items are still in their job on the service


def test_a_batch_worker_that_ends_cleanly_is_retired(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    write_items(items, 2)
    db = tmp_path / "items.tuibatch.db"
    with SimulatorThread(**TIMINGS) as sim:
        out = run(batch_args(items), cli_env(sim.url))
        assert out.returncode == 0, out.stderr
    con = sqlite3.connect(db)
    try:
        registered = con.execute("SELECT role, stopped FROM workers").fetchall()
    finally:
        con.close()
    assert len(registered) == 1 and registered[0][0] == "batch" and registered[0][1] is not None
    live = peek_liveness(db, time.time())
    assert live is not None and not live.alive


# ---------------------------------------------------------- open jobs, interactive run


def test_an_interactive_run_leaves_items_in_open_jobs_alone_and_says_so(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    keys = write_items(items, 4)
    db = tmp_path / "items.tuibatch.db"
    with SimulatorThread(run_seconds=0.05, **TIMINGS) as sim:
        env = cli_env(sim.url)
        crashed = run(batch_args(items), env, "after_record")  # the job exists and is recorded
        assert crashed.returncode == 137, crashed.stderr
        more = write_items(tmp_path / "more.jsonl", 2, prefix="new")
        with open(items, "a", encoding="utf-8") as f:
            f.write((tmp_path / "more.jsonl").read_text(encoding="utf-8"))
        argv = [str(items), "--headless", "--model", MODEL, *FAST]  # --mode interactive
        out = run(argv, env)
        assert out.returncode == 0, out.stderr
        stats = sim.stats()
        lines = [ln for ln in out.stderr.splitlines() if "Batch API job" in ln]
        assert len(lines) == 1, out.stderr
        head = "tuibatch: 4 item(s) are in Batch API job(s) still open: job 1 (batches/"
        assert lines[0].startswith(head), lines[0]
        assert "--mode batch" in lines[0] and f"tuibatch cancel-job --db {db} N" in lines[0]
        # only the two new items were launched, interactively; the job's items were not
        assert stats["by_route"]["generate"] == 2, stats["by_route"]
        assert stats["batches"]["created"] == 1
        got = rows(db)
        assert all(got[k]["state"] == "done" and got[k]["job_id"] is None for k in more)
        for k in keys:
            assert got[k]["state"] == "running" and got[k]["job_id"] == 1, got[k]
            assert got[k]["run_id"].startswith("batches/")
        # a batch-mode run then collects them from that same job, creating none
        collected = run(batch_args(items), env)
        assert collected.returncode == 0, collected.stderr
        assert sim.stats()["batches"]["created"] == 1
        assert sim.stats()["by_route"]["generate"] == 2
    got = rows(db)
    assert all(got[k]["state"] == "done" and got[k]["job_id"] == 1 for k in keys)
    assert all(sim_items_once(stats, k) for k in keys)


def sim_items_once(stats: dict[str, Any], key: str) -> bool:
    return bool(stats["batches"]["items"][key_label(key)]["jobs"] == 1)


# ------------------------------------------------------------------- structured output

SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "year": {"type": "integer"}},
    "required": ["title", "year"],
}


def wasted_events(db: Path, key: str) -> list[tuple[str | None, float]]:
    con = sqlite3.connect(db)
    try:
        return con.execute(
            "SELECT e.cause, e.cost_usd FROM events e JOIN items i ON i.seq = e.seq"
            " WHERE i.key=? AND e.kind='attempt' AND e.wasted=1 ORDER BY e.id",
            (key,),
        ).fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("source", ["inline", "file"])
def test_structured_batch_lines_are_checked_like_interactive_answers(
    tmp_path: Path, source: str
) -> None:
    items = tmp_path / "items.jsonl"
    keys = write_items(items, 5)
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA), encoding="utf-8")
    db = tmp_path / "items.tuibatch.db"
    once, always, bad_json = keys[1], keys[2], keys[3]
    with SimulatorThread(**TIMINGS) as sim:
        sim.set_faults(
            [
                # the key: a file line names it, an inline line its label (matched too)
                {"item": once, "fault": "invalid_json", "times": 1},
                {"item": always, "fault": "schema_mismatch", "times": None},
                {"item": bad_json, "fault": "invalid_json", "times": None},
            ]
        )
        inline_max = "0" if source == "file" else "10000000"
        env = cli_env(sim.url, TUIBATCH_BATCH_INLINE_MAX=inline_max)
        flags = ("--schema", str(schema), "--invalid-output-retries", "1")
        out = run(batch_args(items, *flags), env)
        assert out.returncode == 1, out.stdout + out.stderr  # two items failed
        batches = sim.stats()["batches"]
        assert all(n == 1 for n in batches["display_names"].values())
        assert batches["created"] == 2  # the three invalid answers went into a second job
        assert {j["source"] for j in sim.jobs()} == {source}
        assert sim.stats()["by_route"]["generate"] == 0
    got = rows(db)
    for k in (keys[0], keys[4], once):
        row = got[k]
        assert row["state"] == "done", row
        value = json.loads(row["output_json"])
        assert value == json.loads(row["output"])
        assert isinstance(value["title"], str) and isinstance(value["year"], int)
    assert got[keys[0]]["attempts"] == 1 and got[once]["attempts"] == 2
    ((cause, cost),) = wasted_events(db, once)  # the refused answer: paid, counted as waste
    assert cause == "invalid output" and 0 < cost < got[once]["cost_usd"]
    for k, why in ((always, "is not of type"), (bad_json, "not valid JSON")):
        row = got[k]
        assert row["state"] == "failed" and row["err_class"] == "invalid_output", row
        assert row["cause"] == "invalid output" and row["output_json"] is None
        assert row["err_message"].startswith("invalid output: ") and why in row["err_message"]
        assert row["attempts"] == 2
        both = wasted_events(db, k)
        assert [c for c, _ in both] == ["invalid output", "invalid output"]
        assert row["cost_usd"] == pytest.approx(sum(c for _, c in both)) and row["cost_usd"] > 0
    total = sum(r["cost_usd"] for r in got.values())
    assert sum(j["cost_usd"] for j in jobs(db)) == pytest.approx(total)


# -------------------------------------------------------------------------- clean-up


def test_cleanup_jobs_deletes_finished_jobs_and_their_files_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from tuibatch.batchmode.commands import cleanup_jobs

    items = tmp_path / "items.jsonl"
    write_items(items, 6)
    db = tmp_path / "items.tuibatch.db"
    with SimulatorThread(**TIMINGS) as sim:
        env = cli_env(sim.url, TUIBATCH_BATCH_INLINE_MAX="0")  # file jobs: input and result
        done = run(batch_args(items, "--job-items", "3"), env)
        assert done.returncode == 0, done.stderr
        more = tmp_path / "more.jsonl"
        write_items(more, 2, prefix="late")
        with open(items, "a", encoding="utf-8") as f:
            f.write(more.read_text(encoding="utf-8"))
        crashed = run(batch_args(items, "--job-items", "3"), env, "after_record")
        assert crashed.returncode == 137, crashed.stderr
        assert [j["state"] for j in jobs(db)] == ["settled", "settled", "submitted"]

        def files() -> list[str]:
            return sim.call(lambda: sorted(sim.simulator.files))

        assert len(files()) == 5  # three inputs, two results
        monkeypatch.setenv("GEMINI_API_KEY", "dummy-test-key")
        out = run(["cleanup-jobs", "--db", str(db)], env)  # the command a user types
        assert out.returncode == 0, out.stderr
        line = out.stdout.strip().splitlines()[-1]
        assert line.startswith("2 finished job(s) cleaned up on the service (6 object(s)"), line
        by_name = {j["name"]: j for j in sim.jobs()}
        first, second, open_job = jobs(db)
        assert by_name[first["name"]]["gone"] == "deleted"
        assert by_name[second["name"]]["gone"] == "deleted"
        assert by_name[open_job["name"]]["gone"] is None  # an open job is never touched
        left = files()  # the open job's input, and its result now that it has ended
        assert open_job["file_name"] in left and len(left) == 2, left
        assert first["file_name"] not in left and second["file_name"] not in left
        before = len(sim.requests())
        again = asyncio.run(cleanup_jobs(db, base_url=sim.url))
        assert again.startswith("no finished job left"), again
        assert len(sim.requests()) == before  # nothing sent the second time
    con = sqlite3.connect(db)
    try:
        cleaned = dict(con.execute("SELECT k, v FROM meta WHERE k LIKE 'job_cleaned:%'"))
        notes = [m for (m,) in con.execute("SELECT message FROM events WHERE kind='info'")]
    finally:
        con.close()
    assert set(cleaned) == {"job_cleaned:1", "job_cleaned:2"}
    assert (
        first["name"] in cleaned["job_cleaned:1"] and first["file_name"] in cleaned["job_cleaned:1"]
    )
    assert any(n.startswith("job 2 cleaned up: ") for n in notes)


def test_accept_truncated_keeps_a_cut_short_line_as_on_the_interactive_path(
    tmp_path: Path,
) -> None:
    items = tmp_path / "items.jsonl"
    keys = write_items(items, 3)
    cut = keys[1]
    with SimulatorThread(**TIMINGS) as sim:
        sim.set_faults([{"item": key_label(cut), "fault": "finish", "reason": "MAX_TOKENS"}])
        out = run(batch_args(items, "--accept-truncated"), cli_env(sim.url))
        assert out.returncode == 0, out.stderr
    got = rows(tmp_path / "items.tuibatch.db")
    assert all(got[k]["state"] == "done" and got[k]["output"] for k in keys)
    assert got[cut]["stop_reason"].startswith("MAX_TOKENS") and got[cut]["cost_usd"] > 0
    assert all(got[k]["stop_reason"] is None for k in keys if k != cut)
