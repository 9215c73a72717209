"""What an interactive run says about Batch API jobs it finds open in the checkpoint.

Items inside an open job (recorded, not settled) are held by the job: the interactive engine
never claims them (their job may still deliver them, and a second launch would be paid twice).
A run that finds some says so in one line, with how to collect or cancel them.
"""

from __future__ import annotations

from pathlib import Path

from ..safe_text import visible
from ..states import ItemState
from ..store import Store
from ..store.jobs import OPEN_PHASES

#: jobs named in the line; more are counted
SHOWN = 5


async def open_jobs_line(store: Store, db: Path) -> str | None:
    """The one line about open jobs and the items they hold, or None when there is none."""
    open_jobs = [j for j in await store.jobs() if j.phase in OPEN_PHASES]
    if not open_jobs:
        return None
    counts = await store.job_item_counts()
    held = 0
    parts: list[str] = []
    for job in open_jobs:
        c = counts.get(job.id, {})
        n = c.get(ItemState.CLAIMED.value, 0) + c.get(ItemState.RUNNING.value, 0)
        held += n
        if len(parts) < SHOWN:
            state = (job.service_state or "not created yet").removeprefix("JOB_STATE_").lower()
            where = f"{visible(job.name)}, {state}" if job.name else state
            parts.append(f"job {job.id} ({where}, {n} item(s))")
    more = f" and {len(open_jobs) - SHOWN} more" if len(open_jobs) > SHOWN else ""
    return (
        f"{held} item(s) are in Batch API job(s) still open: {'; '.join(parts)}{more}."
        " They are not launched here (their job may still deliver them): run with --mode batch"
        f" to collect them, or `tuibatch cancel-job --db {db} N`"
    )
