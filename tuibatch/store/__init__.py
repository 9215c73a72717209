"""The SQLite checkpoint: the single source of truth for every item and decision.

Every transition is one short ``BEGIN IMMEDIATE`` transaction that also appends to the event
log, so a ``kill -9`` at any instant leaves a state the next run can continue from. Other
processes (a second worker, ``tuibatch skip``, the app) talk to a worker only through this file.

One room per job:

========================  ==========================================================
``facade.py``             :class:`Store`, the API the rest of tuibatch calls
``connection.py``         opening and checking a file; transactions
``thread.py``             the one thread a connection lives on: one hop per transaction
``schema.py``             the tables, their versions and the migrations between them
``queue.py``              claims, leases and the transitions of a claimed item
``sync.py``               the items file into the checkpoint
``commands.py``           pause, resume, skip, retry, notes, meta and control values
``views.py``              every read (engine checks, the app, status, export, dry run)
``journal.py``            the event log
``records.py``            the records handed out: Row, Event, Totals …
``errors.py``             CheckpointError, StorageError, LostLease, ChangedKeys
``fallback.py``           run ids kept beside the checkpoint when it cannot be written
``monitor.py``            what the app watches: worker liveness, pace history, detail slices
``jobs.py``               Gemini Batch API jobs: records, claims, transitions
========================  ==========================================================

No SQL lives outside this package, except the limiter's own pace table
(:mod:`tuibatch.limiter.shared`, through :meth:`Store.transaction`).
"""

from __future__ import annotations

from .commands import pause_state
from .errors import ChangedKeys, CheckpointError, LostLease, StorageError
from .facade import Store, default_db_path
from .records import (
    Attempt,
    Claim,
    Event,
    EventKind,
    ItemFilter,
    ItemSummary,
    KeyedEvent,
    Overview,
    Row,
    SyncReport,
    Totals,
)
from .views import checkpoint_ready

__all__ = [
    "Attempt",
    "ChangedKeys",
    "CheckpointError",
    "Claim",
    "Event",
    "EventKind",
    "ItemFilter",
    "ItemSummary",
    "KeyedEvent",
    "LostLease",
    "Overview",
    "Row",
    "StorageError",
    "Store",
    "SyncReport",
    "Totals",
    "checkpoint_ready",
    "default_db_path",
    "pause_state",
]
