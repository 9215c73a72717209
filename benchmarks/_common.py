"""Helpers for the benchmarks: a simulator in its own process, so it never shares our GIL."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def sim_process(*args: str) -> Iterator[str]:
    """Start `tuibatch sim` on a free loopback port; yield its URL; stop it afterwards."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuibatch", "sim", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"(http://127\.0\.0\.1:\d+)", line)
        if not m:
            raise RuntimeError(f"simulator did not start: {line!r}")
        yield m.group(1)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


def bench_env(url: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI")
    }
    env.update(GEMINI_API_KEY="dummy-bench-key", GOOGLE_GEMINI_BASE_URL=url)
    return env


async def plain_loop(url: str, n: int, concurrency: int, tag: str = "p") -> None:
    """The SDK calls the engine makes (create, then get until terminal), and nothing else."""
    import asyncio

    from google import genai
    from google.genai import types

    client = genai.Client(
        api_key="dummy-bench-key",
        http_options=types.HttpOptions(
            base_url=url, retry_options=types.HttpRetryOptions(attempts=1), timeout=60_000
        ),
    )
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            it = await client.aio.interactions.create(
                agent="sim-agent",
                input=f"plain {tag} {i}",
                background=True,
                labels={"tuibatch_item": f"p{tag}-{i}"},
            )
            while it.status not in ("completed", "failed", "cancelled"):
                it = await client.aio.interactions.get(it.id)

    await asyncio.gather(*(one(i) for i in range(n)))


def sim_stats(url: str) -> dict:
    import json
    import urllib.request

    with urllib.request.urlopen(url + "/_sim/stats") as r:  # noqa: S310 (loopback only)
        return json.loads(r.read())


def agent_cli(items: Path, concurrency: str, *flags: str) -> list[str]:
    """A quiet headless ``tuibatch`` run of *items* on the simulator's agent."""
    return [
        sys.executable, "-m", "tuibatch", str(items), "--headless", "--quiet",
        "--agent", "sim-agent", "--concurrency", concurrency, *flags,
    ]  # fmt: skip
