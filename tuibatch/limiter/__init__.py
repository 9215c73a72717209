"""One pace for the whole pool: the pacer, its schedule and learner, the pace shared on a file.

``pacer.py`` decides when a launch or a poll may go; ``gcra.py`` is the even schedule;
``learn.py`` learns a quota nobody told us (AIMD of the launch rate); ``shared.py`` keeps the
schedule and the ``--tpm`` token window in the checkpoint for every worker process on it;
``window.py`` is a sliding request window with a burst cap.
"""

from __future__ import annotations

from .gcra import LocalSchedule, gcra_take
from .learn import RateLearner
from .pacer import RAMP_SECONDS, Pacer
from .shared import SharedPace
from .window import Window

__all__ = [
    "RAMP_SECONDS", "LocalSchedule", "Pacer", "RateLearner", "SharedPace", "Window", "gcra_take",
]  # fmt: skip
