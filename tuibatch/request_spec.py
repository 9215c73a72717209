"""One item line → a typed, validated :class:`RequestSpec`: exactly what will be sent.

Three line formats (one per file; a file that mixes them is refused):

``payload``  ``{"key", "payload", "model"?, "agent"?, "instruction"?, "config"?, "agent_config"?}``
    today's items; a string payload is sent as is, any other JSON value as its JSON text.
``request``  ``{"key", "request": GenerateContentRequest, "model"?, "config"?}``
    a Gemini Batch API line, unchanged (REST camelCase or SDK snake_case); model path only.
``input``    ``{"key", "input": text | [content parts], "agent"?, "agent_config"?, "instruction"?}``
    the Interactions API's input shape; agent path only.

Everything that changes what is sent (target, contents or input, the merged config with the
schema, the system instruction, the agent config) is written once as canonical JSON,
:attr:`RequestSpec.request_json`; :attr:`RequestSpec.fingerprint` is its sha256. The same text
is what the checkpoint keeps, and :func:`to_sdk` turns it back into SDK arguments at launch.
"""

from __future__ import annotations

import hashlib
import json
import marshal
from collections.abc import Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any, Literal

from google.genai import types

from . import request_parts as parts
from .genconfig import (
    CONFIG_FIELDS,
    GENERATION_FIELDS,
    NOT_FROM_FILES,
    REQUEST_LEVEL,
    ConfigCache,
    FieldError,
    config_dump,
    did_you_mean,
    normalize_keys,
    render_path,
    shown,
)
from .items import InputError, canonical
from .output_check import agent_response_format, agent_schema_support, schema_fields
from .request_sdk import SdkRequest, output_contract, to_sdk

Format = Literal["payload", "request", "input"]
FORMATS: tuple[Format, ...] = ("payload", "request", "input")

#: The keys of a GenerateContentRequest, in either spelling → SDK name.
_REQUEST_KEYS = {k: v for k, v in CONFIG_FIELDS.items() if v in REQUEST_LEVEL} | {
    "contents": "contents",
    "model": "model",
    "generationConfig": "generation_config",
    "generation_config": "generation_config",
}
_REQUEST_NAMES = frozenset(_REQUEST_KEYS.values())
_NOT_CONFIG = frozenset({"contents", "model", "generationConfig", "generation_config"})
_ITEM_CONFIG = frozenset(CONFIG_FIELDS.values()) - NOT_FROM_FILES
#: a merged config: (config, the head of request_json up to the contents, expects_json, schema)
_Merged = tuple[types.GenerateContentConfig, str, bool, "dict[str, Any] | None"]


@dataclass(frozen=True)
class SpecDefaults:
    """The batch's side: the target for lines that name none, the merged ``--config`` and
    flags, and the ``--schema`` (already checked by ``output_check.load_schema``)."""

    agent: str | None = None
    model: str | None = None
    config: types.GenerateContentConfig | None = None
    schema: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.agent and self.model:
            raise ValueError("SpecDefaults: give agent or model, not both")


@dataclass(frozen=True, eq=False, slots=True)
class RequestSpec:
    """One item, validated: its target, exactly what is sent, and what its answer must be."""

    key: str
    line: int
    format: Format
    agent: str | None
    model: str | None
    #: ``request_json`` in pieces: the config and target pieces are shared between lines
    pieces: tuple[str, ...]
    #: sha256 of ``request_json``: a finished key whose fingerprint changed is refused
    fingerprint: str
    #: the text an operator reads; other parts as ``[inline image/png]`` markers
    input_text: str
    #: model path: the merged config, validated. Shared by every spec with the same config:
    #: never mutate it (``config.model_copy(update=...)``), or use :func:`to_sdk` for a copy.
    config: types.GenerateContentConfig | None
    #: the JSON Schema answers are checked against (``--schema``, or the request's own)
    schema: dict[str, Any] | None
    #: the answer must be JSON (``application/json``): parse it, store it as a JSON value
    expects_json: bool

    @property
    def target(self) -> str:
        return self.agent or self.model or ""

    @property
    def request_json(self) -> str:
        """Canonical JSON of everything sent: what the checkpoint keeps; see :func:`to_sdk`."""
        return "".join(self.pieces)

    def wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = json.loads(self.request_json)
        return wire

    def to_sdk(self) -> SdkRequest:
        """Fresh SDK arguments (a private config copy), as the backend builds them at launch."""
        return to_sdk(self.request_json)


