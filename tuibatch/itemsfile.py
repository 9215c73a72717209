"""The items file, read whole into validated requests before anything is written.

Every line becomes a :class:`~tuibatch.request_spec.RequestSpec` (three line formats, one per
file: ``payload``, a Gemini Batch API ``request``, an Interactions ``input``; see
:mod:`tuibatch.request_spec`), and every spec an :class:`~tuibatch.items.Item`: the canonical
request (``request_json``), its fingerprint as ``payload_hash`` and, for a request the first
release could send, the hash that release stored (``legacy_hash``).

The batch's side (``--agent``/``--model``, ``--config FILE``, the config flags,
``--instruction``, ``--schema FILE``) is read first by :func:`batch_defaults`: a bad one is one
line before the items file is even opened. This module imports the SDK's types; the store and
the app import only :mod:`tuibatch.items`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any

from .engine.config import DEFAULT_MODEL
from .genconfig import combine, config_dump, config_from_flags, load_batch_config
from .items import (
    Item,
    KeyLines,
    canonical,
    canonical_payload,
    fail,
    iter_lines,
    legacy_payload_hash,
    load_object,
    read_file,
)
from .options import RunOptions
from .output_check import load_schema
from .request_spec import RequestSpec, SpecBuilder, SpecDefaults

__all__ = [
    "SpecDefaults",
    "batch_defaults",
    "batch_digest",
    "iter_specs",
    "load_items",
    "parse_lines",
]


def batch_defaults(options: RunOptions) -> SpecDefaults:
    """The batch's side of every request, checked: ``--config`` then the flags over it, and
    ``--schema``. Raises InputError (one line naming the file or the flag)."""
    from_file = load_batch_config(options.config) if options.config is not None else None
    from_flags = config_from_flags(
        temperature=options.temperature,
        top_p=options.top_p,
        top_k=options.top_k,
        max_output_tokens=options.max_output_tokens,
        seed=options.seed,
        stop_sequences=list(options.stop) or None,
        thinking_budget=options.thinking_budget,
        thinking_level=options.thinking_level,
        instruction=options.instruction,
        safety=list(options.safety) or None,
    )
    schema = load_schema(options.schema) if options.schema is not None else None
    agent = options.agent
    model = None if agent else (options.model or DEFAULT_MODEL)
    return SpecDefaults(
        agent=agent, model=model, config=combine(from_file, from_flags), schema=schema
    )


def batch_digest(data: bytes, defaults: SpecDefaults) -> str | None:
    """A digest of everything the requests are built from: the file's bytes and the batch's
    side. None when lines may read local files (``{"file": ...}`` parts), whose bytes this
    cannot see: then the file is read again on every start."""
    if b'"file"' in data:
        return None
    side = canonical(
        {
            "agent": defaults.agent,
            "model": defaults.model,
            "config": config_dump(defaults.config),
            "schema": defaults.schema,
        }
    )
    h = hashlib.sha256(data)
    h.update(b"\x00" + side.encode("utf-8"))
    return "2:" + h.hexdigest()


def _legacy_side(defaults: SpecDefaults) -> bool:
    """Whether the batch's side is one the first release could express (no config but the
    instruction, no schema)."""
    return defaults.schema is None and set(config_dump(defaults.config)) <= {"system_instruction"}


def _own_target(obj: dict[str, Any], fmt: str) -> tuple[str | None, str | None]:
    """The agent or model the line itself names (None: the batch's)."""
    agent = obj.get("agent") or None
    model = obj.get("model") or None
    if fmt == "request" and model is None:
        request_model = obj["request"].get("model")
        model = request_model or None
    if isinstance(model, str):
        model = model.removeprefix("models/")
    return agent, model


_DECODER = json.JSONDecoder()


def _check_text(path: Path, line: int, field: str, text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = json.dumps(text[exc.start])
        raise fail(path, line, f'"{field}" contains {bad}, half a surrogate pair') from None


class _Written:
    """A request or an input line's value as JSON text, made on first use: cut from the line
    exactly as written (the line's top-level object walked once), else written out again."""

    __slots__ = ("path", "line", "fmt", "text")

    def __init__(self, path: Path, line: int, fmt: str, text: str) -> None:
        self.path, self.line, self.fmt, self.text = path, line, fmt, text

    def __call__(self) -> str:
        found = top_level_value(self.text, self.fmt)
        if found is not None:
            return found
        written = json.dumps(json.loads(self.text)[self.fmt], ensure_ascii=False)
        _check_text(self.path, self.line, self.fmt, written)
        return written


def top_level_value(text: str, name: str) -> str | None:
    """The text of field *name* of the JSON object *text*, exactly as written (None when the
    object has no such field; the last one when it has several, as ``json.loads`` keeps)."""
    found = _cut_once(text, name)
    return found if found is not None else _walk(text, name)


def _cut_once(text: str, name: str) -> str | None:
    """:func:`top_level_value` for a line that names *name* once, spelled plainly (a Batch API
    line as tools write it): the members before and after it are checked as whole JSON without
    walking them one by one. None when that cannot be told for sure (then the walk decides).

    ``"name"`` can only occur in JSON text as a whole string token (inside a string every quote
    is escaped); its first occurrence is the top-level key exactly when the text before it is
    ``{`` or ``{`` + whole members + ``,``, which a parse of that text closed with ``}`` tells:
    a token nested deeper would leave a bracket open, one that is a value would leave a key
    without one."""
    token = encode_basestring(name)
    k = text.find(token)
    if k < 0:
        return None
    head = text[:k].rstrip(" \t\n\r")
    if head.endswith(","):
        try:
            before = json.loads(head[:-1] + "}")
        except ValueError:
            return None
        if type(before) is not dict:
            return None
    elif head.lstrip(" \t\n\r") != "{":
        return None
    i = _skip(text, k + len(token))
    if text[i : i + 1] != ":":
        return None
    i = _skip(text, i + 1)
    try:
        _value, end = _DECODER.raw_decode(text, i)
    except ValueError:
        return None
    rest = text[end:].strip(" \t\n\r")
    if rest == "}":
        return text[i:end]
    if rest.startswith(","):  # members after it: whole, and none of them the same name again
        try:
            after = json.loads("{" + rest[1:])
        except ValueError:
            return None
        if type(after) is dict and name not in after:
            return text[i:end]
    return None


def _walk(text: str, name: str) -> str | None:
    """:func:`top_level_value` by walking the object's members one by one."""
    i = _skip(text, 0)
    if text[i : i + 1] != "{":
        return None
    i = _skip(text, i + 1)
    out = None
    while text[i : i + 1] == '"':
        key, i = _DECODER.raw_decode(text, i)
        i = _skip(text, i)
        if text[i : i + 1] != ":":
            return None
        i = _skip(text, i + 1)
        _value, end = _DECODER.raw_decode(text, i)
        if key == name:
            out = text[i:end]
        i = _skip(text, end)
        if text[i : i + 1] != ",":
            break
        i = _skip(text, i + 1)
    return out


_WS = re.compile(r"[ \t\n\r]*")
_SPACE = frozenset(" \t\n\r")


def members(text: str) -> tuple[dict[str, Any], dict[str, tuple[int, int]]] | None:
    """A line's JSON object read member by member: (the object, exactly as ``json.loads``
    makes it; where each field's value is in *text*, the last one for a repeated field). None
    for anything but a plain well-formed object: then ``json.loads`` reads it (and words the
    error). One read of the line gives a request's text as written without a second parse."""
    obj: dict[str, Any] = {}
    spans: dict[str, tuple[int, int]] = {}
    decode, skip, size, space = _DECODER.raw_decode, _skip, len(text), _SPACE
    i = skip(text, 0)
    if text[i : i + 1] != "{":
        return None
    i = skip(text, i + 1)
    try:
        if text[i : i + 1] == "}":
            return (obj, spans) if skip(text, i + 1) == size else None
        while text[i : i + 1] == '"':
            key, i = decode(text, i)
            c = text[i : i + 1]
            if c in space:  # json.dumps writes ": " and ", ": look before calling the regex
                i = skip(text, i)
                c = text[i : i + 1]
            if c != ":":
                return None
            i += 1
            if text[i : i + 1] in space:
                i = skip(text, i)
            value, end = decode(text, i)
            obj[key] = value
            spans[key] = (i, end)
            i = end
            c = text[i : i + 1]
            if c in space:
                i = skip(text, i)
                c = text[i : i + 1]
            if c == "}":
                return (obj, spans) if skip(text, i + 1) == size else None
            if c != ",":
                return None
            i += 1
            if text[i : i + 1] in space:
                i = skip(text, i)
    except (ValueError, RecursionError):
        return None
    return None


def _skip(text: str, i: int) -> int:
    """The index of the first non-whitespace character at or after *i*."""
    m = _WS.match(text, i)
    return m.end() if m else i


def iter_specs(
    path: Path, data: bytes, defaults: SpecDefaults | None = None
) -> Iterator[tuple[Item, RequestSpec]]:
    """(item, its spec) for every line of *data*, in file order; InputError names the first
    bad line (``file:line: field: problem``). Nothing is yielded past a bad line."""
    defaults = defaults or SpecDefaults(model=DEFAULT_MODEL)
    builder = SpecBuilder(path, defaults)
    keys = KeyLines(path)
    legacy_side = _legacy_side(defaults)
    build, add_key = builder.build, keys.add
    for seq, (lineno, text) in enumerate(iter_lines(path, data)):
        # request and input lines are read member by member: their value's text comes with it
        read = members(text) if ('"request"' in text or '"input"' in text) else None
        if read is None:
            obj, spans = load_object(path, lineno, text), None
        else:
            obj, spans = read
        spec = build(obj, lineno)
        key = spec.key
        add_key(key, lineno)
        fmt = spec.format
        value = obj[fmt]
        legacy = None
        source: _Written | None = None
        if fmt == "payload":
            payload_json = encode_basestring(value) if isinstance(value, str) else spec.input_text
            _check_text(path, lineno, fmt, payload_json)
            if legacy_side and "config" not in obj and "agent_config" not in obj:
                legacy = legacy_payload_hash(obj, canonical_payload(value))
        elif spans is not None and fmt in spans:  # cut from the line exactly as written
            start, end = spans[fmt]
            payload_json = text[start:end]
        else:  # made when the store first needs it: only for a new key (see Item)
            payload_json, source = "", _Written(path, lineno, fmt, text)
        agent, model = _own_target(obj, fmt)
        instruction = obj.get("instruction")
        if fmt == "input" and instruction is None:
            instruction = obj.get("system_instruction")
        item = Item(
            seq,
            key,
            spec.input_text,
            spec.fingerprint,
            lineno,
            agent,
            model,
            instruction if isinstance(instruction, str) else None,
            payload_json,
            legacy,
            spec.pieces,
            source,
        )
        yield item, spec


def parse_lines(path: Path, data: bytes, defaults: SpecDefaults | None = None) -> list[Item]:
    """Every item of an items file's *data*, or InputError naming the first bad line."""
    return [item for item, _spec in iter_specs(path, data, defaults)]


def load_items(path: Path, defaults: SpecDefaults | None = None) -> list[Item]:
    """Read and check the whole items file; an empty one is refused."""
    items = parse_lines(path, read_file(path), defaults)
    if not items:
        raise fail(path, None, "no items (the file is empty)")
    return items
