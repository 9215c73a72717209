"""Runs: poll a recorded run until it ends, cancel it on a skip, commit its result.

A run's result is committed in one transaction with its usage and cost; what a run that did
not complete settles its item in is decided here (:func:`settled`).
"""

from __future__ import annotations

import logging
import time
from typing import Literal

from ..backends.base import LaunchSpec, RunResult
from ..policy import Failure, Kind
from ..safe_text import visible
from ..states import TERMINAL_RUN, ErrorClass, ItemState, PauseKind, RunStatus
from ..store import Attempt, EventKind, Row
from .parts import EngineState

log = logging.getLogger("tuibatch.engine")

#: how polling a run ended
PollEnd = Literal["done", "skipped", "stopped", "paused", "relaunch"]


def is_terminal(r: RunResult) -> bool:
    return r.status in TERMINAL_RUN


def settled(r: RunResult) -> tuple[ItemState, str | None]:
    """The state a terminal run settles its item in, and why if it is not done."""
    if r.status == RunStatus.COMPLETED:
        return ItemState.DONE, None
    if r.status == RunStatus.CANCELLED:
        return ItemState.SKIPPED, RunStatus.CANCELLED.value
    if r.status == RunStatus.REQUIRES_ACTION:
        return ItemState.FAILED, "needs a human: the run stopped with requires_action"
    return ItemState.FAILED, f"run ended {r.status}" + (f": {r.error}" if r.error else "")


class Runs(EngineState):
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
            terminal = is_terminal(result)
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
        state, message = settled(r)
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
