"""The interface between the engine and a service.

A backend raises only :class:`tuibatch.policy.Failure`; the engine never sees an
SDK exception, so swapping the SDK never changes what is retried.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..states import TERMINAL_RUN, RunStatus
from ..usage import Usage

__all__ = ["STATUS_MEANING", "Backend", "LaunchSpec", "RunResult", "Usage"]

#: what each status the SDK's ``InteractionStatus`` literal lists means to tuibatch; a test fails
#: when the installed SDK lists one that is not here
STATUS_MEANING: dict[RunStatus, str] = {
    RunStatus.QUEUED: "waiting to start",
    RunStatus.IN_PROGRESS: "running",
    RunStatus.COMPLETED: "finished; the output is the answer",
    RunStatus.FAILED: "ended with an error (see errors)",
    RunStatus.CANCELLED: "cancelled",
    RunStatus.INCOMPLETE: "ended before finishing",
    RunStatus.BUDGET_EXCEEDED: "ended at its budget",
    RunStatus.REQUIRES_ACTION: "stopped: needs a human or a tool result",
    RunStatus.REQUIRES_CONTINUATION: "stopped: needs a continuation request, which tuibatch does not send",
    RunStatus.IDLE: "waiting for more input, which tuibatch does not send",
}


@dataclass(frozen=True)
class LaunchSpec:
    """What one launch sends.

    ``request_json`` (the checkpoint's ``request`` column; see :mod:`tuibatch.request_sdk`) is
    the whole request as checked when the items file was read: the backend sends exactly that,
    and ``agent``/``model``/``instruction`` are then only for display. A row from a checkpoint
    of the first release has none: the backend then sends ``input_text`` to the target with
    the instruction, as that release did.
    """

    key: str
    input_text: str
    agent: str | None = None
    model: str | None = None
    instruction: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    request_json: str | None = None

    @property
    def target(self) -> str:
        """What is billed: the request's own agent or model when there is a request."""
        return self._facts[0] or self.agent or self.model or ""

    @property
    def expects_json(self) -> bool:
        """The answer must be JSON (``application/json``): the engine checks a completed answer
        with ``output_check.check_output(output, spec.schema)`` and stores the value."""
        return self._facts[1]

    @property
    def schema(self) -> dict[str, Any] | None:
        """The JSON Schema an answer must match (None: any JSON, or not JSON at all)."""
        return self._facts[2]

    @functools.cached_property
    def _facts(self) -> tuple[str | None, bool, dict[str, Any] | None]:
        if self.request_json is None:
            return None, False, None
        from ..request_sdk import output_contract

        wire = json.loads(self.request_json)
        expects_json, schema = output_contract(wire)
        return wire.get("agent") or wire.get("model"), expects_json, schema


@dataclass
class RunResult:
    """One look at a run.

    ``status`` is the service's word, kept as sent (the SDK allows strings it does not list);
    ``run_status`` is it parsed, or None for a word tuibatch does not know (the engine bounds
    the wait for those). ``truncated`` means the answer is partial or absent although the call
    succeeded (stopped at MAX_TOKENS, blocked for SAFETY, no text): the engine does not mark such
    a run done by default; ``stop_reason`` says why.
    """

    run_id: str
    status: str
    output: str | None = None
    usage: Usage = field(default_factory=Usage.unknown)
    error: str | None = None
    stop_reason: str | None = None
    truncated: bool = False

    @property
    def run_status(self) -> RunStatus | None:
        try:
            return RunStatus(self.status)
        except ValueError:
            return None

    @property
    def terminal(self) -> bool:
        return self.run_status in TERMINAL_RUN


class Backend(Protocol):
    async def launch(self, spec: LaunchSpec) -> RunResult:
        """Start a run. The result may already be terminal (a direct model call)."""

    async def poll(self, run_id: str) -> RunResult: ...

    async def cancel(self, run_id: str) -> RunResult | None:
        """Cancel a run; the result is the run as the service returned it (it may have completed
        first: then its output is the paid answer). None when there is nothing to cancel."""

    async def close(self) -> None: ...
