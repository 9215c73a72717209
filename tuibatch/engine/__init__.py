"""claim → launch → record run id → poll → commit, for many items at once.

``core.py`` is the :class:`Engine` (workers, launch with retries, poll, commit);
``control.py`` what every worker checks between steps (stop, pause, skip requests, leases);
``config.py`` its settings and the test probe. Everything logs to ``tuibatch.engine``.
"""

from __future__ import annotations

from .config import DEFAULT_MODEL, EngineConfig, Probe
from .core import Engine

__all__ = ["DEFAULT_MODEL", "Engine", "EngineConfig", "Probe"]
