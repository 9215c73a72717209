"""The Files API as ``client.files`` speaks it: resumable upload, get, list, delete, download.

Upload (``files.py`` ``Files.upload`` and ``_api_client._upload_fd``): ``POST /upload/{v}/files``
with ``X-Goog-Upload-Protocol: resumable``, ``X-Goog-Upload-Command: start``,
``X-Goog-Upload-Header-Content-Length`` / ``-Content-Type`` and a JSON ``{"file": {...}}``
(the SDK sends its snake_case field names) is answered with an empty body and the
``X-Goog-Upload-URL`` header. Chunks are ``POST``-ed to that URL with ``X-Goog-Upload-Command:
upload`` (``upload, finalize`` for the last) and ``X-Goog-Upload-Offset``, and no API key: the
``upload_id`` is the credential. Every answer there carries ``X-Goog-Upload-Status``
(``active`` / ``final``): without it the SDK re-sends the chunk, sleeping 1, 2, 4 s. The final
answer is ``{"file": File}``.

A ``File`` (``types.File``) reads ``name`` (``files/ID``), ``displayName``, ``mimeType``,
``sizeBytes`` (a string), ``createTime``, ``updateTime``, ``expirationTime`` (48 h),
``sha256Hash`` (base64), ``uri``, ``downloadUri`` (generated files only), ``state``
(``FileState``) and ``source`` (``UPLOADED`` / ``GENERATED``). ``files.download`` is
``GET /{v}/files/{ID}:download?alt=media``; only generated files (a batch's results) download.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tuibatch.sim.catalog import page_bounds
from tuibatch.sim.errors import ApiError
from tuibatch.sim.jobs import timestamp
from tuibatch.sim.stats import Ctx

if TYPE_CHECKING:
    from tuibatch.sim.server import Simulator

FILE_TTL_SECONDS = 48 * 3600.0
CHUNK_GRANULARITY = 8 * 1024 * 1024
RESULTS_MIME = "application/jsonl"


@dataclass
class SimFile:
    name: str
    display_name: str | None
    mime_type: str
    data: bytes
    created_wall: float
    source: str  # UPLOADED | GENERATED

    def body(self, base: str) -> dict[str, Any]:
        digest = base64.b64encode(hashlib.sha256(self.data).digest()).decode("ascii")
        out: dict[str, Any] = {"name": self.name}
        if self.display_name:
            out["displayName"] = self.display_name
        out.update(
            mimeType=self.mime_type,
            sizeBytes=str(len(self.data)),
            createTime=timestamp(self.created_wall),
            updateTime=timestamp(self.created_wall),
            expirationTime=timestamp(self.created_wall + FILE_TTL_SECONDS),
            sha256Hash=digest,
            uri=f"{base}/{self.name}",
        )
        if self.source == "GENERATED":
            out["downloadUri"] = f"{base}/{self.name}:download?alt=media"
        out.update(state="ACTIVE", source=self.source)
        return out


@dataclass
class Upload:
    name: str
    display_name: str | None
    mime_type: str
    size: int
    data: bytearray


def _base(sim: Simulator, request: web.Request) -> str:
    return f"{sim.url or f'http://{request.host}'}/{request.match_info['v']}"


def _field(meta: dict[str, Any], camel: str, snake: str) -> Any:
    return meta.get(camel, meta.get(snake))


def _upload_error(code: int, message: str) -> ApiError:
    return ApiError(code, message, headers={"X-Goog-Upload-Status": "final"})


def new_file_id(sim: Simulator) -> str:
    """Lowercase letters and digits, as Google's file ids (``t_file_name`` expects that)."""
    return sim.new_slug() + secrets.token_hex(2)


