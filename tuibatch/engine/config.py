"""How an engine runs: its settings, and the probe tests hand it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..policy import Backoff

DEFAULT_MODEL = "gemini-2.5-flash"

#: called at named points of an item's life ("after_launch", "after_commit"); tests crash there
Probe = Callable[[str], None]


@dataclass
class EngineConfig:
    concurrency: int = 8
    max_attempts: int = 5
    agent: str | None = None
    #: --mode auto: claim agent items only; model items go through Batch API jobs
    only_agents: bool = False
    model: str | None = None
    instruction: str | None = None
    poll_initial: float = 1.0
    poll_max: float = 15.0
    poll_factor: float = 1.5
    backoff: Backoff = field(default_factory=Backoff)
    budget_usd: float | None = None
    stop_grace: float = 5.0
    rpm: float | None = None
    tpm: float | None = None
    max_concurrency: int = 64
    adaptive: bool = False
    #: a run that shows a status that is not progress (an unknown word, idle,
    #: requires_continuation, queued) for this long fails as stuck
    stuck_after: float = 600.0
    #: any run polled for this long fails as stuck (deep-research runs take tens of minutes)
    max_run_seconds: float = 3 * 3600.0
    #: keep an answer that stopped early (MAX_TOKENS, SAFETY, no text) as done
    accept_truncated: bool = False
    #: new launches for an answer that is not valid JSON or breaks the schema (each is paid)
    invalid_output_retries: int = 1
    #: this many recorded runs unknown to the service (404) pause the batch
    lost_pause_after: int = 3
