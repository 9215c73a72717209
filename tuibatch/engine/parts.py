"""What every room of the engine shares: the engine's state, declared once for the type checker."""

from __future__ import annotations

from ..backends.base import Backend
from ..limiter import Pacer
from ..pricing import Prices
from ..store import Store
from .config import EngineConfig, Probe
from .control import Control
from .schedule import PollSchedule


class EngineState:
    """The attributes :class:`~tuibatch.engine.core.Engine` sets; the rooms (launch, runs) use them."""

    store: Store
    backend: Backend
    prices: Prices
    cfg: EngineConfig
    pacer: Pacer
    ctl: Control
    schedule: PollSchedule
    _probe: Probe
    _spent: float
    _unreachable: int
