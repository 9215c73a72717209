"""The Batch API endpoints, as ``client.batches`` (``google/genai/batches.py``, mldev) calls them.

- create: ``POST /{v}/models/{m}:batchGenerateContent`` with ``{"batch": {"displayName",
  "inputConfig": {"requests": {"requests": [{"request": GenerateContentRequest, "metadata"}]}}
  | {"fileName": "files/..."}}}`` (``_CreateBatchJobParameters_to_mldev``); answers the
  Operation (``jobs.py``).
- get ``GET /{v}/batches/{id}``; list ``GET /{v}/batches?pageSize&pageToken`` answers
  ``{"operations": [...], "nextPageToken"}``, newest first (``_ListBatchJobsResponse_from_mldev``;
  the SDK's pager stops at a missing token); cancel ``POST /{v}/batches/{id}:cancel`` and
  delete ``DELETE /{v}/batches/{id}`` answer ``{}``.

Errors are Google-RPC bodies. Batch routes do not use the per-minute quotas; a create is
refused with 429 when ``batch_max_active_jobs`` or ``batch_max_enqueued_tokens`` would be
exceeded. A line's answer comes from the generateContent builder (``models.build_response``),
so output, usage, finish reasons and JSON mode (an answer built from the line's schema, spoiled
by ``invalid_json`` / ``schema_mismatch``) match the interactive path; the fault plan is
consulted for each line as it finishes (route ``batch_item``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tuibatch.sim.catalog import page_bounds
from tuibatch.sim.config import ITEM_LABEL, MODELS
from tuibatch.sim.errors import ApiError, Drop, quota_error, violation
from tuibatch.sim.faults import ERROR_KINDS, JSON_KINDS, LINE_KINDS
from tuibatch.sim.files import add_generated
from tuibatch.sim.jobs import Job, Line
from tuibatch.sim.models import (
    build_response,
    model_not_found,
    prompt_tokens,
    system_text_of,
    user_text,
)
from tuibatch.sim.outputs import content_item_id
from tuibatch.sim.stats import Ctx
from tuibatch.sim.structured import model_contract

if TYPE_CHECKING:
    from tuibatch.sim.server import Simulator

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
ACTIVE_JOBS_QUOTA = "BatchJobsConcurrentPerProject"
ENQUEUED_TOKENS_QUOTA = "BatchEnqueuedTokensPerModelPerProject"


@dataclass
class BatchItem:
    """What the batches did with one item (keyed like ``Line.item``)."""

    jobs: list[str] = field(default_factory=list)
    answered: int = 0
    errors: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "jobs": len(self.jobs),
            "job_names": list(self.jobs),
            "answered": self.answered,
            "errors": self.errors,
        }


# ----------------------------------------------------------------- lines


def _line(request: Any, raw_key: Any, metadata: Any, where: str) -> Line:
    meta = metadata if isinstance(metadata, dict) else None
    key = raw_key if isinstance(raw_key, str) else None
    if not isinstance(request, dict):
        problem = f"{where}: 'request' must be a GenerateContentRequest object."
        return Line(key, key or content_item_id(where), meta, "", "", problem)
    text, system = user_text(request), system_text_of(request)
    label = meta.get(ITEM_LABEL) if meta else None
    item = label if isinstance(label, str) and label else key or content_item_id(text)
    missing = f"{where}: GenerateContentRequest.contents is not specified."
    contract = model_contract(request)
    return Line(key, item, meta, text, system, None if text else missing, contract)


def inline_lines(requests: Any) -> list[Line]:
    if not isinstance(requests, list) or not requests:
        raise ApiError(400, "batch.input_config.requests.requests must list at least one request.")
    lines = []
    for i, entry in enumerate(requests):
        entry = entry if isinstance(entry, dict) else {}
        metadata = entry.get("metadata")
        key = metadata.get("key") if isinstance(metadata, dict) else None
        lines.append(_line(entry.get("request"), key, metadata, f"requests[{i}]"))
    return lines


def file_lines(data: bytes, file_name: str) -> list[Line]:
    lines = []
    for number, raw in enumerate(data.decode("utf-8", "replace").splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"{file_name} line {number}"
        try:
            obj = json.loads(raw)
        except ValueError:
            obj = None
        if not isinstance(obj, dict):
            problem = f"{where}: not a JSON object."
            lines.append(Line(None, content_item_id(raw), None, "", "", problem))
            continue
        lines.append(_line(obj.get("request"), obj.get("key"), None, where))
    if not lines:
        raise ApiError(400, f"The input file {file_name} holds no requests.")
    return lines


def line_result(sim: Simulator, job: Job, line: Line) -> dict[str, Any]:
    """One line's ``{"response": ...}`` or ``{"error": google.rpc.Status}``."""
    item = sim.batch_items.setdefault(line.item, BatchItem())
    error: ApiError | None = None
    rule = None
    if line.problem is not None:
        error = ApiError(400, line.problem)
    else:
        rule = sim.plan.pick("batch_item", line.item, line.text, sim.rng, LINE_KINDS | JSON_KINDS)
        if rule is not None and rule.fault in ERROR_KINDS:
            error = sim.fault_error(rule, job.model)
        elif rule is not None and rule.fault in ("run_status", "run_failed"):
            error = ApiError(500, rule.message or "An internal error has occurred.")
        elif rule is None and sim.config.fail_rate > 0 and sim.rng.random() < sim.config.fail_rate:
            error = (
                ApiError(503, "The service is currently unavailable.")
                if sim.rng.random() < 0.75
                else ApiError(500, "An internal error has occurred.")
            )
    if error is not None:
        item.errors += 1
        return {"error": error.status_message()}
    prompt = prompt_tokens(line.text, line.system)
    _, response = build_response(
        job.model, line.text, prompt, rule, sim.new_id("resp"), line.contract
    )
    item.answered += 1
    return {"response": response}


