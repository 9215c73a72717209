"""The Gemini Batch API through the official SDK: create, find, get, cancel, delete, files.

Only the SDK's public calls (``client.aio.batches``, ``client.aio.files``); every exception is
mapped by :func:`~tuibatch.backends.gemini_shapes.failure_of`, so the batch driver sees only
:class:`~tuibatch.policy.Failure`. A create is not idempotent and takes no client id: a create
whose answer is lost (``Failure.in_doubt``) is followed by :meth:`find` on the display name.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..policy import Failure
from .gemini_shapes import failure_of

#: the service's end states (the SDK maps the Developer API's BATCH_STATE_* onto these)
END_STATES = frozenset(
    {
        "JOB_STATE_SUCCEEDED",
        "JOB_STATE_FAILED",
        "JOB_STATE_CANCELLED",
        "JOB_STATE_EXPIRED",
        "JOB_STATE_PARTIALLY_SUCCEEDED",
    }
)
#: config fields that are not part of generationConfig on the wire
_TOP_LEVEL = ("systemInstruction", "safetySettings", "tools", "toolConfig", "cachedContent")
_CLIENT_ONLY = ("httpOptions", "automaticFunctionCalling", "labels", "shouldReturnHttpResponse")


@dataclass
class Line:
    """One result line: the key we sent (None when the service did not echo it), and either a
    GenerateContentResponse or an error (gRPC code, message)."""

    key: str | None
    response: Any = None
    error_code: int | None = None
    error_message: str | None = None


@dataclass
class JobView:
    name: str
    display_name: str | None
    state: str
    error: str | None = None
    #: inline results, in the order the service gave them (None when not inline or not ready)
    lines: list[Line] | None = None
    result_file: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ended(self) -> bool:
        return self.state in END_STATES


def _state(value: Any) -> str:
    return str(getattr(value, "value", value) or "JOB_STATE_UNSPECIFIED")


def _view(job: Any) -> JobView:
    err = getattr(job, "error", None)
    error = None
    if err is not None:
        error = f"{getattr(err, 'code', '')} {getattr(err, 'message', '') or ''}".strip()
    dest = getattr(job, "dest", None)
    lines: list[Line] | None = None
    result_file = None
    if dest is not None:
        result_file = getattr(dest, "file_name", None)
        inlined = getattr(dest, "inlined_responses", None)
        if inlined is not None:
            lines = []
            for r in inlined:
                meta = getattr(r, "metadata", None) or {}
                key = meta.get("key") if isinstance(meta, dict) else None
                e = getattr(r, "error", None)
                lines.append(
                    Line(
                        key=key if isinstance(key, str) else None,
                        response=getattr(r, "response", None),
                        error_code=getattr(e, "code", None) if e is not None else None,
                        error_message=getattr(e, "message", None) if e is not None else None,
                    )
                )
    return JobView(
        name=str(job.name),
        display_name=getattr(job, "display_name", None),
        state=_state(getattr(job, "state", None)),
        error=error,
        lines=lines,
        result_file=result_file,
    )


def wire_request(request_json: str) -> dict[str, Any]:
    """A stored model request as a REST ``GenerateContentRequest`` (a file source line)."""
    from ..request_sdk import to_sdk

    r = to_sdk(request_json)
    assert r.contents is not None and r.config is not None
    contents = [c.model_dump(mode="json", exclude_none=True, by_alias=True) for c in r.contents]
    config = r.config.model_dump(mode="json", exclude_none=True, by_alias=True)
    out: dict[str, Any] = {"contents": contents}
    for name in _CLIENT_ONLY:
        config.pop(name, None)
    for name in _TOP_LEVEL:
        if name in config:
            out[name] = config.pop(name)
    si = out.get("systemInstruction")
    if isinstance(si, str):
        out["systemInstruction"] = {"parts": [{"text": si}]}
    if config:
        out["generationConfig"] = config
    return out


def parse_result_file(data: bytes) -> list[Line]:
    """The downloaded results: one ``{"key", "response" | "error"}`` per line."""
    from google.genai import types

    lines = []
    for raw in data.splitlines():
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        key = obj.get("key") if isinstance(obj.get("key"), str) else None
        err = obj.get("error")
        if isinstance(err, dict):
            code = err.get("code")
            lines.append(
                Line(key, None, code if isinstance(code, int) else 2, str(err.get("message", "")))
            )
            continue
        try:
            resp = types.GenerateContentResponse.model_validate(obj.get("response") or {})
        except Exception as exc:
            lines.append(Line(key, None, 2, f"result did not parse: {exc}"[:300]))
            continue
        lines.append(Line(key, resp))
    return lines


class BatchApi:
    """``client`` is a ``genai.Client`` with the SDK's retries off (``GeminiBackend.client``)."""

    def __init__(self, client: Any, scrub: Callable[[str], str] = lambda s: s) -> None:
        self.client = client
        self._scrub = scrub
        self.requests = 0  # what this process sent (the benchmark reads it)

    def _fail(self, exc: BaseException, *, launch: bool, lookup: bool = False) -> Failure:
        return failure_of(exc, launch=launch, scrub=self._scrub, lookup=lookup)

    async def create_inline(
        self, model: str, requests: Sequence[tuple[str, str, str]], display_name: str
    ) -> JobView:
        """*requests*: (key, item label, request JSON) per item."""
        from google.genai import types

        from ..request_sdk import to_sdk

        src = []
        for key, label, request_json in requests:
            r = to_sdk(request_json)
            src.append(
                types.InlinedRequest(
                    contents=r.contents,
                    config=r.config,
                    metadata={"key": key, "tuibatch_item": label},
                )
            )
        self.requests += 1
        try:
            job = await self.client.aio.batches.create(
                model=model, src=src, config={"display_name": display_name}
            )
        except Exception as exc:
            raise self._fail(exc, launch=True) from None
        return _view(job)

    async def upload(self, data: bytes, display_name: str) -> str:
        """Upload a JSONL source file; its name (``files/...``). Nothing is billed for it."""
        self.requests += 1
        try:
            f = await self.client.aio.files.upload(
                file=io.BytesIO(data),
                config={"mime_type": "application/jsonl", "display_name": display_name},
            )
        except Exception as exc:
            raise self._fail(exc, launch=False, lookup=True) from None
        return str(f.name)

    async def create_file(self, model: str, file_name: str, display_name: str) -> JobView:
        self.requests += 1
        try:
            job = await self.client.aio.batches.create(
                model=model, src=file_name, config={"display_name": display_name}
            )
        except Exception as exc:
            raise self._fail(exc, launch=True) from None
        return _view(job)

    async def find(self, display_name: str) -> JobView | None:
        """The service's job with this display name (newest first), if any."""
        self.requests += 1
        try:
            pager = await self.client.aio.batches.list(config={"page_size": 100})
            async for job in pager:
                if getattr(job, "display_name", None) == display_name:
                    return _view(job)
        except Exception as exc:
            raise self._fail(exc, launch=False, lookup=True) from None
        return None

    async def get(self, name: str) -> JobView:
        self.requests += 1
        try:
            job = await self.client.aio.batches.get(name=name)
        except Exception as exc:
            raise self._fail(exc, launch=False) from None
        return _view(job)

    async def download(self, file_name: str) -> list[Line]:
        self.requests += 1
        try:
            data = await self.client.aio.files.download(file=file_name)
        except Exception as exc:
            raise self._fail(exc, launch=False) from None
        return parse_result_file(bytes(data))

    async def cancel(self, name: str) -> None:
        self.requests += 1
        try:
            await self.client.aio.batches.cancel(name=name)
        except Exception as exc:
            raise self._fail(exc, launch=False) from None

    async def delete(self, name: str) -> None:
        self.requests += 1
        try:
            await self.client.aio.batches.delete(name=name)
        except Exception as exc:
            raise self._fail(exc, launch=False) from None

    async def delete_file(self, name: str) -> None:
        """Delete an uploaded or generated file (``files/...``)."""
        self.requests += 1
        try:
            await self.client.aio.files.delete(name=name)
        except Exception as exc:
            raise self._fail(exc, launch=False) from None
