"""Ceiling: items/s of tuibatch with 1, 2, 3 worker processes on ONE checkpoint vs a plain SDK loop.

The simulator runs in its own process with zero latency and runs that complete at once, so
the only limit is CPU: the SDK costs 20-32 ms per create. Every contender is a fresh process
(the plain loop too), started and timed the same way, and the rounds alternate
plain / 1 / 2 / 3 workers so machine noise hits all of them.

Two rates per run:
  wall   N / (first process started .. last process exited): excludes nothing (interpreter start,
         imports, loading the items file and the checkpoint are all in)
  span   N / (simulator's first request .. last request): the steady rate, without start-up

After every run the simulator's stats must show each item launched exactly once and every
checkpoint row done with no in-doubt relaunch; otherwise the script stops with an error.
The simulator is reset between runs.

    .venv/bin/python benchmarks/ceiling.py [--items 1500] [--workers 1,2,3] [--rounds 3] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import agent_cli, bench_env, plain_loop, sim_process, sim_stats  # noqa: E402

HERE = Path(__file__).resolve()


def _post(url: str) -> None:
    req = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=30):  # noqa: S310 (loopback only)
        pass


def _requests(url: str) -> list[dict]:
    with urllib.request.urlopen(url + "/_sim/requests", timeout=60) as r:  # noqa: S310 (loopback only)
        return json.loads(r.read())


def run_one(
    url: str, kind: str, workers: int, n: int, concurrency: int, tag: str, work: Path
) -> dict:
    """One timed run; returns rates and the checks' results."""
    _post(url + "/_sim/reset")
    env = bench_env(url)
    d = work / tag
    d.mkdir(parents=True)
    if kind == "plain":
        cmds = [
            [
                sys.executable,
                str(HERE),
                "--plain",
                tag,
                "--url",
                url,
                "--items",
                str(n),
                "--concurrency",
                str(concurrency),
            ]
        ]
        keys: list[str] = []
    else:
        items = d / "items.jsonl"
        keys = [f"{tag}-{i:05d}" for i in range(n)]
        items.write_text(
            "".join(json.dumps({"key": k, "payload": f"ceiling {k}"}) + "\n" for k in keys)
        )
        cmds = [
            agent_cli(
                items,
                str(concurrency),
                "--poll-interval",
                "0.001",
                "--progress-every",
                "3600",
                "--db",
                str(d / "items.tuibatch.db"),
            )
        ] * workers
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for c in cmds
    ]
    outs = [p.communicate(timeout=1800)[0] for p in procs]
    wall = time.perf_counter() - t0
    for p, out in zip(procs, outs, strict=True):
        if p.returncode != 0:
            raise SystemExit(f"{tag}: process exited {p.returncode}:\n{out[-2000:]}")
    log = _requests(url)
    stats = sim_stats(url)
    span = log[-1]["t"] - log[0]["t"] if len(log) > 1 else float("nan")
    res = {
        "tag": tag,
        "kind": kind,
        "workers": workers,
        "items": n,
        "wall_s": wall,
        "span_s": span,
        "wall_rate": n / wall,
        "span_rate": n / span,
        "requests": len(log),
        "by_code": stats["by_code"],
    }
    launches = [v["launches"] for v in stats["items"].values()]
    if kind == "plain":
        ok = len(launches) == n and all(x == 1 for x in launches)
    else:
        from tuibatch.items import key_label

        by_label = stats["items"]
        ok = len(by_label) == n and all(
            by_label.get(key_label(k), {}).get("launches") == 1 for k in keys
        )
        con = sqlite3.connect(d / "items.tuibatch.db")
        try:
            states = dict(
                con.execute("SELECT state, COUNT(*) FROM items GROUP BY state").fetchall()
            )
            relaunches = con.execute("SELECT COALESCE(SUM(relaunches), 0) FROM items").fetchone()[0]
            owners = con.execute(
                "SELECT COUNT(DISTINCT message) FROM events WHERE kind='state' AND state='claimed'"
            ).fetchone()[0]
        finally:
            con.close()
        res.update(states=states, relaunches=relaunches, claiming_workers=owners)
        ok = ok and states == {"done": n} and relaunches == 0
    res["launched_once"] = ok
    if not ok:
        raise SystemExit(f"{tag}: crash-safety check failed: {json.dumps(res)}")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=1500)
    ap.add_argument(
        "--workers", default="1,2,3", help="worker-process counts to try, comma-separated"
    )
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=8, help="runs in flight per process")
    ap.add_argument("--json", type=Path, help="write every run's numbers here")
    ap.add_argument(
        "--plain", help=argparse.SUPPRESS
    )  # internal: run the plain loop in this process
    ap.add_argument("--url", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.plain:
        asyncio.run(plain_loop(a.url, a.items, a.concurrency, a.plain))
        return
    counts = [int(x) for x in a.workers.split(",") if x]
    contenders = [("plain", 1)] + [("tuibatch", w) for w in counts]
    runs: list[dict] = []
    with sim_process() as url, tempfile.TemporaryDirectory(prefix="tuibatch-ceiling-") as work:
        run_one(url, "plain", 1, 50, a.concurrency, "warmup", Path(work))  # disk caches, .pyc files
        for r in range(a.rounds):
            for kind, w in contenders:
                tag = f"r{r}-{kind}{w}"
                res = run_one(url, kind, w, a.items, a.concurrency, tag, Path(work))
                runs.append(res)
                extra = "" if kind == "plain" else f", {res['claiming_workers']} workers claimed"
                print(
                    f"round {r + 1} {kind:8s} x{w}: wall {res['wall_rate']:5.1f} items/s ({res['wall_s']:.1f} s), "
                    f"span {res['span_rate']:5.1f} items/s; {res['requests']} requests, each item launched once"
                    f"{extra}",
                    flush=True,
                )

    def med(kind: str, w: int, key: str) -> float:
        return statistics.median(x[key] for x in runs if x["kind"] == kind and x["workers"] == w)

    pw, ps = med("plain", 1, "wall_rate"), med("plain", 1, "span_rate")
    print(
        f"\nmedians of {a.rounds} rounds, {a.items} items, concurrency {a.concurrency} per process, "
        f"zero-latency simulator in its own process, {_cores()} cores\n"
    )
    print("| contender | wall items/s | × plain | span items/s | × plain |")
    print("|---|---:|---:|---:|---:|")
    for kind, w in contenders:
        name = (
            "plain SDK loop"
            if kind == "plain"
            else f"tuibatch, {w} worker process{'es' if w > 1 else ''}"
        )
        cw, cs = med(kind, w, "wall_rate"), med(kind, w, "span_rate")
        print(f"| {name} | {cw:.1f} | {cw / pw:.2f} | {cs:.1f} | {cs / ps:.2f} |")
    print(
        "\nevery run: each item launched exactly once at the simulator; tuibatch checkpoints all done, "
        "0 in-doubt relaunches"
    )
    if a.json:
        a.json.write_text(json.dumps(runs, indent=1))
        print(f"wrote {a.json}")


def _cores() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    main()
