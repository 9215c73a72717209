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
