"""Does ``--concurrency auto`` beat the fixed default (8)? Both on the same simulator, alternating.

Two situations: CPU-bound (zero latency, runs finish at once: the SDK's CPU is the limit) and
latency-bound (every response takes --latency ms and runs take --run-seconds: more runs in
flight help, up to a point).

    .venv/bin/python benchmarks/concurrency.py [--items 600] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import agent_cli, bench_env, sim_process  # noqa: E402


def run(url: str, n: int, concurrency: str, d: Path, tag: str) -> float:
    items = d / f"{tag}.jsonl"
    items.write_text(
        "".join(f'{{"key": "{tag}-{i}", "payload": "item {tag} {i}"}}\n' for i in range(n))
    )
    t0 = time.perf_counter()
    subprocess.run(
        agent_cli(
            items,
            concurrency,
            "--poll-interval",
            "0.1",
            "--poll-max",
            "1",
            "--progress-every",
            "600",
        ),
        env=bench_env(url),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--only", choices=("cpu", "latency"), help="run one situation")
    ap.add_argument("--latency", default="150")
    ap.add_argument("--run-seconds", default="1")
    a = ap.parse_args()
    cases = {
        "cpu-bound (latency 0, runs instant)": ("--run-seconds", "0"),
        f"latency-bound ({a.latency} ms per response, {a.run_seconds} s runs)": (
            "--latency",
            a.latency,
            "--run-seconds",
            a.run_seconds,
        ),
    }
    print("| situation | --concurrency 8 | --concurrency auto | auto / 8 |\n|---|---:|---:|---:|")
    if a.only:
        cases = {k: v for k, v in cases.items() if k.startswith(a.only)}
    for name, sim_args in cases.items():
        fixed, auto = [], []
        with sim_process(*sim_args) as url, tempfile.TemporaryDirectory() as d:
            for r in range(a.rounds):
                fixed.append(run(url, a.items, "8", Path(d), f"f{r}"))
                auto.append(run(url, a.items, "auto", Path(d), f"a{r}"))
        f, x = statistics.median(fixed), statistics.median(auto)
        print(f"| {name} | {f:.1f} items/s | {x:.1f} items/s | {x / f:.2f} |", flush=True)


if __name__ == "__main__":
    main()
