"""Answers through the real SDK over HTTP: statuses, usage, truncated or blocked output and cancel,
read by GeminiBackend into RunResult. The SDK-drift tests fail when the installed google-genai
lists a status, finish reason or block reason tuibatch does not handle."""

from __future__ import annotations

import asyncio
import typing
from collections.abc import AsyncIterator
from typing import Any

import pytest
from google.genai import interactions, types

from tuibatch.backends.base import STATUS_MEANING, LaunchSpec, RunResult
from tuibatch.backends.gemini import Credentials, GeminiBackend
from tuibatch.backends.gemini_shapes import BLOCK_REASONS, FINISH_REASONS, NO_TEXT
from tuibatch.pricing import load_prices
from tuibatch.sim import SimulatorThread
from tuibatch.states import TERMINAL_RUN, RunStatus

KEY = "dummy-test-key"
AGENT = LaunchSpec(key="k-1", input_text="a short question about cats", agent="sim-agent",
                   labels={"tuibatch_item": "k-1"})  # fmt: skip
MODEL = LaunchSpec(key="k-1", input_text="a short question about cats", model="sim-model")


@pytest.fixture
async def backend(sim: SimulatorThread) -> AsyncIterator[GeminiBackend]:
    b = GeminiBackend(Credentials(api_key=KEY, base_url=sim.url), timeout_s=5)
    yield b
    await b.close()


async def run_to(backend: GeminiBackend, spec: LaunchSpec, want: str | None = None) -> RunResult:
    """Launch, then poll until terminal (or until the status is `want`); bounded."""
    r = await backend.launch(spec)
    for _ in range(200):
        if (want is None and r.terminal) or (want is not None and r.status == want):
            return r
        await asyncio.sleep(0.02)
        r = await backend.poll(r.run_id)
    raise AssertionError(f"run stayed {r.status!r}")


def sdk_literal(alias: Any) -> set[str]:
    return {v for arg in typing.get_args(alias) for v in typing.get_args(arg)}


# ------------------------------------------------------------------------- the SDK's lists


def test_every_interaction_status_the_sdk_lists_is_handled() -> None:
    statuses = sdk_literal(interactions.InteractionStatus)
    assert statuses, "the SDK's InteractionStatus literal could not be read"
    assert statuses <= {s.value for s in RunStatus}
    assert statuses <= {s.value for s in STATUS_MEANING}


def test_every_finish_reason_the_sdk_lists_is_handled() -> None:
    assert {m.value for m in types.FinishReason} <= set(FINISH_REASONS)


def test_every_block_reason_the_sdk_lists_is_handled() -> None:
    assert {m.value for m in types.BlockedReason} <= set(BLOCK_REASONS)


# ---------------------------------------------------------------------------- statuses


@pytest.mark.parametrize("status", sorted(sdk_literal(interactions.InteractionStatus) - {"queued"}))
async def test_each_status_is_parsed(
    sim: SimulatorThread, backend: GeminiBackend, status: str
) -> None:
    sim.set_faults([{"any": True, "fault": "run_status", "status": status, "seconds": 0.05}])
    r = await run_to(backend, AGENT, want=status)
    assert r.status == status and r.run_status is RunStatus(status)
    assert r.terminal is (RunStatus(status) in TERMINAL_RUN)


async def test_a_status_nobody_listed_is_kept_raw_and_not_terminal(
    sim: SimulatorThread, backend: GeminiBackend
) -> None:
    sim.set_faults(
        [{"any": True, "fault": "run_status", "status": "paused_for_review", "seconds": 0.05}]
    )
    r = await run_to(backend, AGENT, want="paused_for_review")
    assert r.run_status is None and not r.terminal  # the engine bounds the wait


async def test_a_completed_interaction_without_text_is_truncated(
    sim: SimulatorThread, backend: GeminiBackend
) -> None:
    sim.set_faults([{"any": True, "fault": "usage", "output": "none"}])
    r = await run_to(backend, AGENT)
    assert r.status == "completed" and r.truncated and r.stop_reason == NO_TEXT
    assert not (r.output or "").strip()


async def test_a_normal_run_is_complete_and_known(
    sim: SimulatorThread, backend: GeminiBackend
) -> None:
    r = await run_to(backend, AGENT)
    assert r.status == "completed" and r.output and not r.truncated and r.stop_reason is None
    assert r.usage.known and r.usage.input_tokens > 0 and r.usage.output_tokens > 0


# ------------------------------------------------------------------------------- usage


