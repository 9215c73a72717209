"""SDK speed-up: the plain SDK loop with and without tuibatch/backends/sdk_speedup.py, side by side.

The loop is `_common.plain_loop` (create, then get until terminal; the calls tuibatch makes),
against a zero-latency simulator in its own process whose runs complete at once, so the SDK's
CPU is the only limit. Each contender is a fresh process, and the rounds alternate
off / on so machine noise hits both. Inside the process the loop alone is timed:

  items/s       N / wall time of the loop (imports and interpreter start-up excluded)
  CPU ms/item   time.process_time() over the loop / N (this process only; the simulator's
                CPU is in its own process)

After every run the simulator must show each item launched exactly once. It is reset between runs.

    .venv/bin/python benchmarks/sdk_speedup.py [--items 400] [--concurrency 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import bench_env, plain_loop, sim_process, sim_stats  # noqa: E402

HERE = Path(__file__).resolve()
MODES = ("off", "on")


def child(url: str, mode: str, n: int, concurrency: int, tag: str) -> None:
    """Run in a fresh process: the plain loop, timed, with the speed-up on or off."""
    from tuibatch.backends import sdk_speedup

    status = sdk_speedup.install() if mode == "on" else sdk_speedup.SpeedupStatus(False, "off")
    if mode == "on" and not status.applied:
        raise SystemExit(f"speed-up not applied: {status.reason}")
    cpu0, wall0 = time.process_time(), time.perf_counter()
    asyncio.run(plain_loop(url, n, concurrency, tag))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    wrapper = sdk_speedup.active()
    print(json.dumps({"cpu_s": cpu, "wall_s": wall, "reason": status.reason,
                      "hits": wrapper.hits if wrapper else 0,
                      "misses": wrapper.misses if wrapper else 0}))  # fmt: skip


def run_one(url: str, mode: str, n: int, concurrency: int, tag: str) -> dict:
    req = urllib.request.Request(url + "/_sim/reset", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=30):  # noqa: S310 (loopback only)
        pass
    cmd = [sys.executable, str(HERE), "--child", mode, "--url", url, "--items", str(n),
           "--concurrency", str(concurrency), "--tag", tag]  # fmt: skip
    out = subprocess.run(cmd, env=bench_env(url), capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"{tag}: exited {out.returncode}:\n{out.stderr[-2000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    launches = [v["launches"] for v in sim_stats(url)["items"].values()]
    if len(launches) != n or any(x != 1 for x in launches):
        raise SystemExit(f"{tag}: not every item launched exactly once: {len(launches)} items")
    res.update(mode=mode, tag=tag, rate=n / res["wall_s"], cpu_ms=1000 * res["cpu_s"] / n)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path, help="write every run's numbers here")
    ap.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--tag", default="x", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.url, a.child, a.items, a.concurrency, a.tag)
        return
    runs: list[dict] = []
    with sim_process() as url:
        run_one(url, "off", 50, a.concurrency, "warmup")  # disk caches, .pyc files
        for r in range(a.rounds):
            for mode in MODES:
                res = run_one(url, mode, a.items, a.concurrency, f"r{r}-{mode}")
                runs.append(res)
                print(f"round {r + 1} speed-up {mode:3s}: {res['rate']:6.1f} items/s, "
                      f"{res['cpu_ms']:5.1f} ms CPU/item ({res['wall_s']:.2f} s), "
                      f"cache hits {res['hits']}, misses {res['misses']}", flush=True)  # fmt: skip

    def med(mode: str, key: str) -> float:
        return statistics.median(x[key] for x in runs if x["mode"] == mode)

    print(f"\nmedians of {a.rounds} rounds, {a.items} items, concurrency {a.concurrency}, "
          "zero-latency simulator in its own process\n")  # fmt: skip
    print("| plain SDK loop | items/s | CPU ms/item |")
    print("|---|---:|---:|")
    for mode in MODES:
        print(f"| speed-up {mode} | {med(mode, 'rate'):.1f} | {med(mode, 'cpu_ms'):.1f} |")
    print(f"\non/off: {med('on', 'rate') / med('off', 'rate'):.2f}x items/s, "
          f"{med('off', 'cpu_ms') / med('on', 'cpu_ms'):.2f}x less CPU per item; "
          "every run: each item launched exactly once")  # fmt: skip
    if a.json:
        a.json.write_text(json.dumps(runs, indent=1))
        print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
