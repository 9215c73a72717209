"""``--mode batch|auto``: items through Gemini Batch API jobs, the real CLI and SDK, the simulator.

The simulator's own counts judge what was paid for: each display name is created once, and an
item is sent in a second job only when its first job ended without delivering it.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import FAST, cli_env, run_cli, write_items

from tuibatch.batchmode.packing import Limits, TooLarge, pack
from tuibatch.items import key_label
from tuibatch.pricing import load_prices
from tuibatch.sim import SimulatorThread
from tuibatch.usage import Usage

MODEL = "gemini-2.5-flash"
TIMINGS = {"batch_pending_seconds": 0.05, "batch_running_seconds": 0.2}


def run_batch(
    items: Path, sim_url: str, *flags: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    args = [str(items), "--headless", "--model", MODEL, "--mode", "batch", *flags, *FAST]
    return run_cli(args, env=env or cli_env(sim_url), timeout=90)


def rows(db: Path) -> dict[str, dict[str, Any]]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return {r["key"]: dict(r) for r in con.execute("SELECT * FROM items")}
    finally:
        con.close()


def jobs(db: Path) -> list[dict[str, Any]]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM jobs ORDER BY id")]
    finally:
        con.close()


def assert_no_duplicate_job(sim: SimulatorThread) -> dict[str, Any]:
    batches = sim.stats()["batches"]
    assert batches["display_names"], "no job was created"
    assert all(n == 1 for n in batches["display_names"].values()), batches["display_names"]
    return batches


# ------------------------------------------------------------------------- packing


def test_packing_caps_items_and_bytes_and_picks_inline_or_file() -> None:
    items = [(i, f"k{i}", MODEL if i < 7 else "gemini-2.5-pro", 100) for i in range(10)]
    packs = pack(items, Limits(max_items=3, max_bytes=250, inline_max_bytes=150))
    assert [(p.model, p.seqs) for p in packs] == [
        (MODEL, [0, 1]),
        (MODEL, [2, 3]),
        (MODEL, [4, 5]),
        (MODEL, [6]),
        ("gemini-2.5-pro", [7, 8]),
        ("gemini-2.5-pro", [9]),
    ]
    assert [p.source for p in packs] == ["file", "file", "file", "inline", "file", "inline"]
    by_count = pack(items[:7], Limits(max_items=3, max_bytes=10_000))
    assert [len(p.seqs) for p in by_count] == [3, 3, 1]
    assert {p.source for p in by_count} == {"inline"}
    with pytest.raises(TooLarge, match="k2"):
        pack([(0, "k0", MODEL, 10), (2, "k2", MODEL, 300)], Limits(max_bytes=250))


# ---------------------------------------------------------------------- end to end


def test_batch_mode_runs_every_item_through_jobs_at_half_price(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    keys = write_items(items, 12)
    with SimulatorThread(**TIMINGS) as sim:
        out = run_batch(items, sim.url, "--job-items", "5")
        assert out.returncode == 0, out.stderr
        batches = assert_no_duplicate_job(sim)
        assert batches["created"] == 3
        by_route = sim.stats()["by_route"]
    assert by_route["generate"] == 0 and by_route["create"] == 0, "an interactive call was made"
    db = tmp_path / "items.tuibatch.db"
    got = rows(db)
    assert all(got[k]["state"] == "done" and got[k]["output"] for k in keys)
    assert [j["state"] for j in jobs(db)] == ["settled"] * 3
    assert [j["item_count"] for j in jobs(db)] == [5, 5, 2]
    for k in keys:
        item = batches["items"][key_label(k)]
        assert item["jobs"] == 1 and item["answered"] == 1
        assert got[k]["run_id"].startswith("batches/") and got[k]["job_id"] in (1, 2, 3)
    prices = load_prices()
    r = got[keys[0]]
    full = prices.cost_of(MODEL, Usage(r["tokens_in"], r["tokens_out"], r["tokens_thought"]))
    assert full and r["cost_usd"] == pytest.approx(full / 2)
    assert sum(j["cost_usd"] for j in jobs(db)) == pytest.approx(
        sum(g["cost_usd"] for g in got.values())
    )


def test_file_source_jobs_upload_and_download(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    keys = write_items(items, 6)
    with SimulatorThread(**TIMINGS) as sim:
        env = cli_env(sim.url, TUIBATCH_BATCH_INLINE_MAX="0")
        out = run_batch(items, sim.url, env=env)
        assert out.returncode == 0, out.stderr
        batches = assert_no_duplicate_job(sim)
        assert batches["files"] == {"uploaded": 1, "downloads": 1}
        assert [j["source"] for j in sim.jobs()] == ["file"]
    got = rows(tmp_path / "items.tuibatch.db")
    assert all(got[k]["state"] == "done" and got[k]["output"] for k in keys)


def test_line_errors_fail_permanent_and_requeue_transient(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    keys = write_items(items, 6)
    bad, flaky, cut = keys[1], keys[2], keys[3]
    with SimulatorThread(**TIMINGS) as sim:
        sim.set_faults(
            [
                {"item": key_label(bad), "fault": "http", "code": 400, "message": "bad", "times": None},
                {"item": key_label(flaky), "fault": "http", "code": 503, "times": 1},
                {"item": key_label(cut), "fault": "finish", "reason": "MAX_TOKENS"},
            ]
        )  # fmt: skip
        out = run_batch(items, sim.url)
        assert out.returncode == 1, out.stderr  # some items failed
        batches = assert_no_duplicate_job(sim)
        assert batches["created"] == 2  # the transient line went into a second job
        assert batches["items"][key_label(flaky)]["jobs"] == 2
        assert batches["items"][key_label(bad)]["jobs"] == 1
    got = rows(tmp_path / "items.tuibatch.db")
    assert got[bad]["state"] == "failed" and got[bad]["err_class"] == "permanent"
    assert "INVALID_ARGUMENT" in got[bad]["err_message"]
    assert got[flaky]["state"] == "done" and got[flaky]["attempts"] == 2
    assert got[cut]["state"] == "failed" and got[cut]["err_class"] == "truncated"
    assert got[cut]["stop_reason"].startswith("MAX_TOKENS") and got[cut]["cost_usd"] > 0
    assert all(got[k]["state"] == "done" for k in (keys[0], keys[4], keys[5]))


@pytest.mark.parametrize("state", ["JOB_STATE_EXPIRED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"])
def test_a_job_that_ends_badly_sends_its_items_again(tmp_path: Path, state: str) -> None:
    items = tmp_path / "items.jsonl"
    keys = write_items(items, 4)
    with SimulatorThread(batch_partial_results=False, **TIMINGS) as sim:
        sim.set_faults(
            [
                {
                    "any": True,
                    "on": "batch_create",
                    "fault": "job_state",
                    "state": state,
                    "seconds": 0.1,
                }
            ]
        )
        out = run_batch(items, sim.url)
        assert out.returncode == 0, out.stderr
        batches = assert_no_duplicate_job(sim)
        assert batches["created"] == 2
    db = tmp_path / "items.tuibatch.db"
    first, second = jobs(db)
    assert first["service_state"] == state and first["state"] == "settled"
    got = rows(db)
    assert all(got[k]["state"] == "done" and got[k]["job_id"] == second["id"] for k in keys)
    assert all(got[k]["attempts"] == 2 for k in keys)


def test_attempt_limit_fails_items_after_repeated_bad_jobs(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    keys = write_items(items, 3)
    with SimulatorThread(batch_partial_results=False, **TIMINGS) as sim:
        rule = {"any": True, "on": "batch_create", "fault": "job_state", "seconds": 0.1}
        sim.set_faults([{**rule, "times": None, "message": "Internal error."}])
        out = run_batch(items, sim.url, "--max-attempts", "2")
        assert out.returncode == 1, out.stderr
        assert assert_no_duplicate_job(sim)["created"] == 2
    got = rows(tmp_path / "items.tuibatch.db")
    for k in keys:
        assert got[k]["state"] == "failed" and got[k]["err_class"] == "attempts"
        assert "FAILED" in got[k]["err_message"]


def test_missing_metadata_is_never_matched_by_position(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    keys = write_items(items, 4)
    with SimulatorThread(
        batch_echo_metadata=False, batch_response_order="reversed", **TIMINGS
    ) as sim:
        out = run_batch(items, sim.url)
        assert out.returncode == 0, out.stderr
        assert_no_duplicate_job(sim)
        sources = [j["source"] for j in sim.jobs()]
    assert sources == ["inline", "file"]  # the retry goes as a file: its lines carry keys
    got = rows(tmp_path / "items.tuibatch.db")
    for k in keys:
        payload = json.loads(got[k]["payload"])
        assert got[k]["state"] == "done" and payload["title"] in got[k]["input"]


# ----------------------------------------------------------------------- bad input


def test_agent_item_in_batch_mode_is_one_line_exit_2(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    write_items(items, 3, extra={1: {"agent": "sim-agent"}})
    out = run_batch(items, "http://127.0.0.1:9")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{items}:2:" in lines[0] and "--mode auto" in lines[0]
    assert not (tmp_path / "items.tuibatch.db").exists()


def test_a_request_over_the_job_limit_is_one_line_exit_2(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    write_items(items, 3, extra={2: {"payload": "x" * 5000}})
    out = run_batch(items, "http://127.0.0.1:9", "--job-bytes", "2000")
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{items}:3:" in lines[0] and "--job-bytes" in lines[0]
    assert not (tmp_path / "items.tuibatch.db").exists()


def test_jobs_screen_cells_show_state_counts_age_and_cost() -> None:
    from tuibatch.store.jobs import JobRow
    from tuibatch.ui.jobs import COLUMNS, job_cells

    job = JobRow(
        id=3, display_name="tuibatch-b1-0003\x1b[31m", name="batches/x", model=MODEL,
        source="inline", file_name=None, state="submitted", service_state="JOB_STATE_RUNNING",
        item_count=40, bytes=1000, created_at=1000.0, updated_at=1000.0, submitted_at=1000.0,
        finished_at=None, error=None, cost_usd=0.25, owner=None, lease_until=None,
    )  # fmt: skip
    cells = job_cells(job, {"running": 38}, now=1090.0)
    assert len(cells) == len(COLUMNS)
    assert cells[0] == "3" and "\x1b" not in cells[1]
    assert cells[2:6] == ("submitted", "running", "40", "38")
    assert cells[7].endswith("ago") and "0.25" in cells[8]


def test_auto_mode_runs_agent_items_interactively_and_model_items_in_jobs(
    tmp_path: Path,
) -> None:
    items = tmp_path / "items.jsonl"
    keys = write_items(items, 5, extra={0: {"agent": "sim-agent"}})
    with SimulatorThread(run_seconds=0.05, **TIMINGS) as sim:
        args = [str(items), "--headless", "--model", MODEL, "--mode", "auto", *FAST]
        out = run_cli(args, env=cli_env(sim.url), timeout=90)
        assert out.returncode == 0, out.stderr
        stats = sim.stats()
    got = rows(tmp_path / "items.tuibatch.db")
    assert all(got[k]["state"] == "done" for k in keys)
    assert got[keys[0]]["job_id"] is None and not got[keys[0]]["run_id"].startswith("batches/")
    assert all(got[k]["job_id"] == 1 for k in keys[1:])
    assert stats["by_route"]["create"] == 1 and stats["batches"]["created"] == 1


def test_output_that_arrives_after_success_is_waited_for(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    keys = write_items(items, 3)
    with SimulatorThread(**TIMINGS) as sim:
        sim.set_faults([{"any": True, "on": "batch_create", "fault": "output_late", "seconds": 1}])
        out = run_batch(items, sim.url)
        assert out.returncode == 0, out.stderr
        assert assert_no_duplicate_job(sim)["created"] == 1
    got = rows(tmp_path / "items.tuibatch.db")
    assert all(got[k]["state"] == "done" and got[k]["attempts"] == 1 for k in keys)
