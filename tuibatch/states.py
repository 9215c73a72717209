"""Every state, outcome and exit status tuibatch knows, defined once.

The checkpoint stores these as their string values; code compares members, never
bare strings. ``str`` mixins keep them usable as SQLite parameters and JSON values.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class _StrEnum(str, enum.Enum):
    def __str__(self) -> str:
        return str(self.value)


class ItemState(_StrEnum):
    """Where an item is in its life; the ``items.state`` column."""

    PENDING = "pending"  # waiting to be claimed
    CLAIMED = "claimed"  # a worker holds the lease; launch in progress or in backoff
    RUNNING = "running"  # the service's run id is recorded; being polled
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    #: the service answered 404 for a run id we recorded: never relaunched automatically,
    #: its paid cost is kept; `retry` relaunches it on purpose
    LOST = "lost"


#: in the order the UI and `status` show them
ITEM_STATES: tuple[ItemState, ...] = tuple(ItemState)
#: a worker holds these
IN_FLIGHT = frozenset({ItemState.CLAIMED, ItemState.RUNNING})
#: no worker will touch these again without a user command
SETTLED = frozenset({ItemState.DONE, ItemState.FAILED, ItemState.SKIPPED, ItemState.LOST})
#: work a worker still has to do
UNFINISHED = frozenset({ItemState.PENDING, *IN_FLIGHT})


class PauseKind(_StrEnum):
    """Who paused the batch; the ``control.pause_kind`` value."""

    USER = "user"  # a person (the app, `tuibatch pause`): workers wait for a resume
    BATCH = "batch"  # a batch-level failure or the budget: a worker with nothing in flight exits


@dataclass(frozen=True)
class PauseState:
    """Whether claiming is paused for every worker on a checkpoint, why, and by whom."""

    active: bool = False
    reason: str = ""
    kind: PauseKind | None = None


class RunStatus(_StrEnum):
    """``Interaction.status`` as the SDK's ``InteractionStatus`` literal lists it (google-genai 3.6)."""

    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    REQUIRES_ACTION = "requires_action"
    REQUIRES_CONTINUATION = "requires_continuation"
    IDLE = "idle"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INCOMPLETE = "incomplete"
    BUDGET_EXCEEDED = "budget_exceeded"


#: statuses after which a run never changes again on its own
TERMINAL_RUN = frozenset(
    {
        RunStatus.COMPLETED,
        RunStatus.FAILED,
        RunStatus.CANCELLED,
        RunStatus.INCOMPLETE,
        RunStatus.BUDGET_EXCEEDED,
        RunStatus.REQUIRES_ACTION,
    }
)


class ErrorClass(_StrEnum):
    """Why an item failed or was retried; the ``items.err_class`` column."""

    TRANSIENT = "transient"  # retried with backoff
    PERMANENT = "permanent"  # the request itself is wrong
    BATCH = "batch"  # the whole batch pauses (key, permission, per-day quota, budget)
    ATTEMPTS = "attempts"  # --max-attempts used up
    RUN = "run"  # the run ended failed / incomplete / budget_exceeded / ...
    UNEXPECTED = "unexpected"  # an exception tuibatch did not foresee
    TRUNCATED = "truncated"  # stopped early (MAX_TOKENS, SAFETY, ...) or no text
    INVALID_OUTPUT = "invalid_output"  # not valid JSON / does not match the schema
    STUCK = "stuck"  # a run that did not end within the bounded wait
    LOST = "lost"  # the service no longer knows a recorded run


class ExitCode(enum.IntEnum):
    OK = 0  # every item done or skipped
    FAILED = 1  # some items failed (or were lost)
    USAGE = 2  # bad input or usage
    PAUSED = 3  # the batch paused with work left
    STORAGE = 4  # the checkpoint could not be written (disk full, I/O error): run ids kept aside
    INTERRUPTED = 130
