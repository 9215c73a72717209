"""Generation config: read, checked against the SDK's own ``types.GenerateContentConfig``.

A config comes from four places, merged in this order (a later one wins, field by field at
the top level: a field it sets replaces the earlier value whole):

1. the batch's ``--config FILE`` (a JSON object), then the flags (``--temperature`` ...);
2. an item's ``config`` object;
3. an item's ``instruction`` (payload lines), or its Gemini Batch API ``request``
   (``generationConfig`` plus ``systemInstruction``, ``safetySettings``, ``tools`` ...).

Field names may be spelled as the REST API does (``maxOutputTokens``) or as the SDK does
(``max_output_tokens``); the SDK's pydantic models accept both. Every problem becomes a
:class:`FieldError` naming the field (``config.temperature``); callers add the file and line.
Nothing here talks to the network.
"""

from __future__ import annotations

import difflib
import enum
import json
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pydantic
from google.genai import types
from pydantic.alias_generators import to_camel

from .items import InputError, canonical, read_json_file

#: Config fields a file may not set: they steer the HTTP client (a base URL or headers
#: from an items file could send the API key elsewhere) or hold Python callables.
NOT_FROM_FILES = frozenset(
    {
        "http_options",
        "should_return_http_response",
        "automatic_function_calling",
        "automatic_continuation",
    }
)

#: Fields of a GenerateContentRequest that sit beside ``generationConfig`` (REST shape);
#: the SDK moves them out of ``GenerateContentConfig`` into the request itself.
REQUEST_LEVEL = frozenset(
    {
        "system_instruction",
        "safety_settings",
        "tools",
        "tool_config",
        "labels",
        "cached_content",
        "service_tier",
        "store",
    }
)

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: pydantic names union branches in an error's location; they are not fields the user wrote
_BRANCH = re.compile(r"[A-Z]|.*[\[(]|(str|int|float|bool|bytes|dict|list|none)\Z")


class FieldError(Exception):
    """One bad field: ``field`` is a path such as ``config.thinking_config.thinking_budget``."""

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}" if field else problem)
        self.field = field
        self.problem = problem


def render_path(parts: Iterable[str | int]) -> str:
    """``("config", "safety_settings", 0, "threshold")`` → ``config.safety_settings[0].threshold``."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif _IDENT.match(p):
            out += f".{p}" if out else p
        else:  # a key from the user's file: escaped, so it can never be a terminal sequence
            out += f"[{json.dumps(p)}]"
    return out


def shown(value: Any, limit: int = 40) -> str:
    """A value from the user's file, short and escaped, for an error line."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = json.dumps(repr(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _config_fields() -> dict[str, str]:
    """Every spelling of a GenerateContentConfig field → its SDK name."""
    names: dict[str, str] = {}
    for name, info in types.GenerateContentConfig.model_fields.items():
        names[name] = name
        names[info.alias or to_camel(name)] = name
    return names


CONFIG_FIELDS = _config_fields()
GENERATION_FIELDS = frozenset(CONFIG_FIELDS.values()) - REQUEST_LEVEL - NOT_FROM_FILES


def normalize_keys(
    raw: Any,
    where: Sequence[str | int],
    *,
    allowed: Iterable[str] | None = None,
    spellings: Mapping[str, str] = CONFIG_FIELDS,
    misplaced: str = "not allowed here",
) -> dict[str, Any]:
    """Top-level keys of a config object → SDK names; unknown, doubled or forbidden keys refused.

    The SDK's pydantic models accept either spelling but report an unknown key as "extra" and a
    key given in both spellings as an unknown one; this names those cases properly."""
    if not isinstance(raw, dict):
        raise FieldError(render_path(where), f"expected a JSON object, got {type(raw).__name__}")
    ok = (
        frozenset(allowed)
        if allowed is not None
        else frozenset(spellings.values()) - NOT_FROM_FILES
    )
    out: dict[str, Any] = {}
    spelled: dict[str, str] = {}
    for key, value in raw.items():
        name = spellings.get(key)
        if name is None or name not in ok:
            if name in NOT_FROM_FILES:
                raise FieldError(
                    render_path([*where, key]), "not allowed in a batch (tuibatch sets it)"
                )
            if name is not None:
                raise FieldError(render_path([*where, key]), misplaced)
            raise FieldError(render_path([*where, key]), "unknown field" + did_you_mean(key, ok))
        if name in spelled:
            raise FieldError(render_path([*where, key]), f"given twice (also as {spelled[name]})")
        spelled[name] = key
        if value is not None:
            out[name] = value
    return out


