"""``tuibatch demo``: the whole product on a fresh machine, no API key needed.

It writes a 200-item sample batch with a JSON Schema (extract title, authors and year),
starts the local simulator with a realistic fault plan and runs the real engine against it
through the real SDK, so what the demo shows is what a paid run does.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from pathlib import Path

from . import logs
from .options import RunOptions, UsageError
from .states import ExitCode, ItemState

DEMO_AGENT = "deep-research-pro-preview-12-2025"
DEMO_KEY = "demo-key-for-the-local-simulator"
INSTRUCTION = "Extract the article's title, its authors and its year of publication as JSON."
#: what every answer must be (``--schema``): the agent is asked for it through the Interactions
#: API's ``response_format``, and each answer is checked against it
DEMO_SCHEMA: dict[str, object] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "authors": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "year": {"type": "integer", "minimum": 1900, "maximum": 2100},
    },
    "required": ["title", "authors", "year"],
    "additionalProperties": False,
}

_TOPICS = [
    "protein folding",
    "sparse attention",
    "coral reef recovery",
    "battery cathodes",
    "urban heat islands",
    "gut microbiome",
    "quantum error correction",
    "glacier melt",
    "language acquisition",
    "soil carbon",
]
_NAMES = [
    "Okafor",
    "Lindqvist",
    "Tanaka",
    "Moreau",
    "Haddad",
    "Kowalski",
    "Silva",
    "Nakamura",
    "Ibrahim",
    "Chen",
]
_VENUES = ["Nature", "PLOS ONE", "NeurIPS", "Cell Reports", "J. Climate", "ACL", "Science Advances"]


def sample_items(n: int = 200, seed: int = 137) -> list[dict[str, object]]:
    rng = random.Random(seed)
    out: list[dict[str, object]] = []
    for i in range(1, n + 1):
        topic = rng.choice(_TOPICS)
        authors = [
            f"{rng.choice('ABCDEFGHJKLMNPRS')}. {rng.choice(_NAMES)}"
            for _ in range(rng.randint(1, 4))
        ]
        year = rng.randint(1998, 2026)
        out.append(
            {
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
            }
        )
    return out


def write_demo(directory: Path, n: int) -> Path:
    """The sample batch (``items.jsonl``) and its schema (``schema.json``) in *directory*."""
    directory.mkdir(parents=True, exist_ok=True)
    items = directory / "items.jsonl"
    with open(items, "w", encoding="utf-8") as f:
        for obj in sample_items(n):
            f.write(json.dumps(obj, ensure_ascii=False) + "\n")
    schema_path(items).write_text(json.dumps(DEMO_SCHEMA, indent=2) + "\n", encoding="utf-8")
    return items


def schema_path(items: Path) -> Path:
    return items.with_name("schema.json")


def planned_failures(keys: list[str]) -> set[str]:
    """The keys the demo's fault plan makes fail for good (permanent 400s, a failed run)."""
    from .sim.demo_plan import PERMANENT_400, RUN_FAILED

    return {keys[pos - 1] for pos in (*PERMANENT_400, *RUN_FAILED) if 1 <= pos <= len(keys)}


async def _failed_keys(db: Path) -> set[str]:
    from .runner import open_existing

    store = await open_existing(db, readonly=True)
    try:
        rows = await store.items([ItemState.FAILED, ItemState.LOST])
    finally:
        await store.close()
    return {row.key for row in rows}


def explain_exit(code: int, db: Path, planned: set[str]) -> int:
    """Exit 1 only for failures the fault plan did not cause; say so when all were planned."""
    if code != ExitCode.FAILED or not db.exists():
        return code
    failed = asyncio.run(_failed_keys(db))
    unplanned = failed - planned
    if unplanned:
        shown = ", ".join(sorted(unplanned)[:5]) + (" …" if len(unplanned) > 5 else "")
        logs.notice.info(
            "demo: %d failure(s) the fault plan did not cause: %s", len(unplanned), shown
        )
    if not failed or failed != planned:
        return code
    shown = ", ".join(sorted(failed))
    what = "the failure" if len(failed) == 1 else f"the {len(failed)} failures"
    were = "was" if len(failed) == 1 else "were"
    logs.notice.info("demo: %s (%s) %s planned by the demo's fault plan", what, shown, were)
    return ExitCode.OK


def demo_options(items: Path, db: Path, *, headless: bool) -> RunOptions:
    return RunOptions(
        items=items,
        db=db,
        agent=DEMO_AGENT,
        instruction=INSTRUCTION,
        schema=schema_path(items),
        concurrency=8,
        poll_interval=0.5,
        poll_max=3.0,
        retry_initial=0.5,
        retry_max=4.0,
        progress_every=3.0 if headless else 2.0,
    )


def run_demo(
    directory: Path,
    *,
    items: int = 200,
    headless: bool = False,
    resume: bool = False,
    run_seconds: float = 1.0,
) -> int:
    """Write the sample batch, start the simulator with its fault plan, run it; the exit status."""
    from .sim import SimulatorThread, demo_fault_plan

    if items < 1:
        raise UsageError("--items must be at least 1")
    if run_seconds < 0:
        raise UsageError("--run-seconds must not be negative")
    items_path = write_demo(directory, items)
    db = items_path.with_name("items.tuibatch.db")
    if not resume:
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
    keys = [f"article-{i:04d}" for i in range(1, items + 1)]
    # The demo must never reach Google, whatever keys this shell holds.
    for name in ("GOOGLE_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI"):
        os.environ.pop(name, None)
    os.environ["GEMINI_API_KEY"] = DEMO_KEY
    options = demo_options(items_path, db, headless=headless)
    with SimulatorThread(
        run_seconds=run_seconds, latency_ms=20, seed=137, faults=demo_fault_plan(keys)
    ) as sim:
        os.environ["GOOGLE_GEMINI_BASE_URL"] = sim.url
        logs.notice.info("demo: %d items in %s, simulator at %s", items, items_path, sim.url)
        if headless:
            from .runner import run

            code: int = run(options)
        else:
            from .ui import run_app

            code = run_app(options)
    logs.notice.info(
        "demo: results with `tuibatch export --db %s`; status with `tuibatch status --db %s`",
        db,
        db,
    )
    return explain_exit(code, db, planned_failures(keys))
