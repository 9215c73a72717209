"""claim → launch → record run id → poll → commit, for many items at once.

The engine keeps nothing that matters in memory: every decision is written to the
store before the next await that could be interrupted, so any process may die at
any instant and a later run (or a second worker) continues from the checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from .backends.base import Backend, LaunchSpec, RunResult
from .items import key_label
from .limiter import Pacer
from .policy import Backoff, Failure, Kind
from .pricing import Prices, estimate_tokens
from .store import Attempt, Claim, LostLease, Row, Store

DEFAULT_MODEL = "gemini-2.5-flash"


@dataclass
class EngineConfig:
    concurrency: int = 8
    max_attempts: int = 5
    agent: str | None = None
    model: str | None = None
    instruction: str | None = None
    poll_initial: float = 1.0
    poll_max: float = 15.0
    poll_factor: float = 1.5
    backoff: Backoff = field(default_factory=Backoff)
    budget_usd: float | None = None
    stop_grace: float = 5.0
    rpm: float | None = None
    tpm: float | None = None
    max_concurrency: int = 64
    adaptive: bool = False


class _Crash:
    """Named crash points (TUIBATCH_CRASH_AT=after_launch[:N]) for testing each window on purpose."""

    def __init__(self, spec: str | None):
        self.point, self.n = None, 1
        if spec:
            name, _, n = spec.partition(":")
            self.point, self.n = name, int(n or 1)
        self.seen = 0

    def __call__(self, point: str) -> None:
        if point == self.point:
            self.seen += 1
            if self.seen >= self.n:
                os._exit(137)


class Engine:
    """Runs the items of one checkpoint until none is left, it is stopped, or the batch pauses."""

    def __init__(self, store: Store, backend: Backend, prices: Prices, config: EngineConfig,
                 *, log: Callable[[str], None] | None = None):
        self.store = store
        self.backend = backend
        self.prices = prices
        self.cfg = config
        self.log = log or (lambda _msg: None)
        self.pacer = Pacer(concurrency=config.concurrency, rpm=config.rpm, tpm=config.tpm,
                           adaptive=config.adaptive, max_concurrency=config.max_concurrency)
        self._crash = _Crash(os.environ.get("TUIBATCH_CRASH_AT"))
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._paused = False
        self._pause_reason = ""
        self._pause_kind = ""
        self._busy = 0
        self._cancel_flags: set[int] = set()
        self._spent = 0.0
        self._batch_id = ""
        self.interrupted = False
        self._first_target: float | None = None  # when to poll a fresh run first, under a quota
        self._unreachable = 0  # launches in a row that could not connect at all

    # ----------------------------------------------------------------- public

    def stop(self) -> None:
        """Stop claiming; pollers let go; launches in flight get ``stop_grace`` to record their run id."""
        self.interrupted = True
        self._stop.set()
        self._kick()

    @property
    def paused(self) -> tuple[bool, str, str]:
        return self._paused, self._pause_reason, self._pause_kind

    async def run(self) -> None:
        meta = await self.store.meta()
        self._batch_id = meta.get("batch_id", "b")
        self._spent = (await self.store.totals()).cost_usd
        await self._read_control()
        self.pacer.attach(self.store)
        background = [asyncio.create_task(self._heartbeat()), asyncio.create_task(self._watch_control())]
        workers = [asyncio.create_task(self._worker()) for _ in range(self.cfg.max_concurrency
                                                                        if self.cfg.adaptive else self.cfg.concurrency)]
        stop_waiter = asyncio.create_task(self._stop.wait())
        try:
            running: set[asyncio.Task[None]] = set(workers)
            while running and not self._stop.is_set():
                done, _ = await asyncio.wait(running | {stop_waiter}, return_when=asyncio.FIRST_COMPLETED)
                running -= done  # type: ignore[operator]
            if running:
                _, late = await asyncio.wait(running, timeout=self.cfg.stop_grace)
                for w in late:
                    w.cancel()
                await asyncio.gather(*late, return_exceptions=True)
            for w in workers:
                if w.done() and not w.cancelled() and w.exception() is not None:
                    self.log(f"worker stopped by an error: {w.exception()!r}")
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
        while not self._stop.is_set():
            if self._paused or not await self.pacer.slot_free(self._busy):
                if self._paused and self._busy == 0 and self._pause_kind == "batch":
                    return
                await self._nap(0.25)
                continue
            claim = await self.store.claim()
            if claim is None:
                pending, _ = await self.store.work_left()
                if pending == 0 and self._busy == 0:
                    return
                await self._nap(0.2)
                continue
            self._busy += 1
            try:
                await self._process(claim)
            except LostLease:
                self.log(f"{claim.row.key}: taken over by another worker; letting go")
            except Exception as exc:  # nothing stops the batch by crashing
                await self._fail_unexpected(claim.row, exc)
            finally:
                self._busy -= 1
                self._cancel_flags.discard(claim.row.seq)

    async def _fail_unexpected(self, row: Row, exc: Exception) -> None:
        msg = f"unexpected {type(exc).__name__}: {exc}"
        self.log(f"{row.key}: {msg}")
        with contextlib.suppress(LostLease):
            await self.store.finish(row.seq, "failed", a=Attempt(outcome="error", message=msg[:500]),
                                    error_class="unexpected")

    def spec_for(self, row: Row) -> LaunchSpec:
        agent, model = row.agent, row.model
        if not agent and not model:
            agent, model = self.cfg.agent, None if self.cfg.agent else (self.cfg.model or DEFAULT_MODEL)
        return LaunchSpec(
            key=row.key, input_text=row.input, agent=agent, model=model,
            instruction=row.instruction or self.cfg.instruction,
            labels={"tuibatch_item": key_label(row.key), "tuibatch_batch": self._batch_id},
        )

    async def _process(self, claim: Claim) -> None:
        row, spec = claim.row, self.spec_for(claim.row)
        if claim.resume and row.run_id:
            self.log(f"{row.key}: resuming run {row.run_id}")
            run_id = row.run_id
        else:
            if claim.in_doubt:
                await self.store.note_relaunch(row.seq, "in-doubt relaunch: a worker died after sending the launch and before recording the run id")
            run_id = None
        while True:
            if run_id is None:
                result = await self._launch(row, spec)
                if result is None:
                    return
                if result.terminal:
                    await self._commit(row, spec, result, direct=True)
                    self._crash("after_commit")
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
            await self.store.finish(row.seq, "failed", error_class="attempts", a=Attempt(
                outcome="failed", message=f"gave up after {row.round_attempts} attempts: {row.err_message or ''}".strip()))
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
                    if self._stop.is_set() or (self._paused and self._pause_kind == "batch"):
                        await self.store.unclaim(row.seq, "stopped before launch" if self._stop.is_set()
                                                 else f"batch paused: {self._pause_reason}")
                        return None
                    if row.seq in self._cancel_flags:
                        await self.store.finish(row.seq, "skipped", a=Attempt(outcome="skipped", message="skipped by user"))
                        return None
                    await self.pacer.before_launch(tokens_guess, self._stop)
                    if self._stop.is_set():
                        await self.store.unclaim(row.seq, "stopped before launch")
                        return None
                    t0 = time.monotonic()
                    try:
                        result = await self.backend.launch(spec)
                    except Failure as f:
                        if f.kind is not Kind.BATCH:  # a per-day 429's hour-long delay must not hold the pool
                            await self.pacer.on_failure(f)
                        if f.error_class == "network":
                            self._unreachable += 1
                            if self._unreachable >= max(5, self.cfg.concurrency):
                                # nothing gets through at all: a batch-level problem, not N item failures
                                f = replace(f, kind=Kind.BATCH, message=f"cannot reach the API ({f.message})")
                        raise f from None
                    self._unreachable = 0
                    self.pacer.on_success(time.monotonic() - t0, result.usage.input_tokens, tokens_guess)
                    self._crash("after_launch")
                    if not result.terminal:
                        await self.store.mark_running(row.seq, result.run_id, spec.target)
                        self._crash("after_commit")
                    return result
        except Failure as f:
            if f.kind is Kind.BATCH:
                await self._pause_batch(f)
                await self.store.unclaim(row.seq, f"batch paused: {f.short()}")
                return None
            await self.store.finish(
                row.seq, "failed", count_attempt=True, error_class=f.kind.value,
                a=Attempt(outcome=f.kind.value, http_code=f.code, delay=f.retry_delay, message=f.short()))
            self.log(f"{row.key}: failed ({f.kind.value}): {f.short()}")
            return None
        return None

    def _wait(self, rs: RetryCallState) -> float:
        exc = rs.outcome.exception() if rs.outcome else None
        failure = exc if isinstance(exc, Failure) else None
        return self.cfg.backoff.delay(rs.attempt_number, failure)

    async def _before_retry(self, row: Row, rs: RetryCallState) -> None:
        exc = rs.outcome.exception() if rs.outcome else None
        assert isinstance(exc, Failure)
        delay = rs.next_action.sleep if rs.next_action else 0.0
        updated = await self.store.record_attempt(row.seq, Attempt(
            outcome="retry", http_code=exc.code, delay=delay, message=exc.short()), error_class=exc.kind.value,
            relaunch=exc.in_doubt)
        self.log(f"{row.key}: attempt {updated.attempts} {exc.short()} → retry in {delay:.1f}s")

    async def _retry_sleep(self, seconds: float) -> None:
        await self._nap(seconds)

    # ------------------------------------------------------------------- poll

    def _first_poll_delay(self) -> float:
        """Under a request quota a poll costs as much as a launch: aim just past the runs' length.

        Without a quota an early poll costs nothing but a request, and waiting would leave
        worker slots idle, so the usual schedule applies.
        """
        if self._first_target is None or not self.pacer.quota_limited():
            return self.cfg.poll_initial
        return min(self.cfg.poll_max, self._first_target)

    def _learn_run_length(self, elapsed: float, terminal: bool, first: bool) -> None:
        """A poll that finds a run still going proves runs take longer than *elapsed*;
        a first poll that finds it over lets the target creep back down."""
        if not terminal:
            self._first_target = max(self._first_target or 0.0, 1.1 * elapsed)
        elif first and self._first_target is not None:
            self._first_target = max(self.cfg.poll_initial, 0.998 * self._first_target)

    async def _poll(self, row: Row, spec: LaunchSpec, run_id: str, launched_at: float | None = None) -> str:
        # a resumed run has been going a while: look at it at once
        delay = self._first_poll_delay() if launched_at is not None else 0.0
        interval = self.cfg.poll_initial
        errors = 0
        first = True
        while True:
            if self._stop.is_set():
                return "stopped"
            if row.seq in self._cancel_flags:
                await self._cancel(row, run_id)
                return "skipped"
            await self._nap(delay, row.seq)
            if self._stop.is_set():
                return "stopped"
            if row.seq in self._cancel_flags:
                continue
            try:
                await self.pacer.before_poll(self._stop)
                sent = time.monotonic()
                result = await self.backend.poll(run_id)
            except Failure as f:
                if f.kind is not Kind.BATCH:
                    await self.pacer.on_failure(f)
                if f.lost:
                    await self.store.forget_run(row.seq, f"run {run_id} unknown to the service (404): launching again")
                    self.log(f"{row.key}: run {run_id} lost by the service; relaunching")
                    return "relaunch"
                if f.kind is Kind.BATCH:
                    await self._pause_batch(f)
                    return "paused"
                errors += 1
                delay = self.cfg.backoff.delay(errors, f)
                await self.store.note(f"poll of {run_id} failed ({f.short()}); still polling", row.seq, "poll_error")
                continue
            errors = 0
            if launched_at is not None:
                self._learn_run_length(sent - launched_at, result.terminal, first)
            first = False
            if result.terminal:
                await self._commit(row, spec, result)
                self._crash("after_commit")
                return "done"
            delay = interval
            interval = min(self.cfg.poll_max, max(interval, 0.05) * self.cfg.poll_factor) if interval else 0.0

    async def _cancel(self, row: Row, run_id: str) -> None:
        message = "skipped by user (run cancelled on the service)"
        try:
            await self.backend.cancel(run_id)
        except Failure as f:
            message = f"skipped by user; cancel failed: {f.short()}"
        await self.store.finish(row.seq, "skipped", a=Attempt(outcome="cancelled", message=message))
        self.log(f"{row.key}: {message}")

    # ----------------------------------------------------------------- commit

    async def _commit(self, row: Row, spec: LaunchSpec, r: RunResult, *, direct: bool = False) -> None:
        cost = self.prices.cost(spec.target, r.usage.input_tokens, r.usage.output_tokens, r.usage.thought_tokens)
        a = Attempt(outcome=r.status, tokens_in=r.usage.input_tokens, tokens_out=r.usage.output_tokens,
                    tokens_thought=r.usage.thought_tokens, cost_usd=cost or 0.0)
        if r.status == "completed":
            await self.store.finish(row.seq, "done", run_id=r.run_id, output=r.output, a=a,
                                    count_attempt=direct, price_known=cost is not None)
        else:
            a.wasted = True
            if r.status == "cancelled":
                state, a.message = "skipped", "cancelled"
            elif r.status == "requires_action":
                state, a.message = "failed", "needs a human: the run stopped with requires_action"
            else:
                state, a.message = "failed", f"run ended {r.status}" + (f": {r.error}" if r.error else "")
            await self.store.finish(row.seq, state, run_id=r.run_id, output=r.output, a=a, count_attempt=direct,
                                    error_class="run", price_known=cost is not None)
            self.log(f"{row.key}: {a.message}")
        self._spent += a.cost_usd
        if self.cfg.budget_usd is not None and self._spent >= self.cfg.budget_usd:
            await self._set_pause(f"budget reached: ${self._spent:.4f} of ${self.cfg.budget_usd:.2f}", "batch")

    # ---------------------------------------------------------------- control

    async def _pause_batch(self, f: Failure) -> None:
        what = {401: "bad API key", 403: "no permission", 404: "unknown agent or model"}.get(f.code or 0, "")
        if f.code == 429:
            what = "per-day quota exhausted"
        reason = f"{what + ': ' if what else ''}{f.short()}"
        await self._set_pause(reason, "batch")

    async def _set_pause(self, reason: str, kind: str) -> None:
        if not self._paused:
            self.log(f"batch paused: {reason}")
        self._paused, self._pause_reason, self._pause_kind = True, reason, kind
        await self.store.set_paused(True, reason, kind=kind)

    async def _read_control(self) -> None:
        ctl = await self.store.control()
        self.pacer.absorb(ctl)
        self._paused = ctl.get("paused") == "1"
        self._pause_reason = ctl.get("pause_reason", "")
        self._pause_kind = ctl.get("pause_kind", "")

    async def _watch_control(self) -> None:
        tick = 0
        while True:
            await asyncio.sleep(0.3)
            tick += 1
            was = self._paused
            await self._read_control()
            if was and not self._paused:
                self._kick()
            for seq in await self.store.mine_to_cancel():
                if seq not in self._cancel_flags:
                    self._cancel_flags.add(seq)
                    self._kick()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(max(1.0, self.store.lease_seconds / 4))
            await self.store.renew_leases()

    def _kick(self) -> None:
        """Wake every sleeper: each nap waits on the event that was current when it began."""
        self._wake.set()
        self._wake = asyncio.Event()

    async def _nap(self, seconds: float, seq: int | None = None) -> None:
        """Sleep, but wake at once on stop, resume or a cancel request."""
        if seconds <= 0 or self._stop.is_set():
            await asyncio.sleep(0)
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

