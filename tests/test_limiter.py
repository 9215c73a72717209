"""The pacer end to end, judged by the simulator's own request log (the CLI, real processes).

The schedule and the learning are tested on an injected clock (test_pacer_schedule.py,
test_pacer_learning.py). Here: a 429 with a delay is honoured by the whole pool, and an
unreachable API pauses the batch. The simulator logs a request when it answers it; a worker
counts it when it lets it go; under load the two can be far apart, so nothing here asserts an
arrival inside a grace period.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path

from conftest import FAST, cli_env, start_cli, wait_until, write_items

from tuibatch.items import key_label
from tuibatch.sim import SimulatorThread
from tuibatch.states import ExitCode

RPM = 120
CONCURRENCY = 6
#: the simulator's quota window
SPAN = 60.0
#: how much longer than a minute the two-process run goes on, so the minute's cap is reached
#: and requests are refused and let in again (the burst cap alone allows a minute's quota in 48 s)
RUN_FOR = SPAN + 4.0


def _first_429_recorded(db: Path) -> float:
    """When the worker recorded the refused attempt (wall clock), from the item's history."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
        (t,) = con.execute(
            "SELECT min(t) FROM events WHERE http_code = 429 OR message LIKE 'rate limited (429%'"
        ).fetchone()
    assert t is not None, "the checkpoint's history has no 429 attempt"
    return float(t)


def test_one_429_holds_the_whole_pool_for_the_announced_delay(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    keys = write_items(items, 24)
    victim = key_label(keys[10])
    delay = 1.5
    args = [
        str(items),
        "--headless",
        "--agent",
        "sim-agent",
        "--concurrency",
        str(CONCURRENCY),
        *FAST,
    ]
    with SimulatorThread(run_seconds=0.3) as sim:
        sim.set_faults(
            [
                {
                    "item": keys[10],
                    "fault": "http",
                    "code": 429,
                    "retry_after": delay,  # the Interactions body carries no RetryInfo
                    "times": 1,
                }
            ]
        )
        proc = start_cli(args, env=cli_env(sim.url))
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == ExitCode.OK, err
        log = sim.requests()
    wall_to_monotonic = time.monotonic() - time.time()

    (i429,) = [i for i, r in enumerate(log) if r["code"] == 429]
    assert log[i429]["item"] == victim
    # the worker hears of the 429 after the simulator logged it, so it holds at least until
    # then + delay
    hold_end = log[i429]["t"] + delay
    after = log[i429 + 1 :]
    comeback = next(r for r in after if r["item"] == victim)
    assert comeback["t"] >= hold_end - 0.02, "the refused item came back before the delay"
    assert comeback["route"] == "create" and comeback["code"] == 200
    # The pool knew of the hold by the time it recorded the refused attempt. From then until the
    # hold ends only launches already on their way can arrive: one request per other worker slot.
    knew = _first_429_recorded(tmp_path / "items.tuibatch.db") + wall_to_monotonic
    # Polls are not held: they may be on another quota, and none of them was refused.
    during = [r for r in after if r["route"] == "create" and knew < r["t"] < hold_end - 0.02]
    assert len(during) <= CONCURRENCY - 1, during
    assert len({r["item"] for r in during}) == len(during), during
    assert victim not in {r["item"] for r in during}


def test_unreachable_api_pauses_the_batch_instead_of_failing_items(tmp_path: Path) -> None:
    """No route to the API: the batch pauses, nothing fails or is in doubt, the worker waits for
    the network (the resume is tested in test_engine_fidelity); Ctrl-C/SIGTERM still stops it."""
    items = tmp_path / "items.jsonl"
    write_items(items, 12)
    db = tmp_path / "items.tuibatch.db"
    proc = start_cli(
        [str(items), "--headless", "--agent", "sim-agent", "--quiet", *FAST],
        env=cli_env("http://127.0.0.1:9"),
    )

    def reason() -> str:
        if not db.exists():
            return ""
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as con:
            try:
                r = con.execute("SELECT v FROM control WHERE k='pause_reason'").fetchone()
            except sqlite3.OperationalError:  # no schema yet
                return ""
        return str(r[0]) if r else ""

    wait_until(lambda: "cannot reach the API" in reason(), timeout=60, what="the pause")
    assert proc.poll() is None, "the worker waits for the network"
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as con:
        failed = con.execute("SELECT count(*) FROM items WHERE state='failed'").fetchone()[0]
        # a refused connection never reached the service: nothing is in doubt
        relaunches = con.execute("SELECT sum(relaunches) FROM items").fetchone()[0]
    assert failed == 0
    assert relaunches == 0
    proc.terminate()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert "cannot reach the API" in out + err
