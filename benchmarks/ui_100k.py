"""Benchmark: the app on a 100k-item checkpoint while a real worker completes items.

Measures first paint (app start → first frame with data), peak RSS of the UI process
(VmHWM), and key → screen latency (``j`` pressed → the table line under the new cursor
rendered) while a headless worker in another process finishes items against the simulator
(itself a third process, so neither pollutes the UI's RSS or CPU).

    .venv/bin/python benchmarks/ui_100k.py [--items 100000] [--presses 60]

``--idle-watch N`` measures instead what an idle ``watch`` costs: the app in watch mode on an
N-item checkpoint that no worker changes, the UI process's CPU seconds over ``--idle-seconds``
(20 s) once the first frame is up. An idle screen should cost what changed, not what exists.

    .venv/bin/python benchmarks/ui_100k.py --idle-watch 200000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tuibatch.cli import run_options
from tuibatch.items import load_items
from tuibatch.store import Store
from tuibatch.ui.app import BatchApp
from tuibatch.ui.worker import WorkerProcess


def vm_hwm_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def build(tmp: Path, n: int, pending: int) -> tuple[Path, Path, float]:
    items = tmp / "big.jsonl"
    with open(items, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(
                json.dumps({"key": f"doc-{i:06d}", "payload": {"text": f"document number {i}"}})
                + "\n"
            )
    db = tmp / "big.tuibatch.db"
    t0 = time.perf_counter()
    store = await Store.open(db, create=True)
    await store.sync_items(load_items(items))
    now = time.time()
    await store.transaction(
        lambda con: con.execute(
            "UPDATE items SET state='done', attempts=1, tokens_in=40, tokens_out=200, tokens_thought=300,"
            " cost_usd=0.0012, output='{\"summary\": \"ok\"}', run_id='int_' || seq,"
            " started_at=? - (? - seq) * 0.01, finished_at=? - (? - seq) * 0.01 + 2.5 WHERE seq < ?",
            (now - 3600, n, now - 3600, n, n - pending),
        )
    )
    await store.close()
    return items, db, time.perf_counter() - t0


def start_sim(run_seconds: float) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuibatch", "sim", "--run-seconds", str(run_seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, line.rsplit(" ", 1)[-1].strip()


async def measure(db: Path, worker: WorkerProcess, presses: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    app = BatchApp(db, worker=worker, poll_interval=0.25)
    out: dict[str, Any] = {}
    async with app.run_test(size=(120, 40)) as pilot:
        await asyncio.wait_for(app.loaded.wait(), 60)
        await pilot.pause()
        out["first_paint_s"] = time.perf_counter() - t0
        out["rss_after_paint_mb"] = vm_hwm_mb()
        table = app.table
        rendered: dict[int, float] = {}
        original = table.render_line

        def spy(y: int) -> Any:
            index = int(table.scroll_offset.y) + y - 1
            if index == table.cursor and index not in rendered:
                rendered[index] = time.perf_counter()
            return original(y)

        table.render_line = spy  # type: ignore[method-assign]
        # wait for the worker to be in full swing
        assert app.store is not None
        start_done = app.snap.totals.counts.get("done", 0)
        await pilot.pause(3.0)
        t_start = time.perf_counter()
        done_start = app.snap.totals.counts.get("done", 0)
        lat: list[float] = []
        await pilot.press("g")
        for i in range(presses):
            rendered.clear()
            target = table.cursor + 1
            t = time.perf_counter()
            await pilot.press("j")
            while target not in rendered and time.perf_counter() - t < 2:
                await asyncio.sleep(0.001)
            if target in rendered:
                lat.append(rendered[target] - t)
            await asyncio.sleep(0.1 if i % 3 else 0.27)  # land between and on top of polls
        elapsed = time.perf_counter() - t_start
        done_end = app.snap.totals.counts.get("done", 0)
        out["worker_items_per_s"] = (done_end - done_start) / elapsed
        out["done_during_setup"] = done_start - start_done
        lat.sort()
        out["presses_measured"] = len(lat)
        out["key_latency_ms_median"] = statistics.median(lat) * 1000
        out["key_latency_ms_p95"] = lat[int(len(lat) * 0.95) - 1] * 1000
        out["key_latency_ms_max"] = lat[-1] * 1000
        out["rss_peak_mb"] = vm_hwm_mb()
    return out


async def idle_watch(db: Path, seconds: float) -> dict[str, Any]:
    """CPU seconds the watch screen burns while nothing in the checkpoint changes."""
    app = BatchApp(db, poll_interval=0.25)
    out: dict[str, Any] = {}
    async with app.run_test(size=(120, 40)) as pilot:
        await asyncio.wait_for(app.loaded.wait(), 120)
        await pilot.pause(1.0)  # let the first paint settle
        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
        out["idle_cpu_s"] = cpu
        out["idle_wall_s"] = wall
        out["idle_core_pct"] = cpu / wall * 100
        out["rss_peak_mb"] = vm_hwm_mb()
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--pending", type=int, default=5000)
    p.add_argument("--presses", type=int, default=60)
    p.add_argument("--concurrency", default="8")
    p.add_argument(
        "--target",
        choices=("agent", "model"),
        default="agent",
        help="agent: interactions create+get (20-32 ms CPU per create, keeps a core busy);"
        " model: generate_content (cheap)",
    )
    p.add_argument("--idle-watch", type=int, metavar="N", help="measure an idle watch on N items")
    p.add_argument("--idle-seconds", type=float, default=20.0)
    a = p.parse_args()
    if a.idle_watch:
        with tempfile.TemporaryDirectory() as d:
            _items, db, build_s = asyncio.run(build(Path(d), a.idle_watch, a.idle_watch // 20))
            print(f"checkpoint: {a.idle_watch} items built in {build_s:.1f} s")
            res = asyncio.run(idle_watch(db, a.idle_seconds))
        for k, v in res.items():
            print(f"{k:>24}: {v:.2f}")
        return
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        items, db, build_s = asyncio.run(build(tmp, a.items, a.pending))
        print(
            f"checkpoint: {a.items} items ({a.items - a.pending} done) built in {build_s:.1f} s,"
            f" {db.stat().st_size / 1e6:.0f} MB"
        )
        sim, url = start_sim(0.05)
        env = dict(os.environ, GOOGLE_GEMINI_BASE_URL=url, GEMINI_API_KEY="dummy")
        env.pop("GOOGLE_API_KEY", None)
        target = ["--agent", "sim-agent"] if a.target == "agent" else ["--model", "sim-model"]
        argv = [
            str(items),
            f"--db={db}",
            *target,
            "--concurrency",
            a.concurrency,
            "--poll-interval",
            "0.05",
        ]
        worker = WorkerProcess(run_options(argv), env=env)
        worker.start()
        try:
            res = asyncio.run(measure(db, worker, a.presses))
        finally:
            worker.terminate()
            if worker.wait(15) is None:
                worker.kill()
            sim.terminate()
            sim.wait(10)
    for k, v in res.items():
        print(f"{k:>24}: {v:.1f}" if isinstance(v, float) else f"{k:>24}: {v}")


if __name__ == "__main__":
    main()
