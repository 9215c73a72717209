"""HTTP wiring: the API routes with their auth and version checks, and the ``/_sim/*`` admin routes.

Each API route answers errors in its own family's shape (``errors.py``): Interactions routes in
the string-coded shape, the models, batch and file routes in Google-RPC shape. A chunk sent to
an upload URL carries no key (its ``upload_id`` is the credential), so it is not checked. Keys are checked first, as
Google's front door does: no key is 403 PERMISSION_DENIED, a key in ``invalid_keys`` is 400
INVALID_ARGUMENT with ErrorInfo ``API_KEY_INVALID``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from tuibatch.items import key_label
from tuibatch.sim import batches, catalog, files, interactions, models, tokens
from tuibatch.sim.config import API_VERSIONS
from tuibatch.sim.errors import ApiError, Drop, bad_key_error, missing_key_error
from tuibatch.sim.stats import Ctx

if TYPE_CHECKING:
    from tuibatch.sim.server import Simulator

Handler = Callable[["Simulator", web.Request, Ctx], Awaitable[dict[str, Any] | web.StreamResponse]]
Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(sim: Simulator) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    api = _Api(sim)
    app.router.add_post(
        "/{v}/interactions", api.wrap("create", "interactions", interactions.create)
    )
    app.router.add_get("/{v}/interactions/{id}", api.wrap("get", "interactions", interactions.get))
    app.router.add_post(
        "/{v}/interactions/{id}/cancel", api.wrap("cancel", "interactions", interactions.cancel)
    )
    app.router.add_delete(
        "/{v}/interactions/{id}", api.wrap("delete", "interactions", interactions.delete)
    )
    generate = api.wrap("generate", "rpc", models.generate)
    batch_create = api.wrap("batch_create", "rpc", batches.create)
    count_tokens = api.wrap("count_tokens", "rpc", tokens.count_tokens)
    app.router.add_post(
        "/{v}/models/{tail}",
        by_tail({":batchGenerateContent": batch_create, ":countTokens": count_tokens}, generate),
    )
    app.router.add_get("/{v}/models", api.wrap("models_list", "rpc", catalog.list_models))
    app.router.add_get("/{v}/models/{tail}", api.wrap("models_get", "rpc", catalog.get_model))
    app.router.add_get("/{v}/batches", api.wrap("batch_list", "rpc", batches.list_jobs))
    app.router.add_get("/{v}/batches/{tail}", api.wrap("batch_get", "rpc", batches.get))
    app.router.add_post("/{v}/batches/{tail}", api.wrap("batch_cancel", "rpc", batches.cancel))
    app.router.add_delete("/{v}/batches/{tail}", api.wrap("batch_delete", "rpc", batches.delete))
    upload_start = api.wrap("upload", "rpc", files.upload)
    upload_chunk = api.wrap("upload", "rpc", files.upload_chunk, check_key=False)
    app.router.add_post("/upload/{v}/files", by_query("upload_id", upload_chunk, upload_start))
    app.router.add_get("/{v}/files", api.wrap("file_list", "rpc", files.file_list))
    app.router.add_get(
        "/{v}/files/{tail}",
        by_tail(
            {":download": api.wrap("download", "rpc", files.file_get)},
            api.wrap("file_get", "rpc", files.file_get),
        ),
    )
    app.router.add_delete("/{v}/files/{tail}", api.wrap("file_delete", "rpc", files.file_delete))
    admin = _Admin(sim)
    app.router.add_get("/_sim/stats", admin.stats)
    app.router.add_get("/_sim/requests", admin.requests)
    app.router.add_get("/_sim/bodies", admin.bodies)
    app.router.add_post("/_sim/reset", admin.reset)
    app.router.add_post("/_sim/faults", admin.set_faults)
    app.router.add_get("/_sim/faults", admin.get_faults)
    app.router.add_post("/_sim/forget", admin.forget)
    app.router.add_route("*", "/{tail:.*}", admin.unknown)
    return app


def by_tail(routes: dict[str, Route], default: Route) -> Route:
    """Pick a route by how the path's last segment ends (``...:batchGenerateContent``)."""

    async def pick(request: web.Request) -> web.StreamResponse:
        tail = request.match_info.get("tail", "")
        for suffix, route in routes.items():
            if tail.endswith(suffix):
                return await route(request)
        return await default(request)

    return pick


