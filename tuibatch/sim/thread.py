"""Run a Simulator on its own event loop in a daemon thread.

Synchronous tests, and tests that drive the CLI in subprocesses, need a server that keeps
answering while the test thread blocks; the SDK's own loop must not be the one serving.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from tuibatch.sim.config import SimConfig
from tuibatch.sim.quotas import Clock
from tuibatch.sim.server import Simulator

T = TypeVar("T")


class SimulatorThread:
    """``with SimulatorThread(SimConfig(...)) as sim: ... sim.url ... sim.stats()``.

    ``clock``: the simulator's time source (quotas, batch jobs); it is called on the
    simulator's thread.
    """

    def __init__(
        self, config: SimConfig | None = None, *, clock: Clock | None = None, **overrides: Any
    ) -> None:
        if config is None:
            config = SimConfig(**overrides)
        elif overrides:
            raise TypeError("pass either a SimConfig or keyword overrides, not both")
        self.config = config
        self.clock = clock
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sim: Simulator | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._done: asyncio.Event | None = None

    @property
    def simulator(self) -> Simulator:
        if self._sim is None:
            raise RuntimeError("simulator thread is not running")
        return self._sim

    def start(self) -> str:
        if self._thread is not None:
            return self.url
        self._thread = threading.Thread(target=self._main, name="tuibatch-sim", daemon=True)
        self._thread.start()
        self._ready.wait(timeout=30)
        if self._error is not None:
            raise RuntimeError(f"simulator failed to start: {self._error}") from self._error
        if not self.url:
            raise RuntimeError("simulator did not start within 30 s")
        return self.url

    def _main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()

    async def _serve(self) -> None:
        self._done = asyncio.Event()
        try:
            self._sim = Simulator(self.config, clock=self.clock)
            self.url = await self._sim.start()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._done.wait()
        finally:
            await self._sim.stop()

    def call(self, fn: Callable[[], T], timeout: float = 10.0) -> T:
        """Run ``fn`` on the simulator's loop so its state is never read mid-update."""
        loop = self._loop
        if loop is None or not loop.is_running():
            raise RuntimeError("simulator thread is not running")

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout)

    def stats(self) -> dict[str, Any]:
        return self.call(self.simulator.stats)

    def requests(self) -> list[dict[str, Any]]:
        return self.call(self.simulator.requests)

    def bodies(self, item: str | None = None) -> list[dict[str, Any]]:
        """Request bodies of the launches (create, generateContent) as received, oldest first;
        *item* (an item id, e.g. ``key_label(key)``) narrows them."""
        sim = self.simulator
        return self.call(lambda: sim.request_bodies(item))

    def jobs(self) -> list[dict[str, Any]]:
        """Every batch job created, oldest first (name, display name, state, items...)."""
        return self.call(self.simulator.jobs)

    def reset(self) -> None:
        self.call(self.simulator.reset)

    def set_faults(self, rules: list[Any]) -> None:
        sim = self.simulator
        self.call(lambda: sim.set_faults(rules))

    def forget_runs(self, runs: list[str] | None = None, items: list[str] | None = None) -> int:
        """Forget runs (all by default): later gets/cancels of them answer 404."""
        sim = self.simulator
        return self.call(lambda: sim.forget_runs(runs, items))

    def stop(self) -> None:
        loop, done, thread = self._loop, self._done, self._thread
        if loop is not None and done is not None and loop.is_running():
            loop.call_soon_threadsafe(done.set)
        if thread is not None:
            thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> SimulatorThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
