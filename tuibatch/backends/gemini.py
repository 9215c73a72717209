"""Gemini through the official google-genai SDK (async client).

The SDK's own retries are switched off: hidden retries would be invisible to the
checkpoint and the cost meter, so every request the service sees is one attempt
the engine decided on and recorded.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..policy import Failure, Kind, classify, parse_retry_after, read_error_body
from .base import LaunchSpec, RunResult, Usage


class CredentialsError(Exception):
    """No usable credentials: the message is the one line the user sees."""


@dataclass(frozen=True)
class Credentials:
    api_key: str | None = None
    vertex: bool = False
    project: str | None = None
    location: str | None = None
    base_url: str | None = None
    api_version: str | None = None

    def __repr__(self) -> str:  # never print the key
        return f"Credentials(vertex={self.vertex}, base_url={self.base_url!r}, key={'set' if self.api_key else 'unset'})"


def _truthy(v: str | None) -> bool:
    return (v or "").strip().lower() in ("1", "true", "yes", "on")


def resolve_credentials(env: Mapping[str, str] | None = None, *, base_url: str | None = None) -> Credentials:
    """Follow the SDK's conventions; fail with one clear line before anything is claimed."""
    env = os.environ if env is None else env
    base = base_url or env.get("GOOGLE_GEMINI_BASE_URL") or None
    version = env.get("GOOGLE_GENAI_API_VERSION") or None
    if _truthy(env.get("GOOGLE_GENAI_USE_VERTEXAI")):
        project, location = env.get("GOOGLE_CLOUD_PROJECT"), env.get("GOOGLE_CLOUD_LOCATION")
        api_key = env.get("GOOGLE_API_KEY") or None
        if not api_key and not (project and location):
            raise CredentialsError(
                "GOOGLE_GENAI_USE_VERTEXAI is set but GOOGLE_CLOUD_PROJECT and GOOGLE_CLOUD_LOCATION are not")
        return Credentials(api_key=api_key, vertex=True, project=project, location=location,
                           base_url=base, api_version=version)
    # The SDK prefers GOOGLE_API_KEY when both are set; so do we.
    key = env.get("GOOGLE_API_KEY") or env.get("GEMINI_API_KEY")
    if not key:
        raise CredentialsError(
            "no API key: set GEMINI_API_KEY (or GOOGLE_API_KEY), or run `tuibatch demo` to try the local simulator")
    return Credentials(api_key=key, base_url=base, api_version=version)


