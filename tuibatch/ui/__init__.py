"""The Textual screen: a view of the checkpoint plus commands into it (never the engine itself)."""

from __future__ import annotations

import os
from pathlib import Path

from ..options import RunOptions


def run_app(options: RunOptions) -> int:
    """Open the app on a batch: a headless worker process runs it, the screen views the store."""
    os.environ.setdefault("TEXTUAL_FPS", "30")  # capped frame rate: cheap over SSH and in tmux
    from .entry import run_app as _run

    return _run(options)


def run_watch(db: Path) -> int:
    """Attach the app to a batch that another (headless) worker runs."""
    os.environ.setdefault("TEXTUAL_FPS", "30")
    from .entry import run_watch as _watch

    return _watch(db)
