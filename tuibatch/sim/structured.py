"""JSON mode: answers built from the request's schema, the same for the same input.

A ``generateContent`` request asks for JSON with ``generationConfig.responseMimeType:
application/json`` and a schema in ``responseJsonSchema`` (JSON Schema) or ``responseSchema``
(Google's OpenAPI subset: ``"type": "OBJECT"``, ``nullable``); an interaction with
``response_format: {"type": "text", "mime_type": "application/json", "schema": ...}`` (or a
list of formats holding one). Both spellings of every field (REST camelCase, snake_case) are
read, as Google's front end reads them.

The answer fills every property of the schema. When the input text is a JSON object with a
field of the same name (``title``, ``authors``, ``year`` ...), that value is used, converted to
the schema's type (``"A. Okafor; B. Chen"`` → ``["A. Okafor", "B. Chen"]``, ``"2003"`` →
``2003``); anything else is derived from a hash of the input and the field's path. ``enum``,
``const``, ``minimum``/``maximum``, ``minItems``/``maxItems``, ``minLength`` and the common
``format`` values are honoured; ``pattern`` is not.

Faults (``fault: invalid_json`` / ``schema_mismatch``) answer a text that is not JSON, or JSON
that breaks the schema (without a schema: an object where any JSON would do, so use a schema).
"""

from __future__ import annotations

import json
from typing import Any

from tuibatch.items import sha256_hex

JSON_MIME = "application/json"
#: how deep a schema is followed (a recursive $ref stops here)
MAX_DEPTH = 12


def _get(d: Any, *names: str) -> Any:
    if not isinstance(d, dict):
        return None
    for name in names:
        if name in d:
            return d[name]
    return None


def model_contract(body: dict[str, Any]) -> tuple[bool, Any]:
    """(JSON mode?, the schema or None) of a generateContent body."""
    config = _get(body, "generationConfig", "generation_config") or {}
    if _get(config, "responseMimeType", "response_mime_type") != JSON_MIME:
        return False, None
    schema = _get(config, "responseJsonSchema", "response_json_schema")
    if schema is None:
        schema = _get(config, "responseSchema", "response_schema")
    return True, schema


def interaction_contract(body: dict[str, Any]) -> tuple[bool, Any]:
    """(JSON mode?, the schema or None) of an interactions create body."""
    fmt = body.get("response_format")
    formats = fmt if isinstance(fmt, list) else [fmt]
    for f in formats:
        if isinstance(f, dict) and _get(f, "mime_type", "mimeType") == JSON_MIME:
            return True, f.get("schema")
    if _get(body, "response_mime_type", "responseMimeType") == JSON_MIME:
        return True, fmt if isinstance(fmt, dict) else None
    return False, None


def _record(text: str) -> dict[str, Any]:
    if text.lstrip().startswith("{"):
        try:
            value = json.loads(text)
        except ValueError:
            return {}
        if isinstance(value, dict):
            return {str(k).lower(): v for k, v in value.items()}
    return {}