class SpecBuilder:
    """Builds the specs of one items file; caches configs and local files across its lines."""

    def __init__(self, path: Path, defaults: SpecDefaults | None = None):
        self.path = path
        self.defaults = defaults or SpecDefaults()
        self.format: Format | None = None
        self.first_line: int | None = None
        self._batch = config_dump(self.defaults.config)
        self._configs = ConfigCache()
        self._merged: dict[str, _Merged] = {}
        self._last: tuple[bytes, _Merged] | None = None
        self._tails: dict[str, str] = {}
        self._files = parts.LocalFiles(path.parent)
        self._agent_schema_checked = False

    def fail(self, line: int | None, problem: str) -> InputError:
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        return InputError(f"{where}: {problem}")

    def build(self, obj: dict[str, Any], line: int) -> RequestSpec:
        """The spec of one parsed line. Raises InputError ``file:line: field: problem``."""
        try:
            spec = self._build(obj, line)
            if not spec.key.isascii():
                _sha("key", spec.key)  # a key must be storable text too
        except FieldError as exc:
            raise self.fail(line, str(exc)) from None
        return spec

    # ------------------------------------------------------------------------------ lines

    def _build(self, obj: dict[str, Any], line: int) -> RequestSpec:
        given = [f for f in FORMATS if f in obj]
        if not given:
            raise FieldError(
                "",
                'missing "payload" (or "request" for a Gemini Batch API line, '
                '"input" for an Interactions input)',
            )
        if len(given) > 1:
            raise FieldError(
                "", f"give one of {', '.join(json.dumps(f) for f in given)}, not several"
            )
        fmt = given[0]
        if self.format is None:
            self.format, self.first_line = fmt, line
        elif fmt != self.format:
            raise FieldError(
                "",
                f'a "{fmt}" line in a file of "{self.format}" lines (first on line '
                f"{self.first_line}): one format per file",
            )
        for name in ("agent", "model", "instruction"):
            if obj.get(name) is not None and not isinstance(obj[name], str):
                raise FieldError("", f'"{name}" must be a string, got {shown(obj[name])}')
        if obj.get("agent") and obj.get("model"):
            raise FieldError("", 'give "agent" or "model", not both')
        key = obj.get("key")
        if key is None:
            key = "sha-" + _sha(fmt, canonical(obj[fmt]))[:16]
        elif not isinstance(key, str) or not key:
            raise FieldError("", f'"key" must be a non-empty string, got {shown(key)}')
        if fmt == "request":
            return self._request_line(obj, key, line)
        agent, model = self._target(obj)
        if fmt == "input" and not agent:
            raise FieldError("", '"input" lines go to an agent: give "agent" or --agent')
        if agent:
            return self._agent_line(obj, fmt, key, line, agent)
        if "agent_config" in obj:
            raise FieldError("agent_config", f"model {model} takes no agent config")
        payload = obj["payload"]
        text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
        contents = '[{"parts":[{"text":' + encode_basestring(text) + '}],"role":"user"}]'
        item = obj.get("config")
        instruction = obj.get("instruction") or None
        if (
            instruction is not None
            and isinstance(item, dict)
            and ("system_instruction" in item or "systemInstruction" in item)
        ):
            raise FieldError(
                "instruction", 'give "instruction" or config.system_instruction, not both'
            )
        extra = {} if instruction is None else {"system_instruction": instruction}
        return self._model_spec(key, line, "payload", model, contents, text, item, extra, None, "")

    def _target(self, obj: Mapping[str, Any]) -> tuple[str | None, str]:
        if obj.get("agent"):
            return obj["agent"], ""
        if obj.get("model"):
            return None, obj["model"]
        if self.defaults.agent:
            return self.defaults.agent, ""
        if self.defaults.model:
            return None, self.defaults.model
        raise FieldError("", 'no model or agent: give "model" or "agent", or --model or --agent')

    def _request_line(self, obj: dict[str, Any], key: str, line: int) -> RequestSpec:
        request = obj["request"]
        if not isinstance(request, dict):
            raise FieldError("request", f"expected a JSON object, got {type(request).__name__}")
        if obj.get("agent"):
            raise FieldError("agent", 'a "request" line goes to a model: give "model", not "agent"')
        if obj.get("instruction") is not None:
            raise FieldError(
                "instruction", "put the system instruction in request.systemInstruction"
            )
        unknown = request.keys() - _REQUEST_KEYS.keys()
        if unknown:
            k = next(k for k in request if k in unknown)
            if CONFIG_FIELDS.get(k) in GENERATION_FIELDS:
                raise FieldError(render_path(["request", k]), "belongs in request.generationConfig")
            raise FieldError(
                render_path(["request", k]), "unknown field" + did_you_mean(k, _REQUEST_NAMES)
            )
        gen_key = "generation_config" if "generation_config" in request else "generationConfig"
        if gen_key == "generation_config" and "generationConfig" in request:
            raise FieldError("request.generation_config", "given twice (also as generationConfig)")
        gen = request.get(gen_key)
        contents_raw = request.get("contents")
        model = request.get("model")
        if model is not None:
            if not isinstance(model, str) or not model:
                raise FieldError("request.model", "must be a non-empty string")
            model = model.removeprefix("models/")
        top = {k: v for k, v in request.items() if k not in _NOT_CONFIG}
        if contents_raw is None:
            raise FieldError("request", 'missing "contents"')
        line_model = obj.get("model")
        if model and line_model and line_model.removeprefix("models/") != model:
            raise FieldError(
                "model", f"{json.dumps(line_model)} differs from request.model {json.dumps(model)}"
            )
        model = model or (line_model or "").removeprefix("models/") or self.defaults.model
        if not model:
            if self.defaults.agent:
                raise FieldError(
                    "",
                    f'a "request" line goes to a model, but the batch target is agent '
                    f'{self.defaults.agent}: give "model" or --model',
                )
            raise FieldError("", 'no model: give request.model, "model" or --model')
        contents_json, text = parts.model_contents(
            contents_raw, ["request", "contents"], self._files
        )
        return self._model_spec(
            key, line, "request", model, contents_json, text, obj.get("config"), top, gen, gen_key
        )

    # ----------------------------------------------------------------------- model path

    def _model_spec(
        self,
        key: str,
        line: int,
        fmt: Format,
        model: str,
        contents_json: str,
        text: str,
        item: Any,
        top: dict[str, Any],
        gen: Any,
        gen_key: str,
    ) -> RequestSpec:
        raw = (item, top, gen)
        # Consecutive lines nearly always share their config. marshal is ~1 µs against ~9 µs
        # for canonical JSON, and unlike `==` it tells true from 1 and 1 from 1.0, which differ
        # in free-form JSON such as a schema. Equal bytes mean equal values of equal types; a
        # spurious difference (key order) only falls through to the canonical memo.
        sig = marshal.dumps(raw)
        last = self._last
        if last is not None and last[0] == sig:
            hit = last[1]
        else:
            memo = canonical(raw)
            found = self._merged.get(memo)
            if found is None:
                found = self._merge(item, top, gen, gen_key, fmt)
                self._merged[memo] = found
            hit = found
            self._last = (sig, hit)
        config, head, expects_json, schema = hit
        tail = self._tails.get(model)
        if tail is None:
            tail = self._tails[model] = ',"model":' + encode_basestring(model) + "}"
        pieces = (head, contents_json, tail)
        return RequestSpec(
            key=key,
            line=line,
            format=fmt,
            agent=None,
            model=model,
            pieces=pieces,
            fingerprint=_sha(fmt, "".join(pieces)),
            input_text=text,
            config=config,
            schema=schema,
            expects_json=expects_json,
        )

    def _merge(
        self, item: Any, top: dict[str, Any], gen: Any, gen_key: str, fmt: Format
    ) -> _Merged:
        """batch < item ``config`` < ``instruction`` / request fields < ``--schema``.

        Each part is checked by :func:`normalize_keys` (unknown, doubled, forbidden or misplaced
        keys) and then validated as the user spelled it, so an error names the user's field."""
        merged = dict(self._batch)
        own: dict[str, Any] = {}
        if item is not None:
            normalize_keys(item, ["config"], allowed=_ITEM_CONFIG)
            own.update(self._configs.get(item, ["config"])[1])
        if top:
            where = ["request"] if fmt == "request" else []
            normalize_keys(
                top, where, allowed=REQUEST_LEVEL, misplaced="belongs in request.generationConfig"
            )
            own.update(self._configs.get(top, where)[1])
        if gen is not None:
            where = ["request", gen_key]
            normalize_keys(
                gen,
                where,
                allowed=GENERATION_FIELDS,
                misplaced=f"belongs in request, beside {gen_key}",
            )
            own.update(self._configs.get(gen, where)[1])
        merged.update(own)
        if self.defaults.schema is not None:
            merged = schema_fields(
                merged,
                self.defaults.schema,
                where="config" if fmt != "request" else f"request.{gen_key}",
            )
        config, _, text = self._configs.get(merged, ["config"])
        expects_json, schema = output_contract({"config": _contract_fields(config)})
        return config, '{"config":' + text + ',"contents":', expects_json, schema

    # ----------------------------------------------------------------------- agent path

    def _agent_line(
        self, obj: dict[str, Any], fmt: Format, key: str, line: int, agent: str
    ) -> RequestSpec:
        if obj.get("config") is not None:
            raise FieldError(
                "config", f'agent {agent} takes no generation config: use "agent_config"'
            )
        wire: dict[str, Any] = {"agent": agent}
        if fmt == "input":
            wire["input"] = parts.agent_input(obj["input"], ["input"], self._files)
        else:
            payload = obj["payload"]
            wire["input"] = (
                payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
            )
        if obj.get("agent_config") is not None:
            wire["agent_config"] = parts.agent_config(obj["agent_config"], ["agent_config"])
        instruction = obj.get("instruction")
        if fmt == "input" and "system_instruction" in obj:  # the Interactions API's own name
            if "instruction" in obj:
                raise FieldError(
                    "instruction", 'give "instruction" or "system_instruction", not both'
                )
            instruction = obj["system_instruction"]
            if instruction is not None and not isinstance(instruction, str):
                raise FieldError(
                    "system_instruction", f"must be a string, got {shown(instruction)}"
                )
        instruction = instruction or None
        for name, value in self._batch.items():
            if name == "system_instruction":
                instruction = instruction if instruction is not None else _plain_text(value, agent)
            else:
                raise FieldError(
                    "",
                    f"agent {agent} takes no generation config, but the batch sets "
                    f"{name} (--config or a flag)",
                )
        if instruction is not None:
            wire["system_instruction"] = instruction
        if self.defaults.schema is not None:
            if not self._agent_schema_checked:
                problem = agent_schema_support()
                if problem:
                    raise FieldError("", problem)
                self._agent_schema_checked = True
            wire["response_format"] = agent_response_format(self.defaults.schema)
        request_json = canonical(wire)
        expects_json, schema = output_contract(wire)
        return RequestSpec(
            key=key,
            line=line,
            format=fmt,
            agent=agent,
            model=None,
            pieces=(request_json,),
            fingerprint=_sha(fmt, request_json),
            input_text=parts.input_text(wire["input"]),
            config=None,
            schema=schema,
            expects_json=expects_json,
        )


def _contract_fields(config: types.GenerateContentConfig) -> dict[str, Any]:
    return {
        "response_mime_type": config.response_mime_type,
        "response_json_schema": config.response_json_schema,
    }


def _plain_text(value: Any, agent: str) -> str:
    """A batch system instruction as the plain text an agent takes."""
    if isinstance(value, str):
        return value
    texts = (
        [p.get("text") for p in (value.get("parts") or [])] if isinstance(value, dict) else [None]
    )
    if texts and all(isinstance(t, str) for t in texts):
        return "\n".join(str(t) for t in texts)
    raise FieldError("system_instruction", f"agent {agent} takes a plain-text system instruction")


def _sha(field: str, text: str) -> str:
    """sha256 of ``text``; JSON's \\u escapes can spell half a surrogate pair, which is not
    text (nor storable): that is refused, naming the line's ``field``."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise FieldError(
            "", f'"{field}" contains {json.dumps(text[exc.start])}, half a surrogate pair'
        ) from None
    return hashlib.sha256(data).hexdigest()
