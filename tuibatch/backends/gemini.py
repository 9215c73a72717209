"""Gemini through the official google-genai SDK (async client).

The SDK's own retries are switched off: hidden retries would be invisible to the
checkpoint and the cost meter, so every request the service sees is one attempt
the engine decided on and recorded. For the same reason ``generate_content``'s automatic
continuation (extra billed requests after a ``CONTINUATION`` stop) is off: such an answer
comes back truncated, with its reason.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..policy import Failure
from . import sdk_speedup
from .base import LaunchSpec, RunResult
from .gemini_shapes import failure_of, generate_result, interaction_result

#: generate_content answers only when the model is done: a thinking model can take minutes
GENERATE_TIMEOUT_S = 600.0
#: interactions create (background=True), get and cancel answer at once
INTERACTIONS_TIMEOUT_S = 60.0


class CredentialsError(Exception):
    """No usable credentials: the message is the one line the user sees."""


@dataclass(frozen=True)
class Credentials:
    api_key: str | None = None
    vertex: bool = False
    project: str | None = None
    location: str | None = None
    base_url: str | None = None
    #: the API version as the SDK itself would resolve GOOGLE_GENAI_API_VERSION (see sdk_api_version)
    api_version: str | None = None

    def __repr__(self) -> str:  # never print the key
        key = "set" if self.api_key else "unset"
        return f"Credentials(vertex={self.vertex}, base_url={self.base_url!r}, key={key})"


def _truthy(v: str | None) -> bool:
    return (v or "").strip().lower() in ("1", "true", "yes", "on")


def sdk_api_version(raw: str | None, *, vertex: bool) -> str | None:
    """GOOGLE_GENAI_API_VERSION mapped exactly as google-genai 3.6.1 maps it.

    ``google/genai/_api_client.py``, ``BaseApiClient.__init__``: for the Gemini API
    ``'v1beta' if env_api_version == 'beta' else (env_api_version or GOOGLE_AI_API_DEFAULT_VERSION)``;
    for Vertex AI ``'v1beta1' if not env_api_version or env_api_version == 'beta' else
    env_api_version``. Passing the raw value through HttpOptions would override that mapping
    (``patch_http_options``) and send ``beta`` as a path segment. None leaves the SDK's default.
    """
    raw = (raw or "").strip() or None
    if raw == "beta":
        return "v1beta1" if vertex else "v1beta"
    return raw


def resolve_credentials(
    env: Mapping[str, str] | None = None, *, base_url: str | None = None
) -> Credentials:
    """Follow the SDK's conventions; fail with one clear line before anything is claimed."""
    env = os.environ if env is None else env
    base = base_url or env.get("GOOGLE_GEMINI_BASE_URL") or None
    raw_version = env.get("GOOGLE_GENAI_API_VERSION") or None
    if _truthy(env.get("GOOGLE_GENAI_USE_VERTEXAI")):
        project, location = env.get("GOOGLE_CLOUD_PROJECT"), env.get("GOOGLE_CLOUD_LOCATION")
        api_key = env.get("GOOGLE_API_KEY") or None
        if not api_key and not (project and location):
            raise CredentialsError(
                "GOOGLE_GENAI_USE_VERTEXAI is set but GOOGLE_CLOUD_PROJECT and "
                "GOOGLE_CLOUD_LOCATION are not"
            )
        return Credentials(
            api_key=api_key,
            vertex=True,
            project=project,
            location=location,
            base_url=base,
            api_version=sdk_api_version(raw_version, vertex=True),
        )
    # The SDK prefers GOOGLE_API_KEY when both are set; so do we.
    key = env.get("GOOGLE_API_KEY") or env.get("GEMINI_API_KEY")
    if not key:
        raise CredentialsError(
            "no API key: set GEMINI_API_KEY (or GOOGLE_API_KEY), or run `tuibatch demo` to try "
            "the local simulator"
        )
    return Credentials(
        api_key=key, base_url=base, api_version=sdk_api_version(raw_version, vertex=False)
    )


