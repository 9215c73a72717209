"""A local Gemini API simulator: a real HTTP server speaking Google's REST shapes.

The real ``google-genai`` SDK runs against it unchanged (``HttpOptions(base_url=...)``), so tests
exercise the exact requests, errors and retries tuibatch meets in production, and the stats
endpoint tells them how many runs were paid for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from tuibatch.sim.faults import (
    PER_MINUTE_QUOTA,
    STATUS_NAMES,
    TOKENS_PER_MINUTE_QUOTA,
    FaultRule,
    parse_fault_plan,
)
from tuibatch.sim.outputs import content_item_id, estimate_tokens, output_text_for

AGENTS = frozenset(
    {
        "deep-research-pro-preview-12-2025",
        "deep-research-preview-04-2026",
        "deep-research-max-preview-04-2026",
        "antigravity-preview-05-2026",
        "antigravity-preview-09-2026",
        "sim-agent",
    }
)
MODELS = frozenset(
    {
        "gemini-2.5-flash",
        "gemini-2.5-pro",
        "gemini-2.5-flash-lite",
        "gemini-3-flash-preview",
        "gemini-3.1-pro-preview",
        "sim-model",
    }
)
#: Thought tokens per output token; agents think 2x, non-thinking models 0x.
_MODEL_THOUGHT_FACTOR = {"sim-model": 0, "gemini-2.5-flash-lite": 0}
_AGENT_THOUGHT_FACTOR = 2

API_VERSIONS = frozenset({"v1", "v1beta"})
ROUTES = ("create", "get", "cancel", "generate")
#: Statuses after which a run never changes again.
TERMINAL = frozenset(
    {"completed", "failed", "cancelled", "incomplete", "budget_exceeded", "requires_action"}
)
WINDOW_SECONDS = 60.0
ITEM_LABEL = "tuibatch_item"


@dataclass
class SimConfig:
    port: int = 0
    rpm: int | None = None
    tpm: int | None = None
    fail_rate: float = 0.0
    latency_ms: float = 0.0
    seed: int = 0
    run_seconds: float = 0.0
    faults: list[Any] = field(default_factory=list)


@dataclass
class Run:
    """One interaction; its status is derived lazily from the clock on each read."""

    id: str
    item: str
    agent: str | None
    model: str | None
    input_text: str
    system: str | None
    labels: dict[str, str] | None
    created_mono: float
    created_wall: float
    duration: float
    final_status: str = "completed"
    error_code: str = "INTERNAL"
    error_message: str = ""
    status: str = "queued"
    updated_wall: float = 0.0
    polled: bool = False
    output_text: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    thought_tokens: int = 0


@dataclass
class _ItemStats:
    launches: int = 0
    creates: int = 0
    gets: int = 0
    cancels: int = 0
    completed: int = 0
    runs: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "launches": self.launches,
            "creates": self.creates,
            "gets": self.gets,
            "cancels": self.cancels,
            "completed": self.completed,
            "runs": list(self.runs),
        }


class ApiError(Exception):
    """An error answered in Google's JSON shape."""

    def __init__(
        self,
        code: int,
        message: str,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "status": STATUS_NAMES.get(self.code, "UNKNOWN"),
        }
        if self.details:
            error["details"] = self.details
        return {"error": error}


class _Drop(Exception):
    """Close the connection without answering."""


def quota_error(quota_id: str, retry_delay: str | None, message: str) -> ApiError:
    details: list[dict[str, Any]] = [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [{"quotaId": quota_id}],
        }
    ]
    if retry_delay is not None:
        details.append(
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}
        )
    return ApiError(429, message, details)


def _delay_text(seconds: float) -> str:
    return f"{max(seconds, 0.001):.3f}s"


