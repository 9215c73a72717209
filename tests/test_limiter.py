"""The shared pace, judged by the simulator's own request log: what the design guarantees.

The simulator logs a request when it answers it; a worker counts it when it lets it go. Under
load the two can be far apart, so no test here asserts "zero 429s" or an arrival inside a
grace period. What the design does guarantee, whatever the load:

* every 429 is honoured: the item it answered does not come back before the delay the service
  announced has passed, and once the pool has heard of it, nothing new leaves until then;
* the workers never let more than the quota go in any window, so the service never sees more
  than the quota plus what was already on its way (one request per worker slot).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from conftest import FAST, cli_env, run_cli, start_cli, wait_until, write_items

from tuibatch.items import key_label
from tuibatch.limiter import Pacer
from tuibatch.sim import SimulatorThread
from tuibatch.states import ExitCode

RPM = 120
CONCURRENCY = 6
#: the simulator's quota window
SPAN = 60.0
#: how much longer than a minute the two-process run goes on, so the minute's cap is reached
#: and requests are refused and let in again (the burst cap alone allows a minute's quota in 48 s)
RUN_FOR = SPAN + 4.0


def _max_in_window(times: Sequence[float], span: float) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - span:
            j += 1
        best = max(best, i - j + 1)
    return best


def _early_comebacks(log: list[dict[str, Any]], rpm: int, until: float) -> list[str]:
    """Quota 429s whose item came back before the delay the simulator announced with it.

    With ``enforcement="sliding"`` the simulator refuses a request when the last *rpm* requests
    it accepted are all inside the minute, and announces the delay until the oldest of them
    leaves it: a slot frees at that request's time + 60 s. The log is in the order requests
    were checked (a handler does not yield between its quota check and its answer), and a log
    time is taken a little after the check the delay is measured from: hence ``slack``.
    """
    slack = 0.25
    accepted: list[float] = []
    early = []
    for i, r in enumerate(log):
        if r["code"] == 200:
            accepted.append(r["t"])
        if r["code"] != 429 or r["t"] >= until:
            continue
        assert len(accepted) >= rpm, f"request {i}: a 429 with only {len(accepted)} accepted"
        frees_at = accepted[-rpm] + SPAN
        comeback = next((s for s in log[i + 1 :] if s["item"] == r["item"]), None)
        if comeback is not None and comeback["t"] < until and comeback["t"] < frees_at - slack:
            early.append(
                f"request {i} ({r['route']} of {r['item']}) was refused until {frees_at:.3f};"
                f" the item came back at {comeback['t']:.3f} ({comeback['route']})"
            )
    return early


def test_two_processes_share_the_rpm_and_honour_every_429(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    write_items(items, 400)
    args = [
        str(items),
        "--headless",
        "--agent",
        "sim-agent",
        "--concurrency",
        str(CONCURRENCY),
        "--rpm",
        str(RPM),
        *FAST,
    ]
    with SimulatorThread(run_seconds=0.2, rpm=RPM, enforcement="sliding", polls_count=True) as sim:
        env = cli_env(sim.url)
        procs = [start_cli(args, env=env) for _ in range(2)]

        def minute_covered() -> bool:
            for p in procs:
                if p.poll() is not None:
                    pytest.fail(f"a worker exited early ({p.returncode}): {p.communicate()[1]}")
            times = [r["t"] for r in sim.requests()]
            return bool(times) and max(times) - min(times) >= RUN_FOR

        wait_until(minute_covered, timeout=300, interval=0.5, what=f"{RUN_FOR:g} s of requests")
        stopped_at = time.monotonic()
        for p in procs:
            p.terminate()
        for p in procs:
            _out, err = p.communicate(timeout=60)
            assert p.returncode == ExitCode.INTERRUPTED, err
        log = sim.requests()

    assert {r["code"] for r in log} <= {200, 429, None}, "only quota refusals were expected"
    # every 429 honoured, by the worker that got it
    assert _early_comebacks(log, RPM, stopped_at) == []
    # the service never saw more than the quota plus one request in flight per worker slot
    # (a request taken inside one window can arrive inside the next)
    arrivals = [r["t"] for r in log]
    assert _max_in_window(arrivals, SPAN) <= RPM + 2 * CONCURRENCY
    # … and the quota is really used, by both processes together
    accepted = [r["t"] for r in log if r["code"] == 200]
    assert _max_in_window(accepted, SPAN) >= 0.85 * RPM


def _first_429_recorded(db: Path) -> float:
    """When the worker recorded the refused attempt (wall clock), from the item's history."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
        (t,) = con.execute("SELECT min(t) FROM events WHERE http_code = 429").fetchone()
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
                    "retry_delay": f"{delay}s",
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
    # hold ends only what was already on its way can arrive: one request per other worker slot.
    knew = _first_429_recorded(tmp_path / "items.tuibatch.db") + wall_to_monotonic
    during = [r for r in after if knew < r["t"] < hold_end - 0.02]
    assert len(during) <= CONCURRENCY - 1, during
    assert len({r["item"] for r in during}) == len(during), during
    assert victim not in {r["item"] for r in during}


