"""A stored request, back to SDK arguments: what the backend calls at launch.

``request_json`` (see :mod:`tuibatch.request_spec`) is canonical JSON of one of two shapes:

- model path: ``{"model": str, "contents": [types.Content as JSON], "config": {GenerateContentConfig
  fields, SDK names}}``;
- agent path: ``{"agent": str, "input": str | [content parts], "agent_config"?: {...},
  "system_instruction"?: str, "response_format"?: {...}}`` — the keyword arguments of
  ``client.interactions.create`` (the backend adds ``background`` and ``labels``).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.genai import types

from .output_check import JSON_MIME


@dataclass(frozen=True)
class SdkRequest:
    """What the backend hands to the SDK. The backend adds labels (Vertex) / ``background``."""

    model: str | None
    agent: str | None
    #: model path: ``client.aio.models.generate_content(model=, contents=, config=)``
    contents: list[types.Content] | None
    config: types.GenerateContentConfig | None  # a private copy: the backend may update it
    #: agent path: keyword arguments for ``client.aio.interactions.create(**interaction)``
    interaction: dict[str, Any] | None
    schema: dict[str, Any] | None
    expects_json: bool


def output_contract(wire: Mapping[str, Any]) -> tuple[bool, dict[str, Any] | None]:
    """(expects_json, JSON Schema or None) of a request, read from what is sent."""
    if "agent" in wire:
        fmt = wire.get("response_format")
        if isinstance(fmt, dict) and fmt.get("mime_type") == JSON_MIME:
            return True, fmt.get("schema")
        return False, None
    config = wire.get("config") or {}
    if config.get("response_mime_type") != JSON_MIME:
        return False, None
    return True, config.get("response_json_schema")


def to_sdk(request_json: str) -> SdkRequest:
    """Rebuild the SDK arguments from a stored ``request_json`` (validated again, fresh objects)."""
    wire = json.loads(request_json)
    expects_json, schema = output_contract(wire)
    if "agent" in wire:
        return SdkRequest(
            model=None,
            agent=wire["agent"],
            contents=None,
            config=None,
            interaction=dict(wire),
            schema=schema,
            expects_json=expects_json,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        contents = [types.Content.model_validate(c) for c in wire["contents"]]
        config = types.GenerateContentConfig.model_validate(wire.get("config") or {})
    return SdkRequest(
        model=wire["model"],
        agent=None,
        contents=contents,
        config=config,
        interaction=None,
        schema=schema,
        expects_json=expects_json,
    )