def by_query(name: str, present: Route, absent: Route) -> Route:
    """Pick a route by whether the query has ``name`` (an upload URL has ``upload_id``)."""

    async def pick(request: web.Request) -> web.StreamResponse:
        return await (present if name in request.query else absent)(request)

    return pick


class _Api:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def _check_caller(self, request: web.Request) -> None:
        if request.match_info.get("v") not in API_VERSIONS:
            raise ApiError(404, f"Unknown API version in {request.path}")
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            raise missing_key_error()
        if key in self.sim.config.invalid_keys:
            raise bad_key_error()

    def wrap(self, route: str, shape: str, handler: Handler, *, check_key: bool = True) -> Route:
        sim = self.sim

        async def wrapped(request: web.Request) -> web.StreamResponse:
            latency = sim.config.latency_ms
            if latency > 0:
                await asyncio.sleep(latency / 1000.0)
            ctx = Ctx(route)
            try:
                if check_key:
                    self._check_caller(request)
                elif request.match_info.get("v") not in API_VERSIONS:
                    raise ApiError(404, f"Unknown API version in {request.path}")
                body = await handler(sim, request, ctx)
            except ApiError as err:
                sim.counts.record(ctx.route, ctx.item, err.code, ctx.fault)
                return err.response(shape)
            except Drop:
                sim.counts.record(ctx.route, ctx.item, None, ctx.fault)
                transport = request.transport
                if transport is not None:
                    transport.abort()
                raise asyncio.CancelledError() from None
            except asyncio.CancelledError:
                sim.counts.record(ctx.route, ctx.item, None, ctx.fault)
                raise
            if isinstance(body, web.StreamResponse):
                sim.counts.record(ctx.route, ctx.item, body.status, ctx.fault)
                return body
            sim.counts.record(ctx.route, ctx.item, 200, ctx.fault)
            return web.json_response(body)

        return wrapped


class _Admin:
    """``/_sim/*``: what tests and benchmarks read and script."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.sim.stats())

    async def requests(self, request: web.Request) -> web.Response:
        return web.json_response(self.sim.requests())

    async def bodies(self, request: web.Request) -> web.Response:
        """``?item=ID`` (a key or the item id) narrows them to one item."""
        item = request.query.get("item")
        entries = self.sim.request_bodies(item)
        if item is not None and not entries:  # a key: its requests carry its label
            entries = self.sim.request_bodies(key_label(item))
        return web.json_response(entries)

    async def reset(self, request: web.Request) -> web.Response:
        self.sim.reset()
        return web.json_response({"ok": True})

    async def set_faults(self, request: web.Request) -> web.Response:
        try:
            self.sim.set_faults(json.loads(await request.read() or b"[]"))
        except ValueError as exc:
            return web.json_response(ApiError(400, str(exc)).body(), status=400)
        return web.json_response({"ok": True, "rules": len(self.sim.plan.rules)})

    async def get_faults(self, request: web.Request) -> web.Response:
        return web.json_response([rule.raw for rule in self.sim.plan.rules])

    async def forget(self, request: web.Request) -> web.Response:
        """``{"runs": [ids]}``, ``{"items": [keys]}`` or nothing (every run)."""
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError:
            body = None
        lists: list[list[str] | None] = []
        for name in ("runs", "items"):
            value = body.get(name) if isinstance(body, dict) else 0
            if value is not None and not (
                isinstance(value, list) and all(isinstance(s, str) for s in value)
            ):
                message = 'expected {"runs": [ids]}, {"items": [keys]} or {}'
                return web.json_response(ApiError(400, message).body(), status=400)
            lists.append(value)
        forgotten = self.sim.forget_runs(lists[0], lists[1])
        return web.json_response({"ok": True, "forgotten": forgotten})

    async def unknown(self, request: web.Request) -> web.Response:
        body = ApiError(404, f"Method not found: {request.method} {request.path}").body()
        return web.json_response(body, status=404)
