"""Launch: one item's attempts until a run exists (its id recorded) or the item is settled.

Retries go through tenacity with the policy's backoff; a batch-level failure pauses the batch
and gives the item back; anything else permanent fails the item at once.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception

from ..backends.base import LaunchSpec, RunResult
from ..policy import Cause, Failure, Kind
from ..pricing import estimate_tokens
from ..safe_text import visible
from ..states import TERMINAL_RUN, ErrorClass, ItemState
from ..store import Attempt, EventKind, Row
from ..store.errors import StorageError
from ..store.fallback import KeptRun
from .parts import EngineState

log = logging.getLogger("tuibatch.engine")


class Launcher(EngineState):
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

        limited = [0]  # "slow down" answers, requests that never left: not --max-attempts

        def stop(rs: RetryCallState) -> bool:
            exc = rs.outcome.exception() if rs.outcome else None
            if isinstance(exc, Failure) and (exc.rate_limited or exc.unreachable):
                limited[0] += 1
                return False  # the next attempt gives the item back if the worker stopped
            return rs.attempt_number - limited[0] >= remaining

        retrying = AsyncRetrying(
            stop=stop,
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
        # the fence: after every sleep (backoff, pacer, a SIGSTOP), one transaction proves this
        # worker still holds the item and extends its lease, or raises LostLease: nothing sent
        await self.store.begin_launch(row.seq, row.fence)
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
        if result.status not in TERMINAL_RUN:
            try:
                await self.store.mark_running(row.seq, result.run_id, spec.target)
            except StorageError as exc:
                exc.kept_run = kept(row, result.run_id, spec.target)
                raise
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
        if exc.rate_limited or exc.unreachable:  # the item keeps its attempts
            what = "rate limited" if exc.rate_limited else "API unreachable, nothing sent"
            msg = f"{what} ({exc.short()}): waiting {delay:.1f}s, not counted as an attempt"
            await self.store.note(msg, row.seq, EventKind.INFO)
            return
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


def kept(row: Row, run_id: str, target: str) -> KeptRun:
    """A run the checkpoint could not take, as the fallback file keeps it."""
    return KeptRun(row.key, row.seq, run_id, target, row.fence, time.time())
