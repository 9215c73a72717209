"""What an item sends: model contents and agent input, checked against the SDK's types.

Model contents are ``types.Content`` objects (REST or SDK spelling, text and multimodal parts:
``inlineData`` with base64 ``data``, ``fileData`` with a ``fileUri``). Agent input is what the
Interactions API takes: a text, or a list of content parts (``{"type": "text", "text": ...}``,
``{"type": "image", "data" | "uri": ..., "mime_type": ...}`` ...).

Convenience: a part ``{"file": "figures/cat.png"}`` (optionally with ``mime_type``) is read from
disk, relative to the items file, and sent inline. The bytes become part of what is hashed, so
a changed file counts as a changed item.

Every check raises :class:`tuibatch.genconfig.FieldError` naming the field; no network.
"""

from __future__ import annotations

import base64
import binascii
import functools
import mimetypes
import typing
import warnings
from collections.abc import Sequence
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any

import pydantic
from google.genai import types

from .genconfig import FieldError, pydantic_field_error, render_path, shown, unknown_enum
from .items import canonical

#: Gemini's limit for a whole inline request; a bigger local file cannot be sent inline.
MAX_INLINE_BYTES = 20 * 1024 * 1024
_CONTENT_KEYS = frozenset({"role", "parts"})
_AGENT_TYPES = ("text", "image", "audio", "document", "video")
_TEXT_PART = frozenset({"type", "text"})


class LocalFiles:
    """Reads ``{"file": ...}`` parts once per path (a batch often reuses one image)."""

    def __init__(self, base: Path):
        self.base = base
        self._cache: dict[Path, tuple[str, str | None]] = {}

    def read(self, part: dict[str, Any], where: Sequence[str | int]) -> tuple[str, str]:
        """(base64 data, mime type) for a ``{"file": path, "mime_type"?: ...}`` part."""
        name = part.get("file")
        if not isinstance(name, str) or not name:
            raise FieldError(render_path([*where, "file"]), "must be a non-empty path")
        mime = part.get("mime_type", part.get("mimeType"))
        if mime is not None and not isinstance(mime, str):
            raise FieldError(render_path([*where, "mime_type"]), "must be a string")
        extra = set(part) - {"file", "mime_type", "mimeType", "type"}
        if extra:
            raise FieldError(render_path([*where, sorted(extra)[0]]), "unknown field")
        path = (self.base / name).resolve()
        hit = self._cache.get(path)
        if hit is None:
            try:
                size = path.stat().st_size
                if size > MAX_INLINE_BYTES:
                    raise FieldError(
                        render_path([*where, "file"]),
                        f"{shown(name)} is {size} bytes; inline data is limited to 20 MB",
                    )
                data = path.read_bytes()
            except FileNotFoundError:
                raise FieldError(
                    render_path([*where, "file"]), f"no such file: {shown(str(path), 200)}"
                ) from None
            except IsADirectoryError:
                raise FieldError(
                    render_path([*where, "file"]), f"is a directory: {shown(name)}"
                ) from None
            except OSError as exc:
                raise FieldError(
                    render_path([*where, "file"]), f"cannot read {shown(name)}: {exc.strerror}"
                ) from None
            hit = (base64.b64encode(data).decode("ascii"), mimetypes.guess_type(path.name)[0])
            self._cache[path] = hit
        data64, guessed = hit
        mime = mime or guessed
        if not mime:
            raise FieldError(
                render_path([*where, "file"]),
                f'cannot tell the MIME type of {shown(name)}: add "mime_type"',
            )
        return data64, mime


# ------------------------------------------------------------------------------ model path


def _text_only(content: Any) -> list[str] | None:
    """The texts of a ``{"role"?, "parts": [{"text": str}, ...]}`` content, which is a valid
    types.Content as it stands; None for any other content."""
    if type(content) is not dict or not content.keys() <= _CONTENT_KEYS:
        return None
    role, parts = content.get("role"), content.get("parts")
    if not (role is None or type(role) is str) or type(parts) is not list:
        return None
    texts = []
    for p in parts:
        text = p.get("text") if type(p) is dict and len(p) == 1 else None
        if type(text) is not str:
            return None
        texts.append(text)
    return texts


