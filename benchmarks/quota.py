"""Quota: how much of a per-minute quota does each client use, and how many launches draw a 429?

Google does not document how a per-minute quota is enforced, nor whether polls count. For each
enforcement the simulator offers (`--enforcement sliding|fixed|bucket`) and with polls counted
or free (`--polls-free`), the contenders run side by side, at the same time, each against its
OWN simulator process (`tuibatch sim --rpm 120 --run-seconds 2 ...`), so their quotas never
interfere; the groups run one after another:

  tuibatch (not told)   the real CLI, headless, default concurrency, no --rpm: it must learn the quota
  tuibatch --rpm 120    the same, told the quota
  naive                 asyncio + the SDK, 16 tasks; each task sleeps the 429's retryDelay and retries alone
  fixed-rate (cookbook) launches from a token bucket at quota/2 items/min (starts full, like the
                        well-known cookbook script); on any 429 all launches pause 15 s; polls every 1 s

The simulator's interactions 429s carry no RetryInfo (the real shape). Numbers come from each
simulator's request log: % of quota = accepted requests the quota counts (creates, and gets
when polls count) per minute / quota; % 429 = creates answered 429 / creates. Told and the
baselines are measured from minute 2, not told from minute 3 (two minutes to learn), counted
from each contender's first request (start-up on a loaded machine is not pacing).
Goal (issue 10): tuibatch >= 90% of the quota and <= 2% launch 429s in every group.

    .venv/bin/python benchmarks/quota.py [--minutes 5] [--rpm 120] [--enforcement sliding,fixed,bucket]
        [--polls counted,free] [--only tuibatch,tuibatch-rpm,naive,fixed] [--processes 1]
        [--json out.json] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import bench_env, sim_process  # noqa: E402

HERE = Path(__file__).resolve()


# ------------------------------------------------------------------ python contenders (own process each)


def _retry_delay(exc: BaseException, default: float) -> float:
    """RetryInfo retryDelay ("1.234s") from the error body, else *default*."""

    def walk(node: Any) -> float | None:
        if isinstance(node, dict):
            v = node.get("retryDelay")
            if isinstance(v, str) and v.endswith("s"):
                try:
                    return float(v[:-1])
                except ValueError:
                    pass
            for x in node.values():
                if (d := walk(x)) is not None:
                    return d
        elif isinstance(node, list):
            for x in node:
                if (d := walk(x)) is not None:
                    return d
        return None

    d = walk(getattr(exc, "body", None))
    return d if d is not None else default


def _client(url: str) -> Any:
    from google import genai
    from google.genai import types

    return genai.Client(
        api_key="dummy-bench-key",
        http_options=types.HttpOptions(
            base_url=url, retry_options=types.HttpRetryOptions(attempts=1), timeout=60_000
        ),
    )


def _is_429(exc: BaseException) -> bool:
    return getattr(exc, "status_code", None) == 429 or getattr(exc, "code", None) == 429


async def _until_not_429(on_429: Any, fn: Any, *a: Any, **kw: Any) -> Any:
    """Call *fn* until it answers something other than a 429; *on_429* decides how to wait."""
    while True:
        try:
            return await fn(*a, **kw)
        except Exception as exc:
            if not _is_429(exc):
                raise
            await on_429(exc)


async def naive(url: str, seconds: float, concurrency: int, poll: float) -> int:
    """Each task on its own: create, poll every *poll* s; a 429 sleeps its retryDelay (or 1 s) and retries."""
    client = _client(url)
    deadline = time.monotonic() + seconds
    counter = iter(range(10**9))
    done = 0

    async def call(fn: Any, *a: Any, **kw: Any) -> Any:
        return await _until_not_429(lambda exc: asyncio.sleep(_retry_delay(exc, 1.0)), fn, *a, **kw)

    async def task() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            i = next(counter)
            it = await call(
                client.aio.interactions.create,
                agent="sim-agent",
                input=f"naive {i} {time.time()}",
                background=True,
                labels={"tuibatch_item": f"n{i}"},
            )
            while it.status not in ("completed", "failed", "cancelled"):
                await asyncio.sleep(poll)
                it = await call(client.aio.interactions.get, it.id)
            done += 1

    tasks = [asyncio.create_task(task()) for _ in range(concurrency)]
    await asyncio.wait(tasks, timeout=seconds)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return done


async def fixed_rate(url: str, seconds: float, per_minute: float, pause: float, poll: float) -> int:
    """The cookbook shape: a token bucket (capacity = one minute, starts full) on launches only;
    after any 429 no launch for *pause* s, and the failed request is retried after the pause."""
    client = _client(url)
    deadline = time.monotonic() + seconds
    capacity = per_minute
    tokens = capacity
    last = time.monotonic()
    last_429 = -1e9
    done = 0
    inflight: set[asyncio.Task[None]] = set()

    async def on_429(_exc: Exception) -> None:
        nonlocal last_429
        last_429 = time.monotonic()
        await asyncio.sleep(pause)

    async def call(fn: Any, *a: Any, **kw: Any) -> Any:
        return await _until_not_429(on_429, fn, *a, **kw)

    async def item(i: int) -> None:
        nonlocal done
        it = await call(
            client.aio.interactions.create,
            agent="sim-agent",
            input=f"fixed {i} {time.time()}",
            background=True,
            labels={"tuibatch_item": f"f{i}"},
        )
        while it.status not in ("completed", "failed", "cancelled"):
            await asyncio.sleep(poll)
            it = await call(client.aio.interactions.get, it.id)
        done += 1

    i = 0
    while time.monotonic() < deadline:
        now = time.monotonic()
        tokens = min(capacity, tokens + (now - last) * per_minute / 60.0)
        last = now
        if now - last_429 < pause:
            await asyncio.sleep(pause - (now - last_429))
            continue
        if tokens >= 1:
            tokens -= 1
            t = asyncio.create_task(item(i))
            inflight.add(t)
            t.add_done_callback(inflight.discard)
            i += 1
            continue
        await asyncio.sleep(0.001)  # the cookbook's loop sleeps 1 ms between checks
    for t in list(inflight):
        t.cancel()
    await asyncio.gather(*inflight, return_exceptions=True)
    return done


def worker_main(a: argparse.Namespace) -> None:
    if a.worker == "naive":
        n = asyncio.run(naive(a.url, a.seconds, 16, 1.0))
    else:
        n = asyncio.run(fixed_rate(a.url, a.seconds, a.rpm / 2, 15.0, 1.0))
    print(json.dumps({"completed_client_side": n}), flush=True)


# ------------------------------------------------------------------------------ analysis


def sim_requests(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(url + "/_sim/requests", timeout=120) as r:  # noqa: S310 (loopback only)
        return json.loads(r.read())


def completion_times(log: list[dict[str, Any]], run_seconds: float) -> list[float]:
    """Time of the get that saw each item's run completed (first 200 get ≥ run_seconds after its create)."""
    created: dict[str, float] = {}
    seen: set[str] = set()
    out = []
    for r in log:
        item = r["item"]
        if r["code"] != 200 or item is None:
            continue
        if r["route"] == "create":
            created[item] = r["t"]
        elif (
            r["route"] == "get"
            and item in created
            and item not in seen
            and r["t"] - created[item] >= run_seconds - 1e-3
        ):
            seen.add(item)
            out.append(r["t"])
    return out