# ------------------------------------------------------------------ jobs


def refresh(sim: Simulator, job: Job, now: float) -> None:
    """Advance a job to ``now``: finish its due lines, and write its output once it ends."""
    job.advance(now)
    wanted = job.wanted_results(now)
    while len(job.results) < wanted:
        job.results.append(line_result(sim, job, job.lines[len(job.results)]))
    if job.ended and job.order is None:
        job.fix_order(sim.config.batch_response_order, sim.rng)
        if job.source == "file" and job.delivered:
            name = f"files/batch-{job.id}"
            data = "".join(json.dumps(line) + "\n" for line in job.file_lines())
            add_generated(sim, name, data.encode("utf-8"))
            job.output_file = name


def render(sim: Simulator, job: Job) -> dict[str, Any]:
    now = sim.now()
    refresh(sim, job, now)
    return job.body(now, echo_metadata=sim.config.batch_echo_metadata)


def _check_limits(sim: Simulator, model: str, tokens: int) -> None:
    cfg, now = sim.config, sim.now()
    active = []
    for job in sim.batch_jobs.values():
        refresh(sim, job, now)
        if not job.ended:
            active.append(job)
    if cfg.batch_max_active_jobs is not None and len(active) >= cfg.batch_max_active_jobs:
        limit = cfg.batch_max_active_jobs
        found = [violation(ACTIVE_JOBS_QUOTA, value=limit)]
        raise quota_error(found, None, f"Too many batch jobs in progress (limit: {limit}).")
    enqueued = sum(j.tokens for j in active if j.model == model)
    limit_tokens = cfg.batch_max_enqueued_tokens
    if limit_tokens is not None and enqueued + tokens > limit_tokens:
        found = [violation(ENQUEUED_TOKENS_QUOTA, value=limit_tokens, model=model)]
        message = (
            f"Enqueued tokens for {model} would exceed the limit: {enqueued} enqueued +"
            f" {tokens} > {limit_tokens}."
        )
        raise quota_error(found, None, message)


async def create(sim: Simulator, request: web.Request, ctx: Ctx) -> dict[str, Any]:
    model, _, method = request.match_info["tail"].partition(":")
    raw = await request.read()
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError(400, "Invalid JSON payload received.") from None
    batch = body.get("batch") if isinstance(body, dict) else None
    if not isinstance(batch, dict):
        raise ApiError(400, "* BatchGenerateContentRequest.batch: batch is required")
    display = batch.get("displayName")
    display = display if isinstance(display, str) and display else None
    ctx.item = display
    if model not in MODELS:
        raise model_not_found(model, method)
    config = batch.get("inputConfig")
    config = config if isinstance(config, dict) else {}
    requests, file_name = config.get("requests"), config.get("fileName")
    if (requests is None) == (file_name is None):
        raise ApiError(400, "batch.input_config needs exactly one of requests or file_name.")
    if requests is not None:
        limit = sim.config.batch_inline_max_bytes
        if len(raw) > limit:
            raise ApiError(400, f"Request payload size exceeds the limit: {limit} bytes.")
        inner = requests.get("requests") if isinstance(requests, dict) else None
        lines = inline_lines(inner)
    else:
        source = sim.files.get(file_name) if isinstance(file_name, str) else None
        if source is None:
            raise ApiError(404, f"File {file_name} was not found.")
        lines = file_lines(source.data, source.name)
    rule = sim.pick_fault(ctx, "\n".join(line.text for line in lines))
    await sim.apply_request_fault(rule, model)
    tokens = sum(prompt_tokens(line.text, line.system) for line in lines if not line.problem)
    _check_limits(sim, model, tokens)
    job = new_job(sim, model, display, lines, tokens, file_name if requests is None else None)
    kind = rule.fault if rule is not None else None
    if kind == "job_state" and rule is not None:
        job.final_state = rule.state
        if rule.seconds is not None:
            job.end_after = rule.seconds
        message = rule.message or "The batch job failed."
        job.error = sim.rule_error(rule).status_message() | {"message": message}
    elif kind == "output_late" and rule is not None:
        job.output_late = 1.0 if rule.seconds is None else rule.seconds
    if kind == "create_then_drop":
        raise Drop()
    if kind == "error_after_create" and rule is not None:
        raise sim.rule_error(rule)
    return render(sim, job)


