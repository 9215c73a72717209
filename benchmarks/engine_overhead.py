"""Engine overhead: items/s of the tuibatch engine vs a plain asyncio loop of the same SDK calls.

Both run in this process against one simulator in another process (zero latency, runs
complete at once), at the same concurrency, alternating A/B/A/B so machine noise hits both.
The plain loop keeps no checkpoint; the engine commits every claim, run id and result.

Three contenders a round: the plain loop on the bare SDK (the SDK's own rate: issue 10's
baseline, goal engine >= 4x), the plain loop with tuibatch's SDK speed-up installed
(tuibatch/backends/sdk_speedup.py; goal engine >= 0.95x: the checkpoint's own cost), and the
engine (which installs the speed-up itself when its backend starts).

    .venv/bin/python benchmarks/engine_overhead.py [--items 600] [--concurrency 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import bench_env, plain_loop, sim_process  # noqa: E402


async def plain_rate(url: str, n: int, concurrency: int, tag: str = "p") -> float:
    t0 = time.perf_counter()
    await plain_loop(url, n, concurrency, tag)
    return n / (time.perf_counter() - t0)


async def engine_run(url: str, n: int, concurrency: int, tag: str) -> float:
    from tuibatch.backends.gemini import Credentials, GeminiBackend
    from tuibatch.engine import Engine, EngineConfig
    from tuibatch.items import Item, payload_hash
    from tuibatch.pricing import load_prices
    from tuibatch.states import ItemState
    from tuibatch.store import Store

    with tempfile.TemporaryDirectory() as d:
        store = await Store.open(Path(d) / "bench.db", create=True)
        items = [
            Item(
                seq=i,
                key=f"{tag}-{i}",
                input_text=f"engine {tag} {i}",
                line=i + 1,
                payload_hash=payload_hash({"payload": f"{tag}{i}"}),
            )
            for i in range(n)
        ]
        await store.sync_items(items)
        backend = GeminiBackend(Credentials(api_key="dummy-bench-key", base_url=url), timeout_s=60)
        engine = Engine(
            store,
            backend,
            load_prices(),
            EngineConfig(
                concurrency=concurrency, agent="sim-agent", poll_initial=0.0, poll_max=0.05
            ),
        )
        t0 = time.perf_counter()
        await engine.run()
        rate = n / (time.perf_counter() - t0)
        t = await store.totals()
        assert t.counts.get(ItemState.DONE) == n, t.counts
        await backend.close()
        await store.close()
    return rate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=600)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    with sim_process() as url:
        os.environ.update(bench_env(url))
        from tuibatch.backends import sdk_speedup

        bare, plain, eng = [], [], []
        # warm-up: imports, pydantic caches; and the backend's SDK speed-up (installed when a
        # GeminiBackend is made, for the whole process): the plain loop gets it too, so the
        # ratio is tuibatch's own cost (checkpoint, leases, events, pacer) over the same SDK path
        asyncio.run(engine_run(url, 40, a.concurrency, "w"))
        asyncio.run(plain_rate(url, 40, a.concurrency, "w"))
        for r in range(a.rounds):
            sdk_speedup.uninstall()
            bare.append(asyncio.run(plain_rate(url, a.items, a.concurrency, f"b{r}")))
            sdk_speedup.install()
            plain.append(asyncio.run(plain_rate(url, a.items, a.concurrency, f"r{r}")))
            eng.append(asyncio.run(engine_run(url, a.items, a.concurrency, f"r{r}")))
            print(
                f"round {r + 1}: plain bare SDK {bare[-1]:.1f} items/s, plain + speed-up "
                f"{plain[-1]:.1f} items/s, engine {eng[-1]:.1f} items/s",
                flush=True,
            )
    b, p, e = statistics.median(bare), statistics.median(plain), statistics.median(eng)
    print(
        f"median: plain bare SDK {b:.1f} items/s, plain + speed-up {p:.1f} items/s, engine {e:.1f} "
        f"items/s; engine/bare = {e / b:.2f} (goal >= 4), engine/plain+speed-up = {e / p:.3f} "
        "(goal >= 0.95)"
    )


if __name__ == "__main__":
    main()
