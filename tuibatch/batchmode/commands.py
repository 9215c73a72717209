"""Batch API commands on a checkpoint's jobs: ``cancel-job`` and ``cleanup-jobs``.

``tuibatch cancel-job --db DB N``: cancel one Batch API job on the service, as a whole.

Its items are flagged first (in the checkpoint, like a skip): whatever the job still delivers
is ignored and each item ends skipped, with the cost the service reports kept. The worker that
drives the job sees it end ``CANCELLED`` and settles it.
"""

from __future__ import annotations

from collections.abc import Awaitable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from ..options import UsageError
from ..policy import Failure
from ..safe_text import visible

if TYPE_CHECKING:
    from ..backends.gemini_batch import BatchApi


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


#: the service's answers for an object that is not there (any more): a file it does not know is
#: 403 "may not exist", a job 404
GONE = (403, 404)


async def cleanup_jobs(db: Path, *, base_url: str | None = None) -> str:
    """``tuibatch cleanup-jobs --db DB``: delete the finished jobs of this checkpoint on the
    service, with their uploaded input file and their result file; the one line to print.

    Only settled or dropped jobs (every result committed, or nothing created): an open job is
    never touched. Files first, then the job (the job names its result file). Each job is
    recorded in the checkpoint once all of its objects are gone; one that fails is left for
    the next run of the command.
    """
    from ..backends.gemini import CredentialsError, GeminiBackend, resolve_credentials
    from ..backends.gemini_batch import BatchApi
    from ..runner import open_existing
    from ..store import jobs_cleanup

    store = await open_existing(db)
    try:
        todo = await store.transaction(jobs_cleanup.cleanable)
        if not todo:
            return "no finished job left on the service: nothing to delete"
        try:
            creds = resolve_credentials(base_url=base_url)
        except CredentialsError as exc:
            raise UsageError(str(exc)) from None
        backend = GeminiBackend(creds)
        key = creds.api_key or ""
        api = BatchApi(backend.client, lambda s: s.replace(key, "***") if key else s)
        cleaned, objects, failed = 0, 0, []
        try:
            for job in todo:
                try:
                    deleted = await _clean_one(api, job.name, job.file_name)
                except Failure as f:
                    failed.append(f"job {job.id}: {visible(f.short())}")
                    continue
                await store.transaction(
                    partial(jobs_cleanup.mark_cleaned, job_id=job.id, deleted=deleted)
                )
                cleaned += 1
                objects += len(deleted)
        finally:
            await backend.close()
        line = f"{cleaned} finished job(s) cleaned up on the service ({objects} object(s) deleted)"
        if failed:
            line += f"; {len(failed)} not yet, run again: " + "; ".join(failed[:3])
        return line
    finally:
        await store.close()


async def _clean_one(api: BatchApi, name: str | None, input_file: str | None) -> list[str]:
    """Delete a job's result file, input file and the job; the names actually deleted."""
    deleted: list[str] = []
    result_file = None
    if name is not None:
        try:
            result_file = (await api.get(name)).result_file
        except Failure as f:
            if f.code not in GONE:
                raise
            name = None  # the job is gone already (its result file with it, or orphaned)
    for file_name in (result_file, input_file):
        if file_name and await _gone_after(api.delete_file(file_name)):
            deleted.append(file_name)
    if name is not None and await _gone_after(api.delete(name)):
        deleted.append(name)
    return deleted


async def _gone_after(call: Awaitable[None]) -> bool:
    """Run a delete; True when it deleted, False when the object was not there."""
    try:
        await call
    except Failure as f:
        if f.code in GONE:
            return False
        raise
    return True
