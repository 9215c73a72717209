"""Structured output: ``--schema schema.json`` (JSON Schema) in, checked JSON values out.

Models get the schema the way the SDK sends it: ``response_mime_type="application/json"`` and
``response_json_schema`` in ``types.GenerateContentConfig`` (sent as ``generationConfig.
responseJsonSchema``). Agents get it through the Interactions API's ``response_format``
(``{"type": "text", "mime_type": "application/json", "schema": ...}``), which
``CreateAgentInteraction`` defines in google-genai 3.6.1.

An answer is checked strictly: it must be JSON as it stands. In JSON mode (``application/json``)
the service returns the JSON document itself, so an answer wrapped in a Markdown code fence is
not what was asked for and counts as invalid output (another sample may pass).

The SDK is imported only by the functions that build requests, so :func:`check_output` can be
used by code that must not import it.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jsonschema.exceptions import best_match
from jsonschema.validators import Draft202012Validator, validator_for

from .items import InputError, canonical, read_json_file

if TYPE_CHECKING:
    from google.genai import types

JSON_MIME = "application/json"
_MAX_ERROR = 200


@dataclass(frozen=True)
class OutputVerdict:
    """ok → ``value`` is the parsed answer; not ok → ``error`` says why, in one short line."""

    ok: bool
    value: Any | None = None
    error: str | None = None


def json_path(path: Any) -> str:
    """jsonschema's deque path → ``$.authors[0].name``."""
    out = "$"
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        elif isinstance(p, str) and p.isidentifier():
            out += f".{p}"
        else:
            out += f"[{json.dumps(p)}]"
    return out


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_ERROR else text[: _MAX_ERROR - 1] + "…"


def load_schema(path: Path) -> dict[str, Any]:
    """Read ``--schema FILE`` and check that it is a valid JSON Schema (by its ``$schema``
    dialect, Draft 2020-12 when it names none). Errors are one line naming the file."""
    schema = read_json_file(path, "schema file")
    if not isinstance(schema, dict):
        raise InputError(
            f"{path}: a JSON Schema must be a JSON object, got {type(schema).__name__}"
        )
    cls = _validator_class(schema)
    if cls is None:
        raise InputError(
            f"{path}: $schema: unknown JSON Schema dialect {json.dumps(schema['$schema'])[:80]}"
        )
    error = best_match(cls(cls.META_SCHEMA).iter_errors(schema))
    if error is not None:
        raise InputError(
            f"{path}: not a valid JSON Schema: {json_path(error.path)}: {_short(error.message)}"
        )
    return schema


def _validator_class(schema: dict[str, Any]) -> Any:
    """The validator for the schema's ``$schema`` dialect; None for a dialect jsonschema does not know
    (it would warn and fall back to the latest draft)."""
    if "$schema" not in schema:
        return Draft202012Validator
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        cls = validator_for(schema)
    return None if any(issubclass(w.category, DeprecationWarning) for w in seen) else cls


def apply_schema(
    config: types.GenerateContentConfig | None, schema: dict[str, Any]
) -> types.GenerateContentConfig:
    """``config`` with ``response_mime_type="application/json"`` and ``response_json_schema``.

    Raises :class:`tuibatch.genconfig.FieldError` when the config already asks for something
    else (another MIME type, an OpenAPI ``response_schema`` or a different JSON schema)."""
    from .genconfig import config_dump, validate_config

    return validate_config(schema_fields(config_dump(config), schema), [])


def schema_fields(
    fields: dict[str, Any], schema: dict[str, Any], where: str = "config"
) -> dict[str, Any]:
    """Normalized config ``fields`` with the schema set: the dict-level form of :func:`apply_schema`."""
    from .genconfig import FieldError

    mime = fields.get("response_mime_type")
    if mime not in (None, JSON_MIME):
        raise FieldError(
            f"{where}.response_mime_type", f"is {json.dumps(mime)} but --schema needs {JSON_MIME}"
        )
    if fields.get("response_schema") is not None:
        raise FieldError(f"{where}.response_schema", "give it or --schema, not both")
    given = fields.get("response_json_schema")
    if given is not None and canonical(given) != canonical(schema):
        raise FieldError(f"{where}.response_json_schema", "differs from the --schema file")
    return {**fields, "response_mime_type": JSON_MIME, "response_json_schema": schema}


def agent_schema_support() -> str | None:
    """None when agents can take a schema (``response_format`` on CreateAgentInteraction),
    else the one line to show when ``--schema`` is used with an agent."""
    from google.genai import interactions

    if "response_format" in interactions.CreateAgentInteraction.model_fields:
        return None
    return (
        "--schema works with models only: this google-genai version's Interactions API "
        "takes no response format for agents"
    )


def agent_response_format(schema: dict[str, Any]) -> dict[str, Any]:
    """The Interactions ``response_format`` for a JSON schema, in the SDK's own shape."""
    from google.genai import interactions

    fmt = interactions.TextResponseFormat.model_validate({"mime_type": JSON_MIME, "schema": schema})
    dumped: dict[str, Any] = fmt.model_dump(mode="json", exclude_none=True, by_alias=True)
    return dumped


_validators: dict[str, Any] = {}


def _validator(schema: dict[str, Any]) -> Any:
    key = canonical(schema)
    v = _validators.get(key)
    if v is None:
        cls = _validator_class(schema) or Draft202012Validator
        v = cls(schema, format_checker=cls.FORMAT_CHECKER)
        if len(_validators) > 64:
            _validators.clear()
        _validators[key] = v
    return v


def check_output(text: str | None, schema: dict[str, Any] | None) -> OutputVerdict:
    """Parse an answer as JSON and check it against ``schema`` (None: any JSON value)."""
    if text is None or not text.strip():
        return OutputVerdict(False, error="no text in the answer")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return OutputVerdict(
            False, error=f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        )
    except RecursionError:
        return OutputVerdict(False, error="not valid JSON: nested too deeply")
    if schema is not None:
        error = best_match(_validator(schema).iter_errors(value))
        if error is not None:
            return OutputVerdict(
                False, error=f"{json_path(error.absolute_path)}: {_short(error.message)}"
            )
    return OutputVerdict(True, value=value)
