"""Checkpoint speed: transactions/s of the store, and start → first launch on a big checkpoint.

    .venv/bin/python benchmarks/checkpoint.py [--items 100000] [--done 99000]

1. commits/s: claim → mark_running → finish for many items (3 transactions each) in one process.
2. start → first launch: the real CLI on a checkpoint of --items items with --done already done,
   timed from process spawn to the first API request the simulator receives (one monotonic clock);
   once with the items file unchanged (fast path) and once with one new key appended (full read
   and sync of the file). Python + google-genai imports are part of the figure; measured alone too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import bench_env, sim_process  # noqa: E402


async def commits_per_second(n: int) -> float:
    from tuibatch.items import Item
    from tuibatch.states import ItemState
    from tuibatch.store import Attempt, Store

    with tempfile.TemporaryDirectory() as d:
        store = await Store.open(Path(d) / "c.db", create=True)
        await store.sync_items(
            [
                Item(seq=i, key=f"k{i}", input_text="x", payload_hash="h", line=i + 1)
                for i in range(n)
            ]
        )
        t0 = time.perf_counter()
        for i in range(n):
            c = await store.claim()
            assert c is not None
            await store.mark_running(c.row.seq, f"run-{i}", "sim-agent")
            await store.finish(
                c.row.seq,
                ItemState.DONE,
                run_id=f"run-{i}",
                output="out",
                a=Attempt(outcome="done"),
            )
        took = time.perf_counter() - t0
        await store.close()
    return 3 * n / took


def build(d: Path, n: int, done: int) -> Path:
    import hashlib
    import sqlite3

    items = d / "items.jsonl"
    with open(items, "w") as f:
        for i in range(n):
            f.write(
                json.dumps(
                    {
                        "key": f"article-{i:06d}",
                        "payload": {
                            "title": f"Paper {i}",
                            "year": 2000 + i % 25,
                            "abstract": "x" * 200,
                        },
                    }
                )
                + "\n"
            )

    async def init() -> None:
        from tuibatch.items import load_items
        from tuibatch.store import Store

        store = await Store.open(d / "items.tuibatch.db", create=True)
        await store.sync_items(load_items(items))
        await store.set_meta(
            {"items_sha256": hashlib.sha256(items.read_bytes()).hexdigest(), "items_count": str(n)}
        )
        await store.close()

    asyncio.run(init())
    con = sqlite3.connect(d / "items.tuibatch.db")
    con.execute(
        "UPDATE items SET state='done', run_id='run-'||seq, output='{}', attempts=1, tokens_in=50,"
        " tokens_out=80, cost_usd=0.0002, finished_at=created_at WHERE seq < ?",
        (done,),
    )
    con.execute(
        "INSERT INTO events(t, seq, kind, state) SELECT created_at, seq, 'state', 'done' FROM items"
        " WHERE seq < ?",
        (done,),
    )
    con.commit()
    con.close()
    return items


def first_launch(items: Path, url: str) -> float:
    with urllib.request.urlopen(urllib.request.Request(url + "/_sim/reset", method="POST")):
        pass
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tuibatch",
            str(items),
            "--headless",
            "--agent",
            "sim-agent",
            "--progress-every",
            "60",
        ],
        env=bench_env(url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = None
    while first is None and time.monotonic() - t0 < 60:
        with urllib.request.urlopen(url + "/_sim/requests") as r:
            log = json.loads(r.read())
        # the first API call of any kind: a resumed run is polled, a pending item is created
        creates = [x["t"] for x in log if x["route"] in ("create", "get")]
        if creates:
            first = min(creates)
        else:
            time.sleep(0.01)
    proc.terminate()
    _out, err = proc.communicate(timeout=30)
    if first is None:
        raise RuntimeError(f"no launch seen: {err}")
    return first - t0


def import_time() -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import google.genai._gaos.google_genai, google.genai.types"],
        check=True,
    )
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--done", type=int, default=99_000)
    ap.add_argument("--commits", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    print(
        f"store: {asyncio.run(commits_per_second(a.commits)):.0f} transactions/s "
        f"(claim, mark_running, finish; WAL, synchronous=NORMAL)"
    )
    with tempfile.TemporaryDirectory() as d, sim_process("--run-seconds", "1") as url:
        t0 = time.perf_counter()
        items = build(Path(d), a.items, a.done)
        print(f"built {a.items} items, {a.done} done, in {time.perf_counter() - t0:.1f} s")
        bare = [import_time() for _ in range(a.repeat)]
        fast = [first_launch(items, url) for _ in range(a.repeat)]
        with open(items, "a") as f:
            f.write(json.dumps({"key": "one-more", "payload": "new"}) + "\n")
        full = [first_launch(items, url)] + [first_launch(items, url) for _ in range(a.repeat - 1)]
    print(f"python + google-genai import alone: {min(bare):.2f} s (min of {a.repeat})")
    print(
        f"start → first launch, items file unchanged: {min(fast):.2f} s (min), runs {[round(x, 2) for x in fast]}"
    )
    print(
        f"start → first launch, file changed (full read + sync): {full[0]:.2f} s, then {[round(x, 2) for x in full[1:]]}"
    )


if __name__ == "__main__":
    main()
