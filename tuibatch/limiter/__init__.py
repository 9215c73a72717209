"""One pace for the whole pool: the pacer, its in-process window, the quota shared on a file.

``pacer.py`` decides when a launch or a poll may go; ``window.py`` is the pool's record of
what it sent (a :class:`~tuibatch.ratewindow.SlidingWindow`); ``shared.py`` keeps the
``--rpm``/``--tpm`` quota in the checkpoint for every worker process on it.
"""

from __future__ import annotations

from .pacer import MIN_SAMPLE, PROBE_FACTOR, RAMP_SECONDS, Pacer
from .shared import SharedPace
from .window import Window

__all__ = ["MIN_SAMPLE", "PROBE_FACTOR", "RAMP_SECONDS", "Pacer", "SharedPace", "Window"]
