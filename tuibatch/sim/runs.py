"""One interaction run: how its status moves with the clock, and the Interaction JSON it reads as.

A run starts ``queued``, reads ``in_progress`` once polled (or after a moment), and after its
duration takes its final status, which never changes again. A final status of ``queued`` or
``in_progress`` is a run stuck there forever; any string is allowed, as in the SDK's
``InteractionStatus`` (``_gaos/types/interactions/interaction.py``). The body follows the SDK's
``Interaction`` type: ``steps`` (``user_input``, ``thought``, ``model_output``), ``errors``
(``Error``: string code + message) and ``usage`` (``Usage``: ``total_input_tokens``,
``total_output_tokens``, ``total_thought_tokens``, ``total_cached_tokens``,
``total_tool_use_tokens``, ``grounding_tool_count``, ``total_tokens``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from tuibatch.sim.faults import FaultRule
from tuibatch.sim.vocabulary import FINISHED_STATUSES


@dataclass(frozen=True)
class Shape:
    """How much of an answer, and which usage fields, a run or response carries."""

    output: str | None = None  # full | partial | none; None = the status decides
    usage: str = "full"  # full | none
    cached_tokens: int = 0
    tool_use_tokens: int = 0
    grounding: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, rule: FaultRule | None) -> Shape:
        if rule is None:
            return cls()
        return cls(
            output=rule.output,
            usage=rule.usage,
            cached_tokens=rule.cached_tokens,
            tool_use_tokens=rule.tool_use_tokens,
            grounding=dict(rule.grounding),
        )


def shaped_text(text: str, mode: str) -> str:
    """The full answer, its first half (cut mid-way, as a token limit cuts), or nothing."""
    if mode == "none":
        return ""
    if mode == "partial":
        return text[: max(1, len(text) // 2)]
    return text


def iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Run:
    """One interaction; its status is derived lazily from the clock on each read."""

    id: str
    item: str
    agent: str | None
    model: str | None
    input_text: str
    system: str | None
    labels: dict[str, str] | None
    created_mono: float
    created_wall: float
    duration: float
    final_status: str = "completed"
    errors: list[dict[str, str]] | None = None
    shape: Shape = field(default_factory=Shape)
    status: str = "queued"
    settled: bool = False
    updated_wall: float = 0.0
    polled: bool = False
    output_text: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    thought_tokens: int = 0

    def refresh(self, now: float) -> bool:
        """Advance the status to ``now``; True when the run has just completed."""
        if self.settled:
            return False
        elapsed = now - self.created_mono
        if elapsed >= self.duration:
            self.status = self.final_status
            self.settled = True
            self.updated_wall = self.created_wall + self.duration
            return self.status == "completed"
        if self.final_status != "queued" and (
            self.polled or elapsed >= min(0.2, self.duration / 2)
        ):
            self.status = "in_progress"
            self.updated_wall = time.time()
        return False

    def cancel(self, now: float) -> None:
        """Cancel unless already finished (a stuck, idle or unknown status is cancelled too)."""
        self.refresh(now)
        if self.status not in FINISHED_STATUSES:
            self.status = "cancelled"
            self.settled = True
            self.updated_wall = time.time()

    def finish_now(self, now: float) -> bool:
        """Complete at once (a cancel that lost the race); True when it just completed."""
        if self.settled:
            return False
        self.duration = max(0.0, now - self.created_mono)
        self.final_status = "completed"
        return self.refresh(now)

    def _output_mode(self) -> str:
        if self.shape.output is not None:
            return self.shape.output
        return "full" if self.status == "completed" else "none"

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "created": iso(self.created_wall),
            "updated": iso(self.updated_wall or self.created_wall),
        }
        if self.agent is not None:
            body["agent"] = self.agent
        if self.model is not None:
            body["model"] = self.model
        if self.labels:
            body["labels"] = self.labels
        steps: list[dict[str, Any]] = [
            {"type": "user_input", "content": [{"type": "text", "text": self.input_text}]}
        ]
        body["steps"] = steps
        worked = self.settled and self.status not in ("cancelled", "queued", "in_progress")
        if not worked:
            return body
        text = shaped_text(self.output_text, self._output_mode())
        if self.thought_tokens:
            steps.append(
                {"type": "thought", "summary": [{"type": "text", "text": "Reading the input."}]}
            )
        if text:
            steps.append({"type": "model_output", "content": [{"type": "text", "text": text}]})
        if self.errors:
            body["errors"] = [dict(e) for e in self.errors]
        if self.shape.usage != "none":
            body["usage"] = self._usage(text)
        return body

    def _usage(self, text: str) -> dict[str, Any]:
        shape = self.shape
        out = 0
        if text:
            out = self.output_tokens if text == self.output_text else len(text) // 4 + 1
        inp = max(self.input_tokens, shape.cached_tokens)
        usage: dict[str, Any] = {
            "total_input_tokens": inp,
            "total_output_tokens": out,
            "total_thought_tokens": self.thought_tokens,
        }
        if shape.cached_tokens:
            usage["total_cached_tokens"] = shape.cached_tokens
        if shape.tool_use_tokens:
            usage["total_tool_use_tokens"] = shape.tool_use_tokens
        if shape.grounding:
            usage["grounding_tool_count"] = [
                {"type": tool, "count": n} for tool, n in shape.grounding.items()
            ]
        usage["total_tokens"] = inp + out + self.thought_tokens + shape.tool_use_tokens
        return usage