def _per_minute_429(delay: float):  # type: ignore[no-untyped-def]
    from tuibatch.policy import Failure, Kind

    return Failure(
        Kind.TRANSIENT,
        "quota",
        code=429,
        status="RESOURCE_EXHAUSTED",
        retry_delay=delay,
        quota_id="GenerateRequestsPerMinutePerProjectPerModel",
    )


def _sent(pacer: Pacer, times: Iterable[float]) -> None:
    """What the pool sent, as if at these times (oldest first)."""
    for t in times:
        pacer.sent.take(t)


async def test_a_per_minute_429_teaches_the_quota_only_when_our_own_requests_explain_it() -> None:
    now = time.monotonic()
    # 100 requests spread over the last 60 s, and the service says "retry in 6 s":
    # the quota is about what we sent in the last 54 s
    pacer = Pacer(concurrency=4)
    _sent(pacer, (now - 59.5 + i * 0.595 for i in range(100)))
    await pacer.on_failure(_per_minute_429(6.0))
    assert pacer.learned is not None
    assert 85 <= pacer.learned.limit <= 92
    assert 5.0 <= pacer.holding() <= 6.0
    # 100 requests all sent in the last 5 s and "retry in 2 s": none of ours ages out in 2 s,
    # so our own requests do not explain it (someone else shares the quota): hold, learn nothing
    fresh = Pacer(concurrency=4)
    _sent(fresh, (now - 5 + i * 0.05 for i in range(100)))
    await fresh.on_failure(_per_minute_429(2.0))
    assert fresh.learned is None and fresh.holding() > 1.5
    # a 429 without a per-minute QuotaFailure only holds
    other = Pacer(concurrency=4)
    _sent(other, (now - 59.5 + i * 0.595 for i in range(100)))
    f = _per_minute_429(1.0)
    f.quota_id = None
    await other.on_failure(f)
    assert other.learned is None


def test_unreachable_api_pauses_the_batch_instead_of_failing_items(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    write_items(items, 12)
    out = run_cli(
        [str(items), "--headless", "--agent", "sim-agent", "--quiet", *FAST],
        env=cli_env("http://127.0.0.1:9"),
    )
    assert out.returncode == ExitCode.PAUSED
    assert "cannot reach the API" in out.stderr
    with closing(sqlite3.connect(tmp_path / "items.tuibatch.db")) as con:
        pending = con.execute("SELECT count(*) FROM items WHERE state='pending'").fetchone()[0]
        # a refused connection never reached the service: nothing is in doubt
        relaunches = con.execute("SELECT sum(relaunches) FROM items").fetchone()[0]
    assert pending == 12
    assert relaunches == 0
