"""The models endpoint: ``POST /{v}/models/{model}:generateContent``.

Errors here are Google-RPC bodies (``status``, ``details``). A 200 answer follows the SDK's
``GenerateContentResponse`` (``google/genai/types.py``): ``candidates[].content.parts``,
``candidates[].finishReason`` (``FinishReason``), ``promptFeedback.blockReason``
(``BlockedReason``) and ``usageMetadata`` (``GenerateContentResponseUsageMetadata``:
``promptTokenCount``, ``candidatesTokenCount``, ``thoughtsTokenCount``,
``cachedContentTokenCount``, ``toolUsePromptTokenCount``, ``totalTokenCount``).
In JSON mode (``responseMimeType: application/json``) the answer is built from the schema
(``structured.py``). Every request body is kept for ``/_sim/bodies``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tuibatch.sim.config import MODEL_THOUGHT_FACTOR, MODELS
from tuibatch.sim.errors import ApiError, Drop
from tuibatch.sim.faults import ANSWER_KINDS, JSON_KINDS, RUN_KINDS, FaultRule
from tuibatch.sim.outputs import estimate_tokens, output_text_for
from tuibatch.sim.payload import item_of, read_json, texts
from tuibatch.sim.runs import Shape, shaped_text
from tuibatch.sim.stats import Ctx
from tuibatch.sim.structured import answer_text, model_contract

if TYPE_CHECKING:
    from tuibatch.sim.server import Simulator

_SAFETY_RATINGS = [
    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
]


def user_text(body: dict[str, Any]) -> str:
    contents = body.get("contents")
    if isinstance(contents, list):
        user = [c for c in contents if isinstance(c, dict) and c.get("role", "user") == "user"]
    else:
        user = [contents] if contents is not None else []
    return "".join(texts(user))


def _usage(
    shape: Shape, prompt: int, out: int, thoughts: int, *, answered: bool = True
) -> dict[str, Any]:
    usage: dict[str, Any] = {"promptTokenCount": max(prompt, shape.cached_tokens)}
    if answered:
        usage["candidatesTokenCount"] = out
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    if shape.cached_tokens:
        usage["cachedContentTokenCount"] = shape.cached_tokens
    if shape.tool_use_tokens:
        usage["toolUsePromptTokenCount"] = shape.tool_use_tokens
    usage["totalTokenCount"] = usage["promptTokenCount"] + out + thoughts + shape.tool_use_tokens
    return usage


def _answer(rule: FaultRule | None, output: str, shape: Shape) -> tuple[str, dict[str, Any], str]:
    """(status for the stats, the response fields without usage, the text delivered)."""
    kind = rule.fault if rule is not None else None
    if kind == "blocked" and rule is not None:
        feedback = {"blockReason": rule.reason, "safetyRatings": _SAFETY_RATINGS}
        return "blocked", {"promptFeedback": feedback}, ""
    if kind == "empty_candidates":
        return "empty", {"candidates": []}, ""
    reason = (rule.reason if kind == "finish" and rule is not None else None) or "STOP"
    mode = shape.output or ("full" if reason == "STOP" else "none")
    if reason == "MAX_TOKENS" and shape.output is None:
        mode = "partial"
    text = shaped_text(output, mode)
    candidate: dict[str, Any] = {}
    if text:
        candidate["content"] = {"role": "model", "parts": [{"text": text}]}
    candidate["finishReason"] = reason
    if reason in ("SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII"):
        candidate["safetyRatings"] = _SAFETY_RATINGS
    candidate["index"] = 0
    status = "completed" if reason == "STOP" and mode == "full" else f"finish_{reason.lower()}"
    if reason == "STOP" and mode != "full":
        status = f"output_{mode}"
    return status, {"candidates": [candidate]}, text


def answer_for(text: str, contract: tuple[bool, Any], fault: str | None) -> str:
    """The full answer to *text*: in JSON mode JSON built from the schema, which a JSON fault
    spoils (``structured.answer_text``); else the usual output (JSON faults do nothing)."""
    if contract[0]:
        return answer_text(contract[1], text, fault if fault in JSON_KINDS else None)
    return output_text_for(text)


def prompt_tokens(text: str, system_text: str) -> int:
    """Input tokens of a request: its user text and its system instruction."""
    return estimate_tokens(text) + (estimate_tokens(system_text) if system_text else 0)


def system_text_of(body: dict[str, Any]) -> str:
    system = body.get("systemInstruction", body.get("system_instruction"))
    return "".join(texts(system)) if system is not None else ""


def build_response(
    model: str,
    text: str,
    prompt: int,
    rule: FaultRule | None,
    response_id: str,
    contract: tuple[bool, Any] = (False, None),
) -> tuple[str, dict[str, Any]]:
    """(status for the stats, the GenerateContentResponse JSON) for one answered request.

    The interactive route and every batch line answer through here, so output, usage and
    finish reasons match. ``rule`` may shape the answer (answer kinds and ``usage``);
    ``contract`` is (JSON mode, schema) of the request (``structured.model_contract``).
    """
    kind = rule.fault if rule is not None else None
    shape = Shape.of(rule if kind in RUN_KINDS | ANSWER_KINDS else None)
    output = answer_for(text, contract, kind)
    status, answer, delivered = _answer(rule, output, shape)
    out_tokens = estimate_tokens(delivered) if delivered else 0
    thoughts = estimate_tokens(output) * MODEL_THOUGHT_FACTOR.get(model, 1)
    response = dict(answer)
    if shape.usage != "none":
        answered = "candidates" in answer and bool(answer["candidates"])
        response["usageMetadata"] = _usage(
            shape, prompt, out_tokens, thoughts if answered else 0, answered=answered
        )
    response["modelVersion"] = model
    response["responseId"] = response_id
    return status, response


def model_not_found(model: str, method: str) -> ApiError:
    return ApiError(
        404, f"models/{model} is not found for API version, or is not supported for {method}."
    )


async def generate(sim: Simulator, request: web.Request, ctx: Ctx) -> dict[str, Any]:
    model, _, method = request.match_info["tail"].partition(":")
    if method != "generateContent":
        raise ApiError(404, f"Method '{method or model}' is not supported by the simulator.")
    body = await read_json(request)
    text = user_text(body)
    ctx.item = item_of(body.get("labels"), text)
    sim.bodies.add(ctx.route, ctx.item, request.path, await request.read())
    stats = sim.counts.item(ctx.item)
    stats.creates += 1
    sim.quotas.check_request("generate", model)
    if model not in MODELS:
        raise model_not_found(model, "generateContent")
    if not body.get("contents"):
        raise ApiError(400, "* GenerateContentRequest.contents: contents is not specified")
    rule = sim.pick_fault(ctx, text)
    await sim.apply_request_fault(rule, model)
    prompt = prompt_tokens(text, system_text_of(body))
    sim.quotas.check_tokens(prompt, model)
    kind = rule.fault if rule is not None else None
    if kind in ("run_status", "run_failed"):
        raise ApiError(500, (rule.message if rule else None) or "An internal error has occurred.")
    stats.launches += 1
    response_id = sim.new_id("resp")
    stats.runs.append(response_id)
    sim.results[response_id] = (ctx.item, "unanswered")
    if kind == "create_then_drop":
        raise Drop()
    if kind == "slow" and rule is not None:
        await asyncio.sleep(rule.seconds if rule.seconds is not None else 30.0)
    if kind == "error_after_create" and rule is not None:
        raise sim.rule_error(rule)
    status, response = build_response(model, text, prompt, rule, response_id, model_contract(body))
    sim.results[response_id] = (ctx.item, status)
    if status == "completed":
        stats.completed += 1
    return response
