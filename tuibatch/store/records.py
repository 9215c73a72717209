"""What the checkpoint hands out: plain records, built from rows and never tied to a connection.

The column lists here are the single description of what the code reads: the schema check
(:mod:`.schema`) refuses a checkpoint that lacks any of them, so a renamed column is one clear
line at open, not an error in the middle of a run.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from ..states import SETTLED, ErrorClass, ItemState
from .errors import CheckpointError


class EventKind(str, enum.Enum):
    """The ``events.kind`` column: what an event records."""

    STATE = "state"  # the item moved to ``events.state``
    ATTEMPT = "attempt"  # one API call (launch, retry, the final result) with its usage and cost
    RELAUNCH = "relaunch"  # a launch that may pay twice (in doubt, or a run the service lost)
    TAKEOVER = "takeover"  # a worker took an item over from a dead or expired holder
    RERUN = "rerun"  # the item's payload changed and it went back to pending
    CANCEL = "cancel"  # a skip of a held item: its owner cancels the run
    PAUSE = "pause"
    RESUME = "resume"
    INFO = "info"
    POLL_ERROR = "poll_error"

    def __str__(self) -> str:
        return str(self.value)


@dataclass
class Row:
    """One item as the checkpoint holds it."""

    seq: int
    key: str
    payload_hash: str
    input: str
    payload: str
    agent: str | None
    model: str | None
    instruction: str | None
    state: ItemState
    run_id: str | None
    run_target: str | None
    owner: str | None
    lease_until: float | None
    attempts: int
    round_base: int
    relaunches: int
    tokens_in: int
    tokens_out: int
    tokens_thought: int
    cost_usd: float
    price_known: int
    output: str | None
    err_class: ErrorClass | None
    err_code: int | None
    err_message: str | None
    err_delay: float | None
    cancel_requested: int
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    #: bumped by every claim and takeover; a write carrying an older token is refused
    fence: int = 0
    #: the canonical request JSON (None on rows written before requests were stored)
    request: str | None = None
    #: a schema-valid structured answer, as JSON text
    output_json: str | None = None
    #: why the run stopped when it did not stop normally (MAX_TOKENS, SAFETY, stuck status, …)
    stop_reason: str | None = None
    #: the policy.Cause value of the last failure, for the failure summary
    cause: str | None = None
    #: 0 when the service reported no usage for a run: the cost is unknown, not $0
    usage_known: int = 1
    #: the Gemini Batch API job (jobs.id) holding the item
    job_id: int | None = None

    @property
    def round_attempts(self) -> int:
        """Attempts since the last manual retry: what --max-attempts limits."""
        return self.attempts - self.round_base

    @classmethod
    def from_db(cls, r: Sequence[Any]) -> Row:
        values = list(r)
        seq = values[0]
        values[_STATE] = item_state(values[_STATE], seq)
        if values[_ERR_CLASS] is not None:
            values[_ERR_CLASS] = _error_class(values[_ERR_CLASS], seq)
        return cls(*values)


ITEM_FIELDS = tuple(f.name for f in fields(Row))
#: the SELECT list a Row is built from, in field order
ITEM_COLUMNS = ", ".join(ITEM_FIELDS)
_STATE = ITEM_FIELDS.index("state")
_ERR_CLASS = ITEM_FIELDS.index("err_class")


def item_state(value: str, seq: int | None = None) -> ItemState:
    try:
        return ItemState(value)
    except ValueError:
        where = f" (item seq {seq})" if seq is not None else ""
        raise CheckpointError(f"checkpoint holds an unknown item state {value!r}{where}") from None


def _error_class(value: str, seq: int) -> ErrorClass:
    try:
        return ErrorClass(value)
    except ValueError:
        raise CheckpointError(
            f"checkpoint holds an unknown error class {value!r} (item seq {seq})"
        ) from None


@dataclass
class Event:
    id: int
    t: float
    seq: int | None
    kind: str
    state: ItemState | None
    attempt: int | None
    outcome: str | None
    http_code: int | None
    delay: float | None
    tokens_in: int | None
    tokens_out: int | None
    tokens_thought: int | None
    cost_usd: float | None
    wasted: int
    message: str | None
    #: the policy.Cause value of a failed or wasted attempt
    cause: str | None = None

    @classmethod
    def from_db(cls, r: Sequence[Any]) -> Event:
        values = list(r)
        if values[_EV_STATE] is not None:
            values[_EV_STATE] = item_state(values[_EV_STATE], values[2])
        return cls(*values)


EVENT_FIELDS = tuple(f.name for f in fields(Event))
EVENT_COLUMNS = ", ".join(EVENT_FIELDS)
_EV_STATE = EVENT_FIELDS.index("state")


@dataclass
class Attempt:
    """What one API call did, as the event log records it."""

    outcome: str
    http_code: int | None = None
    delay: float | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_thought: int = 0
    cost_usd: float = 0.0
    wasted: bool = False
    message: str | None = None


@dataclass
class Claim:
    row: Row
    #: the item was claimed by a process that died before its run id was recorded
    in_doubt: bool = False
    #: the item already has a run id: poll it, never launch it again
    resume: bool = False


@dataclass
class Totals:
    counts: dict[ItemState, int] = field(default_factory=dict)
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_thought: int = 0
    cost_usd: float = 0.0
    wasted_usd: float = 0.0
    unpriced: int = 0
    relaunches: int = 0
    total: int = 0
    #: items whose runs reported no usage: their cost is unknown, not $0
    usage_unknown: int = 0

    @property
    def finished(self) -> int:
        """Items no worker will touch again without a user command (lost ones included)."""
        return sum(self.counts.get(s, 0) for s in SETTLED)


@dataclass
class SyncReport:
    added: int = 0
    changed: list[str] = field(default_factory=list)
    rerun: int = 0
    total: int = 0


@dataclass(frozen=True)
class ItemFilter:
    """Which items a list shows: one state (or all) and a key / error substring."""

    state: ItemState | None = None
    text: str = ""

    def __post_init__(self) -> None:
        if self.state is not None and not isinstance(self.state, ItemState):
            object.__setattr__(self, "state", item_state(self.state))


@dataclass(frozen=True)
class ItemSummary:
    """One item as a list shows it: the narrow columns, never input or output."""

    seq: int
    key: str
    state: ItemState
    attempts: int
    tokens: int
    cost_usd: float
    price_known: bool
    started_at: float | None
    finished_at: float | None
    error: str | None
    cancel_requested: bool

    @property
    def latency(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


@dataclass
class KeyedEvent:
    """An event with its item's key (None for batch-level events)."""

    event: Event
    key: str | None


@dataclass
class Overview:
    """The numbers a progress display needs, read in one transaction so they agree."""

    totals: Totals
    control: dict[str, str]
    last_event_id: int
    #: items done or failed since the *since* the overview was asked for
    finished_recent: int
    #: when the first item was claimed, if any was
    first_start: float | None