async def upload(sim: Simulator, request: web.Request, ctx: Ctx) -> web.StreamResponse:
    """The resumable upload's start (API key checked by the route)."""
    headers = request.headers
    if headers.get("X-Goog-Upload-Protocol") != "resumable":
        raise ApiError(400, "Only the resumable upload protocol is supported by the simulator.")
    if headers.get("X-Goog-Upload-Command") != "start":
        raise ApiError(400, "The first request of an upload must be X-Goog-Upload-Command: start.")
    try:
        body = json.loads(await request.read() or b"{}")
    except ValueError:
        raise ApiError(400, "Invalid JSON payload received.") from None
    meta = body.get("file") if isinstance(body, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    display = _field(meta, "displayName", "display_name")
    ctx.item = display if isinstance(display, str) else None
    size_text = headers.get("X-Goog-Upload-Header-Content-Length", "")
    if not size_text.isdigit():
        raise ApiError(400, "X-Goog-Upload-Header-Content-Length is required.")
    mime = headers.get("X-Goog-Upload-Header-Content-Type") or _field(meta, "mimeType", "mime_type")
    if not isinstance(mime, str) or not mime:
        raise ApiError(400, "The file's MIME type is required.")
    name = meta.get("name")
    if isinstance(name, str) and name:
        name = name if name.startswith("files/") else f"files/{name}"
        if name in sim.files:
            raise ApiError(409, f"File {name} already exists.")
    else:
        name = f"files/{new_file_id(sim)}"
    await sim.apply_request_fault(sim.pick_fault(ctx, ""), None)
    upload_id = secrets.token_urlsafe(24)
    sim.uploads[upload_id] = Upload(name, ctx.item, mime, int(size_text), bytearray())
    url = (
        f"{sim.url or f'http://{request.host}'}/upload/{request.match_info['v']}/files"
        f"?upload_id={upload_id}&upload_protocol=resumable"
    )
    return web.Response(
        status=200,
        headers={
            "X-Goog-Upload-URL": url,
            "X-Goog-Upload-Status": "active",
            "X-Goog-Upload-Chunk-Granularity": str(CHUNK_GRANULARITY),
        },
    )


async def upload_chunk(sim: Simulator, request: web.Request, ctx: Ctx) -> web.StreamResponse:
    """A chunk sent to the upload URL (no API key: the upload id authorizes it)."""
    upload_id = request.query.get("upload_id", "")
    session = sim.uploads.get(upload_id)
    if session is None:
        raise _upload_error(404, "Upload session not found or already finished.")
    ctx.item = session.display_name
    commands = {c.strip() for c in request.headers.get("X-Goog-Upload-Command", "").split(",")}
    if not commands <= {"upload", "finalize"} or not commands:
        raise _upload_error(400, "X-Goog-Upload-Command must be upload and/or finalize.")
    offset = request.headers.get("X-Goog-Upload-Offset", "")
    chunk = await request.read()
    if "upload" in commands:
        if offset != str(len(session.data)):
            raise _upload_error(400, f"Upload offset {offset!r} != {len(session.data)} received.")
        session.data.extend(chunk)
    if len(session.data) > session.size:
        raise _upload_error(400, f"More bytes than the {session.size} announced.")
    if "finalize" not in commands:
        return web.Response(status=200, headers={"X-Goog-Upload-Status": "active"})
    del sim.uploads[upload_id]
    if len(session.data) != session.size:
        raise _upload_error(400, f"Got {len(session.data)} bytes, {session.size} announced.")
    file = SimFile(
        session.name,
        session.display_name,
        session.mime_type,
        bytes(session.data),
        sim.wall_now(),
        "UPLOADED",
    )
    sim.files[file.name] = file
    sim.file_counts["uploaded"] += 1
    return web.json_response(
        {"file": file.body(_base(sim, request))}, headers={"X-Goog-Upload-Status": "final"}
    )


def add_generated(sim: Simulator, name: str, data: bytes) -> SimFile:
    """A file the service wrote (a batch's results)."""
    file = SimFile(name, None, RESULTS_MIME, data, sim.wall_now(), "GENERATED")
    sim.files[name] = file
    return file


def _existing(sim: Simulator, name: str) -> SimFile:
    file = sim.files.get(f"files/{name}")
    if file is None:
        raise ApiError(
            403, f"You do not have permission to access the File {name} or it may not exist."
        )
    return file


async def file_get(sim: Simulator, request: web.Request, ctx: Ctx) -> web.StreamResponse:
    """``GET files/{id}`` or, with ``:download``, the file's bytes."""
    name, _, method = request.match_info["tail"].partition(":")
    ctx.item = f"files/{name}"
    await sim.apply_request_fault(sim.pick_fault(ctx, ""), None)
    if method not in ("", "download"):
        raise ApiError(404, f"Method '{method}' is not supported by the simulator.")
    file = _existing(sim, name)
    if not method:
        return web.json_response(file.body(_base(sim, request)))
    if request.query.get("alt") != "media":
        raise ApiError(400, "Downloads need alt=media.")
    if file.source != "GENERATED":
        raise ApiError(400, "Only generated files can be downloaded.")
    sim.file_counts["downloads"] += 1
    return web.Response(body=file.data, content_type="application/octet-stream")


async def file_delete(sim: Simulator, request: web.Request, ctx: Ctx) -> dict[str, Any]:
    name = request.match_info["tail"]
    ctx.item = f"files/{name}"
    await sim.apply_request_fault(sim.pick_fault(ctx, ""), None)
    _existing(sim, name)
    del sim.files[f"files/{name}"]
    return {}


async def file_list(sim: Simulator, request: web.Request, ctx: Ctx) -> dict[str, Any]:
    size, offset = page_bounds(request, 10, 100)
    await sim.apply_request_fault(sim.pick_fault(ctx, ""), None)
    files = list(reversed(sim.files.values()))
    base = _base(sim, request)
    body: dict[str, Any] = {"files": [f.body(base) for f in files[offset : offset + size]]}
    if offset + size < len(files):
        body["nextPageToken"] = f"o{offset + size}"
    return body