class _Builder:
    def __init__(self, root: Any, text: str) -> None:
        self.root = root
        self.text = text
        self.record = _record(text)

    def number(self, path: str, span: int) -> int:
        return int(sha256_hex(self.text + "\x00" + path)[:12], 16) % max(span, 1)

    def resolve(self, schema: Any, depth: int) -> Any:
        ref = schema.get("$ref") if isinstance(schema, dict) else None
        if isinstance(ref, str) and ref.startswith("#/") and depth < MAX_DEPTH:
            target: Any = self.root
            for part in ref[2:].split("/"):
                target = target.get(part) if isinstance(target, dict) else None
            if isinstance(target, dict):
                return self.resolve(target, depth + 1)
        return schema

    def value(self, schema: Any, path: str, name: str | None, depth: int) -> Any:
        schema = self.resolve(schema, depth)
        if not isinstance(schema, dict) or depth > MAX_DEPTH:
            return self.derived_string(path)
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return enum[self.number(path, len(enum))]
        for key in ("anyOf", "oneOf", "any_of"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                usable = [o for o in options if self.type_of(self.resolve(o, depth)) != "null"]
                return self.value((usable or options)[0], path, name, depth + 1)
        all_of = schema.get("allOf")
        if isinstance(all_of, list) and all_of:
            merged: dict[str, Any] = {}
            for part in all_of:
                part = self.resolve(part, depth)
                if isinstance(part, dict):
                    merged.update(part)
            return self.value({**schema, **merged, "allOf": None}, path, name, depth + 1)
        kind = self.type_of(schema)
        given = self.record.get(name.lower()) if name and depth <= 2 else None
        if given is not None:
            converted = _convert(given, kind, schema)
            if converted is not None:
                return converted
        if kind == "object":
            return self.object(schema, path, depth)
        if kind == "array":
            lo = int(schema.get("minItems", schema.get("min_items", 1)) or 0)
            hi = schema.get("maxItems", schema.get("max_items"))
            n = max(lo, 2 if hi is None else min(2, int(hi)))
            item = schema.get("items", {})
            return [self.value(item, f"{path}[{i}]", None, depth + 1) for i in range(n)]
        if kind in ("integer", "number"):
            lo = schema.get("minimum", 0)
            hi = schema.get("maximum", lo + 1000)
            n = int(lo) + self.number(path, int(hi) - int(lo) + 1)
            return n if kind == "integer" else n + 0.5 if n + 0.5 <= hi else float(n)
        if kind == "boolean":
            return self.number(path, 2) == 1
        if kind == "null":
            return None
        return self.string(schema, path)

    @staticmethod
    def type_of(schema: Any) -> str:
        if not isinstance(schema, dict):
            return "string"
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if str(k).lower() != "null"), "null")
        if kind is None:
            if "properties" in schema:
                return "object"
            if "items" in schema:
                return "array"
            return "string"
        return str(kind).lower()

    def object(self, schema: dict[str, Any], path: str, depth: int) -> dict[str, Any]:
        props = schema.get("properties") or {}
        order = schema.get("propertyOrdering") or schema.get("property_ordering") or list(props)
        out: dict[str, Any] = {}
        for key in [*order, *(k for k in props if k not in order)]:
            if key in props and key not in out:
                out[key] = self.value(props[key], f"{path}.{key}", key, depth + 1)
        return out

    def derived_string(self, path: str) -> str:
        return f"{path.rsplit('.', 1)[-1] or 'value'}-{sha256_hex(self.text + path)[:8]}"

    def string(self, schema: dict[str, Any], path: str) -> str:
        h = sha256_hex(self.text + "\x00" + path)
        fmt = schema.get("format")
        if fmt == "date":
            return f"20{self.number(path, 25):02d}-{1 + self.number(path + 'm', 12):02d}-" + (
                f"{1 + self.number(path + 'd', 28):02d}"
            )
        if fmt == "date-time":
            return f"2024-{1 + self.number(path, 12):02d}-01T00:00:00Z"
        if fmt == "email":
            return f"u{h[:8]}@example.com"
        if fmt in ("uri", "url"):
            return f"https://example.com/{h[:8]}"
        if fmt == "uuid":
            return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"
        text = self.derived_string(path)
        lo = int(schema.get("minLength", schema.get("min_length", 0)) or 0)
        hi = schema.get("maxLength", schema.get("max_length"))
        text = text.ljust(lo, "x")
        return text if hi is None else text[: int(hi)]


def _convert(value: Any, kind: str, schema: dict[str, Any]) -> Any:
    """An input field as the schema's type, or None when it does not convert."""
    if kind == "string":
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if kind == "integer":
        try:
            return int(str(value).strip())
        except ValueError:
            return None
    if kind == "number":
        try:
            return float(str(value).strip())
        except ValueError:
            return None
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    if kind == "array":
        if isinstance(value, list):
            items = value
        elif isinstance(value, str):
            sep = next((s for s in (";", " and ", ",") if s in value), None)
            items = [p.strip() for p in value.split(sep)] if sep else [value.strip()]
        else:
            return None
        item_kind = _Builder.type_of(schema.get("items", {}))
        out = [_convert(v, item_kind, schema.get("items", {}) or {}) for v in items]
        return out if all(v is not None for v in out) else None
    return None


def json_answer(schema: Any, text: str) -> Any:
    """The JSON value answered for *text* (any JSON when there is no schema)."""
    if not isinstance(schema, dict):
        return {"input_sha256": sha256_hex(text)[:16], "answer": text[:60]}
    return _Builder(schema, text).value(schema, "$", None, 0)


def _broken(schema: Any, value: Any) -> Any:
    """A JSON value like *value* that breaks *schema*."""
    if not isinstance(schema, dict):
        return {"unexpected": True}
    kind = _Builder.type_of(schema)
    if kind == "object" and isinstance(value, dict):
        props = schema.get("properties") or {}
        required = schema.get("required") or list(props)
        if required:
            out = dict(value)
            first = required[0]
            inner = _Builder.type_of(props.get(first, {}))
            out[first] = 12345 if inner == "string" else "not a number"
            return out
        return [value]
    if kind in ("integer", "number", "boolean"):
        return "not a number"
    return {"unexpected": True}


def answer_text(schema: Any, text: str, fault: str | None) -> str:
    """The answer's text in JSON mode: valid, not JSON at all, or JSON that breaks the schema."""
    value = json_answer(schema, text)
    if fault == "schema_mismatch":
        value = _broken(schema, value)
    out = json.dumps(value, ensure_ascii=False)
    if fault == "invalid_json":
        return "Sure! Here is the JSON you asked for: " + out
    return out
