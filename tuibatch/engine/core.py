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
from dataclasses import replace
from typing import Literal

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from ..backends.base import Backend, LaunchSpec, RunResult
from ..items import key_label
from ..limiter import Pacer
from ..policy import Cause, Failure, Kind
from ..pricing import Prices, estimate_tokens
from ..safe_text import visible
from ..states import TERMINAL_RUN, ErrorClass, ItemState, PauseKind, PauseState, RunStatus
from ..store import Attempt, Claim, EventKind, LostLease, Row, Store
from .config import DEFAULT_MODEL, EngineConfig, Probe
from .control import Control
from .schedule import PollSchedule

log = logging.getLogger("tuibatch.engine")

#: how polling a run ended
PollEnd = Literal["done", "skipped", "stopped", "paused", "relaunch"]


def _no_probe(_point: str) -> None:
    pass


def _terminal(r: RunResult) -> bool:
    return r.status in TERMINAL_RUN


def _settled(r: RunResult) -> tuple[ItemState, str | None]:
    """The state a terminal run settles its item in, and why if it is not done."""
    if r.status == RunStatus.COMPLETED:
        return ItemState.DONE, None
    if r.status == RunStatus.CANCELLED:
        return ItemState.SKIPPED, RunStatus.CANCELLED.value
    if r.status == RunStatus.REQUIRES_ACTION:
        return ItemState.FAILED, "needs a human: the run stopped with requires_action"
    return ItemState.FAILED, f"run ended {r.status}" + (f": {r.error}" if r.error else "")