def did_you_mean(key: str, known: Iterable[str]) -> str:
    pool = {n: n for n in known} | {to_camel(n): n for n in known}
    close = difflib.get_close_matches(key, list(pool), n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


def pydantic_field_error(exc: pydantic.ValidationError, where: Sequence[str | int]) -> FieldError:
    """The one error line the user sees for a ValidationError: the deepest, most specific one."""
    best: tuple[int, list[str | int], Mapping[str, Any]] | None = None
    for err in exc.errors():
        loc: list[str | int] = [p for p in err["loc"] if isinstance(p, int) or not _BRANCH.match(p)]
        depth = len(loc) - (1 if err["type"].startswith("union_tag") else 0)
        if best is None or depth > best[0]:
            best = (depth, loc, err)
    if best is None:  # pragma: no cover - pydantic always lists at least one error
        return FieldError(render_path(where), str(exc).splitlines()[0])
    _, loc, chosen = best
    field = render_path([*where, *loc])
    if chosen["type"] == "extra_forbidden":
        return FieldError(field, "unknown field")
    if chosen["type"] == "missing":
        return FieldError(field, "required")
    problem = str(chosen["msg"])
    value = chosen.get("input")
    if isinstance(value, (str, int, float, bool)) or value is None:
        problem += f" (got {shown(value)})"
    return FieldError(field, problem)


def unknown_enum(model: Any, where: Sequence[str | int]) -> FieldError | None:
    """The SDK's enums accept any string with a warning; a value it does not know is refused here."""
    if isinstance(model, enum.Enum):
        members = type(model).__members__
        if model.name not in members:
            names = [n for n in members if not n.endswith("_UNSPECIFIED")]
            listed = ", ".join(names[:8]) + (", …" if len(names) > 8 else "")
            return FieldError(
                render_path(where), f"unknown value {shown(model.value)} (one of {listed})"
            )
        return None
    if isinstance(model, pydantic.BaseModel):
        for name in type(model).model_fields:
            value = getattr(model, name)
            if value is not None and (found := unknown_enum(value, [*where, name])):
                return found
    elif isinstance(model, (list, tuple)):
        for i, value in enumerate(model):
            if found := unknown_enum(value, [*where, i]):
                return found
    return None


def validate_config(
    fields: Mapping[str, Any], where: Sequence[str | int]
) -> types.GenerateContentConfig:
    """``fields`` (top-level names already normalized) as a validated GenerateContentConfig."""
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # the SDK warns on unknown enum values; we refuse them instead
        try:
            config = types.GenerateContentConfig.model_validate(dict(fields))
        except pydantic.ValidationError as exc:
            raise pydantic_field_error(exc, where) from None
    if found := unknown_enum(config, where):
        raise found
    return config


def config_dump(config: types.GenerateContentConfig | None) -> dict[str, Any]:
    """The config as plain JSON with SDK field names: the canonical form for hashing and storing."""
    if config is None:
        return {}
    return config.model_dump(mode="json", exclude_none=True)


class ConfigCache:
    """Validate each distinct config once: 100k lines usually share a handful of configs."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[types.GenerateContentConfig, dict[str, Any], str]] = {}

    def get(
        self, fields: Mapping[str, Any], where: Sequence[str | int]
    ) -> tuple[types.GenerateContentConfig, dict[str, Any], str]:
        """(config, its canonical dump, that dump as canonical JSON) for config ``fields`` in
        either spelling; errors name ``where`` + the field as written."""
        key = canonical(fields)
        hit = self._seen.get(key)
        if hit is None:
            config = validate_config(fields, where)
            dump = config_dump(config)
            hit = (config, dump, canonical(dump))
            self._seen[key] = hit
        return hit


# ---------------------------------------------------------------------- batch-wide config


def load_batch_config(path: Path) -> types.GenerateContentConfig:
    """``--config FILE``: a JSON object of GenerateContentConfig fields (either spelling)."""
    raw = read_json_file(path, "config file")
    try:
        normalize_keys(raw, [])
        return validate_config(raw, [])
    except FieldError as exc:
        raise InputError(f"{path}: {exc}") from None


def _safety(spec: str) -> dict[str, str]:
    cat, sep, thr = spec.partition("=")
    cat, thr = cat.strip().upper(), thr.strip().upper()
    if not sep or not cat or not thr:
        raise FieldError(
            f"--safety {spec}", "expected CATEGORY=THRESHOLD, e.g. HARASSMENT=BLOCK_NONE"
        )
    if not cat.startswith("HARM_CATEGORY_"):
        cat = "HARM_CATEGORY_" + cat
    cats = [m.name for m in types.HarmCategory if not m.name.endswith("_UNSPECIFIED")]
    thrs = [m.name for m in types.HarmBlockThreshold if not m.name.endswith("_UNSPECIFIED")]
    if cat not in cats:
        short = ", ".join(c.removeprefix("HARM_CATEGORY_") for c in cats)
        raise FieldError(f"--safety {spec}", f"unknown category (one of {short})")
    if thr not in thrs:
        raise FieldError(f"--safety {spec}", f"unknown threshold (one of {', '.join(thrs)})")
    return {"category": cat, "threshold": thr}


#: flag → (config field, sub-field of thinking_config or None)
_FLAGS = {
    "temperature": ("temperature", None),
    "top_p": ("top_p", None),
    "top_k": ("top_k", None),
    "max_output_tokens": ("max_output_tokens", None),
    "seed": ("seed", None),
    "stop_sequences": ("stop_sequences", None),
    "instruction": ("system_instruction", None),
    "thinking_budget": ("thinking_config", "thinking_budget"),
    "thinking_level": ("thinking_config", "thinking_level"),
}


def config_from_flags(**flags: Any) -> types.GenerateContentConfig | None:
    """The common flags as a config: ``temperature``, ``top_p``, ``top_k``, ``max_output_tokens``,
    ``seed``, ``stop_sequences`` (list), ``thinking_budget``, ``thinking_level``, ``instruction``
    and ``safety`` (a list of ``CATEGORY=THRESHOLD``). None values are left out; strings from
    argparse are coerced the way the SDK coerces them. Errors name the flag (``--temperature``)."""
    fields: dict[str, Any] = {}
    for flag, value in flags.items():
        if value is None:
            continue
        try:
            if flag == "safety":
                specs = [value] if isinstance(value, str) else value
                fields["safety_settings"] = [_safety(s) for s in specs]
                continue
            if flag not in _FLAGS:
                raise TypeError(f"config_from_flags() got an unexpected flag {flag!r}")
            name, sub = _FLAGS[flag]
            if flag == "thinking_level" and isinstance(value, str):
                value = value.upper()
            if sub is None:
                fields[name] = value
            else:
                fields.setdefault(name, {})[sub] = value
            validate_config({name: fields[name]}, [])
        except FieldError as exc:
            if exc.field.startswith("--"):
                raise InputError(str(exc)) from None
            raise InputError(f"--{flag.replace('_', '-')}: {exc.problem}") from None
    return validate_config(fields, []) if fields else None


def combine(*configs: types.GenerateContentConfig | None) -> types.GenerateContentConfig | None:
    """Later configs over earlier ones, field by field (``--config FILE`` then the flags)."""
    merged: dict[str, Any] = {}
    for c in configs:
        merged.update(config_dump(c))
    return validate_config(merged, []) if merged else None
