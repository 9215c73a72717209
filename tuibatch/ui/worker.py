"""The headless worker subprocess the app starts: the engine never shares the UI's process.

An SDK call costs tens of milliseconds of CPU; in the UI's event loop that would stutter the
screen, so the batch runs in ``python -m tuibatch … --headless`` and the app only reads the
checkpoint. The worker's output goes to a log file beside the checkpoint, never the terminal.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from ..options import QUIET, RunOptions


def worker_args(options: RunOptions) -> list[str]:
    """The worker's command line: the same options, headless, quiet unless a level was asked for."""
    return replace(options, log_level=options.log_level or QUIET).to_argv(headless=True)


def log_path_for(db: Path) -> Path:
    return db.with_name(db.name + ".worker.log")


class WorkerProcess:
    """Start, watch and stop one worker; its own session so it can outlive the app (detach)."""

    def __init__(
        self,
        options: RunOptions,
        *,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
    ):
        self.args = worker_args(options)
        db = options.db
        self.db = db
        self.env = dict(env) if env is not None else None
        self.log_path = log_path or log_path_for(db)
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", "tuibatch", *self.args]

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # owner-only, like the checkpoint: the log names keys and quotes the service's errors
        fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(fd, 0o600)  # a log an older version created 0644 is tightened too
        with open(fd, "ab") as log:
            log.write(f"--- worker start {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        self.starts += 1

    def poll(self) -> int | None:
        """Exit status, or None while it runs (or if it was never started)."""
        return None if self.proc is None else self.proc.poll()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def terminate(self) -> None:
        """SIGTERM: the engine stops launching, keeps every run id, and exits; runs resume next time."""
        if self.alive:
            assert self.proc is not None
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float) -> int | None:
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(5)

    def error_line(self) -> str:
        """The worker's one-line error (``tuibatch: …``) from the tail of its log."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 8192))
                tail = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        for line in reversed(tail):
            if line.startswith("tuibatch: "):
                return line[len("tuibatch: ") :]
        for line in reversed(tail):
            if line.strip() and not line.startswith("---"):
                return line.strip()
        return ""
