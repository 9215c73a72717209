"""Control from a second process while a worker runs: the checkpoint is the channel."""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from conftest import FAST, cli_env, export, new_batch, run_cli, start_cli, write_items

from tuibatch.items import key_label
from tuibatch.sim import SimulatorThread


def _states(db: Path) -> dict[str, str]:
    """key → state; empty while the worker is still creating the checkpoint."""
    if not db.exists():
        return {}
    try:
        with closing(sqlite3.connect(db)) as con:
            return dict(con.execute("SELECT key, state FROM items").fetchall())
    except sqlite3.OperationalError:
        return {}


def _creates(sim: SimulatorThread) -> int:
    return int(sim.stats()["by_route"].get("create", 0))


def _wait(pred, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_pause_resume_skip_and_retry_from_another_terminal(tmp_path: Path) -> None:
    items, db, keys, args = new_batch(tmp_path, 16, "--concurrency", "2")
    # keys[2] and keys[3] run for a minute: once both are running, the two slots are taken and
    # the worker cannot claim anything until one of them is skipped.
    slow, other_slow = keys[2], keys[3]
    with SimulatorThread(run_seconds=0.4) as sim:
        sim.set_faults(
            [
                {"item": keys[15], "fault": "http", "code": 400, "times": 1},
                {"item": slow, "fault": "slow", "seconds": 60},
                {"item": other_slow, "fault": "slow", "seconds": 60},
            ]
        )
        worker = start_cli(args, env=cli_env(sim.url))
        try:
            _wait(lambda: _states(db).get(slow) == _states(db).get(other_slow) == "running")
            assert run_cli(["pause", "--db", str(db)]).returncode == 0
            # skip of a running item cancels it on the service. The worker reads the pause and the
            # cancel requests in the same control tick, so once the second skip (written after the
            # first cancel was seen) is cancelled too, the worker has read the pause.
            for key in (slow, other_slow):
                assert "cancelling" in run_cli(["skip", "--db", str(db), key]).stdout
                _wait(lambda key=key: _states(db)[key] == "skipped")  # type: ignore[misc]
            # whatever it claimed before that tick is polled to the end, not abandoned
            _wait(lambda: not {"claimed", "running"} & set(_states(db).values()))
            launched = _creates(sim)
            assert "paused" in run_cli(["status", "--db", str(db)]).stdout
            # skip a pending item while paused
            pending = [k for k, s in _states(db).items() if s == "pending"]
            out = run_cli(["skip", "--db", str(db), pending[0]])
            assert out.returncode == 0 and "skipped" in out.stdout
            assert _creates(sim) == launched, "a paused batch launched"
            assert run_cli(["resume", "--db", str(db)]).returncode == 0
            _out, err = worker.communicate(timeout=60)
            assert worker.returncode == 1, err  # the 400 item failed
        finally:
            if worker.poll() is None:
                worker.kill()
        stats = sim.stats()
        assert stats["items"][key_label(slow)]["cancels"] == 1
        assert key_label(pending[0]) not in stats["items"], "a skipped item was launched"
        states = _states(db)
        assert states[keys[15]] == "failed"
        # retry --failed from another process puts it back; the next run finishes it
        out = run_cli(["retry", "--db", str(db), "--failed"])
        assert out.returncode == 0 and "1 item(s)" in out.stdout
        out = run_cli(args, env=cli_env(sim.url))
        assert out.returncode == 0, out.stderr
        rec = {r["key"]: r for r in export(db)}
        assert rec[keys[15]]["status"] == "done" and rec[keys[15]]["attempts"] == 2  # history kept
        assert rec[slow]["status"] == "skipped" and rec[pending[0]]["status"] == "skipped"
        with closing(sqlite3.connect(db)) as con:
            attempts = [
                n
                for (n,) in con.execute(
                    "SELECT DISTINCT attempt FROM events WHERE seq=(SELECT seq FROM items WHERE key=?)"
                    " AND kind='attempt' ORDER BY attempt",
                    (keys[15],),
                )
            ]
        assert attempts == [1, 2]


def test_status_export_and_exit_codes(tmp_path: Path, sim) -> None:
    items = tmp_path / "items.jsonl"
    db = tmp_path / "items.tuibatch.db"
    keys = write_items(items, 5)
    sim.set_faults([{"item": keys[1], "fault": "run_failed", "times": None}])
    out = run_cli(
        [str(items), "--headless", "--agent", "sim-agent", *FAST[:-2], "--progress-every", "0.2"],
        env=cli_env(sim.url),
    )
    assert out.returncode == 1
    last = out.stdout.strip().splitlines()[-1]
    assert "4/5 done, 1 failed" in last and "items/min" in last and "$" in last
    status = run_cli(["status", "--db", str(db)]).stdout
    assert "done  4" in status and "failed  1" in status and "cost $" in status
    exported = export(db)
    assert [r["key"] for r in exported] == keys  # the items' order
    assert set(exported[0]) >= {"key", "status", "output", "error", "attempts", "usage", "cost_usd"}
    assert (
        exported[1]["status"] == "failed" and "run ended failed" in exported[1]["error"]["message"]
    )
    assert exported[0]["usage"]["input_tokens"] > 0 and exported[0]["cost_usd"] > 0
    out_file = tmp_path / "out.jsonl"
    assert run_cli(["export", "--db", str(db), "-o", str(out_file)]).returncode == 0
    assert [json.loads(x)["key"] for x in out_file.read_text().splitlines()] == keys


def test_unknown_price_is_never_a_silent_zero(tmp_path: Path, sim) -> None:
    items = tmp_path / "items.jsonl"
    db = tmp_path / "items.tuibatch.db"
    write_items(items, 2)
    prices = tmp_path / "prices.json"
    prices.write_text('{"agents": {"sim-agent": "no-such-model"}}')
    out = run_cli(
        [str(items), "--headless", "--agent", "sim-agent", "--prices", str(prices), *FAST],
        env=cli_env(sim.url),
    )
    assert out.returncode == 0, out.stderr
    assert "price unknown" in out.stdout.splitlines()[-1]
    assert "unknown price" in run_cli(["status", "--db", str(db)]).stdout
    assert all(r["cost_usd"] is None and r["usage"]["output_tokens"] > 0 for r in export(db))


def test_dry_run_estimates_and_launches_nothing(tmp_path: Path, sim) -> None:
    items = tmp_path / "items.jsonl"
    write_items(items, 10, extra={3: {"model": "mystery-model"}})
    out = run_cli([str(items), "--dry-run", "--agent", "sim-agent"], env=cli_env(sim.url))
    assert out.returncode == 0, out.stderr
    assert "10 items to run" in out.stdout and "estimate" in out.stdout
    assert "price unknown for: mystery-model" in out.stdout
    assert sim.stats()["requests"] == 0
    assert not (tmp_path / "items.tuibatch.db").exists()


def test_budget_pauses_the_batch(tmp_path: Path, sim) -> None:
    items = tmp_path / "items.jsonl"
    write_items(items, 30)
    out = run_cli(
        [
            str(items),
            "--headless",
            "--agent",
            "sim-agent",
            "--concurrency",
            "1",
            "--budget",
            "0.0005",
            *FAST,
        ],
        env=cli_env(sim.url),
    )
    assert out.returncode == 3
    assert "budget reached" in out.stderr
    states = _states(tmp_path / "items.tuibatch.db")
    assert "failed" not in states.values()
    assert 0 < list(states.values()).count("done") < 30


def test_vertex_without_credentials_pauses_instead_of_failing(tmp_path: Path) -> None:
    from conftest import run_cli

    items = tmp_path / "items.jsonl"
    write_items(items, 4)
    env = cli_env(
        "http://127.0.0.1:9",
        GOOGLE_GENAI_USE_VERTEXAI="1",
        GOOGLE_CLOUD_PROJECT="demo-project",
        GOOGLE_CLOUD_LOCATION="us-central1",
        HOME=str(tmp_path),
        CLOUDSDK_CONFIG=str(tmp_path / "gcloud"),
    )
    env.pop("GEMINI_API_KEY")
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    out = run_cli([str(items), "--headless", "--agent", "sim-agent", "--quiet", *FAST], env=env)
    assert out.returncode == 3, out.stderr
    assert "credentials" in out.stderr and "Traceback" not in out.stderr
    assert _states(tmp_path / "items.tuibatch.db") == dict.fromkeys(
        [f"item-{i:04d}" for i in range(4)], "pending"
    )


def test_a_read_of_the_control_table_never_undoes_a_pause_written_meanwhile(
    tmp_path: Path,
) -> None:
    """The worker's 0.3 s control watch reads the table while the engine pauses the batch (a
    budget reached, say): the read began first and answers "not paused". It must not win, or the
    next item is claimed and paid for past the budget (seen once under load)."""
    import asyncio

    from tuibatch.engine.control import Control
    from tuibatch.limiter import Pacer
    from tuibatch.states import PauseKind
    from tuibatch.store import Store

    async def go() -> tuple[bool, bool]:
        store = await Store.open(tmp_path / "c.db", create=True)
        try:
            ctl = Control(store, Pacer(concurrency=1))
            await ctl.read()
            reading = asyncio.create_task(ctl.read())
            await asyncio.sleep(0)  # the read is at the store, and answers "not paused" ...
            await ctl.set_pause("budget reached", PauseKind.BATCH)  # ... after this pause
            await reading
            after_overlap = ctl.pause.active
            await ctl.read()  # a read that starts after the write sees it
            return after_overlap, ctl.pause.active and ctl.batch_paused
        finally:
            await store.close()

    assert asyncio.run(go()) == (True, True)