class Engine:
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
            asyncio.create_task(self.ctl.heartbeat()),
            asyncio.create_task(self.ctl.watch()),
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
            claim = await self.store.claim()
            if claim is None:
                pending, _ = await self.store.work_left()
                if pending == 0 and self._busy == 0:
                    return
                await self.ctl.nap(0.2)
                continue
            self._busy += 1
            try:
                await self._process(claim)
            except LostLease:
                log.warning("%s: taken over by another worker; letting go", visible(claim.row.key))
            except Exception as exc:  # nothing stops the batch by crashing
                await self._fail_unexpected(claim.row, exc)
            finally:
                self._busy -= 1
                self.ctl.cancel_flags.discard(claim.row.seq)

    async def _fail_unexpected(self, row: Row, exc: Exception) -> None:
        msg = f"unexpected {type(exc).__name__}: {exc}"
        log.warning("%s: %s", visible(row.key), visible(msg))
        with contextlib.suppress(LostLease):
            await self.store.finish(
                row.seq,
                ItemState.FAILED,
                a=Attempt(outcome="error", message=msg[:500]),
                error_class=ErrorClass.UNEXPECTED,
            )

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
                if _terminal(result):
                    await self._commit(row, spec, result, direct=True)
                    self._probe("after_commit")
                    return
                run_id = result.run_id
                launched_at: float | None = time.monotonic()
            else:
                launched_at = None
            outcome = await self._poll(row, spec, run_id, launched_at)
            if outcome != "relaunch":
                return
            run_id = None
            row = await self.store.get(row.seq) or row

    # ----------------------------------------------------------------- launch

    async def _launch(self, row: Row, spec: LaunchSpec) -> RunResult | None:
        remaining = self.cfg.max_attempts - row.round_attempts
        if remaining <= 0:
            why = f"gave up after {row.round_attempts} attempts: {row.err_message or ''}".strip()
            await self.store.finish(
                row.seq,
                ItemState.FAILED,
                error_class=ErrorClass.ATTEMPTS,
                a=Attempt(outcome=ItemState.FAILED.value, message=why),
            )
            return None
        tokens_guess = estimate_tokens(spec.input_text) + estimate_tokens(spec.instruction or "")

        async def before_sleep(rs: RetryCallState) -> None:
            # a coroutine function, not a lambda: tenacity awaits only what it sees is async
            await self._before_retry(row, rs)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(remaining),
            retry=retry_if_exception(lambda e: isinstance(e, Failure) and e.kind is Kind.TRANSIENT),
            wait=self._wait,
            before_sleep=before_sleep,
            sleep=self._retry_sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._launch_once(row, spec, tokens_guess)
        except Failure as f:
            if f.kind is Kind.BATCH:
                await self.ctl.pause_batch(f)
                await self.store.unclaim(row.seq, f"batch paused: {f.short()}")
                return None
            await self.store.finish(
                row.seq,
                ItemState.FAILED,
                count_attempt=True,
                error_class=f.error_class,
                a=Attempt(
                    outcome=f.kind.value, http_code=f.code, delay=f.retry_delay, message=f.short()
                ),
            )
            log.info("%s: failed (%s): %s", visible(row.key), f.kind.value, visible(f.short()))
            return None
        return None

    async def _launch_once(self, row: Row, spec: LaunchSpec, tokens_guess: int) -> RunResult | None:
        """One attempt: give the item back, skip it, or launch it and record its run id."""
        if self.ctl.stopped or self.ctl.batch_paused:
            why = (
                "stopped before launch"
                if self.ctl.stopped
                else f"batch paused: {self.ctl.pause.reason}"
            )
            await self.store.unclaim(row.seq, why)
            return None
        if row.seq in self.ctl.cancel_flags:
            await self.store.finish(
                row.seq,
                ItemState.SKIPPED,
                a=Attempt(outcome=ItemState.SKIPPED.value, message="skipped by user"),
            )
            return None
        await self.pacer.before_launch(tokens_guess, self.ctl.stop_event)
        if self.ctl.stopped:
            await self.store.unclaim(row.seq, "stopped before launch")
            return None
        t0 = time.monotonic()
        try:
            result = await self.backend.launch(spec)
        except Failure as f:
            if f.kind is not Kind.BATCH:  # a per-day 429's hour-long delay must not hold the pool
                await self.pacer.on_failure(f)
            if f.cause is Cause.NETWORK:
                self._unreachable += 1
                if self._unreachable >= max(5, self.cfg.concurrency):
                    # nothing gets through at all: a batch-level problem, not N item failures
                    f = replace(f, kind=Kind.BATCH, message=f"cannot reach the API ({f.message})")
            raise f from None
        self._unreachable = 0
        self.pacer.on_success(time.monotonic() - t0, result.usage.input_tokens, tokens_guess)
        self._probe("after_launch")
        if not _terminal(result):
            await self.store.mark_running(row.seq, result.run_id, spec.target)
            self._probe("after_commit")
        return result

    def _wait(self, rs: RetryCallState) -> float:
        exc = rs.outcome.exception() if rs.outcome else None
        failure = exc if isinstance(exc, Failure) else None
        return self.cfg.backoff.delay(rs.attempt_number, failure)

    async def _before_retry(self, row: Row, rs: RetryCallState) -> None:
        exc = rs.outcome.exception() if rs.outcome else None
        assert isinstance(exc, Failure)
        delay = rs.next_action.sleep if rs.next_action else 0.0
        updated = await self.store.record_attempt(
            row.seq,
            Attempt(outcome="retry", http_code=exc.code, delay=delay, message=exc.short()),
            error_class=exc.error_class,
            relaunch=exc.in_doubt,
        )
        log.info(
            "%s: attempt %d %s → retry in %.1fs",
            visible(row.key),
            updated.attempts,
            visible(exc.short()),
            delay,
        )

    async def _retry_sleep(self, seconds: float) -> None:
        await self.ctl.nap(seconds)

    # ------------------------------------------------------------------- poll

    async def _poll(
        self, row: Row, spec: LaunchSpec, run_id: str, launched_at: float | None = None
    ) -> PollEnd:
        # a resumed run has been going a while: look at it at once
        delay = self.schedule.first_delay() if launched_at is not None else 0.0
        interval = self.cfg.poll_initial
        errors = 0
        first = True
        while True:
            if self.ctl.stopped:
                return "stopped"
            if row.seq in self.ctl.cancel_flags:
                await self._cancel(row, run_id)
                return "skipped"
            await self.ctl.nap(delay)
            if self.ctl.stopped:
                return "stopped"
            if row.seq in self.ctl.cancel_flags:
                continue
            try:
                await self.pacer.before_poll(self.ctl.stop_event)
                sent = time.monotonic()
                result = await self.backend.poll(run_id)
            except Failure as f:
                if f.kind is not Kind.BATCH:
                    await self.pacer.on_failure(f)
                if f.lost:
                    await self.store.forget_run(
                        row.seq, f"run {run_id} unknown to the service (404): launching again"
                    )
                    log.warning(
                        "%s: run %s lost by the service; relaunching",
                        visible(row.key),
                        visible(run_id),
                    )
                    return "relaunch"
                if f.kind is Kind.BATCH:
                    await self.ctl.pause_batch(f)
                    return "paused"
                errors += 1
                delay = self.cfg.backoff.delay(errors, f)
                await self.store.note(
                    f"poll of {run_id} failed ({f.short()}); still polling",
                    row.seq,
                    EventKind.POLL_ERROR,
                )
                continue
            errors = 0
            terminal = _terminal(result)
            if launched_at is not None:
                self.schedule.learn(sent - launched_at, terminal, first)
            first = False
            if terminal:
                await self._commit(row, spec, result)
                self._probe("after_commit")
                return "done"
            delay, interval = interval, self.schedule.next_interval(interval)

    async def _cancel(self, row: Row, run_id: str) -> None:
        message = "skipped by user (run cancelled on the service)"
        try:
            await self.backend.cancel(run_id)
        except Failure as f:
            message = f"skipped by user; cancel failed: {f.short()}"
        await self.store.finish(
            row.seq,
            ItemState.SKIPPED,
            a=Attempt(outcome=RunStatus.CANCELLED.value, message=message),
        )
        log.info("%s: %s", visible(row.key), visible(message))

    # ----------------------------------------------------------------- commit

    async def _commit(
        self, row: Row, spec: LaunchSpec, r: RunResult, *, direct: bool = False
    ) -> None:
        cost = self.prices.cost_of(spec.target, r.usage)
        a = Attempt(
            outcome=r.status,
            tokens_in=r.usage.input_tokens,
            tokens_out=r.usage.output_tokens,
            tokens_thought=r.usage.thought_tokens,
            cost_usd=cost or 0.0,
        )
        state, message = _settled(r)
        if state is not ItemState.DONE:
            a.wasted, a.message = True, message
        await self.store.finish(
            row.seq,
            state,
            run_id=r.run_id,
            output=r.output,
            a=a,
            count_attempt=direct,
            error_class=None if state is ItemState.DONE else ErrorClass.RUN,
            price_known=cost is not None,
        )
        if message:
            log.info("%s: %s", visible(row.key), visible(message))
        self._spent += a.cost_usd
        if self.cfg.budget_usd is not None and self._spent >= self.cfg.budget_usd:
            await self.ctl.set_pause(
                f"budget reached: ${self._spent:.4f} of ${self.cfg.budget_usd:.2f}", PauseKind.BATCH
            )
