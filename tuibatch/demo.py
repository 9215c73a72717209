"""``tuibatch demo``: the whole product on a fresh machine, no API key needed.

It writes a 200-item sample batch, starts the local simulator with a realistic fault
plan and runs the real engine against it through the real SDK, so what the demo
shows is what a paid run does.
"""

from __future__ import annotations

import json
import os
import random
import sys
from collections.abc import Sequence
from pathlib import Path

DEMO_AGENT = "deep-research-pro-preview-12-2025"
DEMO_KEY = "demo-key-for-the-local-simulator"
INSTRUCTION = ("Reshape the article record into JSON with title, first_author, year, doi and five keywords "
               "taken from the abstract.")

_TOPICS = ["protein folding", "sparse attention", "coral reef recovery", "battery cathodes", "urban heat islands",
           "gut microbiome", "quantum error correction", "glacier melt", "language acquisition", "soil carbon"]
_NAMES = ["Okafor", "Lindqvist", "Tanaka", "Moreau", "Haddad", "Kowalski", "Silva", "Nakamura", "Ibrahim", "Chen"]
_VENUES = ["Nature", "PLOS ONE", "NeurIPS", "Cell Reports", "J. Climate", "ACL", "Science Advances"]


def sample_items(n: int = 200, seed: int = 137) -> list[dict[str, object]]:
    rng = random.Random(seed)
    out: list[dict[str, object]] = []
    for i in range(1, n + 1):
        topic = rng.choice(_TOPICS)
        authors = [f"{rng.choice('ABCDEFGHJKLMNPRS')}. {rng.choice(_NAMES)}" for _ in range(rng.randint(1, 4))]
        year = rng.randint(1998, 2026)
        out.append({
            "key": f"article-{i:04d}",
            "payload": {
                "title": f"{topic.capitalize()}: evidence from {rng.randint(3, 90)} sites",
                "authors": "; ".join(authors),
                "year": str(year),
                "venue": rng.choice(_VENUES),
                "doi": f"10.{rng.randint(1000, 9999)}/{topic.split()[0][:4]}.{year}.{i:05d}",
                "abstract": f"We study {topic} across {rng.randint(2, 40)} cohorts and report effects on "
                            f"{rng.choice(_TOPICS)} under {rng.choice(['warming', 'load', 'noise', 'drift'])}.",
            },
        })
    return out


def write_demo(directory: Path, n: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    items = directory / "items.jsonl"
    with open(items, "w", encoding="utf-8") as f:
        for obj in sample_items(n):
            f.write(json.dumps(obj, ensure_ascii=False) + "\n")
    return items


def main(argv: Sequence[str]) -> int:
    from .cli import UsageError, _Parser, run_batch
    from .sim import SimulatorThread, demo_fault_plan

    p = _Parser(prog="tuibatch demo", description="A 200-item batch against the local simulator (no API key).")
    p.add_argument("--dir", type=Path, default=Path("tuibatch-demo"), help="where to write the sample batch")
    p.add_argument("--items", type=int, default=200, help="how many items (default 200)")
    p.add_argument("--headless", action="store_true", help="print progress instead of opening the app")
    p.add_argument("--resume", action="store_true", help="keep the previous demo checkpoint instead of starting over")
    p.add_argument("--run-seconds", type=float, default=1.0, help="how long each simulated agent run takes")
    args = p.parse_args(argv)
    if args.items < 1:
        raise UsageError("--items must be at least 1")
    items = write_demo(args.dir, args.items)
    db = items.with_name("items.tuibatch.db")
    if not args.resume:
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
    keys = [f"article-{i:04d}" for i in range(1, args.items + 1)]
    # The demo must never reach Google, whatever keys this shell holds.
    for name in ("GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI"):
        os.environ.pop(name, None)
    os.environ["GEMINI_API_KEY"] = DEMO_KEY
    with SimulatorThread(run_seconds=args.run_seconds, latency_ms=20, seed=137,
                         faults=demo_fault_plan(keys)) as sim:
        os.environ["GOOGLE_GEMINI_BASE_URL"] = sim.url
        print(f"tuibatch demo: {args.items} items in {items}, simulator at {sim.url}", file=sys.stderr, flush=True)
        run_args = [str(items), "--db", str(db), "--agent", DEMO_AGENT, "--instruction", INSTRUCTION,
                    "--concurrency", "8", "--poll-interval", "0.5", "--poll-max", "3", "--retry-initial", "0.5",
                    "--retry-max", "4"]
        if args.headless:
            run_args += ["--headless", "--progress-every", "3"]
        code = run_batch(run_args)
    print(f"tuibatch demo: results with `tuibatch export --db {db}`; status with `tuibatch status --db {db}`",
          file=sys.stderr)
    return code
