"""The shared pace, judged by the simulator's own request log (not timed: counts and order)."""

from __future__ import annotations

import time
from pathlib import Path

from conftest import FAST, cli_env, start_cli, write_items

from tuibatch.items import key_label
from tuibatch.sim import SimulatorThread


def _max_in_window(times: list[float], span: float) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - span:
            j += 1
        best = max(best, i - j + 1)
    return best


def test_two_processes_never_exceed_the_rpm_over_any_60s_window(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    write_items(items, 400)
    rpm = 120
    args = [str(items), "--headless", "--agent", "sim-agent", "--concurrency", "6", "--rpm", str(rpm), *FAST]
    with SimulatorThread(run_seconds=0.2, rpm=rpm) as sim:
        env = cli_env(sim.url)
        procs = [start_cli(args, env=env) for _ in range(2)]
        time.sleep(66)
        for p in procs:
            p.terminate()
        for p in procs:
            _out, err = p.communicate(timeout=20)
            assert p.returncode == 130, err
        log = sim.requests()
    accepted = [r["t"] for r in log if r["code"] == 200]
    assert not [r for r in log if r["code"] == 429], "the limiter let a request run into the quota"
    assert _max_in_window(accepted, 60.0) <= rpm
    # … and the quota is really used, by both processes together
    first = min(accepted)
    assert sum(1 for t in accepted if t < first + 60) >= 0.85 * rpm


def test_one_429_pauses_the_whole_pool_once(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    keys = write_items(items, 40)
    victim = keys[10]
    args = [str(items), "--headless", "--agent", "sim-agent", "--concurrency", "6", *FAST]
    with SimulatorThread(run_seconds=0.3) as sim:
        sim.set_faults([{"item": victim, "fault": "http", "code": 429, "retry_delay": "1.5s", "times": 1}])
        proc = start_cli(args, env=cli_env(sim.url))
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        log = sim.requests()
    throttled = [r for r in log if r["code"] == 429]
    assert len(throttled) == 1
    t429 = throttled[0]["t"]
    # a request already inside the SDK when the 429 arrived (~25 ms of CPU to build) cannot be recalled
    during = [r for r in log if t429 + 0.15 < r["t"] < t429 + 1.45]
    assert during == [], f"{len(during)} requests went out while the pool should hold"
    after = [r for r in log if r["t"] >= t429 + 1.45]
    assert any(r["item"] == key_label(victim) and r["route"] == "create" and r["code"] == 200 for r in after)