def summarize(
    log: list[dict[str, Any]], t_from: float, t_to: float, rpm: float, run_seconds: float
) -> dict[str, Any]:
    minutes = (t_to - t_from) / 60.0
    win = [r for r in log if t_from <= r["t"] < t_to]
    ok = sum(1 for r in win if r["code"] == 200)
    n429 = sum(1 for r in win if r["code"] == 429)
    comp = [t for t in completion_times(log, run_seconds) if t_from <= t < t_to]
    gets_ok = sum(1 for r in win if r["code"] == 200 and r["route"] == "get")
    creates_ok = sum(1 for r in win if r["code"] == 200 and r["route"] == "create")
    best = rpm / 2
    return {
        "minutes": round(minutes, 2),
        "requests": len(win),
        "accepted": ok,
        "accepted_per_min": ok / minutes,
        "accepted_pct_quota": 100 * ok / minutes / rpm,
        "completions": len(comp),
        "completions_per_min": len(comp) / minutes,
        "completions_pct_best": 100 * len(comp) / minutes / best,
        "pct_429": 100 * n429 / max(1, len(win)),
        "n429": n429,
        "requests_per_item": len(win) / max(1, len(comp)),
        "accepted_per_item": ok / max(1, len(comp)),
        "gets_per_create": gets_ok / max(1, creates_ok),
    }


def per_minute(
    log: list[dict[str, Any]], t0: float, minutes: int, run_seconds: float
) -> list[dict[str, int]]:
    comp = completion_times(log, run_seconds)
    rows = []
    for m in range(minutes):
        lo, hi = t0 + 60 * m, t0 + 60 * (m + 1)
        rows.append(
            {
                "ok": sum(1 for r in log if lo <= r["t"] < hi and r["code"] == 200),
                "429": sum(1 for r in log if lo <= r["t"] < hi and r["code"] == 429),
                "done": sum(1 for t in comp if lo <= t < hi),
            }
        )
    return rows


