"""The simulator can script every value the installed SDK's types allow, and fails loudly when
the SDK learns a new one (a new status, finish reason, block reason or agent)."""

from __future__ import annotations

import typing
from collections.abc import AsyncIterator
from typing import Any

import pytest
from google import genai
from google.genai import types

from tuibatch.sim import AGENTS, MODELS, SimConfig, Simulator
from tuibatch.sim.batches import render
from tuibatch.sim.vocabulary import (
    BATCH_STATES,
    BLOCK_REASONS,
    FILE_STATES,
    FINISH_REASONS,
    GROUNDING_TOOLS,
    INTERACTION_STATUSES,
    JOB_STATES,
    UNKNOWN_STATUS,
)


def literal_values(annotation: Any) -> set[str]:
    """Every string in the Literal types inside ``annotation`` (through Optional, Union, List)."""
    if typing.get_origin(annotation) is typing.Literal:
        return {v for v in typing.get_args(annotation) if isinstance(v, str)}
    found: set[str] = set()
    for arg in typing.get_args(annotation):
        found |= literal_values(arg)
    value = getattr(annotation, "__value__", None)  # a TypeAliasType
    if value is not None:
        found |= literal_values(value)
    return found


def make_client(url: str) -> Any:
    options = types.HttpOptions(
        base_url=url, retry_options=types.HttpRetryOptions(attempts=1), timeout=5000
    )
    return genai.Client(api_key="dummy", http_options=options).aio


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    s = Simulator(SimConfig())
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
async def interaction_type(sim: Simulator) -> type:
    """The SDK's Interaction model class, taken from a real answer (no private import)."""
    result = await make_client(sim.url).interactions.create(model="sim-model", input="x")
    return type(result)


async def test_every_sdk_status_is_known(interaction_type: type) -> None:
    sdk = literal_values(interaction_type.model_fields["status"].annotation)  # type: ignore[attr-defined]
    assert len(sdk) >= 10, sdk
    missing = sdk - set(INTERACTION_STATUSES)
    assert not missing, f"the SDK lists statuses the simulator cannot script: {sorted(missing)}"
    assert UNKNOWN_STATUS not in sdk


async def test_every_sdk_agent_is_known(interaction_type: type) -> None:
    agents = literal_values(interaction_type.model_fields["agent"].annotation)  # type: ignore[attr-defined]
    assert agents
    assert not agents - AGENTS, f"new agents in the SDK: {sorted(agents - AGENTS)}"


async def test_the_text_models_are_ones_the_sdk_lists(interaction_type: type) -> None:
    models = literal_values(interaction_type.model_fields["model"].annotation)  # type: ignore[attr-defined]
    assert not MODELS - models - {"sim-model"}, sorted(MODELS - models)


def test_every_sdk_finish_and_block_reason_is_known() -> None:
    finish = {m.value for m in types.FinishReason}
    blocked = {m.value for m in types.BlockedReason}
    assert not finish - set(FINISH_REASONS), f"new finish reasons: {finish - set(FINISH_REASONS)}"
    assert not blocked - set(BLOCK_REASONS), f"new block reasons: {blocked - set(BLOCK_REASONS)}"


def test_every_grounding_tool_is_known() -> None:
    from google.genai._gaos.types.interactions.groundingtoolcount import GroundingToolCount

    sdk = literal_values(GroundingToolCount.model_fields["type"].annotation)
    assert sdk and not sdk - set(GROUNDING_TOOLS)


@pytest.mark.parametrize("status", [*INTERACTION_STATUSES, UNKNOWN_STATUS])
async def test_each_status_can_be_scripted_and_parses(sim: Simulator, status: str) -> None:
    sim.set_faults([{"any": True, "fault": "run_status", "status": status}])
    client = make_client(sim.url)
    created = await client.interactions.create(agent="sim-agent", input="status", background=True)
    result = await client.interactions.get(created.id)
    assert result.status == status
    assert bool(result.output_text) == (status == "completed")


@pytest.mark.parametrize("reason", FINISH_REASONS)
async def test_each_finish_reason_can_be_scripted_and_parses(sim: Simulator, reason: str) -> None:
    sim.set_faults([{"any": True, "fault": "finish", "reason": reason}])
    response = await make_client(sim.url).models.generate_content(
        model="sim-model", contents="finish"
    )
    assert response.candidates[0].finish_reason == types.FinishReason(reason)


@pytest.mark.parametrize("reason", BLOCK_REASONS)
async def test_each_block_reason_can_be_scripted_and_parses(sim: Simulator, reason: str) -> None:
    sim.set_faults([{"any": True, "fault": "blocked", "reason": reason}])
    response = await make_client(sim.url).models.generate_content(
        model="sim-model", contents="blocked"
    )
    assert response.prompt_feedback.block_reason == types.BlockedReason(reason)
    assert not response.candidates


def test_every_sdk_job_and_file_state_is_known() -> None:
    job_states = {m.value for m in types.JobState}
    assert not job_states - set(JOB_STATES), f"new job states: {job_states - set(JOB_STATES)}"
    assert set(BATCH_STATES.values()) <= job_states
    file_states = {m.value for m in types.FileState}
    assert not file_states - set(FILE_STATES), f"new file states: {file_states - set(FILE_STATES)}"


@pytest.mark.parametrize("state", JOB_STATES)
async def test_each_job_state_can_be_scripted_and_parses(sim: Simulator, state: str) -> None:
    """Sent as the Developer API spells it (BATCH_STATE_* where it has one), read as JobState."""
    sim.set_faults([{"any": True, "fault": "job_state", "state": state, "seconds": 0}])
    client = make_client(sim.url)
    job = await client.batches.create(model="sim-model", src=[types.InlinedRequest(contents="x")])
    got = await client.batches.get(name=job.name)
    assert got.state == types.JobState(state)
    wire = render(sim, sim.batch_jobs[job.name.removeprefix("batches/")])["metadata"]["state"]
    assert wire in BATCH_STATES or (wire == state and state not in BATCH_STATES.values())
    assert BATCH_STATES.get(wire, wire) == state
