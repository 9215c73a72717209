"""A checkpoint locked by another process is waited for, never a failed paid item (issue 13 #4).

A second sqlite3 connection holds ``BEGIN IMMEDIATE`` for several busy timeouts (shortened to
0.3 s with ``TUIBATCH_BUSY_SECONDS``) while the item's run completes on the simulator.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from conftest import cli_env, new_batch, start_cli, wait_until

from tuibatch.items import key_label
from tuibatch.sim import SimulatorThread


def _state(db: Path) -> str | None:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            r = con.execute("SELECT state, run_id FROM items").fetchone()
        finally:
            con.close()
    except sqlite3.OperationalError:
        return None
    return None if r is None or r[1] is None else str(r[0])


def test_a_locked_checkpoint_waits_and_the_paid_item_is_done(tmp_path: Path) -> None:
    _items, db, keys, args = new_batch(tmp_path, 1)
    with SimulatorThread(run_seconds=1.0) as sim:
        proc = start_cli(args, env=cli_env(sim.url, TUIBATCH_BUSY_SECONDS="0.3"))
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
        reader.start()
        wait_until(lambda: _state(db) == "running", timeout=60, what="the run id recorded")
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            # the run completes on the service while the checkpoint is locked ...
            wait_until(
                lambda: sim.stats()["items"][key_label(keys[0])]["completed"] >= 1,
                timeout=30,
                what="the run to complete",
            )
            # ... and the worker waits for the lock instead of failing the item
            wait_until(
                lambda: any("waiting for the checkpoint" in ln for ln in lines),
                timeout=30,
                what="the worker to say it waits for the checkpoint",
            )
            assert proc.poll() is None
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        proc.wait(timeout=60)
        reader.join(timeout=10)
        err = proc.stderr.read() if proc.stderr else ""
        assert proc.returncode == 0, err
        stats = sim.stats()["items"][key_label(keys[0])]
    con = sqlite3.connect(db)
    state, err_message = con.execute("SELECT state, err_message FROM items").fetchone()
    assert (state, err_message) == ("done", None)
    assert stats["launches"] == 1
    text = "".join(lines)
    assert text.count("waiting for the checkpoint (locked by another process)") == 1, text
    assert "the checkpoint is free again" in text
    assert "database is locked" not in text + err
