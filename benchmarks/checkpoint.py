"""Checkpoint speed: transactions/s of the store, and start → first launch on a big checkpoint.

    .venv/bin/python benchmarks/checkpoint.py [--items 100000] [--done 99000]

1. commits/s: claim → mark_running → finish for many items (3 transactions each) in one process.
2. start → first launch: the real CLI on a checkpoint of --items items with --done already done,
   timed from process spawn to the first API request the simulator receives (one monotonic clock);
   once with the items file unchanged (fast path), once with one new key appended (full read
   and sync of the file), and on a fresh file with no checkpoint (every line read, checked and
   added). Python + google-genai imports are part of the figure; measured alone too. The peak RSS
   of the CLI process (VmHWM) is read at its first launch.
3. the items file read in-process, by today's reader (every line built into a checked request)
   and, for payload lines, by the first release's reader.

--format payload (default): {key, payload} lines to an agent; --format request: Gemini Batch API
lines with a generation config and a JSON schema, to a model.
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
from statistics import median
from typing import Any

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


#: what a Batch-API-shaped line asks for (--format request): a schema and a generation config
SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "year": {"type": "integer"}},
    "required": ["title", "year"],
}
#: the run command's target flags per line format
TARGET = {"payload": ["--agent", "sim-agent"], "request": ["--model", "sim-model"]}


def line(i: int, fmt: str) -> dict[str, Any]:
    record = {"title": f"Paper {i}", "year": 2000 + i % 25, "abstract": "x" * 200}
    if fmt == "payload":
        return {"key": f"article-{i:06d}", "payload": record}
    return {
        "key": f"article-{i:06d}",
        "request": {
            "contents": [{"role": "user", "parts": [{"text": json.dumps(record)}]}],
            "systemInstruction": {"parts": [{"text": "Extract the title and the year."}]},
            "generationConfig": {
                "temperature": 0.2,
                "maxOutputTokens": 256,
                "responseMimeType": "application/json",
                "responseJsonSchema": SCHEMA,
            },
        },
    }


def defaults_for(fmt: str) -> Any:
    from tuibatch.request_spec import SpecDefaults

    return SpecDefaults(agent="sim-agent") if fmt == "payload" else SpecDefaults(model="sim-model")


def write_file(path: Path, n: int, fmt: str) -> Path:
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps(line(i, fmt)) + "\n")
    return path


def build(d: Path, n: int, done: int, fmt: str) -> Path:
    import sqlite3

    items = write_file(d / "items.jsonl", n, fmt)

    async def init() -> None:
        from tuibatch.itemsfile import batch_digest, load_items
        from tuibatch.store import Store

        store = await Store.open(d / "items.tuibatch.db", create=True)
        await store.sync_items(load_items(items, defaults_for(fmt)))
        digest = batch_digest(items.read_bytes(), defaults_for(fmt)) or ""
        await store.set_meta({"items_sha256": digest, "items_count": str(n)})
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


def _peak_rss_kb(pid: int) -> int:
    """The process's peak resident set so far (VmHWM), in kB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for row in f:
                if row.startswith("VmHWM:"):
                    return int(row.split()[1])
    except OSError:
        pass
    return 0


