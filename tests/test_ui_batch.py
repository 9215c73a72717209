"""The app on structured results and Gemini Batch API jobs (issues 11 and 12).

* A real ``--mode batch --schema`` run (the CLI, the SDK, the simulator) leaves a checkpoint;
  the app shows each item's parsed JSON in the table's result column, and the cost meter shows
  the batch rate with what the same work would have cost interactively — checked against the
  stored tokens priced by ``pricing.py`` at the interactive rate.
* A checkpoint with items queued in a job (built through the store's API, times pinned, the
  app's clock frozen) shows ``queued in job N`` with the job's state and age in the table and
  the detail view, and skip says what skipping an item inside a job means.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import FAST, cli_env, write_items
from test_ui import static_text, table_text, until
from textual.widgets import Static

from tuibatch.items import load_items
from tuibatch.pricing import load_prices
from tuibatch.sim import SimulatorThread
from tuibatch.states import ItemState
from tuibatch.store import Attempt, ItemFilter, Store
from tuibatch.store.views import PREVIEW_CHARS, ItemLine
from tuibatch.ui import data, fmt
from tuibatch.ui.app import BatchApp
from tuibatch.ui.detail import DetailScreen
from tuibatch.ui.header import interactive_equivalent
from tuibatch.ui.modals import ConfirmScreen
from tuibatch.ui.preview import compact_json, result_text
from tuibatch.usage import Usage

MODEL = "gemini-2.5-flash"
SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "year": {"type": "integer"}},
    "required": ["title", "year"],
}
BASE = 1_750_000_000.0
NOW = BASE + 245.0  # the job in the fixed checkpoint was created 4m05s before


@asynccontextmanager
async def viewing(
    db: Path, size: tuple[int, int], now: float | None = None, budget: float | None = None
) -> AsyncIterator[tuple[BatchApp, Any]]:
    """The app watching *db* (no worker of its own), its rows read."""
    clock = (lambda: now) if now is not None else None
    app = BatchApp(db, title="items.jsonl", clock=clock, budget=budget)
    async with app.run_test(size=size) as pilot:
        await asyncio.wait_for(app.loaded.wait(), 20)
        await until(
            pilot,
            lambda: app.table.idle and app.table.current is not None,
            what="the table's rows",
        )
        yield app, pilot


def cost_text(app: BatchApp) -> str:
    return static_text(app.query_one("#cost", Static))


# ------------------------------------------------------- a real batch run, its results


@pytest.fixture(scope="module")
def batch_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six items through one Batch API job with ``--schema``: every answer is a JSON value."""
    tmp = tmp_path_factory.mktemp("batch")
    items = tmp / "items.jsonl"
    write_items(items, 6)
    schema = tmp / "schema.json"
    schema.write_text(json.dumps(SCHEMA), encoding="utf-8")
    with SimulatorThread(batch_pending_seconds=0.05, batch_running_seconds=0.2) as sim:
        args = [str(items), "--headless", "--model", MODEL, "--mode", "batch"]
        out = subprocess.run(
            [sys.executable, "-m", "tuibatch", *args, "--schema", str(schema), *FAST],
            env=cli_env(sim.url),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert out.returncode == 0, out.stdout + out.stderr
    return tmp / "items.tuibatch.db"


def stored(db: Path) -> list[sqlite3.Row]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return con.execute("SELECT * FROM items ORDER BY seq").fetchall()
    finally:
        con.close()


def test_the_result_column_previews_each_parsed_json_answer(batch_db: Path) -> None:
    rows = stored(batch_db)
    assert all(r["state"] == "done" and r["output_json"] and r["job_id"] for r in rows)

    async def go() -> None:
        async with viewing(batch_db, (120, 24)) as (app, _pilot):
            text = table_text(app)
            assert "result / last error" in text
            for r in rows:
                value = json.loads(r["output_json"])
                shown = f'{{title: "{value["title"]}", year: {value["year"]}}}'
                line = next(ln for ln in text.splitlines() if r["key"] in ln)
                assert shown in line, line
        async with viewing(batch_db, (80, 24)) as (app, _pilot):  # narrow: cut, still one line
            line = next(ln for ln in table_text(app).splitlines() if "item-0003" in ln)
            assert len(line) == 80 and '{title: "Paper 3", ye' in line, line

    asyncio.run(go())


def test_the_cost_meter_shows_the_batch_rate_and_the_interactive_price(batch_db: Path) -> None:
    rows = stored(batch_db)
    prices = load_prices()
    # the same usage at the interactive price, from the stored tokens and the price table
    interactive = 0.0
    for r in rows:
        full = prices.cost_of(MODEL, Usage(r["tokens_in"], r["tokens_out"], r["tokens_thought"]))
        assert full is not None and full > 0
        interactive += full
    batch = sum(r["cost_usd"] for r in rows)
    assert batch == pytest.approx(interactive / 2)

    async def go() -> None:
        async with viewing(batch_db, (120, 24)) as (app, _pilot):
            whole, saved = interactive_equivalent(app.snap)
            assert app.snap.batch_jobs == 1
            assert app.snap.batch_usd == pytest.approx(batch)
            assert whole == pytest.approx(interactive) and saved == pytest.approx(interactive / 2)
            text = cost_text(app)
            assert (
                f"batch rate ½: jobs {fmt.money(batch)} · interactively {fmt.money(interactive)}"
                f" (saved {fmt.money(interactive - batch)})"
            ) in text, text
        # narrow, with a budget bar beside it: a shorter form, the line still fits
        async with viewing(batch_db, (80, 24), budget=0.01) as (app, _pilot):
            text = cost_text(app)
            assert f"batch ½, interactively {fmt.money(interactive)}" in text, text
            assert "budget " in text and all(len(ln) <= 78 for ln in text.splitlines()), text

    asyncio.run(go())


def test_no_batch_line_without_jobs(tmp_path: Path) -> None:
    async def go() -> None:
        db = await held_in_job(tmp_path, plan=False)
        async with viewing(db, (120, 24), NOW) as (app, _pilot):
            assert app.snap.batch_jobs == 0
            assert "batch" not in cost_text(app) and "interactively" not in cost_text(app)

    asyncio.run(go())


# --------------------------------------------------------- items waiting in a job


async def held_in_job(tmp: Path, *, plan: bool = True) -> Path:
    """Five items: the first done with a 1 MB text answer, items 2-4 in job 1 (created on the
    service, JOB_STATE_RUNNING, 4m05s before NOW), the last pending."""
    items = tmp / "items.jsonl"
    write_items(items, 5)
    db = tmp / "items.tuibatch.db"
    store = await Store.open(db, create=True)
    try:
        await store.sync_items(load_items(items))
        claim = await store.claim()
        assert claim is not None
        seq = claim.row.seq
        await store.mark_running(seq, "int_1", MODEL)
        big = "First line of a long answer.\n\n" + "x" * 1_000_000
        await store.finish(
            seq, ItemState.DONE, run_id="int_1", output=big, a=Attempt(outcome="completed")
        )
        if plan:
            batch_id = (await store.meta())["batch_id"]
            rows = [await store.get_by_key(f"item-{i:04d}") for i in (1, 2, 3)]
            seqs = [r.seq for r in rows if r is not None]
            job = await store.plan_job(batch_id, MODEL, seqs, 300, "inline")
            assert job is not None and job.id == 1
            await store.job_submitted(1, "batches/abc123", "JOB_STATE_RUNNING", "created")

            def pin(con: sqlite3.Connection) -> None:
                con.execute("UPDATE jobs SET created_at=?, submitted_at=?", (BASE - 2, BASE))

            await store.transaction(pin)
    finally:
        await store.close()
    return db


def test_queued_items_show_their_job_number_state_and_age(tmp_path: Path) -> None:
    db = asyncio.run(held_in_job(tmp_path))

    async def go() -> None:
        async with viewing(db, (120, 24), NOW) as (app, pilot):
            lines = table_text(app).splitlines()
            for key in ("item-0001", "item-0002", "item-0003"):
                line = next(ln for ln in lines if key in ln)
                assert "running" in line and "queued in job 1 · running · 4m05s" in line, line
            assert "batch rate ½: 1 job, nothing billed yet" in cost_text(app)
            pending = next(ln for ln in lines if "item-0004" in ln)
            assert "job" not in pending
            done = next(ln for ln in lines if "item-0000" in ln)
            assert "First line of a long answer. xxxx" in done, done

            # the detail view says which job, its service name, state and age, and what skip does
            app.table.move_to(1)
            await until(
                pilot,
                lambda: app.table.current is not None and app.table.current.key == "item-0001",
            )
            await pilot.press("enter")
            await until(
                pilot,
                lambda: isinstance(app.screen, DetailScreen) and bool(app.screen.query("#detail-head")),
                what="the detail screen",
            )  # fmt: skip
            head = static_text(app.screen.query_one("#detail-head", Static))
            assert "queued in job 1 (batches/abc123) · running · 4m05s" in head, head
            assert "tuibatch cancel-job 1" in head
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, DetailScreen))

            await pilot.press("s")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="skip question")
            screen = app.screen
            assert isinstance(screen, ConfirmScreen)
            assert "item-0001 is in Batch API job 1" in screen.question
            assert "can only be cancelled whole" in screen.question
            assert "ignores its result" in screen.question
            await pilot.press("n")

        async with viewing(db, (80, 24), NOW) as (app, _pilot):  # narrow: the short form
            line = next(ln for ln in table_text(app).splitlines() if "item-0002" in ln)
            assert "job 1 · running · 4m05s" in line and "queued" not in line, line

    asyncio.run(go())


