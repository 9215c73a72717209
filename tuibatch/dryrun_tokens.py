"""``--dry-run --count-tokens``: the service counts each distinct model request's input tokens.

One ``client.aio.models.count_tokens`` call per distinct request (items that send the same
request share it), with the contents exactly as a launch would send them (``request_sdk.to_sdk``
of the stored request). The call is free and launches nothing. On the Gemini API the SDK counts
contents only (it refuses ``system_instruction``, ``tools`` and ``generation_config`` there), so a
system instruction is counted as contents of its own, once per model and instruction, and added;
tool declarations are not counted (the report says so). On Vertex AI the instruction and tools go
in the call's ``CountTokensConfig``. Agents are not counted: the Interactions API has no token
count. ``--count-tokens-sample N`` counts N distinct requests spread evenly over the file and
scales the others' local estimates by what the sample found (:class:`~tuibatch.dryrun.DryRun`).

A failed call (bad key, no network, unknown model...) stops the count: one line, and the dry
run exits non-zero having written nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from .dryrun import Counting, DryRun, Request

#: count_tokens calls in flight at once (the calls are free, but they are rate limited)
CONCURRENCY = 8


class CountError(Exception):
    """The count could not be made: the message is the one line the user sees."""


def pick(requests: list[Request], sample: int | None) -> list[Request]:
    """*sample* of the requests spread evenly over the file (all of them without a sample)."""
    if sample is None or sample >= len(requests):
        return list(requests)
    step = len(requests) / sample
    return [requests[int(i * step)] for i in range(sample)]


async def count_report(report: DryRun, *, sample: int | None = None) -> None:
    """Count the report's model requests (or a sample of them) with the service: sets each
    counted :attr:`Request.counted` and :attr:`DryRun.counting`. Raises CountError."""
    from .backends.gemini import CredentialsError, GeminiBackend, resolve_credentials

    requests = report.model_requests()
    chosen = pick(requests, sample)
    if not chosen:
        report.counting = Counting(0, 0)
        return
    try:
        creds = resolve_credentials()
    except CredentialsError as exc:
        raise CountError(f"cannot count tokens: {exc}") from None
    quiet = logging.getLogger("tuibatch.backends")  # its notes on the SDK are for runs
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        backend = GeminiBackend(creds, timeout_s=60.0)
    finally:
        quiet.setLevel(level)
    try:
        counter = _Counter(backend, vertex=creds.vertex)
        report.counting = Counting(len(chosen), len(requests))
        report.counting.tools_not_counted = await counter.run(chosen)
    finally:
        await backend.close()


class _Counter:
    def __init__(self, backend: Any, *, vertex: bool) -> None:
        self.backend = backend
        self.vertex = vertex
        self.sem = asyncio.Semaphore(CONCURRENCY)
        self.instructions: dict[tuple[str, str], asyncio.Future[int]] = {}

    async def run(self, chosen: list[Request]) -> bool:
        """Count every chosen request; whether any had tools that were not counted."""
        from .request_sdk import to_sdk

        tools = False
        jobs = []
        for r in chosen:
            sdk = to_sdk(r.request_json)
            assert sdk.config is not None and sdk.model is not None
            config = sdk.config
            tools = tools or (bool(config.tools) and not self.vertex)
            extra = None
            if config.system_instruction is not None and not self.vertex:
                extra = self._instruction(sdk.model, config.system_instruction)
            task = asyncio.ensure_future(self._one(sdk.model, sdk.contents, config))
            jobs.append((r, task, extra))
        every: list[asyncio.Future[int]] = [t for _r, t, _e in jobs]
        every += self.instructions.values()
        try:
            await asyncio.gather(*every)
        except BaseException:  # the first failure stops the count: the rest are cancelled
            for future in every:
                future.cancel()
            await asyncio.gather(*every, return_exceptions=True)
            raise
        for r, task, extra in jobs:
            r.counted = task.result() + (extra.result() if extra is not None else 0)
        return tools

    def _instruction(self, model: str, instruction: Any) -> asyncio.Future[int]:
        """The instruction counted as contents, once per model and instruction."""
        text = (
            instruction.model_dump_json()
            if hasattr(instruction, "model_dump_json")
            else json.dumps(instruction)
        )
        key = (model, text)
        task = self.instructions.get(key)
        if task is None:
            task = self.instructions[key] = asyncio.ensure_future(
                self._one(model, instruction, None)
            )
        return task

    async def _one(self, model: str, contents: Any, config: Any) -> int:
        from google.genai import types

        call_config = None
        if config is not None and self.vertex:
            call_config = types.CountTokensConfig(
                system_instruction=config.system_instruction, tools=config.tools
            )
        async with self.sem:
            try:
                got = await self.backend.client.aio.models.count_tokens(
                    model=model, contents=contents, config=call_config
                )
            except Exception as exc:
                f = self.backend.failure(exc, launch=False, lookup=True)
                raise CountError(
                    f"counting tokens with {model} failed ({f.headline}): {f.short()}; "
                    "nothing was launched or written"
                ) from None
        if got.total_tokens is None:
            raise CountError(f"counting tokens with {model}: the service gave no total")
        return int(got.total_tokens)