class GeminiBackend:
    """Managed agents through Interactions, models through generate_content."""

    def __init__(self, creds: Credentials, *, timeout_s: float = 60.0):
        from google import genai
        from google.genai import types

        self._creds = creds
        http = types.HttpOptions(
            base_url=creds.base_url,
            api_version=creds.api_version,
            timeout=int(timeout_s * 1000),
            retry_options=types.HttpRetryOptions(attempts=1),
        )
        if creds.vertex:
            self.client = genai.Client(vertexai=True, project=creds.project, location=creds.location,
                                       api_key=creds.api_key if not creds.project else None,
                                       http_options=http)
        else:
            self.client = genai.Client(api_key=creds.api_key, http_options=http)
        self._types = types

    # ------------------------------------------------------------------ calls

    async def launch(self, spec: LaunchSpec) -> RunResult:
        if spec.agent:
            kwargs: dict[str, Any] = {"agent": spec.agent, "input": spec.input_text, "background": True}
            if spec.labels:
                kwargs["labels"] = spec.labels
            if spec.instruction:
                kwargs["system_instruction"] = spec.instruction
            try:
                it = await self.client.aio.interactions.create(**kwargs)
            except Exception as exc:
                raise self.failure(exc, launch=True) from None
            return self._interaction(it)
        model = spec.model or ""
        config = self._types.GenerateContentConfig(
            system_instruction=spec.instruction or None,
            labels=spec.labels or None if self._creds.vertex else None,
        )
        try:
            resp = await self.client.aio.models.generate_content(model=model, contents=spec.input_text, config=config)
        except Exception as exc:
            raise self.failure(exc, launch=True) from None
        um = resp.usage_metadata
        usage = Usage(
            input_tokens=(um.prompt_token_count or 0) if um else 0,
            output_tokens=(um.candidates_token_count or 0) if um else 0,
            thought_tokens=(um.thoughts_token_count or 0) if um else 0,
        )
        run_id = getattr(resp, "response_id", None) or f"gc-{os.urandom(8).hex()}"
        try:
            text = resp.text
        except Exception:  # a blocked or empty candidate has no text
            text = None
        status = "completed" if text is not None else "failed"
        error = None if text is not None else _finish_reason(resp)
        return RunResult(run_id=run_id, status=status, output=text, usage=usage, error=error)

    async def poll(self, run_id: str) -> RunResult:
        try:
            it = await self.client.aio.interactions.get(run_id)
        except Exception as exc:
            raise self.failure(exc, launch=False) from None
        return self._interaction(it)

    async def cancel(self, run_id: str) -> None:
        if run_id.startswith("gc-"):
            return
        try:
            await self.client.aio.interactions.cancel(run_id)
        except Exception as exc:
            raise self.failure(exc, launch=False) from None

    async def close(self) -> None:
        try:
            await self.client.aio.aclose()
        except Exception:
            pass

    # ---------------------------------------------------------------- parsing

    def _interaction(self, it: Any) -> RunResult:
        status = str(getattr(it, "status", None) or "in_progress")
        usage = Usage()
        u = getattr(it, "usage", None)
        if u is not None:
            usage = Usage(
                input_tokens=u.total_input_tokens or 0,
                output_tokens=u.total_output_tokens or 0,
                thought_tokens=u.total_thought_tokens or 0,
            )
        output = None
        try:
            output = it.output_text
        except Exception:
            output = None
        error = None
        errors = getattr(it, "errors", None)
        if errors:
            error = "; ".join(
                f"{getattr(e, 'code', '') or ''} {getattr(e, 'message', '') or ''}".strip() for e in errors)
        if error:  # a run's error text goes to the checkpoint, the log and the export
            error = self._scrub(error)
        return RunResult(run_id=str(it.id), status=status, output=output, usage=usage, error=error)

    def _scrub(self, text: str) -> str:
        key = self._creds.api_key
        return text.replace(key, "***") if key and key in text else text

    def failure(self, exc: BaseException, *, launch: bool) -> Failure:
        """Map the SDK's real exception classes onto the engine's failure kinds."""
        from google.genai import _interactions_errors as ie
        from google.genai import errors as ge

        code: int | None = None
        body: Any = None
        headers: Any = None
        network = False
        cls = type(exc).__name__
        if isinstance(exc, ie.APIStatusError):
            code, body = exc.status_code, exc.body
            headers = getattr(getattr(exc, "response", None), "headers", None)
        elif isinstance(exc, ge.APIError):
            code, body = exc.code, exc.details
            headers = getattr(getattr(exc, "response", None), "headers", None)
        elif isinstance(exc, ie.APIError) or _is_network(exc):
            network = True
        elif type(exc).__module__.startswith("google.auth"):
            # no usable Google credentials (Vertex AI without ADC, an expired token): every call would fail
            return Failure(Kind.BATCH, self._scrub(str(exc)[:300]), error_class="credentials")
        else:
            return Failure(Kind.PERMANENT, self._scrub(f"{cls}: {exc}"), error_class="unexpected")
        status, message, delay, quota = read_error_body(body)
        if headers is not None:
            try:
                ra = parse_retry_after(headers.get("retry-after"))
            except Exception:
                ra = None
            if ra is not None:
                delay = max(delay or 0.0, ra)
        if network:
            timeout = "timeout" in cls.lower() or isinstance(exc, (asyncio.TimeoutError, TimeoutError))
            msg = ("timed out" if timeout else "connection failed") + (f" ({cls}: {exc})" if str(exc) else f" ({cls})")
            return Failure(Kind.TRANSIENT, self._scrub(msg), error_class="timeout" if timeout else "network",
                           in_doubt=launch and not _never_sent(exc))
        kind = classify(code, quota_id=quota, on_launch=launch)
        lost = code == 404 and not launch
        text = message or str(exc)
        return Failure(kind, self._scrub(text[:500]), code=code, status=status, retry_delay=delay,
                       quota_id=quota, lost=lost, error_class=cls)


def _is_network(exc: BaseException) -> bool:
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, ConnectionError)):
        return True
    mod = type(exc).__module__
    if mod.startswith(("httpx", "httpcore", "aiohttp")):
        return True
    return isinstance(exc, OSError)


def _never_sent(exc: BaseException) -> bool:
    """A refused or failed connection: the request never reached the service, so nothing is in doubt."""
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            break
        name = type(seen).__name__
        if name in ("ConnectError", "ConnectTimeout", "ClientConnectorError", "ConnectionRefusedError") \
                or "All connection attempts failed" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _finish_reason(resp: Any) -> str:
    try:
        cand = resp.candidates[0]
        return f"no text (finish reason {cand.finish_reason})"
    except Exception:
        return "no text in the response"