def checkpoint_done(db: Path) -> int | None:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return con.execute("SELECT COUNT(*) FROM items WHERE state='done'").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return None


# ------------------------------------------------------------------------------ orchestration


def enforcement_summary(
    log: list[dict[str, Any]],
    t_from: float,
    t_to: float,
    rpm: float,
    polls_count: bool,
    run_seconds: float,
) -> dict[str, Any]:
    """What the quota counted, over [t_from, t_to): % of it used, % of launches answered 429."""
    minutes = (t_to - t_from) / 60.0
    win = [r for r in log if t_from <= r["t"] < t_to]
    counted = [r for r in win if r["route"] == "create" or polls_count]
    creates = [r for r in win if r["route"] == "create"]
    ok = sum(1 for r in counted if r["code"] == 200)
    c429 = sum(1 for r in creates if r["code"] == 429)
    g429 = sum(1 for r in win if r["route"] == "get" and r["code"] == 429)
    comp = [t for t in completion_times(log, run_seconds) if t_from <= t < t_to]
    return {
        "minutes": round(minutes, 2),
        "pct_quota": 100 * ok / minutes / rpm,
        "pct_launch_429": 100 * c429 / max(1, len(creates)),
        "launch_429": c429,
        "poll_429": g429,
        "completions_per_min": len(comp) / minutes,
    }