class GeminiBackend:
    """Managed agents through Interactions, models through generate_content.

    ``timeout_s=None`` means tuibatch's defaults: :data:`GENERATE_TIMEOUT_S` for a model call,
    :data:`INTERACTIONS_TIMEOUT_S` for the interactions calls; a number sets both.
    """

    def __init__(self, creds: Credentials, *, timeout_s: float | None = None):
        from google import genai
        from google.genai import types

        self._creds = creds
        #: the SDK's per-call model-class rebuild, cached (version-guarded; TUIBATCH_SDK_SPEEDUP=0 off)
        self.speedup = sdk_speedup.install()
        self.generate_timeout_s = GENERATE_TIMEOUT_S if timeout_s is None else timeout_s
        self.interactions_timeout_s = INTERACTIONS_TIMEOUT_S if timeout_s is None else timeout_s
        http = types.HttpOptions(
            base_url=creds.base_url,
            api_version=creds.api_version,
            timeout=int(self.generate_timeout_s * 1000),
            retry_options=types.HttpRetryOptions(attempts=1),
        )
        if creds.vertex:
            self.client = genai.Client(
                vertexai=True,
                project=creds.project,
                location=creds.location,
                api_key=creds.api_key if not creds.project else None,
                http_options=http,
            )
        else:
            self.client = genai.Client(api_key=creds.api_key, http_options=http)
        self._types = types

    # ------------------------------------------------------------------ calls

    async def launch(self, spec: LaunchSpec) -> RunResult:
        if spec.request_json is not None:
            return await self._launch_request(spec)
        # a row from a first-release checkpoint: its text to the target, as that release sent it
        if spec.agent:
            kwargs: dict[str, Any] = {"agent": spec.agent, "input": spec.input_text}
            if spec.instruction:
                kwargs["system_instruction"] = spec.instruction
            return await self._create(kwargs, spec.labels)
        config = self._types.GenerateContentConfig(system_instruction=spec.instruction or None)
        return await self._generate(spec.model or "", spec.input_text, config, spec.labels)

    async def _launch_request(self, spec: LaunchSpec) -> RunResult:
        """Send the stored request exactly as checked (``request_sdk.to_sdk``)."""
        from ..request_sdk import to_sdk

        assert spec.request_json is not None
        r = to_sdk(spec.request_json)
        if r.interaction is not None:
            return await self._create(dict(r.interaction), spec.labels)
        assert r.config is not None and r.contents is not None
        return await self._generate(r.model or "", r.contents, r.config, spec.labels)

    async def _create(self, kwargs: dict[str, Any], labels: dict[str, str]) -> RunResult:
        kwargs.update(background=True, timeout=self.interactions_timeout_s)
        if labels:
            kwargs["labels"] = labels
        try:
            it = await self.client.aio.interactions.create(**kwargs)
        except Exception as exc:
            raise self.failure(exc, launch=True) from None
        return interaction_result(it, self._scrub)

    async def _generate(
        self, model: str, contents: Any, config: Any, labels: dict[str, str]
    ) -> RunResult:
        # Labels only on Vertex AI (the Gemini API refuses them); no automatic continuation:
        # every billed request is one the engine decided on.
        update: dict[str, Any] = {"automatic_continuation": False}
        if self._creds.vertex and labels:
            update["labels"] = {**(config.labels or {}), **labels}
        config = config.model_copy(update=update)
        try:
            resp = await self.client.aio.models.generate_content(
                model=model, contents=contents, config=config
            )
        except Exception as exc:
            raise self.failure(exc, launch=True) from None
        return generate_result(resp)

    async def poll(self, run_id: str) -> RunResult:
        try:
            it = await self.client.aio.interactions.get(run_id, timeout=self.interactions_timeout_s)
        except Exception as exc:
            raise self.failure(exc, launch=False) from None
        return interaction_result(it, self._scrub)

    async def cancel(self, run_id: str) -> RunResult | None:
        """Cancel a run; the Interaction the service returns tells whether it had already
        completed (then its output is paid work to keep). None for a direct model call."""
        if run_id.startswith("gc-"):
            return None
        try:
            it = await self.client.aio.interactions.cancel(
                run_id, timeout=self.interactions_timeout_s
            )
        except Exception as exc:
            raise self.failure(exc, launch=False) from None
        return interaction_result(it, self._scrub)

    async def close(self) -> None:
        try:
            await self.client.aio.aclose()
        except Exception:
            pass

    # ----------------------------------------------------------- read-only probes (doctor)

    async def list_models(self) -> list[str]:
        """The first page of model names the key can see (no tokens billed)."""
        try:
            pager = await self.client.aio.models.list(config={"page_size": 100})
        except Exception as exc:
            raise self.failure(exc, launch=False, lookup=True) from None
        return [str(m.name) for m in pager.page if getattr(m, "name", None)]

    async def probe_generate(self, model: str, text: str, max_output_tokens: int) -> RunResult:
        """One small generate_content call with a capped output (tuibatch doctor). It bills."""
        config = self._types.GenerateContentConfig(
            max_output_tokens=max_output_tokens, automatic_continuation=False
        )
        try:
            resp = await self.client.aio.models.generate_content(
                model=model, contents=text, config=config
            )
        except Exception as exc:
            raise self.failure(exc, launch=True) from None
        return generate_result(resp)

    async def get_agent(self, agent: str) -> str:
        """Look an agent up by id (no tokens billed); returns the name the service gives it."""
        try:
            with warnings.catch_warnings():  # "Agents usage is experimental"
                warnings.simplefilter("ignore", UserWarning)
                agents = self.client.aio.agents
            found = await agents.get(agent, timeout=self.interactions_timeout_s)
        except Exception as exc:
            raise self.failure(exc, launch=False, lookup=True) from None
        return str(getattr(found, "name", None) or getattr(found, "id", None) or agent)

    # ---------------------------------------------------------------- parsing

    def _scrub(self, text: str) -> str:
        key = self._creds.api_key
        return text.replace(key, "***") if key and key in text else text

    def failure(self, exc: BaseException, *, launch: bool, lookup: bool = False) -> Failure:
        """Map an SDK exception onto the engine's failure kinds (see gemini_shapes.failure_of)."""
        return failure_of(exc, launch=launch, scrub=self._scrub, lookup=lookup)
