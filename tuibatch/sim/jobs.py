"""One Batch API job: its state over time, its lines, and the Operation JSON it reads as.

A job is PENDING for ``pending_for`` seconds, then RUNNING until ``run_end`` (its lines finish
evenly over that time), then SUCCEEDED. A ``job_state`` rule moves the end to ``end_after`` and
names the final state: SUCCEEDED, PARTIALLY_SUCCEEDED or FAILED squeeze the run into that time;
CANCELLED or EXPIRED cut the normal run off there. A final state that is not an end (QUEUED,
PAUSED, ...) stays until a cancel or the expiry. A cancel ends the job at once (CANCELLED: the
Developer API has no CANCELLING); a job not ended after ``expire_after`` seconds is EXPIRED. A
job cut off mid-run delivers the lines finished before the cut-off when ``partial`` is set.
State is derived lazily from the clock.

The JSON is what the Gemini Developer API answers, as the SDK's ``batches.py``
(``_BatchJob_from_mldev``, ``_BatchJobDestination_from_mldev``) reads it: a long-running
Operation ``{"name": "batches/ID", "metadata": GenerateContentBatch, "done", "response" |
"error"}`` whose ``metadata`` holds ``model``, ``displayName``, ``state`` (``BATCH_STATE_*``,
mapped to JobState by ``_transformers.t_job_state``), ``createTime``, ``updateTime``,
``endTime``, ``batchStats`` (int64 counts as strings) and ``output``: ``inlinedResponses.
inlinedResponses[]`` (each ``response`` or ``error`` plus the request's ``metadata``) or
``responsesFile`` (a file name; one ``{"key", "response" | "error"}`` per line).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from tuibatch.sim.vocabulary import ENDED_JOB_STATES, wire_state

BATCH_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
OUTPUT_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput"
#: End states whose output carries every line.
COMPLETE_STATES = frozenset({"JOB_STATE_SUCCEEDED", "JOB_STATE_PARTIALLY_SUCCEEDED"})
#: End states that cut a job off: the lines finished before may be delivered.
CUT_OFF_STATES = frozenset({"JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"})


def timestamp(wall: float) -> str:
    """RFC 3339 with microseconds, Z-normalised, as Google writes Timestamps."""
    moment = datetime.fromtimestamp(wall, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Line:
    """One request of a job. ``item`` is the stats key: the ``tuibatch_item`` metadata entry,
    else the request's key (``metadata.key`` inline, the line's ``key`` in a file), else the
    content hash. ``problem`` is why the line cannot run (answered as a 400 line error)."""

    key: str | None
    item: str
    metadata: dict[str, Any] | None
    text: str
    system: str
    problem: str | None = None
    #: (JSON mode?, schema) of the request (``structured.model_contract``): a JSON-mode line
    #: is answered with JSON, which ``invalid_json`` / ``schema_mismatch`` faults spoil
    contract: tuple[bool, Any] = (False, None)


@dataclass
class Job:
    id: str
    display_name: str | None
    model: str
    source: str  # inline | file
    input_file: str | None
    lines: list[Line]
    tokens: int
    created_mono: float
    created_wall: float
    pending_for: float
    run_end: float
    end_after: float
    expire_after: float
    partial: bool = True
    final_state: str = "JOB_STATE_SUCCEEDED"
    error: dict[str, Any] | None = None
    output_late: float = 0.0
    cancelled_after: float | None = None
    state: str = "JOB_STATE_PENDING"
    changed_after: float = 0.0
    ended_after: float | None = None
    #: Line results in request order, computed as lines finish: ``{"response": ...}`` or
    #: ``{"error": ...}``.
    results: list[dict[str, Any]] = field(default_factory=list)
    delivered: int = 0
    order: list[int] | None = None
    output_file: str | None = None
    gone: str | None = None  # lost | deleted: 404 from now on
    seq: int = 0  # creation order

    @property
    def name(self) -> str:
        return f"batches/{self.id}"

    @property
    def ended(self) -> bool:
        return self.ended_after is not None

    def timeline(self) -> tuple[float, float]:
        """(start, end) of the span over which the lines finish, in seconds after creation."""
        if self.final_state in CUT_OFF_STATES:
            return self.pending_for, self.run_end
        return min(self.pending_for, self.end_after), self.end_after

    def done_lines(self, at: float) -> int:
        """How many lines have finished ``at`` seconds after creation."""
        n = len(self.lines)
        start, end = self.timeline()
        at = min(at, end)
        if at < start:
            return 0
        if end <= start:
            return n
        return min(n, math.floor(n * (at - start) / (end - start) + 1e-9))

    def advance(self, now: float) -> bool:
        """Bring the state to ``now``; True when the job has just ended."""
        if self.ended_after is not None:
            return False
        at = now - self.created_mono
        events: list[tuple[float, str]] = []
        if self.final_state in ENDED_JOB_STATES and self.end_after <= at:
            events.append((self.end_after, self.final_state))
        if self.expire_after <= at:
            events.append((self.expire_after, "JOB_STATE_EXPIRED"))
        if self.cancelled_after is not None:
            events.append((self.cancelled_after, "JOB_STATE_CANCELLED"))
        if events:
            when, state = min(events, key=lambda e: e[0])
            self.state, self.changed_after, self.ended_after = state, when, when
            if state in COMPLETE_STATES:
                self.delivered = len(self.lines)
            elif state in CUT_OFF_STATES and self.partial:
                self.delivered = self.done_lines(when)
            return True
        running_from = min(self.pending_for, self.end_after)
        if at < running_from:
            self._set("JOB_STATE_PENDING", 0.0)
        elif at < self.end_after:
            self._set("JOB_STATE_RUNNING", running_from)
        else:
            self._set(self.final_state, self.end_after)
        return False

    def _set(self, state: str, since: float) -> None:
        if state != self.state:
            self.state, self.changed_after = state, since

    def cancel(self, now: float) -> None:
        """Cancel unless already ended (then nothing changes, as Google's no-op cancel)."""
        self.advance(now)
        if not self.ended:
            self.cancelled_after = max(0.0, now - self.created_mono)
            self.advance(now)

    def finish_now(self, now: float) -> None:
        """Succeed at once with every line (a cancel that lost the race)."""
        self.advance(now)
        if not self.ended:
            at = max(0.0, now - self.created_mono)
            self.pending_for = min(self.pending_for, at)
            self.run_end = self.end_after = at
            self.final_state = "JOB_STATE_SUCCEEDED"
            self.advance(now)

    def wanted_results(self, now: float) -> int:
        """How many line results exist by ``now`` (a FAILED job's are never delivered)."""
        if self.ended_after is not None:
            return self.delivered
        return self.done_lines(now - self.created_mono)

    def fix_order(self, how: str, rng: random.Random) -> None:
        order = list(range(self.delivered))
        if how == "reversed":
            order.reverse()
        elif how == "shuffled":
            rng.shuffle(order)
        self.order = order

    def output_ready(self, now: float) -> bool:
        if self.ended_after is None or self.delivered == 0:
            return False
        return now - self.created_mono >= self.ended_after + self.output_late

    def counts(self) -> dict[str, str]:
        """``batchStats``: zero counts left out, as proto3 JSON does; int64s as strings."""
        n = len(self.lines)
        done = self.results[: self.delivered] if self.ended else self.results
        ok = sum(1 for r in done if "response" in r)
        failed = (n - ok) if self.ended else len(done) - ok
        counts = {
            "requestCount": n,
            "successfulRequestCount": ok,
            "failedRequestCount": failed,
            "pendingRequestCount": n - ok - failed,
        }
        return {k: str(v) for k, v in counts.items() if v or k == "requestCount"}

    def inline_output(self, echo_metadata: bool) -> list[dict[str, Any]]:
        out = []
        for index in self.order or range(self.delivered):
            entry = dict(self.results[index])
            metadata = self.lines[index].metadata
            if echo_metadata and metadata is not None:
                entry["metadata"] = metadata
            out.append(entry)
        return out

    def file_lines(self) -> list[dict[str, Any]]:
        out = []
        for index in self.order or range(self.delivered):
            key = self.lines[index].key
            out.append({**({"key": key} if key is not None else {}), **self.results[index]})
        return out

    def body(self, now: float, *, echo_metadata: bool) -> dict[str, Any]:
        def wall(after: float) -> str:
            return timestamp(self.created_wall + after)

        meta: dict[str, Any] = {"@type": BATCH_TYPE, "model": f"models/{self.model}"}
        if self.display_name:
            meta["displayName"] = self.display_name
        if self.input_file is not None:
            meta["inputConfig"] = {"fileName": self.input_file}
        meta["createTime"] = wall(0.0)
        meta["updateTime"] = wall(self.changed_after)
        if self.ended_after is not None:
            meta["endTime"] = wall(self.ended_after)
        meta["batchStats"] = self.counts()
        meta["state"] = wire_state(self.state)
        meta["name"] = self.name
        operation: dict[str, Any] = {"name": self.name, "metadata": meta}
        if self.ended:
            operation["done"] = True
        if self.output_ready(now):
            output: dict[str, Any]
            if self.source == "file":
                output = {"responsesFile": self.output_file}
            else:
                responses = self.inline_output(echo_metadata)
                output = {"inlinedResponses": {"inlinedResponses": responses}}
            meta["output"] = output
            operation["response"] = {"@type": OUTPUT_TYPE, **output}
        if self.state == "JOB_STATE_FAILED" and self.error is not None:
            operation["error"] = dict(self.error)
        return operation

    def summary(self) -> dict[str, Any]:
        """What ``/_sim/stats`` shows of a job."""
        ok = sum(1 for r in self.results[: self.delivered] if "response" in r)
        return {
            "display_name": self.display_name,
            "state": self.state,
            "model": self.model,
            "source": self.source,
            "items": len(self.lines),
            "delivered": self.delivered if self.ended else 0,
            "succeeded": ok if self.ended else 0,
            "created": timestamp(self.created_wall),
            "gone": self.gone,
        }
