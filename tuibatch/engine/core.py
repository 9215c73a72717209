"""claim → launch → record run id → poll → commit, for many items at once.

The engine keeps nothing that matters in memory: every decision is written to the
store before the next await that could be interrupted, so any process may die at
any instant and a later run (or a second worker) continues from the checkpoint.

It reports through the ``tuibatch.engine`` logger: one INFO line per item event, WARNING
for problems (a worker error, a lost run, a batch pause). The caller configures handlers.
Keys and the service's text are escaped with :func:`~tuibatch.safe_text.visible` where a
message is built, so a log line is always one line of plain text.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from typing import Any

from ..backends.base import Backend, LaunchSpec
from ..backends.gemini_shapes import KEY_SHAPED
from ..items import key_label
from ..limiter import Pacer
from ..pricing import Prices
from ..safe_text import visible
from ..states import ErrorClass, ItemState, PauseState
from ..store import Attempt, Claim, LostLease, Row, Store
from ..store.errors import StorageError
from ..store.fallback import KeptRun
from .config import DEFAULT_MODEL, EngineConfig, Probe
from .control import Control
from .launch import Launcher, kept
from .runs import Runs, is_terminal
from .schedule import PollSchedule

log = logging.getLogger("tuibatch.engine")


def _no_probe(_point: str) -> None:
    pass


class Engine(Launcher, Runs):
    """Runs the items of one checkpoint until none is left, it is stopped, or the batch pauses."""

    def __init__(
        self,
        store: Store,
        backend: Backend,
        prices: Prices,
        config: EngineConfig,
        *,
        probe: Probe | None = None,
    ):
        self.store = store
        self.backend = backend
        self.prices = prices
        self.cfg = config
        self.pacer = Pacer(
            concurrency=config.concurrency,
            rpm=config.rpm,
            tpm=config.tpm,
            adaptive=config.adaptive,
            max_concurrency=config.max_concurrency,
        )
        self._probe = probe or _no_probe
        self.ctl = Control(store, self.pacer)
        self._busy = 0
        self._spent = 0.0
        self._batch_id = ""
        self.interrupted = False
        self.schedule = PollSchedule(config, self.pacer)
        self._unreachable = 0  # launches in a row that could not connect at all
        #: the storage failure that stopped this run (disk full, I/O error), if any
        self.storage_error: StorageError | None = None
        #: runs the service created whose ids the checkpoint could not take
        self.kept_runs: list[KeptRun] = []

    # ----------------------------------------------------------------- public

    def stop(self) -> None:
        """Stop claiming; pollers let go; a launch in flight gets ``stop_grace`` to record its run id."""
        self.interrupted = True
        self.ctl.stop()

    @property
    def pause(self) -> PauseState:
        """Whether claiming is paused (by a user or by the batch itself), and why."""
        return self.ctl.pause

    async def run(self) -> None:
        meta = await self.store.meta()
        self._batch_id = meta.get("batch_id", "b")
        self._spent = (await self.store.totals()).cost_usd
        await self.ctl.read()
        self.pacer.attach(self.store)
        background = [
            asyncio.create_task(self._guard(self.ctl.heartbeat())),
            asyncio.create_task(self._guard(self.ctl.watch())),
        ]
        n = self.cfg.max_concurrency if self.cfg.adaptive else self.cfg.concurrency
        workers = [asyncio.create_task(self._worker()) for _ in range(n)]
        stop_waiter = asyncio.create_task(self.ctl.stop_event.wait())
        try:
            running: set[asyncio.Task[None]] = set(workers)
            while running and not self.ctl.stopped:
                done, _ = await asyncio.wait(
                    running | {stop_waiter}, return_when=asyncio.FIRST_COMPLETED
                )
                running -= done  # type: ignore[operator]
            if running:
                _, late = await asyncio.wait(running, timeout=self.cfg.stop_grace)
                for w in late:
                    w.cancel()
                await asyncio.gather(*late, return_exceptions=True)
            for w in workers:
                if w.done() and not w.cancelled() and w.exception() is not None:
                    log.warning("worker stopped by an error: %s", visible(repr(w.exception())))
        finally:
            stop_waiter.cancel()
            for t in background:
                t.cancel()
            for t in background:
                with contextlib.suppress(BaseException):
                    await t
            with contextlib.suppress(Exception):
                await self.store.release_mine()

    # ---------------------------------------------------------------- workers

    async def _worker(self) -> None:
        while not self.ctl.stopped:
            if self.ctl.pause.active or not await self.pacer.slot_free(self._busy):
                if self.ctl.batch_paused and self._busy == 0:
                    return
                await self.ctl.nap(0.25)
                continue
            self._busy += 1  # the slot is taken before the claim's await: no other worker gets it
            try:
                claim = await self.store.claim(
                    only_agents=self.cfg.only_agents, default_agent=self.cfg.agent is not None
                )
            except StorageError as exc:
                self._busy -= 1
                self._storage_failed(exc)
                return
            if claim is None:
                self._busy -= 1
                pending, _ = await self.store.work_left()
                if pending == 0 and self._busy == 0:
                    return
                await self.ctl.nap(0.2)
                continue
            try:
                await self._process(claim)
            except LostLease:
                log.warning("%s: taken over by another worker; letting go", visible(claim.row.key))
            except StorageError as exc:
                self._storage_failed(exc)
                return
            except Exception as exc:  # nothing stops the batch by crashing
                await self._fail_unexpected(claim.row, exc)
            finally:
                self._busy -= 1
                self.ctl.cancel_flags.discard(claim.row.seq)

    async def _guard(self, job: Coroutine[Any, Any, None]) -> None:
        """A background job (heartbeat, control watch) that cannot write stops the run."""
        try:
            await job
        except StorageError as exc:
            self._storage_failed(exc)

    def _storage_failed(self, exc: StorageError) -> None:
        """The checkpoint cannot be written: stop claiming at once, keep the run id in hand."""
        if exc.kept_run is not None:
            self.kept_runs.append(exc.kept_run)
        if self.storage_error is None:
            self.storage_error = exc
            log.debug("%s; stopping", visible(str(exc)))  # the runner prints the one line
        self.ctl.stop()

    async def _fail_unexpected(self, row: Row, exc: Exception) -> None:
        msg = KEY_SHAPED.sub("***", f"unexpected {type(exc).__name__}: {exc}")
        log.warning("%s: %s", visible(row.key), visible(msg))
        try:
            await self.store.finish(
                row.seq,
                ItemState.FAILED,
                a=Attempt(outcome="error", message=msg[:500]),
                error_class=ErrorClass.UNEXPECTED,
            )
        except LostLease:
            pass
        except StorageError as storage:
            self._storage_failed(storage)

    def spec_for(self, row: Row) -> LaunchSpec:
        agent, model = row.agent, row.model
        if not agent and not model:
            agent, model = (
                self.cfg.agent,
                None if self.cfg.agent else (self.cfg.model or DEFAULT_MODEL),
            )
        return LaunchSpec(
            key=row.key,
            input_text=row.input,
            agent=agent,
            model=model,
            instruction=row.instruction or self.cfg.instruction,
            labels={"tuibatch_item": key_label(row.key), "tuibatch_batch": self._batch_id},
            request_json=row.request,
        )

    async def _process(self, claim: Claim) -> None:
        row, spec = claim.row, self.spec_for(claim.row)
        if claim.resume and row.run_id:
            log.info("%s: resuming run %s", visible(row.key), visible(row.run_id))
            run_id: str | None = row.run_id
        else:
            if claim.in_doubt:
                await self.store.note_relaunch(
                    row.seq,
                    "in-doubt relaunch: a worker died after"
                    " sending the launch and before recording the run id",
                )
            run_id = None
        while True:
            if run_id is None:
                result = await self._launch(row, spec)
                if result is None:
                    return
                if is_terminal(result):
                    try:
                        end = await self._commit(row, spec, result, direct=True)
                    except StorageError as exc:
                        exc.kept_run = kept(row, result.run_id, spec.target)
                        raise
                    self._probe("after_commit")
                    if end != "relaunch":  # an invalid answer is tried again (runs._commit)
                        return
                    row = await self.store.get(row.seq) or row
                    continue
                run_id = result.run_id
                launched_at: float | None = time.monotonic()
            else:
                launched_at = None
            outcome = await self._poll(row, spec, run_id, launched_at)
            if outcome != "relaunch":
                return
            run_id = None
            row = await self.store.get(row.seq) or row