async def test_interaction_usage_with_cache_tools_and_grounding(
    sim: SimulatorThread, backend: GeminiBackend
) -> None:
    sim.set_faults([{"any": True, "fault": "usage", "cached_tokens": 5, "tool_use_tokens": 7,
                     "grounding": {"google_search": 3, "google_maps": 2}}])  # fmt: skip
    r = await run_to(backend, AGENT)
    u = r.usage
    assert u.known and u.cached_tokens == 5 and u.tool_use_tokens == 7 and u.grounding_calls == 5
    assert u.input_tokens >= 5


@pytest.mark.parametrize("spec", [AGENT, MODEL], ids=["agent", "model"])
async def test_no_usage_block_means_unknown_cost(
    sim: SimulatorThread, backend: GeminiBackend, spec: LaunchSpec
) -> None:
    sim.set_faults([{"any": True, "fault": "usage", "usage": "none"}])
    r = await run_to(backend, spec)
    assert r.status == "completed" and r.output
    assert not r.usage.known
    assert load_prices().cost_of(spec.target, r.usage) is None  # unknown, never $0


async def test_generate_usage_with_cache_and_tools(
    sim: SimulatorThread, backend: GeminiBackend
) -> None:
    sim.set_faults([{"any": True, "fault": "usage", "cached_tokens": 4, "tool_use_tokens": 9}])
    r = await backend.launch(MODEL)
    assert r.terminal and r.usage.known
    assert r.usage.cached_tokens == 4 and r.usage.tool_use_tokens == 9
    assert r.usage.input_tokens >= 4 and r.usage.output_tokens > 0


# ------------------------------------------------------------------ generate_content answers


@pytest.mark.parametrize("reason", sorted(m.value for m in types.FinishReason))
async def test_every_finish_reason(
    sim: SimulatorThread, backend: GeminiBackend, reason: str
) -> None:
    sim.set_faults([{"any": True, "fault": "finish", "reason": reason}])
    r = await backend.launch(MODEL)
    assert r.terminal
    if reason == "STOP":
        assert r.status == "completed" and not r.truncated and r.stop_reason is None
        return
    assert r.truncated and r.stop_reason is not None and r.stop_reason.startswith(reason)
    if reason == "MAX_TOKENS":  # half an answer: kept, but not a normal stop
        assert r.status == "completed" and r.output
    else:
        assert r.status == "failed" and r.output is None and r.error == r.stop_reason
    assert r.usage.known


@pytest.mark.parametrize("reason", sorted(m.value for m in types.BlockedReason))
async def test_a_blocked_prompt(sim: SimulatorThread, backend: GeminiBackend, reason: str) -> None:
    sim.set_faults([{"any": True, "fault": "blocked", "reason": reason}])
    r = await backend.launch(MODEL)
    assert r.terminal and r.status == "failed" and r.truncated and r.output is None
    assert r.stop_reason is not None and r.stop_reason.startswith(f"prompt blocked: {reason}")


async def test_no_candidates(sim: SimulatorThread, backend: GeminiBackend) -> None:
    sim.set_faults([{"any": True, "fault": "empty_candidates"}])
    r = await backend.launch(MODEL)
    assert r.status == "failed" and r.truncated and r.stop_reason == "no candidates"


async def test_partial_text_with_a_normal_stop_is_complete(
    sim: SimulatorThread, backend: GeminiBackend
) -> None:
    sim.set_faults([{"any": True, "fault": "finish", "reason": "STOP", "output": "partial"}])
    r = await backend.launch(MODEL)
    assert r.status == "completed" and r.output and not r.truncated


# ------------------------------------------------------------------------------- cancel


async def test_cancel_returns_the_run_as_the_service_left_it(
    sim: SimulatorThread, backend: GeminiBackend
) -> None:
    sim.set_faults([{"any": True, "fault": "slow", "seconds": 30}])
    run = await backend.launch(AGENT)
    r = await backend.cancel(run.run_id)
    assert r is not None and r.run_id == run.run_id and r.status == "cancelled" and r.terminal


async def test_a_cancel_that_lost_the_race_returns_the_paid_answer(
    sim: SimulatorThread, backend: GeminiBackend
) -> None:
    sim.set_faults([{"any": True, "fault": "slow", "seconds": 30},
                    {"any": True, "fault": "cancel_race"}])  # fmt: skip
    run = await backend.launch(AGENT)
    r = await backend.cancel(run.run_id)
    assert r is not None and r.status == "completed" and r.output and r.usage.known


async def test_cancelling_a_direct_model_call_is_nothing(backend: GeminiBackend) -> None:
    r = await backend.launch(MODEL)
    assert r.terminal
    assert await backend.cancel("gc-0123456789abcdef") is None
