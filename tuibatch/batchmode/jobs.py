"""A job's life cycle: plan (recorded first), create or adopt, poll, collect, settle.

Crash windows (the next start claims the open jobs of a dead driver and continues them):

- planned, no name: the job may exist if the process died between the create request and the
  name's commit. Before creating it, a takeover lists the service's jobs and adopts the one with
  the job's display name; only when none exists is it created.
- submitted (name recorded): polled, never created again.
- ended (results being committed): lines commit idempotently (only items the job still holds).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ..backends.gemini_batch import BatchApi, JobView, Line, wire_request
from ..items import key_label
from ..policy import Backoff, Failure, Kind
from ..pricing import Prices
from ..safe_text import visible
from ..states import PauseKind
from ..store import LostLease, Store
from ..store.jobs import JobPhase, JobRow
from .packing import Limits, Pack, pack
from .results import contract_of, match

log = logging.getLogger("tuibatch.batch")

#: called at named points of a job's life; tests crash there
Probe = Callable[[str], None]
#: lines committed per transaction
COMMIT_CHUNK = 500


@dataclass
class BatchConfig:
    max_attempts: int = 5
    limits: Limits = field(default_factory=Limits)
    poll_initial: float = 5.0
    poll_max: float = 60.0
    #: after a create whose answer was lost: how many times to list, this far apart
    adopt_tries: int = 3
    adopt_wait: float = 5.0
    #: a job that reads ended but whose output is absent: how long to wait for it
    output_wait: float = 120.0
    backoff: Backoff = field(default_factory=Backoff)
    #: invalid structured answers an item may have before it fails (--invalid-output-retries)
    invalid_output_retries: int = 1
    accept_truncated: bool = False


def request_of(model: str, request: str | None, text: str, instruction: str | None) -> str:
    """The stored request, or (first-release rows) one built from the text as that release sent."""
    if request is not None:
        return request
    config = {"system_instruction": instruction} if instruction else {}
    contents = [{"role": "user", "parts": [{"text": text}]}]
    return json.dumps({"model": model, "contents": contents, "config": config})


class Driver:
    def __init__(
        self,
        store: Store,
        api: BatchApi,
        prices: Prices,
        cfg: BatchConfig,
        *,
        batch_id: str,
        default_model: str = "gemini-2.5-flash",
        probe: Probe | None = None,
    ) -> None:
        self.default_model = default_model
        self.store, self.api, self.prices, self.cfg = store, api, prices, cfg
        self.batch_id = batch_id
        self._probe_fn = probe
        self.stopped = asyncio.Event()
        self.paused_reason: str | None = None
        self.created = 0
        self.adopted = 0
        self.polls = 0
        #: jobs this process planned itself and has not tried to create yet (no list needed)
        self._fresh: set[int] = set()
        self._force_file = cfg.limits.force_file
        self._next_create: dict[int, float] = {}
        self._output_since: dict[int, float] = {}

    def _probe(self, point: str) -> None:
        if self._probe_fn is not None:
            self._probe_fn(point)

    def stop(self) -> None:
        self.stopped.set()

    async def _nap(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stopped.wait(), timeout=max(0.0, seconds))
        except TimeoutError:
            pass

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        """Until no model item is pending and no job this process may drive is open."""
        interval = self.cfg.poll_initial
        while not self.stopped.is_set() and self.paused_reason is None:
            if (await self.store.pause_state()).active:
                break
            await self.store.fail_exhausted(self.cfg.max_attempts)
            await self.plan()
            jobs = await self.store.claim_jobs()
            if not jobs:
                break
            await self.store.renew_jobs()
            progressed = False
            for job in jobs:
                if self.stopped.is_set() or self.paused_reason is not None:
                    break
                try:
                    progressed |= await self.step(job)
                except LostLease:
                    log.warning("job %d: taken over by another worker; letting go", job.id)
            if progressed:
                interval = self.cfg.poll_initial
                continue
            await self._nap(interval)
            interval = min(self.cfg.poll_max, interval * 1.5)
        await self.store.release_jobs()

    async def plan(self) -> list[JobRow]:
        """Pack the pending model items and record each job before anything is created."""
        rows = await self.store.pending_model_items()
        if not rows:
            return []
        items = []
        for seq, key, model, request, nbytes in rows:
            target = model or self.default_model
            if request is not None:
                wire = json.loads(request)
                if "agent" in wire:
                    continue
                target = wire.get("model") or target
            items.append((seq, key, target, nbytes))
        limits = replace(self.cfg.limits, force_file=self._force_file)
        planned = []
        for p in pack(items, limits):
            job = await self._record(p)
            if job is not None:
                planned.append(job)
        return planned

    async def _record(self, p: Pack) -> JobRow | None:
        job = await self.store.plan_job(self.batch_id, p.model, p.seqs, p.nbytes, p.source)
        if job is not None:
            self._fresh.add(job.id)
            log.info("job %d planned: %d item(s), %s", job.id, job.item_count, p.source)
        return job

    async def step(self, job: JobRow) -> bool:
        """One look at a job; whether it moved."""
        if job.phase is JobPhase.PLANNED:
            return await self.create(job)
        if job.name is None:  # pragma: no cover - submitted always has a name
            return False
        return await self.poll(job, job.name)

    # ------------------------------------------------------------------ create

    async def create(self, job: JobRow) -> bool:
        if time.monotonic() < self._next_create.get(job.id, 0.0):
            return False
        held = await self.store.job_items(job.id)
        if held and all(cancel for _s, _k, cancel in held) and job.id in self._fresh:
            # every item skipped before the job was sent (a takeover lists first, below)
            await self.store.job_give_back(
                job.id, "skipped before its job was sent", count_attempt=False
            )
            await self.store.close_job(job.id, JobPhase.DROPPED, "cancelled before create")
            return True
        if job.id not in self._fresh:
            # a takeover, or an earlier create of ours that may have reached the service
            try:
                found = await self._find(job, tries=self.cfg.adopt_tries)
            except Failure as f:
                return self._later(job, f, "listing jobs")
            if found is not None:
                await self._adopt(job, found)
                return True
        self._fresh.discard(job.id)
        self._probe("before_create")
        try:
            view = await self._send(job)
        except Failure as f:
            return await self._create_failed(job, f)
        self._probe("after_create")
        await self.store.job_submitted(job.id, view.name, view.state, "created")
        self.created += 1
        log.info("job %d created: %s", job.id, visible(view.name))
        self._probe("after_record")
        return True

    async def _send(self, job: JobRow) -> JobView:
        rows = await self.store.job_requests(job.id)
        if not rows:
            raise Failure(Kind.PERMANENT, "the job holds no item any more")
        reqs = [
            (key, key_label(key), request_of(job.model, req, text, instr))
            for _seq, key, req, text, instr in rows
        ]
        if job.source != "file":
            return await self.api.create_inline(job.model, reqs, job.display_name)
        body = "".join(
            json.dumps({"key": key, "request": wire_request(req)}, ensure_ascii=False) + "\n"
            for key, _label, req in reqs
        ).encode()
        if job.file_name is None:
            file_name = await self.api.upload(body, job.display_name)
            await self.store.job_file(job.id, file_name)
        else:
            file_name = job.file_name
        return await self.api.create_file(job.model, file_name, job.display_name)

    async def _find(self, job: JobRow, tries: int) -> JobView | None:
        """The service's job with this job's display name; None only when every listing
        answered and none has it. A listing that fails raises: nothing may be created then."""
        for n in range(tries):
            found = await self.api.find(job.display_name)
            if found is not None:
                return found
            if n + 1 < tries:
                await self._nap(self.cfg.adopt_wait)
        return None

    def _later(self, job: JobRow, f: Failure, what: str) -> bool:
        tries = self._next_create.get(-job.id, 0.0) + 1
        self._next_create[-job.id] = tries
        delay = self.cfg.backoff.delay(int(tries), f)
        self._next_create[job.id] = time.monotonic() + delay
        log.info("job %d: %s failed (%s); again in %.1fs", job.id, what, visible(f.short()), delay)
        return False

    async def _adopt(self, job: JobRow, found: JobView) -> None:
        await self.store.job_submitted(job.id, found.name, found.state, "adopted")
        self.adopted += 1
        log.info("job %d adopted from the service: %s", job.id, visible(found.name))

    async def _create_failed(self, job: JobRow, f: Failure) -> bool:
        if f.in_doubt:
            try:
                found = await self._find(job, tries=self.cfg.adopt_tries)
            except Failure as lf:
                return self._later(job, lf, "listing jobs after a create in doubt")
            if found is not None:
                await self._adopt(job, found)
                return True
        if f.kind is Kind.BATCH:
            self.paused_reason = f"{f.headline}: {f.short()}"
            await self.store.set_paused(True, self.paused_reason, kind=PauseKind.BATCH)
            await self.store.job_give_back(
                job.id, f"batch paused: {f.short()}", count_attempt=False
            )
            await self.store.close_job(job.id, JobPhase.DROPPED, f.short())
            return True
        if f.kind is Kind.PERMANENT:
            why = f"job {job.id} refused by the service: {f.short()}"
            await self.store.job_give_back(job.id, why, count_attempt=True)
            await self.store.close_job(job.id, JobPhase.DROPPED, f.short())
            log.warning("%s", visible(why))
            return True
        return self._later(job, f, "create")

    # ------------------------------------------------------------------- poll

    async def poll(self, job: JobRow, name: str) -> bool:
        self.polls += 1
        try:
            view = await self.api.get(name)
        except Failure as f:
            if f.lost:
                why = f"job {job.id} ({name}) unknown to the service (404)"
                await self.store.job_give_back(job.id, why, count_attempt=True)
                await self.store.close_job(job.id, JobPhase.DROPPED, why)
                return True
            log.info("job %d: poll failed (%s)", job.id, visible(f.short()))
            return False
        self._probe("after_poll")
        if not view.ended:
            if view.state != job.service_state:
                await self.store.job_state(job.id, view.state, ended=False)
                return True
            return False
        if job.phase is not JobPhase.ENDED:
            await self.store.job_state(job.id, view.state, ended=True, error=view.error)
        return await self.collect(job, view)

    async def collect(self, job: JobRow, view: JobView) -> bool:
        try:
            lines = await self._lines(view)
        except Failure as f:
            log.info("job %d: download failed (%s)", job.id, visible(f.short()))
            return False
        if lines is None:
            first = self._output_since.setdefault(job.id, time.monotonic())
            if time.monotonic() - first < self.cfg.output_wait:
                return False  # ended, output not there yet: look again
            lines = []
        self._probe("after_download")
        held, contracts = [], {}
        for seq, key, request, _text, _instr in await self.store.job_requests(job.id):
            held.append((seq, key))
            contracts[seq] = contract_of(
                request,
                self.cfg.invalid_output_retries,
                accept_truncated=self.cfg.accept_truncated,
            )
        m = match(held, lines, job.model, self.prices, contracts)
        if m.keyless_lines and not self._force_file:
            self._force_file = True
            log.warning(
                "job %d: %d result line(s) came back without their key; they are not matched by"
                " position. Their items go back to pending; later jobs go as files.",
                job.id,
                m.keyless_lines,
            )
        for n in range(0, len(m.outcomes), COMMIT_CHUNK):
            await self.store.commit_job_lines(job.id, m.outcomes[n : n + COMMIT_CHUNK])
            self._probe("mid_commit")
        why = f"job {job.id} ended {view.state.removeprefix('JOB_STATE_')} without a result"
        if view.error:
            why += f" ({view.error})"
        left = await self.store.job_give_back(job.id, why, count_attempt=True)
        if left:
            log.info("job %d: %d item(s) back to pending: %s", job.id, left, visible(why))
        await self.store.close_job(job.id, JobPhase.SETTLED)
        self._probe("after_settle")
        return True

    async def _lines(self, view: JobView) -> list[Line] | None:
        if view.lines is not None:
            return view.lines
        if view.result_file:
            return await self.api.download(view.result_file)
        if view.state == "JOB_STATE_SUCCEEDED":
            return None
        return []
