"""Reading request bodies: JSON, the text inside content structures, the item a request is for."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tuibatch.sim.config import ITEM_LABEL
from tuibatch.sim.errors import ApiError
from tuibatch.sim.outputs import content_item_id


async def read_json(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.read())
    except ValueError:
        raise ApiError(400, "Invalid JSON payload received.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Invalid JSON payload received. Expected an object.")
    return body


def texts(value: Any) -> list[str]:
    """Every ``text`` string inside a content structure (str, parts, turns...)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [t for v in value for t in texts(v)]
    if isinstance(value, dict):
        if isinstance(value.get("text"), str):
            return [value["text"]]
        for key in ("content", "parts", "contents"):
            if key in value:
                return texts(value[key])
    return []


def item_of(labels: Any, text: str) -> str:
    """The ``tuibatch_item`` label when present, else the content hash of the input."""
    if isinstance(labels, dict):
        label = labels.get(ITEM_LABEL)
        if isinstance(label, str) and label:
            return label
    return content_item_id(text)
