"""What a simulator is told at start: quotas, their enforcement, latency, faults; and what it knows.

The agent list copies the ids the google-genai SDK lists (``AgentOption`` in its Interactions
types) and the model list the text models of its ``Model`` literal, plus ``sim-agent`` /
``sim-model`` for tests; ``tests/test_sim_vocabulary.py`` fails when the installed SDK lists an
agent this copy lacks, or no longer lists one of these models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tuibatch.sim.vocabulary import RESPONSE_ORDERS

AGENTS = frozenset(
    {
        "deep-research-pro-preview-12-2025",
        "deep-research-preview-04-2026",
        "deep-research-max-preview-04-2026",
        "antigravity-preview-05-2026",
        "antigravity-preview-09-2026",
        "sim-agent",
    }
)
MODELS = frozenset(
    {
        "gemini-2.5-flash",
        "gemini-2.5-pro",
        "gemini-2.5-flash-lite",
        "gemini-2.5-flash-image",
        "gemini-3-flash-preview",
        "gemini-3.1-pro-preview",
        "gemini-3.1-pro-preview-customtools",
        "gemini-3.1-flash-lite",
        "gemini-3.5-flash-lite",
        "gemini-3.5-flash",
        "gemini-3.6-flash",
        "gemini-3.7-flash",
        "gemini-3.8-flash",
        "gemini-4-argon",
        "gemini-4-carbon",
        "gemini-4-hydrogen",
        "gemini-flash-latest",
        "gemini-flash-lite-latest",
        "gemini-pro-latest",
        "gemma-4-26b-a4b-it",
        "gemma-4-31b-it",
        "sim-model",
    }
)
#: Thought tokens per output token; agents think 2x, non-thinking models 0x, others 1x.
MODEL_THOUGHT_FACTOR = {"sim-model": 0, "gemini-2.5-flash-lite": 0, "gemma-4-31b-it": 0}
AGENT_THOUGHT_FACTOR = 2

API_VERSIONS = frozenset({"v1", "v1beta"})
#: Label that names the item a request belongs to (else the input's content hash does).
ITEM_LABEL = "tuibatch_item"

#: How a per-minute quota is enforced (see ``quotas.py``).
ENFORCEMENTS = ("sliding", "fixed", "bucket")

#: Google's limits for Batch API jobs: inline requests up to 20 MB in all; a job not finished
#: after 48 h expires.
BATCH_INLINE_MAX_BYTES = 20 * 1024 * 1024
BATCH_EXPIRE_SECONDS = 48 * 3600.0


@dataclass
class SimConfig:
    """Options of one simulator.

    ``enforcement``: ``sliding`` (any 60 s window), ``fixed`` (windows aligned to the minute on
    the clock) or ``bucket`` (a smooth token bucket refilling ``rpm/60`` per second that holds
    ``burst_seconds`` of quota). ``polls_count``: whether get/cancel/delete count against ``rpm``
    (launches always do). ``invalid_keys``: API keys answered as invalid (API_KEY_INVALID).

    Batch API jobs (``jobs.py``): ``batch_pending_seconds`` in PENDING, then
    ``batch_running_seconds`` in RUNNING (lines finish evenly over it), then SUCCEEDED; a job
    not ended after ``batch_expire_seconds`` expires. ``batch_partial_results``: a job
    cancelled or expired mid-run delivers the lines finished before the cut-off.
    ``batch_echo_metadata``: inline responses carry their request's ``metadata`` (live users
    have reported it missing). ``batch_response_order``: request | reversed | shuffled (live
    users have reported inline responses out of order). ``batch_max_active_jobs`` and
    ``batch_max_enqueued_tokens`` (None = no limit) refuse a create with 429.
    ``keep_bodies``: how many launches' request bodies ``/_sim/bodies`` keeps (the newest).
    """

    port: int = 0
    rpm: int | None = None
    tpm: int | None = None
    fail_rate: float = 0.0
    latency_ms: float = 0.0
    seed: int = 0
    run_seconds: float = 0.0
    faults: list[Any] = field(default_factory=list)
    enforcement: str = "sliding"
    polls_count: bool = True
    burst_seconds: float = 2.0
    invalid_keys: list[str] = field(default_factory=list)
    batch_pending_seconds: float = 0.5
    batch_running_seconds: float = 1.5
    batch_expire_seconds: float = BATCH_EXPIRE_SECONDS
    batch_inline_max_bytes: int = BATCH_INLINE_MAX_BYTES
    batch_partial_results: bool = True
    batch_echo_metadata: bool = True
    batch_response_order: str = "request"
    batch_max_active_jobs: int | None = None
    batch_max_enqueued_tokens: int | None = None
    #: request bodies of this many launches are kept for ``/_sim/bodies`` (0: none)
    keep_bodies: int = 1000

    def __post_init__(self) -> None:
        if self.enforcement not in ENFORCEMENTS:
            raise ValueError(
                f"enforcement must be one of {', '.join(ENFORCEMENTS)}, got {self.enforcement!r}"
            )
        if self.burst_seconds <= 0:
            raise ValueError(f"burst_seconds must be > 0, got {self.burst_seconds!r}")
        for name in ("batch_pending_seconds", "batch_running_seconds", "batch_expire_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.batch_response_order not in RESPONSE_ORDERS:
            raise ValueError(
                f"batch_response_order must be one of {', '.join(RESPONSE_ORDERS)},"
                f" got {self.batch_response_order!r}"
            )