def run_group(
    a: argparse.Namespace,
    chosen: list[str],
    items: Path,
    work: Path,
    enforcement: str,
    polls_count: bool,
) -> dict[str, Any]:
    """The contenders side by side, each against its own simulator with this enforcement."""
    seconds = a.minutes * 60.0
    sim_args = [
        "--rpm",
        str(a.rpm),
        "--run-seconds",
        str(a.run_seconds),
        "--enforcement",
        enforcement,
    ]
    if not polls_count:
        sim_args.append("--polls-free")
    tag = f"{enforcement}-{'counted' if polls_count else 'free'}"
    with ExitStack() as stack:
        urls = {c: stack.enter_context(sim_process(*sim_args)) for c in chosen}
        procs: dict[str, list[subprocess.Popen[str]]] = {}
        t0 = (
            time.monotonic()
        )  # CLOCK_MONOTONIC is system-wide: comparable with the simulators' log times
        for c in chosen:
            out = (work / f"{tag}-{c}.log").open("w")
            env = bench_env(urls[c])
            if c.startswith("tuibatch"):
                cdir = work / f"{tag}-{c}"
                cdir.mkdir(exist_ok=True)
                entry = [str(a.tuibatch_entry)] if a.tuibatch_entry else ["-m", "tuibatch"]
                cmd = [
                    sys.executable,
                    *entry,
                    str(items),
                    "--headless",
                    "--agent",
                    "sim-agent",
                    "--db",
                    str(cdir / "items.tuibatch.db"),
                    "--progress-every",
                    "15",
                    *(["--concurrency", a.concurrency] if a.concurrency else []),
                ]
                if c == "tuibatch-rpm":
                    cmd += ["--rpm", str(a.rpm)]
            else:
                cmd = [
                    sys.executable,
                    str(HERE),
                    "--worker",
                    c,
                    "--url",
                    urls[c],
                    "--seconds",
                    str(seconds),
                    "--rpm",
                    str(a.rpm),
                ]
            # tuibatch: --processes worker processes on the one checkpoint (they share the quota)
            n = a.processes if c.startswith("tuibatch") else 1
            procs[c] = [
                subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
                for _ in range(n)
            ]
        print(f"[{tag}] {len(chosen)} contenders side by side for {a.minutes} min", flush=True)
        time.sleep(max(0.0, t0 + seconds - time.monotonic()))
        t_end = time.monotonic()
        for c, ps in procs.items():
            if c.startswith("tuibatch"):
                for p in ps:
                    p.send_signal(signal.SIGTERM)
        for p in (p for ps in procs.values() for p in ps):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        reqs = {c: sim_requests(urls[c]) for c in chosen}
    out: dict[str, Any] = {}
    for c in chosen:
        (work / f"{tag}-{c}.requests.json").write_text(
            json.dumps({"t0": t0, "t_end": t_end, "log": reqs[c]})
        )
        skip = 120.0 if c == "tuibatch" else 60.0  # not told: the first two minutes are learning
        # from the contender's first request: on a loaded machine a CLI can take 30 s to start
        first = min((r["t"] for r in reqs[c]), default=t0)
        s = enforcement_summary(reqs[c], first + skip, t_end, a.rpm, polls_count, a.run_seconds)
        s["started_after"] = round(first - t0, 1)
        s["from_minute"] = int(skip // 60)
        # minute by minute from the contender's own first request, like the figures
        rows = per_minute(reqs[c], first, int((t_end - first) // 60), a.run_seconds)
        s["per_minute_429"] = [r["429"] for r in rows]
        s["per_minute_ok"] = [r["ok"] for r in rows]
        out[c] = s
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=int, default=5)
    ap.add_argument("--rpm", type=int, default=120)
    ap.add_argument("--run-seconds", type=float, default=2.0)
    ap.add_argument(
        "--items", type=int, default=6000, help="items in each tuibatch file (never runs out)"
    )
    ap.add_argument(
        "--only", help="comma-separated contender names (tuibatch,tuibatch-rpm,naive,fixed)"
    )
    ap.add_argument(
        "--enforcement",
        default="sliding,fixed,bucket",
        help="comma-separated, run one after another",
    )
    ap.add_argument(
        "--polls", default="counted,free", help="counted, free, or both (comma-separated)"
    )
    ap.add_argument("--concurrency", help="passed to tuibatch (default: its own default)")
    ap.add_argument(
        "--processes",
        type=int,
        default=1,
        help="tuibatch worker processes on one checkpoint (they must share the quota)",
    )
    ap.add_argument("--json", type=Path, help="write the table and per-minute series here")
    ap.add_argument(
        "--tuibatch-entry",
        type=Path,
        metavar="SCRIPT",
        help="run this script instead of `python -m tuibatch` (to A/B a patched engine)",
    )
    ap.add_argument(
        "--keep", type=Path, help="keep work files (checkpoints, logs) in this directory"
    )
    # internal: one python contender in its own process
    ap.add_argument("--worker", choices=("naive", "fixed"), help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        worker_main(a)
        return
    if a.minutes < 3:
        ap.error("--minutes must be at least 3 (not told, minutes 1-2 are excluded)")

    names = {
        "tuibatch": "tuibatch (not told)",
        "tuibatch-rpm": f"tuibatch --rpm {a.rpm}",
        "naive": "naive (16 tasks, own retries)",
        "fixed": f"fixed-rate (cookbook, {a.rpm // 2}/min)",
    }
    chosen = a.only.split(",") if a.only else list(names)
    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="tuibatch-quota-"))
    work.mkdir(parents=True, exist_ok=True)
    items = work / "items.jsonl"
    with items.open("w") as f:
        for i in range(a.items):
            f.write(json.dumps({"key": f"q{i:05d}", "payload": f"quota item {i}"}) + "\n")
    print(
        f"quota {a.rpm} rpm, runs {a.run_seconds:g} s, {a.minutes} min per group; work files in {work}"
    )
    groups: dict[str, dict[str, Any]] = {}
    for enforcement in a.enforcement.split(","):
        for polls in a.polls.split(","):
            g = run_group(a, chosen, items, work, enforcement, polls == "counted")
            groups[f"{enforcement} / polls {polls}"] = g
            for c, s in g.items():
                print(
                    f"  {names[c]:32s} {s['pct_quota']:6.1f}% of quota  {s['pct_launch_429']:5.2f}% launch 429s"
                    f"  ({s['launch_429']} launch, {s['poll_429']} poll 429s from minute"
                    f" {s['from_minute'] + 1}; all 429s per minute {s['per_minute_429']})",
                    flush=True,
                )

    print(
        f"\nquota {a.rpm} rpm; % of quota = accepted requests the quota counts (creates, and gets when "
        "polls count) / quota; % 429 = creates answered 429 / creates; told and baselines from minute 2, "
        "not told from minute 3\n"
    )
    print("| enforcement / polls | " + " | ".join(names[c] for c in chosen) + " |")
    print("|---|" + "---:|" * len(chosen))
    for gname, g in groups.items():
        print(
            f"| {gname} | "
            + " | ".join(
                f"{g[c]['pct_quota']:.1f}% used, {g[c]['pct_launch_429']:.2f}% 429" for c in chosen
            )
            + " |"
        )
    met = all(
        g[c]["pct_quota"] >= 90 and g[c]["pct_launch_429"] <= 2
        for g in groups.values()
        for c in chosen
        if c.startswith("tuibatch")
    )
    print(
        f"\ngoal (tuibatch >= 90% of quota, <= 2% launch 429s, every group): {'MET' if met else 'MISSED'}"
    )
    if a.json:
        a.json.write_text(
            json.dumps(
                {
                    "rpm": a.rpm,
                    "run_seconds": a.run_seconds,
                    "minutes": a.minutes,
                    "groups": groups,
                },
                indent=1,
            )
        )
        print(f"wrote {a.json}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
