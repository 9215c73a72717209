"""How the app is started and how it ends: the worker subprocess, the exit status, the last line.

``run_app`` opens the screen and lets it start the worker (or, when a live worker already runs
the checkpoint and the user says so, only watch it); ``run_watch`` only watches.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..options import RunOptions
from ..safe_text import visible
from ..states import ExitCode
from .app import BatchApp
from .worker import WorkerProcess


def run_app(options: RunOptions) -> int:
    """Open the screen and start the worker subprocess (or, when a live worker already runs
    this checkpoint and the user says so, only watch it); handle how it ends."""
    worker = WorkerProcess(options)
    app = BatchApp(options.db, worker=worker, budget=options.budget, title=options.items.name)
    try:
        app.run()
    finally:
        if app.outcome is None and worker.alive:
            app.outcome = "detach"
    return _after(app, worker, options.db)


def _after(app: BatchApp, worker: WorkerProcess, db: Path) -> int:
    if app.error_message:
        worker.wait(5)
        print(f"tuibatch: {visible(app.error_message)}", file=sys.stderr)
        return ExitCode.USAGE
    if app.outcome == "detach" and worker.alive:
        print(
            f"tuibatch: still running (worker pid {worker.pid}, log {worker.log_path});"
            f" `tuibatch watch --db {db}` re-attaches",
            file=sys.stderr,
        )
        return 0
    if app.outcome == "stop":
        print(
            "tuibatch: stopping the worker; run ids are kept — run the same command to resume",
            file=sys.stderr,
        )
        code = worker.wait(30)
        if code is None:
            print(
                f"tuibatch: worker pid {worker.pid} still stopping; it exits on its own",
                file=sys.stderr,
            )
            return 130
        return code
    code = worker.poll()
    return code if code is not None else 0


def run_watch(db: Path) -> int:
    """The same screen on a checkpoint a headless worker runs elsewhere (q just quits)."""
    app = BatchApp(db)
    app.run()
    if app.error_message:
        print(f"tuibatch: {visible(app.error_message)}", file=sys.stderr)
        return ExitCode.USAGE
    return 0
