"""The model catalogue: ``GET /{v}/models`` (paged) and ``GET /{v}/models/{model}``.

Shapes follow the SDK's mldev converters (``models.py`` ``_ListModelsResponse_from_mldev``,
``_Model_from_mldev``): ``{"models": [...], "nextPageToken"}``, each model with ``name``
(``models/{id}``), ``version``, ``displayName``, ``description``, ``inputTokenLimit``,
``outputTokenLimit``, ``supportedGenerationMethods`` (read as ``Model.supported_actions``),
``temperature``, ``maxTemperature``, ``topP``, ``topK`` and ``thinking``. Token limits are the
published ones of each family; the simulator does not enforce them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from tuibatch.sim.config import MODEL_THOUGHT_FACTOR, MODELS
from tuibatch.sim.errors import ApiError
from tuibatch.sim.stats import Ctx

if TYPE_CHECKING:
    from tuibatch.sim.server import Simulator

#: What every simulated text model supports (Google's method names).
METHODS = ("generateContent", "countTokens", "createCachedContent", "batchGenerateContent")
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def _limits(model: str) -> tuple[int, int]:
    if model.startswith("gemma-"):
        return 131_072, 8_192
    if model.endswith("-image"):
        return 32_768, 32_768
    return 1_048_576, 65_536


def model_json(model: str) -> dict[str, Any]:
    inputs, outputs = _limits(model)
    title = " ".join(part.capitalize() for part in model.split("-"))
    return {
        "name": f"models/{model}",
        "version": "001",
        "displayName": title,
        "description": f"{title} (simulated by tuibatch sim).",
        "inputTokenLimit": inputs,
        "outputTokenLimit": outputs,
        "supportedGenerationMethods": list(METHODS),
        "temperature": 1,
        "topP": 0.95,
        "topK": 64,
        "maxTemperature": 2,
        "thinking": MODEL_THOUGHT_FACTOR.get(model, 1) > 0,
    }


def page_bounds(
    request: web.Request, default: int, maximum: int, *, tokens: bool = True
) -> tuple[int, int]:
    """(page size, offset) from ``pageSize`` and an opaque ``pageToken`` ("o<offset>");
    ``tokens=False`` leaves the token to the caller (offset 0)."""
    raw_size = request.query.get("pageSize", "")
    try:
        size = int(raw_size) if raw_size else default
    except ValueError:
        raise ApiError(400, f"Invalid value for pageSize: {raw_size!r}") from None
    if size < 0:
        raise ApiError(400, "pageSize must not be negative.")
    size = min(size or default, maximum)
    token = request.query.get("pageToken", "") if tokens else ""
    if not token:
        return size, 0
    if not token.startswith("o") or not token[1:].isdigit():
        raise ApiError(400, "Invalid page token.")
    return size, int(token[1:])


async def list_models(sim: Simulator, request: web.Request, ctx: Ctx) -> dict[str, Any]:
    size, offset = page_bounds(request, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    await sim.apply_request_fault(sim.pick_fault(ctx, ""), None)
    names = sorted(MODELS)
    body: dict[str, Any] = {"models": [model_json(m) for m in names[offset : offset + size]]}
    if offset + size < len(names):
        body["nextPageToken"] = f"o{offset + size}"
    return body


async def get_model(sim: Simulator, request: web.Request, ctx: Ctx) -> dict[str, Any]:
    model = request.match_info["tail"]
    await sim.apply_request_fault(sim.pick_fault(ctx, ""), model)
    if model not in MODELS:
        raise ApiError(404, f"models/{model} is not found for API version.")
    return model_json(model)
