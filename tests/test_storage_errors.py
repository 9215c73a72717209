"""A full disk under the checkpoint, for real (issue 13 #2): a small tmpfs holds the checkpoint.

Mid-run: exit 4 with one line on stderr, no traceback, every run id the simulator created is in
the checkpoint or in the fallback file; after space is freed, the same command polls the kept
runs (never relaunches them) and finishes. At creation: one line, exit 4, the process exits.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FAST, cli_env, run_cli

from tuibatch.items import key_label
from tuibatch.sim import SimulatorThread
from tuibatch.store.fallback import runids_path


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1.5 MiB tmpfs (needs root / CAP_SYS_ADMIN); unmounted afterwards."""
    where = tmp_path / "small"
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1500k,mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip() or 'mount failed'})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _big_items(path: Path, n: int, size: int) -> list[str]:
    keys = []
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            key = f"big-{i:04d}"
            f.write(json.dumps({"key": key, "payload": {"text": f"{i} " + "x" * size}}) + "\n")
            keys.append(key)
    return keys


def _run_ids(db: Path) -> dict[str, str | None]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return dict(con.execute("SELECT key, run_id FROM items"))
    finally:
        con.close()


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [ln for ln in stderr.splitlines() if "cannot write the checkpoint" in ln]
    assert len(lines) == 1, stderr
    return lines[0]


def test_full_disk_mid_run_keeps_run_ids_and_resumes(tmp_path: Path, small_disk: Path) -> None:
    items = tmp_path / "items.jsonl"
    keys = _big_items(items, 40, 4000)
    db = small_disk / "c.db"
    args = [str(items), "--db", str(db), "--headless", "--agent", "sim-agent", *FAST]
    args += ["--concurrency", "4"]
    with SimulatorThread(run_seconds=0.2) as sim:
        env = cli_env(sim.url)
        out = run_cli(args, env=env, timeout=120)
        assert out.returncode == 4, (out.returncode, out.stderr)
        line = _one_line(out.stderr)
        assert "database or disk is full" in line
        stats = sim.stats()["items"]
        launched = {k: stats[key_label(k)]["runs"] for k in keys if key_label(k) in stats}
        assert launched, "the disk filled before anything was launched: make the batch smaller"
        recorded = _run_ids(db)
        assert sum(1 for k in keys if recorded[k] is None) > 0, "the batch finished: too small"
        kept_file = runids_path(db)
        kept = (
            {
                json.loads(ln)["key"]: json.loads(ln)["run_id"]
                for ln in kept_file.read_text().splitlines()
            }
            if kept_file.exists()
            else {}
        )
        if kept:
            assert f"{len(kept)} run id(s) kept in {kept_file}" in line
        for key, runs in launched.items():
            assert len(runs) == 1, (key, runs)
            assert runs[0] in (recorded[key], kept.get(key)), (key, runs, recorded[key])

        # free space: the same command on a roomy directory polls the kept runs, relaunches none
        roomy = tmp_path / "roomy"
        roomy.mkdir()
        for f in small_disk.iterdir():
            shutil.copy2(f, roomy / f.name)
        db2 = roomy / "c.db"
        args2 = [a if a != str(db) else str(db2) for a in args]
        again = run_cli(args2, env=env, timeout=120)
        assert again.returncode == 0, again.stderr
        assert not runids_path(db2).exists()
        stats = sim.stats()["items"]
    assert all(stats[key_label(k)]["launches"] == 1 for k in keys), stats
    for key in kept:
        assert stats[key_label(key)]["gets"] >= 1
    con = sqlite3.connect(db2)
    states = dict(con.execute("SELECT key, state FROM items"))
    assert all(states[k] == "done" for k in keys), states


def test_full_disk_at_creation_is_one_line_and_exit_4(tmp_path: Path, small_disk: Path) -> None:
    items = tmp_path / "items.jsonl"
    _big_items(items, 60, 30000)  # ~3 copies of 1.8 MB: cannot fit in 1.5 MiB
    db = small_disk / "c.db"
    out = run_cli(
        [str(items), "--db", str(db), "--headless", "--agent", "sim-agent", *FAST],
        env=cli_env(),
        timeout=60,
    )
    assert out.returncode == 4, (out.returncode, out.stderr)
    line = _one_line(out.stderr)
    assert "database or disk is full" in line
    assert "free space and run the same command" in line


def test_kept_run_ids_are_folded_in_and_polled_never_relaunched(tmp_path: Path) -> None:
    """The fallback file on its own, deterministically: a worker dies right after the service
    created a run (its id never committed); the id is in ``<db>.runids.jsonl`` as a run that
    could not write the checkpoint leaves it; the next start polls that run."""
    from conftest import new_batch
    from test_crash import run_crashing

    from tuibatch.store.fallback import KeptRun, keep

    _items, db, keys, args = new_batch(tmp_path, 3, "--concurrency", "1")
    with SimulatorThread(run_seconds=0.05) as sim:
        env = cli_env(sim.url)
        crashed = run_crashing("after_launch:1", args, env)
        assert crashed.returncode == 137, crashed.stderr
        runs = sim.stats()["items"][key_label(keys[0])]["runs"]
        assert len(runs) == 1 and _run_ids(db)[keys[0]] is None
        keep(db, [KeptRun(keys[0], 1, runs[0], "sim-agent", 1, 0.0)])
        again = run_cli(args, env=env)
        assert again.returncode == 0, again.stderr
        assert "1 run id(s) kept aside by an earlier run" in again.stderr
        stats = sim.stats()["items"]
    assert not runids_path(db).exists()
    assert all(stats[key_label(k)]["launches"] == 1 for k in keys), stats
    assert stats[key_label(keys[0])]["gets"] >= 1
    con = sqlite3.connect(db)
    rows = {
        k: (s, r, n)
        for k, s, r, n in con.execute("SELECT key, state, run_id, relaunches FROM items")
    }
    assert rows[keys[0]] == ("done", runs[0], 0)
    assert all(rows[k][0] == "done" for k in keys)