def model_contents(raw: Any, where: Sequence[str | int], files: LocalFiles) -> tuple[str, str]:
    """A request's ``contents``, each one checked as a types.Content: (their canonical JSON,
    with SDK field names as ``types.Content.model_dump`` writes them; the display text)."""
    if not isinstance(raw, list) or not raw:
        raise FieldError(render_path(where), "must be a non-empty list of contents")
    texts: list[str] = []
    shown_text: list[str] = []
    for i, content in enumerate(raw):
        plain = _text_only(content)
        if plain is not None:  # the common case, checked and written by hand: 10× cheaper
            role = content.get("role")
            texts.append(
                '{"parts":['
                + ",".join(['{"text":' + encode_basestring(t) + "}" for t in plain])
                + ("]}" if role is None else '],"role":' + encode_basestring(role) + "}")
            )
            shown_text.extend(plain)
            continue
        at = [*where, i]
        if not isinstance(content, dict):
            raise FieldError(
                render_path(at), f"expected a content object, got {type(content).__name__}"
            )
        parts = content.get("parts")
        if isinstance(parts, list) and any(isinstance(p, dict) and "file" in p for p in parts):
            content = dict(content)
            content["parts"] = [
                _inline_file(p, [*at, "parts", j], files) for j, p in enumerate(parts)
            ]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                model = types.Content.model_validate(content)
            except pydantic.ValidationError as exc:
                raise pydantic_field_error(exc, at) from None
        if found := unknown_enum(model, at):
            raise found
        dumped = model.model_dump(mode="json", exclude_none=True)
        texts.append(canonical(dumped))
        shown_text.extend(_part_text(p) for p in dumped.get("parts") or ())
    return "[" + ",".join(texts) + "]", "\n\n".join(shown_text)


def _part_text(part: dict[str, Any]) -> str:
    """The text an operator reads (and a token estimate counts); other parts as short markers."""
    if isinstance(part.get("text"), str):
        return str(part["text"])
    if "inline_data" in part:
        return f"[inline {part['inline_data'].get('mime_type') or 'data'}]"
    if "file_data" in part:
        return f"[file {part['file_data'].get('file_uri') or ''}]"
    return f"[{next(iter(part), 'part')}]"


def _inline_file(part: Any, where: Sequence[str | int], files: LocalFiles) -> Any:
    if not isinstance(part, dict) or "file" not in part:
        return part
    data, mime = files.read(part, where)
    return {"inline_data": {"data": data, "mime_type": mime}}


# ------------------------------------------------------------------------------ agent path


@functools.cache
def _interactions() -> Any:
    from google.genai import interactions  # 1-3 s to import: only when an agent line needs it

    return interactions


@functools.cache
def _adapter(name: str) -> Any:
    """A pydantic TypeAdapter for an Interactions type (building one takes milliseconds)."""
    return pydantic.TypeAdapter(getattr(_interactions(), name))


def _extras(model: Any, where: Sequence[str | int]) -> FieldError | None:
    """The Interactions types allow unknown fields (``extra="allow"``): refuse them ourselves."""
    if isinstance(model, pydantic.BaseModel):
        extra = model.model_extra or {}
        if extra and type(model).__name__ != "DynamicAgentConfig":  # that one is open by design
            return FieldError(render_path([*where, sorted(extra)[0]]), "unknown field")
        for name in type(model).model_fields:
            if found := _extras(getattr(model, name), [*where, name]):
                return found
    elif isinstance(model, list):
        for i, value in enumerate(model):
            if found := _extras(value, [*where, i]):
                return found
    return None


