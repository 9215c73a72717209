"""The user's commands into the checkpoint: ask first where it costs or cancels, write, report.

Each is a store write the worker polls (pause, skip, retry); the app then re-reads at once
(``poke``) so the effect shows without waiting for the next poll. Keys quoted in a question or
a notification are data: made visible and never parsed as markup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..states import IN_FLIGHT, ItemState, PauseKind
from . import fmt
from .detail import DetailScreen
from .modals import ConfirmScreen, QuitScreen
from .waste import WasteScreen

if TYPE_CHECKING:
    from .app import BatchApp


def selection(app: BatchApp) -> tuple[list[str], bool]:
    """(keys, bulk): the tagged items, else the one under the cursor."""
    if app.table.tagged:
        return sorted(app.table.tagged), True
    row = app.table.current
    return ([row.key] if row else []), False


def skip_report(result: dict[str, str]) -> str:
    """``key: skipped`` for one item, ``3 skipped, 1 already done`` for several."""
    if len(result) == 1:
        key, what = next(iter(result.items()))
        return f"{fmt.key(key, 60)}: {fmt.one_line(what, 80)}"
    counts: dict[str, int] = {}
    for what in result.values():
        counts[what] = counts.get(what, 0) + 1
    return ", ".join(f"{n} {fmt.one_line(w, 60)}" for w, n in counts.items())


def job_skip_question(key: str, job_id: int) -> str:
    """What skipping an item inside a Batch API job means, asked before it is done."""
    return (
        f"{fmt.key(key, 60)} is in Batch API job {job_id}, which can only be cancelled whole:"
        " skipping it ignores its result when the job delivers it (what the job bills for it"
        f" still counts). To stop the whole job: tuibatch cancel-job {job_id}. Skip the item?"
    )


async def toggle_pause(app: BatchApp) -> None:
    """One key, ``p``: pause when claiming, resume when paused (the header says which)."""
    if app.store is None:
        return
    if app.paused:
        await app.store.set_paused(False, "resumed by user", kind=PauseKind.USER)
        app.restart_worker_if_idle()
    else:
        await app.store.set_paused(True, "by user", kind=PauseKind.USER)
    await app.poke()


async def skip(app: BatchApp) -> None:
    keys, bulk = selection(app)
    if not keys or app.store is None:
        return
    row = app.table.current
    if bulk:
        question = f"Skip {len(keys)} tagged item(s)? Running ones are cancelled on the service."
    elif row is not None and row.job_id is not None:
        question = job_skip_question(row.key, row.job_id)
    elif row is not None and row.state in IN_FLIGHT:
        question = f"Cancel the run of {fmt.key(row.key, 60)} on the service and skip it?"
    else:
        question = ""
    if question and not await app.push_screen_wait(ConfirmScreen(question, "Skip")):
        return
    result = await app.store.skip(keys)
    app.table.tagged.clear()
    app.notify(skip_report(result), timeout=3, markup=False)
    await app.poke()


async def retry(app: BatchApp) -> None:
    keys, bulk = selection(app)
    if not keys or app.store is None:
        return
    question = ConfirmScreen(f"Retry {len(keys)} tagged item(s)?", "Retry")
    if bulk and not await app.push_screen_wait(question):
        return
    n = await app.store.retry(keys)
    app.table.tagged.clear()
    if n:
        app.notify(f"{n} item(s) back to pending", timeout=3, markup=False)
        app.restart_worker_if_idle()
    else:
        app.notify("nothing to retry (only failed or skipped items)", severity="warning", timeout=3)
    await app.poke()


async def retry_failed(app: BatchApp) -> None:
    if app.store is None:
        return
    failed = app.snap.totals.counts.get(ItemState.FAILED, 0)
    if not failed:
        app.notify("no failed items", timeout=3)
        return
    if not await app.push_screen_wait(
        ConfirmScreen(f"Retry all {failed} failed item(s)?", "Retry all")
    ):
        return
    n = await app.store.retry(failed=True)
    app.notify(f"{n} failed item(s) back to pending", timeout=3)
    if n:
        app.restart_worker_if_idle()
    await app.poke()


async def detail(app: BatchApp) -> None:
    """The item under the cursor: big texts cut to a page (the rest paged), its events, its job."""
    row = app.table.current
    if row is None or app.store is None:
        return
    head = await app.store.item_head(row.seq)
    if head is None:
        return
    events = await app.store.events(seq=row.seq, limit=500)
    job_id = head.row.job_id
    job = await app.store.job(job_id) if job_id is not None else None
    await app.push_screen(DetailScreen(head, events, job, clock=app.now))


async def waste(app: BatchApp) -> None:
    """What was paid for and thrown away, and what failed, by cause."""
    if app.store is None:
        return
    wasted = await app.store.waste_by_cause_monitor()
    failures = await app.store.failures_by_cause_monitor()
    await app.push_screen(WasteScreen(app.snap.totals, wasted, failures))


async def quit_app(app: BatchApp) -> None:
    """``q``: with a worker running, ask whether to stop it, detach from it or stay."""
    if app.worker is None or not app.worker.alive:
        app.outcome = "quit"
        app.exit(0)
        return
    counts = app.snap.totals.counts
    in_flight = sum(counts.get(s, 0) for s in IN_FLIGHT)
    answer = await app.push_screen_wait(QuitScreen(in_flight, str(app.db)))
    if answer == "stop":
        app.worker.terminate()
        app.outcome = "stop"
        app.exit(0)
    elif answer == "detach":
        app.outcome = "detach"
        app.exit(0)
