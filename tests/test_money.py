"""Honest money: what each run cost, as the service reported it; unknown when it reported nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import cli_env, export, new_batch, run_cli
from test_engine_fidelity import go
from test_errors import K0

from tuibatch.pricing import load_prices
from tuibatch.sim import SimulatorThread
from tuibatch.usage import Usage


async def test_cached_tool_use_and_grounding_are_billed_as_reported(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
    plain = await go(tmp_path / "a", sim, [])
    shaped = await go(
        tmp_path / "b",
        sim,
        [
            {
                "item": K0,
                "fault": "usage",
                "cached_tokens": 8,
                "tool_use_tokens": 500,
                "grounding": {"google_search": 3},
            }
        ],
    )
    p, s = plain.rows[K0], shaped.rows[K0]
    assert p.state == s.state == "done" and s.usage_known == 1
    prices = load_prices()
    expected = prices.cost_of(
        "sim-agent",
        Usage(
            input_tokens=s.tokens_in,
            output_tokens=s.tokens_out,
            thought_tokens=s.tokens_thought,
            cached_tokens=8,
            tool_use_tokens=500,
            grounding_calls=3,
        ),
    )
    assert expected is not None and s.cost_usd == pytest.approx(expected)
    assert s.cost_usd > p.cost_usd  # the tool-use tokens and the searches are not free


def test_budget_with_runs_that_report_no_usage_pauses_at_the_worst_case(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    worst = load_prices().worst_case("sim-agent")
    assert worst is not None
    sim.set_faults([{"any": True, "fault": "usage", "usage": "none", "times": None}])
    _items, db, _keys, args = new_batch(
        tmp_path, 4, "--concurrency", "1", "--budget", f"{worst * 1.5:.6f}"
    )
    env = cli_env(sim.url)
    out = run_cli(args, env=env, timeout=60)
    assert out.returncode == 3, out.stderr
    assert "budget reached" in out.stderr and "without usage at the worst case" in out.stderr
    rows = export(db)
    done = [r for r in rows if r["status"] == "done"]
    assert len(done) == 2 and all(r["cost_usd"] is None for r in done)  # unknown, not $0
    assert sum(s["launches"] for s in sim.stats()["items"].values()) == 2
    status = run_cli(["status", "--db", str(db)], env=env)
    assert "2 item(s) cost unknown: no usage reported" in status.stdout
