"""A local Gemini API simulator: a real HTTP server speaking Google's REST shapes.

The real ``google-genai`` SDK runs against it unchanged (``HttpOptions(base_url=...)``), so tests
exercise the exact requests, errors and retries tuibatch meets in production, and the stats
endpoint tells them how many runs were paid for. This module holds the simulator's state and
lifecycle; the rooms are ``routes`` (HTTP wiring), ``interactions`` and ``models`` (endpoints),
``runs`` (the run model), ``batches`` and ``jobs`` (the Batch API), ``files`` (the Files API),
``catalog`` (models list), ``quotas``, ``faults``, ``stats`` and ``errors``.

``clock`` (optional) is the simulator's time source: quotas and batch job timelines read it,
so tests drive both without sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import secrets
import time
from typing import Any

from aiohttp import web

from tuibatch.items import key_label
from tuibatch.sim.batches import BatchItem, refresh
from tuibatch.sim.config import AGENTS, MODELS, SimConfig
from tuibatch.sim.errors import (
    ApiError,
    Drop,
    bad_key_error,
    precondition_error,
    violation,
)
from tuibatch.sim.faults import ERROR_KINDS, FaultPlan, FaultRule
from tuibatch.sim.files import SimFile, Upload
from tuibatch.sim.jobs import Job
from tuibatch.sim.quotas import Clock, Quotas, free_tier_error, multi_quota_error, per_day_error
from tuibatch.sim.routes import build_app
from tuibatch.sim.runs import Run
from tuibatch.sim.stats import BodyLog, Ctx, Stats

__all__ = ["AGENTS", "MODELS", "ApiError", "Ctx", "SimConfig", "Simulator"]

#: Google's usual messages for the codes a rule most often scripts.
DEFAULT_MESSAGES = {
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred.",
    503: "The model is overloaded. Please try again later.",
}


class Simulator:
    """The simulator; all state lives on one event loop, so no locks are needed.

    ``clock`` (optional) is the time source of the quotas and of batch jobs' timelines.
    """

    def __init__(self, config: SimConfig | None = None, *, clock: Clock | None = None) -> None:
        self.config = config or SimConfig()
        self.plan = FaultPlan(self.config.faults)
        self._clock = clock
        self._wall0 = time.time()
        self._mono0 = self.now()
        self._runner: web.AppRunner | None = None
        self.stopping = asyncio.Event()
        self.url = ""
        self._instance = secrets.token_hex(3)  # run ids never repeat across simulators
        self._epoch = 0
        self._reset_state()

    # ----------------------------------------------------------------- state
    def _reset_state(self) -> None:
        cfg = self.config
        self._epoch += 1
        self._seq = 0
        self.rng = random.Random(cfg.seed)
        self.runs: dict[str, Run] = {}
        self.gone: dict[str, str] = {}  # run id -> lost | deleted | forgotten (404 from now on)
        self.results: dict[str, tuple[str, str]] = {}  # generate responseId -> (item, status)
        self.counts = Stats()
        self.bodies = BodyLog(cfg.keep_bodies)
        self.batch_jobs: dict[str, Job] = {}
        self.batch_items: dict[str, BatchItem] = {}
        self.files: dict[str, SimFile] = {}
        self.uploads: dict[str, Upload] = {}
        self.file_counts = {"uploaded": 0, "downloads": 0}
        self.quotas = Quotas(
            rpm=cfg.rpm,
            tpm=cfg.tpm,
            enforcement=cfg.enforcement,
            polls_count=cfg.polls_count,
            burst=cfg.burst_seconds,
            clock=self._clock,
        )
        self.plan.reset()

    def reset(self) -> None:
        """Forget runs, stats, quota use and fault budgets (the plan itself stays)."""
        self._reset_state()

    def set_faults(self, rules: list[Any]) -> None:
        """Replace the fault plan; budgets start afresh."""
        self.plan = FaultPlan(rules)

    def forget_runs(self, runs: list[str] | None = None, items: list[str] | None = None) -> int:
        """Forget runs (all when neither list is given): every later get/cancel of them is 404.

        ``items`` takes keys or item ids. The items' counts stay: what was billed stays billed.
        """
        wanted_items = {key_label(k) for k in items or []} | set(items or [])
        chosen = [
            run_id
            for run_id, run in self.runs.items()
            if run_id not in self.gone
            and (
                (runs is None and items is None)
                or run_id in (runs or [])
                or run.item in wanted_items
            )
        ]
        for run_id in chosen:
            self.gone[run_id] = "forgotten"
        return len(chosen)

    def new_id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}_{self._instance}{self._epoch}_{self._seq:06d}"

    def new_slug(self) -> str:
        """A unique id of lowercase letters and digits (batch and file ids)."""
        self._seq += 1
        return f"{self._instance}{self._epoch:x}q{self._seq:06d}"

    def now(self) -> float:
        """Monotonic seconds from the injected clock, else ``time.monotonic``."""
        return self._clock() if self._clock is not None else time.monotonic()

    def wall_now(self) -> float:
        """Wall time that moves with ``now()`` (so an injected clock moves timestamps too)."""
        return self._wall0 + (self.now() - self._mono0)

    # ----------------------------------------------------------------- batches
    def jobs(self) -> list[dict[str, Any]]:
        """Every job ever created, oldest first, advanced to now (``/_sim/stats`` ``batches``)."""
        now = self.now()
        out = []
        for job in self.batch_jobs.values():
            refresh(self, job, now)
            out.append({"name": job.name, **job.summary()})
        return out

    def batch_stats(self) -> dict[str, Any]:
        jobs = self.jobs()
        names: dict[str, int] = {}
        for job in jobs:
            if job["display_name"] is not None:
                names[job["display_name"]] = names.get(job["display_name"], 0) + 1
        return {
            "created": len(jobs),
            "jobs": {job.pop("name"): job for job in jobs},
            "display_names": names,
            "items": {k: v.as_dict() for k, v in self.batch_items.items()},
            "files": dict(self.file_counts),
        }

    def complete(self, run: Run, now: float) -> None:
        """Advance a run; count its completion once."""
        if run.refresh(now):
            self.counts.item(run.item).completed += 1

    def stats(self) -> dict[str, Any]:
        now = time.monotonic()
        for run in self.runs.values():
            self.complete(run, now)
        runs: dict[str, Any] = {}
        for run_id, run in self.runs.items():
            runs[run_id] = {"item": run.item, "status": self.gone.get(run_id, run.status)}
        for result_id, (item, status) in self.results.items():
            runs[result_id] = {"item": item, "status": status}
        return {**self.counts.snapshot(runs), "batches": self.batch_stats()}

    def requests(self) -> list[dict[str, Any]]:
        return self.counts.requests()

    def request_bodies(self, item: str | None = None) -> list[dict[str, Any]]:
        """The launches' request bodies as received (``/_sim/bodies``), oldest first."""
        return self.bodies.entries(item)

    # ---------------------------------------------------------------- faults
    def pick_fault(self, ctx: Ctx, text: str) -> FaultRule | None:
        """First matching rule with budget left; then the random ``fail_rate``."""
        rule = self.plan.pick(ctx.route, ctx.item, text, self.rng)
        if rule is not None:
            ctx.fault = rule.fault
            return rule
        rate = self.config.fail_rate
        if rate > 0 and ctx.route in ("create", "generate") and self.rng.random() < rate:
            code = 503 if self.rng.random() < 0.75 else 500
            ctx.fault = "http"
            message = (
                "The service is currently unavailable."
                if code == 503
                else "An internal error has occurred."
            )
            raise ApiError(code, message)
        return None

    def fault_error(self, rule: FaultRule, model: str | None) -> ApiError | None:
        """The error a request-fault rule answers (None for drop, hang and the other kinds)."""
        kind = rule.fault
        if kind not in ERROR_KINDS:
            return None
        if kind in ("http", "html"):
            details: list[dict[str, Any]] = []
            if rule.quota_id is not None:
                details.append(
                    {
                        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                        "violations": [violation(rule.quota_id)],
                    }
                )
            if rule.retry_delay is not None:
                details.append(
                    {
                        "@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": rule.retry_delay,
                    }
                )
            return self.rule_error(rule, details)
        if kind == "per_day_quota":
            return per_day_error(rule.quota_id or "", rule.retry_delay, rule.message)
        if kind == "multi_quota":
            return multi_quota_error(model)
        if kind == "free_tier":
            return free_tier_error(model)
        if kind == "bad_key":
            return bad_key_error(rule.code)
        return precondition_error(rule.reason or "location", rule.message)

    async def apply_request_fault(self, rule: FaultRule | None, model: str | None) -> None:
        """Faults that act on the request itself, before anything is created."""
        if rule is None:
            return
        error = self.fault_error(rule, model)
        if error is not None:
            raise error
        kind = rule.fault
        if kind == "drop":
            raise Drop()
        if kind == "hang":
            seconds = 3600.0 if rule.seconds is None else rule.seconds
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), seconds)
            if self.stopping.is_set():
                raise Drop()

    @staticmethod
    def rule_error(rule: FaultRule, details: list[dict[str, Any]] | None = None) -> ApiError:
        """The error a rule with ``code``/``message``/``error_code``/``html`` answers."""
        headers = {}
        if rule.retry_after is not None:
            headers["Retry-After"] = f"{rule.retry_after:g}"
        message = rule.message or DEFAULT_MESSAGES.get(rule.code, f"Simulated error {rule.code}.")
        return ApiError(
            rule.code,
            message,
            details,
            headers,
            error_code=rule.error_code,
            html=rule.html,
        )

    # -------------------------------------------------------------- lifecycle
    async def start(self) -> str:
        self.stopping = asyncio.Event()
        self._runner = web.AppRunner(
            build_app(self), access_log=None, handler_cancellation=True, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.config.port)
        await site.start()
        port = self.config.port
        for address in self._runner.addresses:
            port = address[1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        self.stopping.set()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
