"""The store's exceptions: each says what went wrong in terms of the checkpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .fallback import KeptRun
    from .records import SyncReport


class CheckpointError(Exception):
    """The checkpoint cannot be used; the message is the one line the user sees."""


class LostLease(Exception):
    """Another worker took this item over (our lease lapsed): stop touching it."""


class ChangedKeys(Exception):
    """The items file changed payloads of keys already in the checkpoint."""

    def __init__(self, report: SyncReport, message: str | None = None):
        super().__init__(message or "changed payloads")
        self.report = report
        self.message = message


class StorageError(Exception):
    """The checkpoint cannot be written (disk full, I/O error, read-only file system).

    Never an item's failure: the engine stops claiming, keeps the run ids it could not record
    (see :mod:`tuibatch.store.fallback`) and the run exits with ``ExitCode.STORAGE``. The message
    is one line: what SQLite said, in the user's terms.
    """

    #: a run the service created whose id this failure kept out of the checkpoint
    kept_run: KeptRun | None = None
