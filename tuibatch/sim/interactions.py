"""The Interactions endpoints: create, get, cancel, delete (``/{v}/interactions[/{id}[/cancel]]``).

Errors on these routes are answered in the SDK's string-coded shape (see ``errors.py``). A create
with a JSON ``response_format`` is answered with JSON built from its schema (``structured.py``);
every create body is kept for ``/_sim/bodies``.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tuibatch.sim.config import AGENT_THOUGHT_FACTOR, AGENTS, MODEL_THOUGHT_FACTOR, MODELS
from tuibatch.sim.errors import ApiError, Drop
from tuibatch.sim.faults import RUN_KINDS, FaultRule
from tuibatch.sim.models import answer_for
from tuibatch.sim.outputs import estimate_tokens
from tuibatch.sim.payload import item_of, read_json, texts
from tuibatch.sim.runs import Run, Shape
from tuibatch.sim.stats import Ctx
from tuibatch.sim.structured import interaction_contract

if TYPE_CHECKING:
    from tuibatch.sim.server import Simulator


def _not_found(run_id: str) -> ApiError:
    return ApiError(404, f"Interaction '{run_id}' was not found.")


def _final(rule: FaultRule | None) -> tuple[str, list[dict[str, str]] | None]:
    """The status a scripted run ends in, and its ``errors`` list."""
    if rule is None or rule.fault not in ("run_status", "run_failed"):
        return "completed", None
    if rule.fault == "run_failed" or rule.message is not None or rule.error_code is not None:
        message = rule.message or f"Simulated run ending as {rule.status}."
        return rule.status, [{"code": rule.error_code or "INTERNAL", "message": message}]
    return rule.status, None


def _duration(sim: Simulator, rule: FaultRule | None, background: bool) -> float:
    duration = sim.config.run_seconds if background else 0.0
    if rule is not None and rule.fault == "slow":
        return rule.seconds if rule.seconds is not None else 30.0
    if rule is not None and rule.fault in ("run_status", "run_failed") and rule.seconds is not None:
        return rule.seconds
    return duration


async def create(sim: Simulator, request: web.Request, ctx: Ctx) -> dict[str, Any]:
    body = await read_json(request)
    raw_input = body.get("input")
    text = "".join(texts(raw_input))
    labels = body.get("labels") if isinstance(body.get("labels"), dict) else None
    ctx.item = item_of(labels, text)
    sim.bodies.add(ctx.route, ctx.item, request.path, await request.read())
    sim.counts.item(ctx.item).creates += 1
    agent, model = body.get("agent"), body.get("model")
    sim.quotas.check_request("create", model if isinstance(model, str) else agent)
    if (agent is None) == (model is None):
        raise ApiError(400, "Exactly one of 'agent' or 'model' must be set.")
    if agent is not None and agent not in AGENTS:
        raise ApiError(404, f"Agent '{agent}' was not found.")
    if model is not None and model not in MODELS:
        raise ApiError(404, f"Model '{model}' was not found.", error_code="model_not_found")
    if raw_input is None or raw_input == "" or raw_input == []:
        raise ApiError(400, "Field 'input' is required.")
    background = body.get("background") is True
    if agent is not None and not background:
        raise ApiError(400, "Agent interactions require background=true.")
    system = body.get("system_instruction")
    system_text = "".join(texts(system)) if system is not None else None
    rule = sim.pick_fault(ctx, text)
    await sim.apply_request_fault(rule, model or agent)
    input_tokens = estimate_tokens(text) + (estimate_tokens(system_text) if system_text else 0)
    now = time.monotonic()
    sim.quotas.check_tokens(input_tokens, model)
    output = answer_for(text, interaction_contract(body), rule.fault if rule else None)
    out_tokens = estimate_tokens(output)
    factor = AGENT_THOUGHT_FACTOR if agent is not None else MODEL_THOUGHT_FACTOR.get(model or "", 1)
    final_status, errors = _final(rule)
    run_rule = rule if rule is not None and rule.fault in RUN_KINDS else None
    duration = _duration(sim, rule, background)
    run = Run(
        id=sim.new_id("int"),
        item=ctx.item,
        agent=agent,
        model=model,
        input_text=text,
        system=system_text,
        labels=labels,
        created_mono=now,
        created_wall=time.time(),
        duration=duration,
        final_status=final_status,
        errors=errors,
        shape=Shape.of(run_rule),
        output_text=output,
        input_tokens=input_tokens,
        output_tokens=out_tokens,
        thought_tokens=out_tokens * factor,
    )
    sim.runs[run.id] = run
    stats = sim.counts.item(ctx.item)
    stats.launches += 1
    stats.runs.append(run.id)
    kind = rule.fault if rule is not None else None
    if kind == "lost":
        sim.gone[run.id] = "lost"
    if kind == "create_then_drop":
        raise Drop()
    if not background:
        if duration > 0:
            await asyncio.sleep(duration)
        sim.complete(run, now + duration)
    if kind == "error_after_create" and rule is not None:
        raise sim.rule_error(rule)
    return run.body()


async def _existing_run(sim: Simulator, request: web.Request, ctx: Ctx, count: str) -> Run:
    """The run a get/cancel/delete names, after the quota check and any fault scripted for it."""
    run_id = request.match_info["id"]
    run = sim.runs.get(run_id)
    if run is not None:
        ctx.item = run.item
        stats = sim.counts.item(run.item)
        if count == "get":
            stats.gets += 1
        elif count == "cancel":
            stats.cancels += 1
    sim.quotas.check_request(ctx.route, run.model if run is not None else None)
    if run is None or run_id in sim.gone:
        raise _not_found(run_id)
    return run


async def get(sim: Simulator, request: web.Request, ctx: Ctx) -> dict[str, Any]:
    run = await _existing_run(sim, request, ctx, "get")
    rule = sim.pick_fault(ctx, run.input_text)
    if rule is not None and rule.fault == "lost":
        sim.gone[run.id] = "lost"
        raise _not_found(run.id)
    await sim.apply_request_fault(rule, run.model or run.agent)
    run.polled = True
    sim.complete(run, time.monotonic())
    if rule is not None and rule.fault == "error_after_create":
        raise sim.rule_error(rule)
    return run.body()


async def cancel(sim: Simulator, request: web.Request, ctx: Ctx) -> dict[str, Any]:
    run = await _existing_run(sim, request, ctx, "cancel")
    rule = sim.pick_fault(ctx, run.input_text)
    if rule is not None and rule.fault == "lost":
        sim.gone[run.id] = "lost"
        raise _not_found(run.id)
    await sim.apply_request_fault(rule, run.model or run.agent)
    now = time.monotonic()
    if rule is not None and rule.fault == "cancel_race" and run.finish_now(now):
        sim.counts.item(run.item).completed += 1
    sim.complete(run, now)
    run.cancel(now)
    return run.body()


async def delete(sim: Simulator, request: web.Request, ctx: Ctx) -> dict[str, Any]:
    run = await _existing_run(sim, request, ctx, "delete")
    sim.complete(run, time.monotonic())
    sim.gone[run.id] = "deleted"
    return {}
