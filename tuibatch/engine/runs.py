"""Runs: poll a recorded run until it ends, cancel it on a skip, commit its result.

A run's result is committed in one transaction with its usage, cost and what it says beyond
its text (stop reason, checked JSON value, cause); what it settles its item in is judged by
:mod:`.judge`. Every run ends: a status that is not progress is waited on for ``stuck_after``
seconds and any run for ``max_run_seconds``; a permanent error while polling ends the item; a
run the service no longer knows (404) makes the item ``lost``, never a new launch by itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Literal, TypeVar

from ..backends.base import LaunchSpec, RunResult
from ..policy import Cause, Failure, Kind
from ..safe_text import visible
from ..states import TERMINAL_RUN, ErrorClass, ItemState, PauseKind, RunStatus
from ..store import Attempt, EventKind, Row, views
from ..store import results as q
from .judge import judge, stuck_reason
from .money import Ledger
from .parts import EngineState

log = logging.getLogger("tuibatch.engine")

#: how polling a run ended
PollEnd = Literal["done", "skipped", "stopped", "paused", "relaunch", "lost", "failed"]
T = TypeVar("T")


def is_terminal(r: RunResult) -> bool:
    return r.status in TERMINAL_RUN


class Runs(EngineState):
    #: money this engine has seen: paid, counted at worst case, unbounded
    ledger: Ledger
    #: recorded runs the service answered 404 for, in this engine's life
    lost_runs: int

    async def _tx(self, fn: Callable[..., T], *args: object, **kw: object) -> T:
        """One of :mod:`tuibatch.store.queue`'s result transitions, in one transaction."""
        await self._ledger()  # taken in before this engine settles anything
        return await self.store.with_leases(fn, *args, **kw)

    async def _poll(
        self, row: Row, spec: LaunchSpec, run_id: str, launched_at: float | None = None
    ) -> PollEnd:
        # a resumed run has been going a while: look at it at once
        delay = self.schedule.first_delay() if launched_at is not None else 0.0
        interval = self.cfg.poll_initial
        errors = 0
        first = True
        began = time.time() if launched_at is not None else (row.started_at or time.time())
        last_status: str | None = None
        status_since = time.monotonic()
        while True:
            if self.ctl.stopped:
                return "stopped"
            if row.seq in self.ctl.cancel_flags:
                await self._cancel(row, spec, run_id)
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
                    await self.pacer.on_failure(f, poll=True)
                if f.lost:
                    await self._lose(row, run_id, resumed=launched_at is None)
                    return "lost"
                if f.kind is Kind.BATCH:
                    await self.ctl.pause_batch(f)
                    return "paused"
                if f.kind is Kind.PERMANENT:
                    await self._fail_poll(row, run_id, f)
                    return "failed"
                errors += 1
                delay = self.cfg.backoff.delay(errors, f)
                await self.store.note(
                    f"poll of {run_id} failed ({f.short()}); still polling",
                    row.seq,
                    EventKind.POLL_ERROR,
                )
                if time.time() - began >= self.cfg.max_run_seconds:
                    why = f"no answer about run {run_id} within --max-run-seconds: {f.short()}"
                    await self._give_up(row, spec, run_id, None, why)
                    return "failed"
                continue
            errors = 0
            terminal = is_terminal(result)
            if launched_at is not None:
                self.schedule.learn(sent - launched_at, terminal, first)
            first = False
            if terminal:
                end = await self._commit(row, spec, result)
                self._probe("after_commit")
                return "relaunch" if end == "relaunch" else "done"
            now = time.monotonic()
            if result.status != last_status:
                last_status, status_since = result.status, now
            stuck = stuck_reason(
                result,
                now - status_since,
                time.time() - began,
                self.cfg.stuck_after,
                self.cfg.max_run_seconds,
            )
            if stuck is not None:
                await self._give_up(row, spec, run_id, result, stuck)
                return "failed"
            delay, interval = interval, self.schedule.next_interval(interval)
            if self.cfg.stuck_after < delay:
                delay = max(self.cfg.stuck_after, 0.01)

    # ------------------------------------------------------------------ endings

    async def _cancel(self, row: Row, spec: LaunchSpec, run_id: str) -> None:
        """A skip of a running item: cancel the run; an answer that won the race is kept."""
        message = "skipped by user (run cancelled on the service)"
        r: RunResult | None = None
        try:
            r = await self.backend.cancel(run_id)
        except Failure as f:
            message = f"skipped by user; cancel failed: {f.short()}"
        if r is not None and r.run_status is RunStatus.COMPLETED:
            log.info("%s: the run completed before the cancel landed; keeping it", row.key)
            await self._commit(row, spec, r, relaunch=False)
            return
        await self._settle_unused(row, spec, r, ItemState.SKIPPED, message, Cause.CANCELLED)
        log.info("%s: %s", visible(row.key), visible(message))

    async def _give_up(
        self, row: Row, spec: LaunchSpec, run_id: str, last: RunResult | None, why: str
    ) -> None:
        """A run that does not end: cancel it (so it stops billing) and fail the item as stuck."""
        r: RunResult | None = None
        try:
            r = await self.backend.cancel(run_id)
        except Failure as f:
            why += f" (cancel failed: {f.short()})"
        if r is not None and r.run_status is RunStatus.COMPLETED:
            await self._commit(row, spec, r, relaunch=False)
            return
        stop = (last.status if last is not None else None) or "no answer"
        await self._settle_unused(
            row, spec, r or last, ItemState.FAILED, why, Cause.STUCK, ErrorClass.STUCK, stop
        )
        log.warning("%s: %s", visible(row.key), visible(why))

    async def _settle_unused(
        self,
        row: Row,
        spec: LaunchSpec,
        r: RunResult | None,
        state: ItemState,
        message: str,
        cause: Cause,
        error_class: ErrorClass | None = None,
        stop_reason: str | None = None,
    ) -> None:
        """Settle an item whose run's answer is not kept; what the run cost is wasted."""
        usage = r.usage if r is not None else None
        cost = self.prices.cost_of(spec.target, usage) if usage is not None else None
        known = usage is not None and usage.known
        a = Attempt(
            outcome=r.status if r is not None else state.value,
            tokens_in=usage.input_tokens if usage else 0,
            tokens_out=usage.output_tokens if usage else 0,
            tokens_thought=usage.thought_tokens if usage else 0,
            cost_usd=cost or 0.0,
            wasted=True,
            message=message,
        )
        facts = q.Facts(stop_reason=stop_reason, cause=cause.value, usage_known=known)
        await self._tx(
            q.settle, row.seq, state, a=a, facts=facts, error_class=error_class,
            price_known=cost is not None,
        )  # fmt: skip
        await self._count(spec, cost, known)

    async def _fail_poll(self, row: Row, run_id: str, f: Failure) -> None:
        why = f"polling run {run_id} failed for good: {f.short()}"
        a = Attempt(outcome=f.kind.value, http_code=f.code, message=why)
        facts = q.Facts(cause=f.cause.value, usage_known=False)
        await self._tx(q.settle, row.seq, ItemState.FAILED, a=a, facts=facts,
                       error_class=f.error_class)  # fmt: skip
        log.info("%s: %s", visible(row.key), visible(why))

    async def _lose(self, row: Row, run_id: str, *, resumed: bool) -> None:
        """404 for a recorded run: the item is lost (its paid cost kept), never relaunched here.

        A run recorded by an earlier process (a resume) that the service does not know means a
        different key or project, or runs that expired: the batch pauses at once, before any
        launch, with one message. Runs launched by this process pause it at the
        ``lost_pause_after``-th loss.
        """
        why = (
            f"run {run_id} unknown to the service (404): not launched again, it may still run"
            f" and bill; `tuibatch retry` relaunches it on purpose"
        )
        await self._tx(q.mark_lost, row.seq, run_id, why, Cause.LOST_RUN.value)
        log.warning("%s: run %s lost by the service", visible(row.key), visible(run_id))
        self.lost_runs = getattr(self, "lost_runs", 0) + 1
        if self.ctl.batch_paused or (not resumed and self.lost_runs < self.cfg.lost_pause_after):
            return
        await self.ctl.set_pause(
            "the service does not know runs this checkpoint recorded (404): probably a different"
            " API key or project than the one that launched them, or runs that expired; those"
            " items are 'lost' and nothing was launched again (`tuibatch retry KEY` relaunches"
            " one and may pay twice)",
            PauseKind.BATCH,
        )

    # ----------------------------------------------------------------- commit

    async def _commit(
        self,
        row: Row,
        spec: LaunchSpec,
        r: RunResult,
        *,
        direct: bool = False,
        relaunch: bool = True,
    ) -> Literal["done", "relaunch"]:
        """Commit a terminal result; "relaunch" when an invalid answer is to be tried again."""
        cost = self.prices.cost_of(spec.target, r.usage)
        known = r.usage.known
        v = judge(r, spec, accept_truncated=self.cfg.accept_truncated)
        a = Attempt(
            outcome=r.status,
            tokens_in=r.usage.input_tokens,
            tokens_out=r.usage.output_tokens,
            tokens_thought=r.usage.thought_tokens,
            cost_usd=cost or 0.0,
            message=v.message,
        )
        facts = q.Facts(
            output_json=v.output_json,
            stop_reason=v.stop_reason,
            cause=v.cause.value if v.cause is not None else None,
            usage_known=known,
        )
        if v.state is not ItemState.DONE:
            a.wasted = True
        if relaunch and v.error_class is ErrorClass.INVALID_OUTPUT and await self._try_again(row):
            a.message = f"{v.message}; launching again"
            await self._tx(q.retry_output, row.seq, a=a, facts=facts, count_attempt=direct)
            log.info("%s: %s", visible(row.key), visible(a.message))
            await self._count(spec, cost, known)
            return "relaunch"
        await self._tx(
            q.settle, row.seq, v.state, a=a, facts=facts, run_id=r.run_id, output=r.output,
            error_class=v.error_class, count_attempt=direct, price_known=cost is not None,
        )  # fmt: skip
        if v.message:
            log.info("%s: %s", visible(row.key), visible(v.message))
        await self._count(spec, cost, known)
        return "done"

    async def _try_again(self, row: Row) -> bool:
        """Whether an invalid answer may be tried again (``invalid_output_retries``)."""
        fresh = await self.store.get(row.seq) or row
        used = await self.store.transaction(
            lambda con: q.refused_outputs(
                con, row.seq, Cause.INVALID_OUTPUT.value, fresh.round_base
            )
        )
        return used < self.cfg.invalid_output_retries

    # ------------------------------------------------------------------ money

    async def _count(self, spec: LaunchSpec, cost: float | None, usage_known: bool) -> None:
        """Count a run's cost toward the budget: unknown costs at the worst case."""
        ledger = await self._ledger()
        if cost is not None:
            ledger.paid(cost)
            self._spent += cost
        elif not usage_known:
            ledger.unknown(self.prices.worst_case(spec.target))
        # usage known, price unknown: shown as "unknown price"; not bounded by a worst case
        reason = ledger.over(self.cfg.budget_usd)
        if reason is not None:
            await self.ctl.set_pause(reason, PauseKind.BATCH)

    async def _ledger(self) -> Ledger:
        """This engine's ledger; at first use it takes in what earlier runs paid and the runs
        they saw without usage (at their worst case), so a resume keeps the same budget."""
        ledger = getattr(self, "ledger", None)
        if ledger is None:
            ledger = Ledger(paid_usd=self._spent)
            if self.cfg.budget_usd is not None:
                targets = await self.store.transaction(views.unknown_cost_targets)
                for target in targets:
                    ledger.unknown(self.prices.worst_case(target or self.cfg.agent))
            self.ledger = ledger
        return ledger


__all__ = ["PollEnd", "Runs", "is_terminal"]