def _cpu_seconds(pid: int) -> float:
    """The process's user + system CPU time so far (all its threads), in seconds."""
    import os

    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def first_launch(items: Path, url: str, fmt: str = "payload") -> tuple[float, int, float]:
    """(seconds from spawn to the first API request the simulator sees, peak RSS in kB, CPU
    seconds the process had used by then: on a shared machine the steadier of the two)."""
    with urllib.request.urlopen(urllib.request.Request(url + "/_sim/reset", method="POST")):
        pass
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuibatch", str(items), "--headless", *TARGET[fmt]]
        + ["--progress-every", "60"],
        env=bench_env(url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = None
    while first is None and time.monotonic() - t0 < 120:
        with urllib.request.urlopen(url + "/_sim/requests") as r:
            log = json.loads(r.read())
        # the first API call of any kind: a resumed run is polled, a pending item is launched
        launches = [x["t"] for x in log if x["route"] in ("create", "get", "generate")]
        if launches:
            first = min(launches)
        else:
            time.sleep(0.01)
    peak = _peak_rss_kb(proc.pid)
    cpu = _cpu_seconds(proc.pid)
    proc.terminate()
    _out, err = proc.communicate(timeout=30)
    if first is None:
        raise RuntimeError(f"no launch seen: {err}")
    return first - t0, peak, cpu


def parse_only(d: Path, n: int, fmt: str, repeat: int) -> dict[str, float]:
    """Seconds to read the items file in-process: the first release's reader (payload lines
    only) against today's, which builds and checks every request."""
    from tuibatch import items as first_release
    from tuibatch import itemsfile

    path = write_file(d / f"parse-{fmt}.jsonl", n, fmt)
    data = path.read_bytes()
    out = {}
    readers: dict[str, Any] = {
        "requests": lambda: itemsfile.parse_lines(path, data, defaults_for(fmt))
    }
    if fmt == "payload":
        readers["first release"] = lambda: first_release.parse_lines(path, data)
    for name, read in readers.items():
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            read()
            times.append(time.perf_counter() - t0)
        out[name] = min(times)
    return out


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
    ap.add_argument(
        "--cases",
        default="fast,full,fresh",
        help="which start → first launch cases to time (comma-separated: fast, full, fresh); "
        "fresh alone skips building the big checkpoint",
    )
    ap.add_argument(
        "--format",
        choices=("payload", "request", "both"),
        default="payload",
        help="payload: {key, payload} lines (an agent); request: Gemini Batch API lines with "
        "a generation config and a JSON schema (a model); both: the two, runs alternating so "
        "they share the machine's load, and their ratio",
    )
    a = ap.parse_args()
    formats = ["payload", "request"] if a.format == "both" else [a.format]
    cases = [c for c in ("fast", "full", "fresh") if c in a.cases.split(",")]
    print(
        f"store: {asyncio.run(commits_per_second(a.commits)):.0f} transactions/s "
        f"(claim, mark_running, finish; WAL, synchronous=NORMAL)"
    )
    runs: dict[tuple[str, str], list[tuple[float, int, float]]] = {}
    with tempfile.TemporaryDirectory() as d, sim_process("--run-seconds", "1") as url:
        parsed = {fmt: parse_only(Path(d), a.items, fmt, a.repeat) for fmt in formats}
        built = {}
        for fmt in formats if {"fast", "full"} & set(cases) else []:
            t0 = time.perf_counter()
            (Path(d) / fmt).mkdir()
            built[fmt] = build(Path(d) / fmt, a.items, a.done, fmt)
            print(
                f"built {a.items} {fmt} items, {a.done} done, in {time.perf_counter() - t0:.1f} s"
            )
        bare = [import_time() for _ in range(a.repeat)]
        for i in range(a.repeat):
            for fmt in formats:
                if "fast" in cases:
                    runs.setdefault((fmt, "fast"), []).append(first_launch(built[fmt], url, fmt))
                if "full" in cases:
                    with open(built[fmt], "a") as f:  # a new key: the file is read and synced again
                        f.write(json.dumps(line(a.items + i, fmt)) + "\n")
                    runs.setdefault((fmt, "full"), []).append(first_launch(built[fmt], url, fmt))
                if "fresh" in cases:
                    new = Path(d) / f"fresh-{fmt}-{i}" / "items.jsonl"
                    new.parent.mkdir()
                    write_file(new, a.items, fmt)
                    runs.setdefault((fmt, "fresh"), []).append(first_launch(new, url, fmt))
    print(f"python + google-genai import alone: {min(bare):.2f} s (min of {a.repeat})")
    for fmt, readers in parsed.items():
        for name, took in readers.items():
            print(f"read {a.items} {fmt} lines in-process ({name} reader): {took:.2f} s (min)")
    what = {
        "fast": "items file unchanged (fast path)",
        "full": "one line added (full read + sync)",
        "fresh": f"no checkpoint yet ({a.items} lines read and added)",
    }
    for fmt in formats:
        for case in cases:
            got = runs[(fmt, case)]
            secs = [round(t, 2) for t, _, _ in got]
            cpu = [round(c, 2) for _, _, c in got]
            peak = max(p for _, p, _ in got) / 1024
            print(
                f"{fmt}: start → first launch, {what[case]}: median {median(secs):.2f} s, "
                f"min {min(secs):.2f} s, runs {secs}; CPU median {median(cpu):.2f} s, runs {cpu}; "
                f"peak RSS {peak:.0f} MB"
            )
    if len(formats) == 2:
        for case in cases:
            req = [t for t, _, _ in runs[("request", case)]]
            pay = [t for t, _, _ in runs[("payload", case)]]
            req_cpu = [c for _, _, c in runs[("request", case)]]
            pay_cpu = [c for _, _, c in runs[("payload", case)]]
            print(
                f"request/payload, {what[case]}: {median(req) / median(pay):.2f}x (medians), "
                f"{min(req) / min(pay):.2f}x (mins), CPU {median(req_cpu) / median(pay_cpu):.2f}x"
                " (medians)"
            )
        # today's figure: payload lines through the first release's reader, which did not
        # build requests; its start differs from today's by the readers' difference in-process
        extra = parsed["payload"]["requests"] - parsed["payload"]["first release"]
        for case in [c for c in cases if c != "fast"]:
            today = median([t for t, _, _ in runs[("payload", case)]]) - extra
            ratio = median([t for t, _, _ in runs[("request", case)]]) / today
            print(
                f"request vs the first release's payload reader, {what[case]}: {ratio:.2f}x "
                f"(medians; that reader's start estimated at {today:.2f} s)"
            )


if __name__ == "__main__":
    main()
