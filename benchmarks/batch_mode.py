"""Batch mode against interactive mode on the simulator, and 100k items packed into jobs.

    .venv/bin/python benchmarks/batch_mode.py [--items 10000] [--big 100000]

Part 1: the same N model items, once interactively (``generate_content`` per item) and once
through Batch API jobs: cost (the batch rate must be half), client CPU seconds (the tuibatch
process only, from ``wait4``), requests the simulator saw, wall time.
Part 2: ``--big`` items in batch mode: time from start to every job created (their service names
recorded in the checkpoint), to the end, and the tuibatch process's peak RSS.
The simulator runs in its own process (``_common.sim_process``).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import bench_env, sim_process, sim_stats  # noqa: E402

MODEL = "gemini-2.5-flash"
FAST = ["--poll-interval", "0.5", "--poll-max", "2", "--progress-every", "3600", "--quiet"]


def write_items(path: Path, n: int) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"key": f"it-{i:06d}", "payload": f"Summarise paper {i}."}) + "\n")


def run(
    argv: list[str], env: dict[str, str], db: Path, watch_jobs: bool = False
) -> dict[str, float]:
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuibatch", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    created_at = None
    if watch_jobs:
        while proc.poll() is None and created_at is None:
            time.sleep(0.2)
            try:
                con = sqlite3.connect(db, timeout=1)
                (planned,) = con.execute("SELECT count(*) FROM jobs WHERE name IS NULL").fetchone()
                (named,) = con.execute(
                    "SELECT count(*) FROM jobs WHERE name IS NOT NULL"
                ).fetchone()
                (pending,) = con.execute(
                    "SELECT count(*) FROM items WHERE state='pending'"
                ).fetchone()
                con.close()
                if named and not planned and not pending:
                    created_at = time.monotonic() - t0
            except sqlite3.Error:
                pass
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"tuibatch exited {proc.returncode}: {err[-2000:]}")
    out = {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,
    }
    if created_at is not None:
        out["all_jobs_created_s"] = created_at
    return out


def totals(db: Path) -> dict[str, float]:
    con = sqlite3.connect(db)
    done, cost = con.execute("SELECT sum(state='done'), sum(cost_usd) FROM items").fetchone()
    jobs = con.execute("SELECT count(*) FROM jobs").fetchone()[0]
    con.close()
    return {"done": done, "cost_usd": cost, "jobs": jobs}


def compare(n: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="tb-batch-bench-"))
    items = tmp / "items.jsonl"
    write_items(items, n)
    rows = {}
    for mode in ("interactive", "batch"):
        db = tmp / f"{mode}.db"
        with sim_process("--batch-pending", "1", "--batch-running", "3") as url:
            argv = [str(items), "--db", str(db), "--headless", "--model", MODEL, "--mode", mode,
                    "--concurrency", "32", *FAST]  # fmt: skip
            r = run(argv, bench_env(url), db)
            r.update(totals(db))
            r["requests"] = sim_stats(url)["requests"]
        rows[mode] = r
    print(f"\n{n} items, {MODEL}")
    print("| mode | done | cost USD | client CPU s | requests | wall s | jobs |")
    print("|---|---|---|---|---|---|---|")
    for mode, r in rows.items():
        print(f"| {mode} | {r['done']} | {r['cost_usd']:.4f} | {r['cpu_s']:.1f} |"
              f" {r['requests']} | {r['wall_s']:.1f} | {r['jobs']} |")  # fmt: skip
    ratio = rows["batch"]["cost_usd"] / rows["interactive"]["cost_usd"]
    print(f"batch / interactive cost: {ratio:.3f}")


def big(n: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="tb-batch-big-"))
    items = tmp / "items.jsonl"
    write_items(items, n)
    db = tmp / "big.db"
    with sim_process("--batch-pending", "1", "--batch-running", "5") as url:
        argv = [str(items), "--db", str(db), "--headless", "--model", MODEL, "--mode", "batch",
                *FAST]  # fmt: skip
        r = run(argv, bench_env(url), db, watch_jobs=True)
        r.update(totals(db))
        r["requests"] = sim_stats(url)["requests"]
    print(f"\n{n} items in batch mode (5,000 per job)")
    for k, v in r.items():
        print(f"- {k}: {v:.2f}" if isinstance(v, float) else f"- {k}: {v}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--items", type=int, default=10_000)
    p.add_argument("--big", type=int, default=100_000)
    a = p.parse_args()
    if a.items:
        compare(a.items)
    if a.big:
        big(a.big)


if __name__ == "__main__":
    main()
