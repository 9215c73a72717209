"""The interface between the engine and a service.

A backend raises only :class:`tuibatch.policy.Failure`; the engine never sees an
SDK exception, so swapping the SDK never changes what is retried.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

#: statuses after which a run never changes again
TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled", "incomplete", "budget_exceeded",
                               "requires_action"})


@dataclass(frozen=True)
class LaunchSpec:
    key: str
    input_text: str
    agent: str | None = None
    model: str | None = None
    instruction: str | None = None
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def target(self) -> str:
        return self.agent or self.model or ""


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    thought_tokens: int = 0


@dataclass
class RunResult:
    run_id: str
    status: str
    output: str | None = None
    usage: Usage = field(default_factory=Usage)
    error: str | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class Backend(Protocol):
    async def launch(self, spec: LaunchSpec) -> RunResult:
        """Start a run. The result may already be terminal (a direct model call)."""

    async def poll(self, run_id: str) -> RunResult: ...

    async def cancel(self, run_id: str) -> None: ...

    async def close(self) -> None: ...
