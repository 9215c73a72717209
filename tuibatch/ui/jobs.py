"""The jobs screen (key ``J``): Gemini Batch API jobs of this checkpoint, read from its jobs table.

One row per job: its number, display name, tuibatch phase and the service's state, the items it
holds now (queued or running) and those it settled, when it was recorded and last changed, and
its cost at the batch rate. Reads only; ``tuibatch cancel-job`` cancels a job.
"""

from __future__ import annotations

import time
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from ..safe_text import visible
from ..store.jobs import JobRow
from . import fmt

COLUMNS = (
    "job",
    "display name",
    "state",
    "service",
    "items",
    "in job",
    "created",
    "updated",
    "cost",
)


def job_cells(job: JobRow, holding: dict[str, int], now: float) -> tuple[str, ...]:
    """The cells of one job's row (every service text through ``visible``)."""
    in_job = sum(holding.values())
    service = (job.service_state or "-").removeprefix("JOB_STATE_").lower()
    return (
        str(job.id),
        visible(job.display_name),
        job.state,
        visible(service),
        str(job.item_count),
        str(in_job),
        fmt.clock(job.created_at),
        f"{fmt.duration(max(0.0, now - job.updated_at))} ago",
        fmt.money(job.cost_usd),
    )


class JobsScreen(Screen[None]):
    """Esc goes back to the table; ctrl+r reads the jobs again."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "app.pop_screen", "Back", id="jobs-back", tooltip="Back to the table"),
        Binding("ctrl+r", "reload", "Reload", id="jobs-reload", tooltip="Read the jobs again"),
    ]

    def __init__(self) -> None:
        super().__init__(id="jobs")

    def compose(self) -> ComposeResult:
        yield Static("Gemini Batch API jobs (half price; results within 24 h)", id="jobs-head")
        yield DataTable(id="jobs-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    async def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(*COLUMNS)
        await self.action_reload()
        self.set_interval(2.0, self.action_reload)

    async def action_reload(self) -> None:
        store = getattr(self.app, "store", None)
        if store is None:
            return
        jobs = await store.jobs()
        counts = await store.job_item_counts()
        now = time.time()
        table = self.query_one(DataTable)
        table.clear()
        for job in jobs:
            holding = {
                s: n for s, n in counts.get(job.id, {}).items() if s in ("claimed", "running")
            }
            table.add_row(*job_cells(job, holding, now), key=str(job.id))
        head = self.query_one("#jobs-head", Static)
        spent = sum(j.cost_usd for j in jobs)
        head.update(
            f"Gemini Batch API jobs: {len(jobs)}, {fmt.money(spent)} at the batch rate "
            f"({fmt.money(spent * 2)} interactively)"
        )
