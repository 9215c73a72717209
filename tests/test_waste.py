"""Where the waste went and what failed, by cause: in `status` and at the end of a headless run."""

from __future__ import annotations

from pathlib import Path

from conftest import cli_env, export, new_batch, run_cli

from tuibatch.items import key_label
from tuibatch.sim import SimulatorThread


def test_failures_and_waste_are_summed_up_by_cause(tmp_path: Path, sim: SimulatorThread) -> None:
    sim.set_faults(
        [
            {"item": "item-0001", "fault": "run_status", "status": "idle", "times": None},
            {
                "item": "item-0002",
                "fault": "run_failed",
                "message": "research step crashed",
                "times": None,
            },
            {"item": "item-0003", "fault": "run_failed", "message": "another crash", "times": None},
            {"item": "item-0004", "fault": "lost", "on": "get", "times": None},
        ]
    )
    _items, db, _keys, args = new_batch(tmp_path, 6, "--stuck-after", "0.3")
    env = cli_env(sim.url)
    out = run_cli(args, env=env, timeout=60)
    assert out.returncode == 1, out.stderr  # failed and lost items, not paused
    rows = {r["key"]: r for r in export(db)}
    assert len(rows) == 6, rows.keys()
    assert rows["item-0000"]["status"] == "done" and rows["item-0005"]["status"] == "done"
    assert rows["item-0001"]["status"] == "failed" and rows["item-0004"]["status"] == "lost"
    # a stuck run reported no usage: its cost is unknown (null), not $0
    assert rows["item-0001"]["cost_usd"] is None and rows["item-0001"]["error"]["class"] == "stuck"
    for key in ("item-0001", "item-0002", "item-0003", "item-0004"):
        assert sim.stats()["items"][key_label(key)]["launches"] == 1, key  # none launched twice

    # the end of the run says what to fix: one line per cause, with a count and an example
    err = out.stderr
    assert "failed: 2 × run failed — e.g. item-0002: run ended failed" in err
    assert "failed: 1 × stuck run — e.g. item-0001: the run is idle" in err
    assert "failed: 1 × lost run — e.g. item-0004: run " in err
    assert "wasted by cause: " in err and "run failed $" in err
    assert "stuck run cost unknown (1)" in err and "lost run cost unknown (1)" in err

    status = run_cli(["status", "--db", str(db)], env=env)
    assert status.returncode == 0
    for line in (
        "failed: 2 × run failed",
        "failed: 1 × stuck run",
        "failed: 1 × lost run",
        "wasted by cause: ",
    ):
        assert line in status.stdout, line
    # the waste by cause adds up to the wasted total shown above it
    wasted_line = next(x for x in status.stdout.splitlines() if x.startswith("cost $"))
    total = float(wasted_line.split("wasted $")[1].split(";")[0])
    by_cause = next(x for x in status.stdout.splitlines() if x.startswith("wasted by cause: "))
    parts = [
        p.split("$")[1].split(" ")[0] for p in by_cause.split(": ", 1)[1].split(", ") if "$" in p
    ]
    assert abs(sum(float(p) for p in parts) - total) < 1e-4
    assert total > 0
    assert "1 item(s) cost unknown: no usage reported" in status.stdout