def _check_base64(value: Any, where: Sequence[str | int]) -> None:
    if not isinstance(value, str):
        return
    try:
        base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise FieldError(render_path(where), "not valid base64") from None


def agent_input(
    raw: Any, where: Sequence[str | int], files: LocalFiles
) -> str | list[dict[str, Any]]:
    """Interactions input: a text as is, or content parts validated and in canonical form."""
    if isinstance(raw, str):
        return raw
    items = [raw] if isinstance(raw, dict) else raw
    if not isinstance(items, list) or not items:
        raise FieldError(render_path(where), "must be a text or a non-empty list of content parts")
    adapter = _adapter("Content")
    out: list[dict[str, Any]] = []
    for i, part in enumerate(items):
        at = [*where, i] if isinstance(raw, list) else list(where)
        if not isinstance(part, dict):
            raise FieldError(render_path(at), f"expected a content part, got {type(part).__name__}")
        if part.keys() == _TEXT_PART and part["type"] == "text" and type(part["text"]) is str:
            out.append({"text": part["text"], "type": "text"})  # what the SDK's dump writes
            continue
        if "file" in part:
            data, mime = files.read(part, at)
            kind = part.get("type") or next(
                (k for k in ("image", "audio", "video") if mime.startswith(k + "/")), "document"
            )
            part = {"type": kind, "data": data, "mime_type": mime}
        if not isinstance(part.get("type"), str):
            raise FieldError(
                render_path([*at, "type"]), f"required (one of {', '.join(_AGENT_TYPES)})"
            )
        if part["type"] not in _AGENT_TYPES:
            raise FieldError(
                render_path([*at, "type"]),
                f"unknown content type {shown(part.get('type'))} (one of {', '.join(_AGENT_TYPES)})",
            )
        try:
            model = adapter.validate_python(part)
        except pydantic.ValidationError as exc:
            raise pydantic_field_error(exc, at) from None
        if found := _extras(model, at):
            raise found
        _check_base64(part.get("data"), [*at, "data"])
        out.append(adapter.dump_python(model, mode="json", exclude_none=True, by_alias=True))
    return out


def input_text(value: str | list[dict[str, Any]]) -> str:
    if isinstance(value, str):
        return value
    out = []
    for p in value:
        if p.get("type") == "text":
            out.append(str(p.get("text", "")))
        else:
            out.append(
                f"[{p.get('type')} {p.get('mime_type') or p.get('uri') or ''}]".replace(" ]", "]")
            )
    return "\n\n".join(out)


@functools.cache
def _agent_config_types() -> list[str]:
    """The ``type`` tags of the agent configs this SDK defines (deep-research, dynamic, ...)."""
    union = typing.get_args(_interactions().CreateAgentInteractionAgentConfig)[0]
    return sorted(str(cls.model_fields["type"].default) for cls in typing.get_args(union))


def agent_config(raw: Any, where: Sequence[str | int]) -> dict[str, Any]:
    """The agent's own config object (``{"type": "deep-research", ...}``) as the SDK defines it."""
    if not isinstance(raw, dict):
        raise FieldError(render_path(where), f"expected a JSON object, got {type(raw).__name__}")
    adapter = _adapter("CreateAgentInteractionAgentConfig")
    kinds = _agent_config_types()
    if not isinstance(raw.get("type"), str):
        raise FieldError(render_path([*where, "type"]), f"required (one of {', '.join(kinds)})")
    if raw["type"] not in kinds:
        raise FieldError(
            render_path([*where, "type"]),
            f"unknown agent config type {shown(raw['type'])} (one of {', '.join(kinds)})",
        )
    try:
        model = adapter.validate_python(raw)
    except pydantic.ValidationError as exc:
        raise pydantic_field_error(exc, where) from None
    if found := _extras(model, where):
        raise found
    dumped: dict[str, Any] = adapter.dump_python(
        model, mode="json", exclude_none=True, by_alias=True
    )
    return dumped
