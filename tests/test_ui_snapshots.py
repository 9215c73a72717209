"""Snapshot tests of the screen on a fixed checkpoint (no live worker: deterministic).

The checkpoint is built through the store API (claim, mark_running, finish, skip …) and then
its timestamps are pinned, and the app's clock is frozen, so every run draws the same frame.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tuibatch.items import load_items
from tuibatch.store import Attempt, Store
from tuibatch.ui.app import BatchApp

BASE = 1_750_000_000.0  # fixed wall clock for every timestamp in the checkpoint
NOW = BASE + 60.0


async def build_fixed_checkpoint(tmp: Path, n: int = 40) -> Path:
    """40 items mid-run: done (one unpriced), two failed, one skipped, running, claimed, pending."""
    items = tmp / "articles.jsonl"
    with open(items, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"key": f"article-{i:04d}",
                                "payload": {"title": f"Article {i}", "text": f"Body of article {i}."}}) + "\n")
    db = tmp / "articles.tuibatch.db"
    store = await Store.open(db, create=True)
    try:
        await store.sync_items(load_items(items))
        for i in range(28):
            claim = await store.claim()
            assert claim is not None
            seq = claim.row.seq
            if i < 20:
                await store.mark_running(seq, f"int_{seq:06d}", "sim-agent")
                await store.finish(seq, "done", run_id=f"int_{seq:06d}",
                                   output=json.dumps({"summary": f"Summary of article {i}."}),
                                   a=Attempt(outcome="completed", tokens_in=120 + i, tokens_out=300 + 7 * i,
                                             tokens_thought=600 + 3 * i, cost_usd=0.0011 + i * 0.0001),
                                   price_known=i != 5)
            elif i == 20:
                await store.record_attempt(seq, Attempt(outcome="permanent", http_code=400,
                                                        message="400 INVALID_ARGUMENT: the document exceeds the allowed size."),
                                           error_class="permanent")
                await store.finish(seq, "failed", error_class="permanent", a=Attempt(
                    outcome="failed", http_code=400,
                    message="400 INVALID_ARGUMENT: the document exceeds the allowed size."))
            elif i == 21:
                for _ in range(4):
                    await store.record_attempt(seq, Attempt(outcome="transient", http_code=503, delay=2.0,
                                                            message="503 UNAVAILABLE: The model is overloaded."),
                                               error_class="transient")
                await store.finish(seq, "failed", error_class="attempts", a=Attempt(
                    outcome="failed", http_code=503, message="503 UNAVAILABLE: gave up after 4 attempts"))
            elif i == 22:
                await store.mark_running(seq, f"int_{seq:06d}", "sim-agent")
                await store.finish(seq, "skipped", a=Attempt(outcome="cancelled", message="skipped by user"))
            elif i < 26:
                await store.mark_running(seq, f"int_{seq:06d}", "sim-agent")
        await store.set_control({"hold_until_wall": str(NOW + 12), "hold_reason": "429 RESOURCE_EXHAUSTED"})
        await pin_times(store)
    finally:
        await store.close()
    return db


async def pin_times(store: Store) -> None:
    async with store.tx() as db:
        await db.execute("UPDATE items SET created_at=?, updated_at=?", (BASE, BASE))
        await db.execute("UPDATE items SET started_at=?+seq*2 WHERE started_at IS NOT NULL", (BASE,))
        await db.execute("UPDATE items SET finished_at=started_at+3.5+(seq%5)*1.1 WHERE finished_at IS NOT NULL")
        await db.execute("UPDATE events SET t=?+id*0.4", (BASE,))


@pytest.fixture
def fixed_db(tmp_path: Path) -> Path:
    return asyncio.run(build_fixed_checkpoint(tmp_path))


@pytest.fixture(autouse=True)
def _utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def make_app(db: Path) -> BatchApp:
    return BatchApp(db, title="articles.jsonl", budget=0.05, clock=lambda: NOW)


async def _loaded(pilot: Any) -> None:
    app = pilot.app
    await asyncio.wait_for(app.loaded.wait(), 10)
    await pilot.pause()
    await pilot.pause(0.1)


def test_main_mid_run(snap_compare: Any, fixed_db: Path) -> None:
    assert snap_compare(make_app(fixed_db), terminal_size=(100, 30), run_before=_loaded)


def test_main_80x24(snap_compare: Any, fixed_db: Path) -> None:
    assert snap_compare(make_app(fixed_db), terminal_size=(80, 24), run_before=_loaded)


def test_detail_failed(snap_compare: Any, fixed_db: Path) -> None:
    async def open_failed(pilot: Any) -> None:
        await _loaded(pilot)
        await pilot.press("5", "enter")
        await pilot.pause(0.2)

    assert snap_compare(make_app(fixed_db), terminal_size=(100, 30), run_before=open_failed)


def test_help(snap_compare: Any, fixed_db: Path) -> None:
    async def open_help(pilot: Any) -> None:
        await _loaded(pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.2)

    assert snap_compare(make_app(fixed_db), terminal_size=(100, 40), run_before=open_help)


def test_monochrome(snap_compare: Any, fixed_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(fixed_db)
    assert app.no_color
    assert snap_compare(app, terminal_size=(80, 24), run_before=_loaded)