def test_the_table_reads_a_bounded_prefix_of_each_result(tmp_path: Path) -> None:
    db = asyncio.run(held_in_job(tmp_path))

    async def go() -> list[ItemLine]:
        store = await Store.open(db, readonly=True)
        try:
            return await data.window(store, ItemFilter(), 0, 10)
        finally:
            await store.close()

    rows = asyncio.run(go())
    assert [r.key for r in rows] == [f"item-{i:04d}" for i in range(5)]
    assert rows[0].preview is not None and len(rows[0].preview) == PREVIEW_CHARS
    assert [r.job_id for r in rows] == [None, 1, 1, 1, None]
    assert rows[1].job_service_state == "JOB_STATE_RUNNING" and rows[1].job_since == BASE
    assert all(r.preview is None for r in rows[1:])


# ----------------------------------------------------------------- the preview text


def test_compact_json_on_whole_and_cut_answers() -> None:
    text = json.dumps({"title": "Dün\u00e9", "year": 2019, "tags": ["a", "b"], "x y": None})
    assert (
        compact_json(text, 0) == '{title: "Dün\u00e9", year: 2019, tags: ["a", "b"], "x y": null}'
    )
    pretty = json.dumps({"title": "A long title that goes on", "year": 2019}, indent=2)
    assert compact_json(pretty[:30], 0) == '{title: "A long title tha'
    assert compact_json(pretty, 20) == '{title: "A long tit…'