def new_job(
    sim: Simulator,
    model: str,
    display: str | None,
    lines: list[Line],
    tokens: int,
    input_file: str | None,
) -> Job:
    cfg = sim.config
    job = Job(
        id=sim.new_slug(),
        display_name=display,
        model=model,
        source="inline" if input_file is None else "file",
        input_file=input_file,
        lines=lines,
        tokens=tokens,
        created_mono=sim.now(),
        created_wall=sim.wall_now(),
        pending_for=cfg.batch_pending_seconds,
        run_end=cfg.batch_pending_seconds + cfg.batch_running_seconds,
        end_after=cfg.batch_pending_seconds + cfg.batch_running_seconds,
        expire_after=cfg.batch_expire_seconds,
        partial=cfg.batch_partial_results,
        seq=len(sim.batch_jobs),
    )
    sim.batch_jobs[job.id] = job
    for line in lines:
        sim.batch_items.setdefault(line.item, BatchItem()).jobs.append(job.name)
    return job


def _job(sim: Simulator, request: web.Request, ctx: Ctx) -> Job:
    name = request.match_info["tail"].partition(":")[0]
    job = sim.batch_jobs.get(name)
    ctx.item = (job.display_name or job.name) if job is not None else f"batches/{name}"
    return job if job is not None and job.gone is None else _not_found(name)


def _not_found(name: str) -> Job:
    raise ApiError(404, f"Batch batches/{name} was not found.")


async def get(sim: Simulator, request: web.Request, ctx: Ctx) -> dict[str, Any]:
    job = _job(sim, request, ctx)
    rule = sim.pick_fault(ctx, "")
    if rule is not None and rule.fault == "lost":
        job.gone = "lost"
        _not_found(job.id)
    await sim.apply_request_fault(rule, job.model)
    body = render(sim, job)
    if rule is not None and rule.fault == "error_after_create":
        raise sim.rule_error(rule)
    return body


async def list_jobs(sim: Simulator, request: web.Request, ctx: Ctx) -> dict[str, Any]:
    """Newest first; the page token names the last job shown, so a job created between two
    pages neither repeats nor hides one."""
    size, _ = page_bounds(request, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, tokens=False)
    token = request.query.get("pageToken", "")
    if token and not (token.startswith("s") and token[1:].isdigit()):
        raise ApiError(400, "Invalid page token.")
    before = int(token[1:]) if token else None
    await sim.apply_request_fault(sim.pick_fault(ctx, ""), None)
    jobs = [
        job
        for job in reversed(sim.batch_jobs.values())
        if job.gone is None and (before is None or job.seq < before)
    ]
    body: dict[str, Any] = {"operations": [render(sim, job) for job in jobs[:size]]}
    if len(jobs) > size:
        body["nextPageToken"] = f"s{jobs[size - 1].seq}"
    return body


async def cancel(sim: Simulator, request: web.Request, ctx: Ctx) -> dict[str, Any]:
    tail = request.match_info["tail"]
    if not tail.endswith(":cancel"):
        raise ApiError(404, f"Method not found: POST batches/{tail}")
    job = _job(sim, request, ctx)
    rule = sim.pick_fault(ctx, "")
    if rule is not None and rule.fault == "lost":
        job.gone = "lost"
        _not_found(job.id)
    await sim.apply_request_fault(rule, job.model)
    now = sim.now()
    if rule is not None and rule.fault == "cancel_race":
        job.finish_now(now)
    job.cancel(now)
    refresh(sim, job, now)
    return {}


async def delete(sim: Simulator, request: web.Request, ctx: Ctx) -> dict[str, Any]:
    job = _job(sim, request, ctx)
    await sim.apply_request_fault(sim.pick_fault(ctx, ""), job.model)
    refresh(sim, job, sim.now())
    job.gone = "deleted"
    return {}
