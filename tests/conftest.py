"""Shared fixtures: a simulator on loopback, a clean environment, and a way to run the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
import warm

from tuibatch.sim import SimulatorThread

if TYPE_CHECKING:
    from tuibatch.ui.worker import WorkerProcess

SECRET_ENV = (
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_GEMINI_BASE_URL",
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
    "GOOGLE_GENAI_API_VERSION",
    "TUIBATCH_SDK_SPEEDUP",
)


@pytest.fixture(autouse=True)
def _no_real_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach Google: real keys and endpoints are removed from every test's environment."""
    for name in SECRET_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """A test that runs ``cli.main`` in-process configures tuibatch's loggers (own handlers, no
    propagation); put them back so a later test's ``caplog`` still sees their records."""
    import logging

    names = ("tuibatch", "tuibatch.notice", "tuibatch.out")
    saved = [(lg, lg.handlers[:], lg.level, lg.propagate) for lg in map(logging.getLogger, names)]
    yield
    for lg, handlers, level, propagate in saved:
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    with SimulatorThread(run_seconds=0.05) as s:
        yield s


def write_items(
    path: Path, n: int, *, prefix: str = "item", extra: dict[int, dict[str, Any]] | None = None
) -> list[str]:
    keys = []
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            key = f"{prefix}-{i:04d}"
            obj: dict[str, Any] = {
                "key": key,
                "payload": {"title": f"Paper {i}", "year": 2000 + i % 25},
            }
            obj.update((extra or {}).get(i, {}))
            f.write(json.dumps(obj) + "\n")
            keys.append(key)
    return keys


def new_batch(tmp_path: Path, n: int, *flags: str) -> tuple[Path, Path, list[str], list[str]]:
    """An items file of *n* items, its default checkpoint path, the keys, and fast headless CLI args."""
    items = tmp_path / "items.jsonl"
    keys = write_items(items, n)
    args = [str(items), "--headless", "--agent", "sim-agent", *flags, *FAST]
    return items, tmp_path / "items.tuibatch.db", keys, args


def cli_env(sim_url: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
    env["GEMINI_API_KEY"] = "dummy-test-key"
    env["GOOGLE_GEMINI_BASE_URL"] = sim_url or "http://127.0.0.1:9"
    env["PYTHONUNBUFFERED"] = "1"
    env["NO_GCE_CHECK"] = "true"  # google-auth must never probe a metadata server from a test
    env.update(extra)
    return env


FAST = [
    "--poll-interval",
    "0.05",
    "--poll-max",
    "0.2",
    "--retry-initial",
    "0.05",
    "--retry-max",
    "0.2",
    "--progress-every",
    "60",
]


def run_cli(
    args: list[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 60,
    cwd: Path | None = None,
    probe: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """``tuibatch *args`` as a process of its own, to its end (forked warm: see ``warm.py``);
    with *probe* (``point[:n]``) it dies with status 137 at that engine probe point."""
    return warm.run(args, env=env or cli_env(), cwd=cwd, timeout=timeout, probe=probe)


_started: list[subprocess.Popen[str] | warm.WarmProcess] = []


def start_cli(
    args: list[str], *, env: dict[str, str], cwd: Path | None = None, probe: str | None = None
) -> subprocess.Popen[str] | warm.WarmProcess:
    """``tuibatch *args`` started as a process of its own; it is killed after the test."""
    proc = warm.start(args, env=env, cwd=cwd, probe=probe)
    _started.append(proc)
    return proc


@pytest.fixture(autouse=True)
def _reap_workers() -> Iterator[None]:
    """A failed test must not leave a worker process behind."""
    yield
    while _started:
        proc = _started.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if isinstance(proc, warm.WarmProcess):
            proc.close()


def pytest_sessionfinish() -> None:
    warm.stop_launcher()


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    """The app's worker processes a test starts; each is stopped afterwards, whatever happened."""
    started: list[WorkerProcess] = []
    yield started
    for w in started:
        w.terminate()
        if w.wait(10) is None:
            w.kill()


def export(db: Path) -> list[dict[str, Any]]:
    out = run_cli(["export", "--db", str(db)])
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


T = TypeVar("T")


def wait_until(
    condition: Callable[[], T], *, timeout: float, what: str, interval: float = 0.05
) -> T:
    """Poll *condition* until it returns something truthy, and return that; fail after *timeout* s.

    For waiting on a condition instead of sleeping and hoping: *timeout* is a bound for a hung
    test, never the expected duration, so make it generous.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(interval)
