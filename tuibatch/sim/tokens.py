"""``POST /{v}/models/{model}:countTokens``: the free token count, deterministic.

The answer has the shape of the API's CountTokensResponse (``google.genai.types
.CountTokensResponse``: ``totalTokens``, and ``cachedContentTokenCount`` when a cached content is
named). The count is the simulator's own rule, the one its ``generateContent`` reports as
``promptTokenCount``: every ``text`` of the request (its ``contents``, a ``systemInstruction``,
and the same inside ``generateContentRequest``, the API's other spelling) at ``len(text) // 4 + 1``
tokens, plus a flat :data:`MEDIA_TOKENS` per inline or file part (the real API charges media by
size or duration; a fixed figure keeps tests exact). The call bills nothing and launches nothing:
it is not a run, so it never counts as a launch in the simulator's statistics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from tuibatch.sim.config import MODELS
from tuibatch.sim.errors import ApiError
from tuibatch.sim.models import model_not_found
from tuibatch.sim.outputs import estimate_tokens
from tuibatch.sim.payload import item_of, read_json, texts
from tuibatch.sim.stats import Ctx

if TYPE_CHECKING:
    from tuibatch.sim.server import Simulator

#: tokens the simulator counts for one inline-data or file-data part
MEDIA_TOKENS = 258
_MEDIA_KEYS = ("inlineData", "inline_data", "fileData", "file_data")


def _media_parts(value: Any) -> int:
    """Inline-data and file-data parts anywhere in a content structure."""
    if isinstance(value, list):
        return sum(_media_parts(v) for v in value)
    if isinstance(value, dict):
        if any(k in value for k in _MEDIA_KEYS):
            return 1
        return sum(_media_parts(value[k]) for k in ("contents", "parts") if k in value)
    return 0


def count(body: dict[str, Any]) -> int:
    """The simulator's token count of a countTokens request body."""
    request = body.get("generateContentRequest", body.get("generate_content_request"))
    sources = [body] + ([request] if isinstance(request, dict) else [])
    total = 0
    for src in sources:
        for name in ("contents", "systemInstruction", "system_instruction"):
            value = src.get(name)
            if value is None:
                continue
            total += sum(estimate_tokens(t) for t in texts(value) if t)
            total += MEDIA_TOKENS * _media_parts(value)
    return total


async def count_tokens(sim: Simulator, request: web.Request, ctx: Ctx) -> dict[str, Any]:
    model, _, method = request.match_info["tail"].partition(":")
    if method != "countTokens":
        raise ApiError(404, f"Method '{method or model}' is not supported by the simulator.")
    body = await read_json(request)
    ctx.item = item_of(body.get("labels"), "".join(texts(body.get("contents"))))
    sim.bodies.add(ctx.route, ctx.item, request.path, await request.read())
    if model not in MODELS:
        raise model_not_found(model, "countTokens")
    request_body = body.get("generateContentRequest")
    if not body.get("contents") and not (
        isinstance(request_body, dict) and request_body.get("contents")
    ):
        raise ApiError(400, "* CountTokensRequest.contents: contents is not specified")
    answer: dict[str, Any] = {"totalTokens": count(body)}
    if isinstance(request_body, dict) and request_body.get("cachedContent"):
        answer["cachedContentTokenCount"] = 0
    return answer
