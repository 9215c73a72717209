"""``tuibatch cancel-job --db DB N``: cancel one Batch API job on the service, as a whole.

Its items are flagged first (in the checkpoint, like a skip): whatever the job still delivers
is ignored and each item ends skipped, with the cost the service reports kept. The worker that
drives the job sees it end ``CANCELLED`` and settles it.
"""

from __future__ import annotations

from pathlib import Path

from ..options import UsageError


async def cancel_job(db: Path, job_id: int, *, base_url: str | None = None) -> str:
    """Flag the job's items, then cancel it on the service; the one line to print."""
    from ..backends.gemini import CredentialsError, GeminiBackend, resolve_credentials
    from ..backends.gemini_batch import BatchApi
    from ..runner import open_existing

    store = await open_existing(db)
    try:
        job = await store.flag_job_cancel(job_id)
        if job is None:
            raise UsageError(f"{db}: no job {job_id} in this checkpoint")
        if job.name is None:
            return f"job {job_id} was not created yet: its items will be skipped, nothing is sent"
        try:
            creds = resolve_credentials(base_url=base_url)
        except CredentialsError as exc:
            raise UsageError(str(exc)) from None
        backend = GeminiBackend(creds)
        try:
            await BatchApi(backend.client).cancel(job.name)
        finally:
            await backend.close()
        return f"job {job_id} ({job.name}) cancelled; its items end skipped"
    finally:
        await store.close()