def _iso(wall: float) -> str:
    return datetime.fromtimestamp(wall, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _texts(value: Any) -> list[str]:
    """Every ``text`` string inside a content structure (str, parts, turns...)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    if isinstance(value, dict):
        if isinstance(value.get("text"), str):
            return [value["text"]]
        for key in ("content", "parts", "contents"):
            if key in value:
                return _texts(value[key])
    return []


class _Ctx:
    """Per-request facts the recorder needs whatever way the request ends."""

    __slots__ = ("route", "item", "fault")

    def __init__(self, route: str) -> None:
        self.route = route
        self.item: str | None = None
        self.fault: str | None = None


class Simulator:
    """The simulator; all state lives on one event loop, so no locks are needed."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        self._faults: list[FaultRule] = parse_fault_plan(self.config.faults)
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self.url = ""
        self._epoch = 0
        self._reset_state()

    # ----------------------------------------------------------------- state
    def _reset_state(self) -> None:
        self._epoch += 1
        self._seq = 0
        self._rng = random.Random(self.config.seed)
        self._runs: dict[str, Run] = {}
        self._lost: set[str] = set()
        self._results: dict[str, str] = {}  # generate responseId -> item
        self._items: dict[str, _ItemStats] = {}
        self._by_route: dict[str, int] = dict.fromkeys(ROUTES, 0)
        self._by_code: dict[str, int] = {}
        self._log: list[tuple[float, str, str | None, int | None]] = []
        self._window: deque[float] = deque()
        self._token_window: deque[tuple[float, int]] = deque()
        self._token_sum = 0
        self._seen: list[int] = [0] * len(self._faults)
        self._fired: list[int] = [0] * len(self._faults)

    def reset(self) -> None:
        """Forget runs, stats and fault budgets (the plan itself stays)."""
        self._reset_state()

    def set_faults(self, rules: list[Any]) -> None:
        """Replace the fault plan; budgets start afresh."""
        self._faults = parse_fault_plan(rules)
        self._seen = [0] * len(self._faults)
        self._fired = [0] * len(self._faults)

    def _item(self, item: str) -> _ItemStats:
        stats = self._items.get(item)
        if stats is None:
            stats = self._items[item] = _ItemStats()
        return stats

    def _new_id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}_{self._epoch}_{self._seq:06d}"

    def stats(self) -> dict[str, Any]:
        now = time.monotonic()
        for run in self._runs.values():
            self._refresh(run, now)
        runs: dict[str, Any] = {}
        for run_id, run in self._runs.items():
            runs[run_id] = {"item": run.item, "status": run.status}
        for run_id in self._lost:
            runs[run_id]["status"] = "lost"
        for result_id, item in self._results.items():
            runs[result_id] = {"item": item, "status": "completed"}
        return {
            "requests": len(self._log),
            "by_route": dict(self._by_route),
            "by_code": dict(self._by_code),
            "items": {k: v.as_dict() for k, v in self._items.items()},
            "runs": runs,
        }

    def requests(self) -> list[dict[str, Any]]:
        return [{"t": t, "route": r, "item": i, "code": c} for t, r, i, c in self._log]

    def _record(self, ctx: _Ctx, code: int | None) -> None:
        self._log.append((time.monotonic(), ctx.route, ctx.item, code))
        self._by_route[ctx.route] = self._by_route.get(ctx.route, 0) + 1
        key = str(code) if code is not None else ("hung" if ctx.fault == "hang" else "dropped")
        self._by_code[key] = self._by_code.get(key, 0) + 1

    # -------------------------------------------------------------- lifecycle
    async def start(self) -> str:
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/{v}/interactions", self._wrap("create", self._create))
        app.router.add_get("/{v}/interactions/{id}", self._wrap("get", self._get))
        app.router.add_post("/{v}/interactions/{id}/cancel", self._wrap("cancel", self._cancel))
        app.router.add_delete("/{v}/interactions/{id}", self._wrap("delete", self._delete))
        app.router.add_post("/{v}/models/{tail}", self._wrap("generate", self._generate))
        app.router.add_get("/_sim/stats", self._h_stats)
        app.router.add_get("/_sim/requests", self._h_requests)
        app.router.add_post("/_sim/reset", self._h_reset)
        app.router.add_post("/_sim/faults", self._h_faults)
        app.router.add_get("/_sim/faults", self._h_get_faults)
        app.router.add_route("*", "/{tail:.*}", self._h_unknown)
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.config.port)
        await site.start()
        server = site._server
        port = server.sockets[0].getsockname()[1] if server is not None else self.config.port  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------ admin routes
    async def _h_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _h_requests(self, request: web.Request) -> web.Response:
        return web.json_response(self.requests())

    async def _h_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def _h_faults(self, request: web.Request) -> web.Response:
        try:
            self.set_faults(json.loads(await request.read() or b"[]"))
        except ValueError as exc:
            return web.json_response(ApiError(400, str(exc)).body(), status=400)
        return web.json_response({"ok": True, "rules": len(self._faults)})

    async def _h_get_faults(self, request: web.Request) -> web.Response:
        return web.json_response([rule.raw for rule in self._faults])

    async def _h_unknown(self, request: web.Request) -> web.Response:
        body = ApiError(404, f"Method not found: {request.method} {request.path}").body()
        return web.json_response(body, status=404)

    # ----------------------------------------------------------- API plumbing
    def _wrap(
        self, route: str, handler: Callable[[web.Request, _Ctx], Awaitable[dict[str, Any]]]
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            latency = self.config.latency_ms
            if latency > 0:
                await asyncio.sleep(latency / 1000.0)
            ctx = _Ctx(route)
            try:
                if request.match_info.get("v") not in API_VERSIONS:
                    raise ApiError(404, f"Unknown API version in {request.path}")
                if not (request.headers.get("x-goog-api-key") or request.query.get("key")):
                    raise ApiError(
                        401,
                        "Method doesn't allow unregistered callers (callers without established"
                        " identity). Please use API Key or other form of API consumer identity"
                        " to call this API.",
                    )
                body = await handler(request, ctx)
            except ApiError as err:
                self._record(ctx, err.code)
                return web.json_response(err.body(), status=err.code, headers=err.headers)
            except _Drop:
                self._record(ctx, None)
                transport = request.transport
                if transport is not None:
                    transport.abort()
                raise asyncio.CancelledError() from None
            except asyncio.CancelledError:
                self._record(ctx, None)
                raise
            self._record(ctx, 200)
            return web.json_response(body)

        return wrapped

    async def _json(self, request: web.Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.read())
        except ValueError:
            raise ApiError(400, "Invalid JSON payload received.") from None
        if not isinstance(body, dict):
            raise ApiError(400, "Invalid JSON payload received. Expected an object.")
        return body

    def _check_rpm(self, now: float) -> None:
        limit = self.config.rpm
        if not limit:
            return
        window = self._window
        while window and window[0] <= now - WINDOW_SECONDS:
            window.popleft()
        if len(window) >= limit:
            delay = window[0] + WINDOW_SECONDS - now
            raise quota_error(
                PER_MINUTE_QUOTA,
                _delay_text(delay),
                f"You exceeded your current quota: {limit} requests per minute."
                f" Please retry in {delay:.3f}s.",
            )
        window.append(now)

    def _check_tpm(self, now: float, tokens: int) -> None:
        limit = self.config.tpm
        if not limit:
            return
        window = self._token_window
        while window and window[0][0] <= now - WINDOW_SECONDS:
            self._token_sum -= window.popleft()[1]
        if self._token_sum + tokens > limit:
            need = self._token_sum + tokens - limit
            delay = WINDOW_SECONDS
            for t, n in window:
                need -= n
                if need <= 0:
                    delay = t + WINDOW_SECONDS - now
                    break
            raise quota_error(
                TOKENS_PER_MINUTE_QUOTA,
                _delay_text(delay),
                f"You exceeded your current quota: {limit} input tokens per minute."
                f" Please retry in {delay:.3f}s.",
            )
        window.append((now, tokens))
        self._token_sum += tokens

    def _pick_fault(self, ctx: _Ctx, text: str) -> FaultRule | None:
        """First matching rule with budget left; then the random ``fail_rate``."""
        for i, rule in enumerate(self._faults):
            if not rule.matches_route(ctx.route) or not rule.matches_item(ctx.item, text):
                continue
            if rule.times is not None and self._fired[i] >= rule.times:
                continue
            self._seen[i] += 1
            if self._seen[i] <= rule.after:
                continue
            if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                continue
            self._fired[i] += 1
            ctx.fault = rule.fault
            return rule
        rate = self.config.fail_rate
        if rate > 0 and ctx.route in ("create", "generate") and self._rng.random() < rate:
            code = 503 if self._rng.random() < 0.75 else 500
            ctx.fault = "http"
            raise ApiError(
                code,
                "The service is currently unavailable."
                if code == 503
                else "An internal error has occurred.",
            )
        return None

    async def _apply_request_fault(self, rule: FaultRule | None) -> None:
        """Faults that act on the request itself, before anything is created."""
        if rule is None:
            return
        if rule.fault == "http":
            details: list[dict[str, Any]] = []
            if rule.quota_id is not None:
                details.append(
                    {
                        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                        "violations": [{"quotaId": rule.quota_id}],
                    }
                )
            if rule.retry_delay is not None:
                details.append(
                    {
                        "@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": rule.retry_delay,
                    }
                )
            headers = {}
            if rule.retry_after is not None:
                headers["Retry-After"] = f"{rule.retry_after:g}"
            message = rule.message or f"Simulated {STATUS_NAMES.get(rule.code, 'error')}."
            raise ApiError(rule.code, message, details, headers)
        if rule.fault == "per_day_quota":
            raise quota_error(
                rule.quota_id or "GenerateRequestsPerDayPerProjectPerModel",
                rule.retry_delay,
                rule.message or "You exceeded your current quota: requests per day.",
            )
        if rule.fault == "drop":
            raise _Drop()
        if rule.fault == "hang":
            seconds = 3600.0 if rule.seconds is None else rule.seconds
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), seconds)
            if self._stopping.is_set():
                raise _Drop()

    # ------------------------------------------------------------ interactions
    def _refresh(self, run: Run, now: float) -> None:
        if run.status in TERMINAL:
            return
        elapsed = now - run.created_mono
        if elapsed >= run.duration:
            run.status = run.final_status
            run.updated_wall = run.created_wall + run.duration
            if run.status == "completed":
                self._item(run.item).completed += 1
        elif run.polled or elapsed >= min(0.2, run.duration / 2):
            run.status = "in_progress"
            run.updated_wall = time.time()

    def _interaction(self, run: Run) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": run.id,
            "status": run.status,
            "created": _iso(run.created_wall),
            "updated": _iso(run.updated_wall or run.created_wall),
        }
        if run.agent is not None:
            body["agent"] = run.agent
        if run.model is not None:
            body["model"] = run.model
        if run.labels:
            body["labels"] = run.labels
        steps: list[dict[str, Any]] = [
            {"type": "user_input", "content": [{"type": "text", "text": run.input_text}]}
        ]
        if run.status in TERMINAL and run.status != "cancelled":
            if run.thought_tokens:
                steps.append(
                    {"type": "thought", "summary": [{"type": "text", "text": "Reading the input."}]}
                )
            if run.status == "completed":
                steps.append(
                    {"type": "model_output", "content": [{"type": "text", "text": run.output_text}]}
                )
                out = run.output_tokens
            else:
                out = 0
                body["errors"] = [{"code": run.error_code, "message": run.error_message}]
            body["usage"] = {
                "total_input_tokens": run.input_tokens,
                "total_output_tokens": out,
                "total_thought_tokens": run.thought_tokens,
                "total_tokens": run.input_tokens + out + run.thought_tokens,
            }
        body["steps"] = steps
        return body

    async def _create(self, request: web.Request, ctx: _Ctx) -> dict[str, Any]:
        body = await self._json(request)
        raw_input = body.get("input")
        text = "".join(_texts(raw_input))
        labels = body.get("labels") if isinstance(body.get("labels"), dict) else None
        label = labels.get(ITEM_LABEL) if labels else None
        ctx.item = label if isinstance(label, str) and label else content_item_id(text)
        self._item(ctx.item).creates += 1
        now = time.monotonic()
        self._check_rpm(now)
        agent, model = body.get("agent"), body.get("model")
        if (agent is None) == (model is None):
            raise ApiError(400, "Exactly one of 'agent' or 'model' must be set.")
        if agent is not None and agent not in AGENTS:
            raise ApiError(404, f"Agent '{agent}' was not found.")
        if model is not None and model not in MODELS:
            raise ApiError(404, f"Model '{model}' was not found for API version.")
        if raw_input is None or not text:
            raise ApiError(400, "Field 'input' is required.")
        background = body.get("background") is True
        if agent is not None and not background:
            raise ApiError(400, "Agent interactions require background=true.")
        system = body.get("system_instruction")
        system_text = "".join(_texts(system)) if system is not None else None
        rule = self._pick_fault(ctx, text)
        await self._apply_request_fault(rule)
        input_tokens = estimate_tokens(text) + (estimate_tokens(system_text) if system_text else 0)
        self._check_tpm(now, input_tokens)
        output = output_text_for(text)
        out_tokens = estimate_tokens(output)
        factor = (
            _AGENT_THOUGHT_FACTOR
            if agent is not None
            else _MODEL_THOUGHT_FACTOR.get(model or "", 1)
        )
        duration = self.config.run_seconds if background else 0.0
        if rule is not None and rule.fault == "slow":
            duration = rule.seconds if rule.seconds is not None else 30.0
        run = Run(
            id=self._new_id("int"),
            item=ctx.item,
            agent=agent,
            model=model,
            input_text=text,
            system=system_text,
            labels=labels,
            created_mono=now,
            created_wall=time.time(),
            duration=duration,
            output_text=output,
            input_tokens=input_tokens,
            output_tokens=out_tokens,
            thought_tokens=out_tokens * factor,
        )
        if rule is not None and rule.fault == "run_failed":
            run.final_status = rule.status
            run.error_code = rule.error_code
            run.error_message = rule.message or f"Simulated run ending as {rule.status}."
        self._runs[run.id] = run
        stats = self._item(ctx.item)
        stats.launches += 1
        stats.runs.append(run.id)
        if rule is not None and rule.fault == "lost":
            self._lost.add(run.id)
        if rule is not None and rule.fault == "create_then_drop":
            raise _Drop()
        if not background:
            if duration > 0:
                await asyncio.sleep(duration)
            self._refresh(run, now + duration)
        return self._interaction(run)

    def _run_for(self, request: web.Request, ctx: _Ctx) -> Run:
        run_id = request.match_info["id"]
        run = self._runs.get(run_id)
        if run is None:
            raise ApiError(404, f"Interaction '{run_id}' was not found.")
        ctx.item = run.item
        return run

    async def _existing_run(self, request: web.Request, ctx: _Ctx) -> Run:
        """The run a get/cancel names, after the quota check and any fault scripted for it."""
        run = self._run_for(request, ctx)
        self._check_rpm(time.monotonic())
        if run.id in self._lost:
            raise ApiError(404, f"Interaction '{run.id}' was not found.")
        rule = self._pick_fault(ctx, run.input_text)
        if rule is not None and rule.fault == "lost":
            self._lost.add(run.id)
            raise ApiError(404, f"Interaction '{run.id}' was not found.")
        await self._apply_request_fault(rule)
        return run

    async def _get(self, request: web.Request, ctx: _Ctx) -> dict[str, Any]:
        run = self._run_for(request, ctx)
        self._item(run.item).gets += 1
        run = await self._existing_run(request, ctx)
        run.polled = True
        self._refresh(run, time.monotonic())
        return self._interaction(run)

    async def _cancel(self, request: web.Request, ctx: _Ctx) -> dict[str, Any]:
        run = self._run_for(request, ctx)
        self._item(run.item).cancels += 1
        run = await self._existing_run(request, ctx)
        now = time.monotonic()
        self._refresh(run, now)
        if run.status not in TERMINAL:
            run.status = "cancelled"
            run.updated_wall = time.time()
        return self._interaction(run)

    async def _delete(self, request: web.Request, ctx: _Ctx) -> dict[str, Any]:
        run = self._run_for(request, ctx)
        self._check_rpm(time.monotonic())
        self._refresh(run, time.monotonic())
        self._lost.add(run.id)
        return {}

    # ----------------------------------------------------------- generate
    async def _generate(self, request: web.Request, ctx: _Ctx) -> dict[str, Any]:
        model, _, method = request.match_info["tail"].partition(":")
        if method != "generateContent":
            raise ApiError(404, f"Method '{method or model}' is not supported by the simulator.")
        body = await self._json(request)
        contents = body.get("contents")
        if isinstance(contents, list):
            user = [c for c in contents if isinstance(c, dict) and c.get("role", "user") == "user"]
        else:
            user = [contents] if contents is not None else []
        text = "".join(_texts(user))
        ctx.item = content_item_id(text)
        labels = body.get("labels")
        if isinstance(labels, dict) and isinstance(labels.get(ITEM_LABEL), str):
            ctx.item = labels[ITEM_LABEL]
        self._item(ctx.item).creates += 1
        now = time.monotonic()
        self._check_rpm(now)
        if model not in MODELS:
            raise ApiError(
                404,
                f"models/{model} is not found for API version, or is not supported for generateContent.",
            )
        if not text:
            raise ApiError(400, "* GenerateContentRequest.contents: contents is not specified")
        rule = self._pick_fault(ctx, text)
        await self._apply_request_fault(rule)
        system = body.get("systemInstruction", body.get("system_instruction"))
        system_text = "".join(_texts(system)) if system is not None else ""
        prompt_tokens = estimate_tokens(text) + (estimate_tokens(system_text) if system_text else 0)
        self._check_tpm(now, prompt_tokens)
        if rule is not None and rule.fault == "run_failed":
            raise ApiError(500, rule.message or "An internal error has occurred.")
        stats = self._item(ctx.item)
        stats.launches += 1
        if rule is not None and rule.fault == "create_then_drop":
            raise _Drop()
        if rule is not None and rule.fault == "slow":
            await asyncio.sleep(rule.seconds if rule.seconds is not None else 30.0)
        output = output_text_for(text)
        out_tokens = estimate_tokens(output)
        thoughts = out_tokens * _MODEL_THOUGHT_FACTOR.get(model, 1)
        response_id = self._new_id("resp")
        stats.completed += 1
        stats.runs.append(response_id)
        self._results[response_id] = ctx.item
        usage: dict[str, Any] = {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": out_tokens,
            "totalTokenCount": prompt_tokens + out_tokens + thoughts,
        }
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        return {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": output}]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": usage,
            "modelVersion": model,
            "responseId": response_id,
        }