def test_preview_text_is_data_never_markup_or_controls() -> None:
    evil = json.dumps({"t": "[bold red]x[/]\x1b]0;pwned\x07\nnext"})
    shown = result_text(evil, True, 0)
    assert shown == '{t: "[bold red]x[/]␛]0;pwned\\x07\\nnext"}'
    assert result_text('```json\n{"a": 1}\n```', False, 0) == "{a: 1}"
    assert result_text("Plain answer\n\nsecond   paragraph", False, 0) == (
        "Plain answer second paragraph"
    )


def test_a_job_holding_items_is_not_a_live_worker(tmp_path: Path) -> None:
    """Items inside a job are leased to ``job:<id>`` for as long as a job may live: that is not
    a process, so the header must not count it as a worker alive."""
    db = asyncio.run(held_in_job(tmp_path))

    async def go() -> None:
        store = await Store.open(db, readonly=True)
        try:
            live = await store.workers_alive()
        finally:
            await store.close()
        assert live.in_flight == 3
        assert not any(w.owner.startswith("job:") for w in live.workers), live

    asyncio.run(go())


def test_a_jobs_state_and_age_move_on_screen_without_an_event(tmp_path: Path) -> None:
    """The worker's polls change a job's service state and its age grows, but neither writes
    an event: the app re-reads a window showing job rows on its own."""
    db = asyncio.run(held_in_job(tmp_path))
    now = [NOW]

    def succeeded(con: sqlite3.Connection) -> None:
        con.execute("UPDATE jobs SET service_state='JOB_STATE_SUCCEEDED'")

    async def go() -> None:
        app = BatchApp(db, title="items.jsonl", clock=lambda: now[0], poll_interval=0.05)
        async with app.run_test(size=(120, 24)) as pilot:
            await asyncio.wait_for(app.loaded.wait(), 20)
            await until(
                pilot, lambda: "queued in job 1 · running · 4m05s" in table_text(app), timeout=30
            )
            events = app._last_id
            now[0] = NOW + 60
            other = await Store.open(db)
            try:
                await other.transaction(succeeded)
            finally:
                await other.close()
            await until(
                pilot,
                lambda: "queued in job 1 · succeeded · 5m05s" in table_text(app),
                timeout=30,
                what="the new state and age",
            )
            assert app._last_id == events, "an event was written: this test proves nothing"

    asyncio.run(go())
