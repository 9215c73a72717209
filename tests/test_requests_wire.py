"""What an items line sends, as the service receives it: the real SDK over HTTP to the simulator.

Each request is read from a line (``itemsfile``), launched by ``GeminiBackend`` from its stored
``request_json``, and compared with the body the simulator recorded (``/_sim/bodies``), on both
API versions. Google reads REST field names in camelCase and snake_case alike (the SDK itself
sends some nested ones in snake_case), so field *names* are compared camelCased; every value,
and a schema whole (names included), must arrive exactly as written.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tuibatch.backends.base import LaunchSpec, RunResult
from tuibatch.backends.gemini import GeminiBackend, resolve_credentials
from tuibatch.items import key_label
from tuibatch.itemsfile import iter_specs
from tuibatch.output_check import check_output
from tuibatch.request_spec import RequestSpec, SpecDefaults
from tuibatch.sim import SimulatorThread

VERSIONS = ("v1", "v1beta")
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n not really").decode()
#: property names in snake_case and camelCase: a schema is data, never renamed
SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "first_author": {"type": "string"},
        "pageCount": {"type": "integer", "minimum": 1, "maximum": 900},
        "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
    },
    "required": ["title", "first_author", "pageCount", "tags"],
    "additionalProperties": False,
}
#: free-form values whose field names are data
FREE = {"responseJsonSchema", "responseSchema", "schema", "parametersJsonSchema"}


def camel(value: Any, *, free: bool = False) -> Any:
    """Field names camelCased, recursively (not inside a schema); values untouched."""
    if isinstance(value, list):
        return [camel(v, free=free) for v in value]
    if not isinstance(value, dict) or free:
        return value
    out = {}
    for k, v in value.items():
        name = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), k)
        out[name] = camel(v, free=name in FREE)
    return out


@pytest.fixture(params=VERSIONS)
async def backend(request: pytest.FixtureRequest, sim: SimulatorThread) -> AsyncIterator[Any]:
    """A backend whose API version comes from GOOGLE_GENAI_API_VERSION, as a user sets it."""
    env = {
        "GEMINI_API_KEY": "dummy-test-key",
        "GOOGLE_GEMINI_BASE_URL": sim.url,
        "GOOGLE_GENAI_API_VERSION": request.param,
    }
    b = GeminiBackend(resolve_credentials(env), timeout_s=5)
    b.version = request.param  # type: ignore[attr-defined]
    yield b
    await b.close()


def specs(tmp_path: Path, *lines: dict[str, Any], **defaults: Any) -> list[RequestSpec]:
    path = tmp_path / "items.jsonl"
    data = "".join(json.dumps(obj) + "\n" for obj in lines).encode()
    return [spec for _item, spec in iter_specs(path, data, SpecDefaults(**defaults))]


async def launch(backend: GeminiBackend, spec: RequestSpec) -> RunResult:
    """Launch the stored request as the engine will, and poll it to the end (bounded)."""
    r = await backend.launch(
        LaunchSpec(
            key=spec.key,
            input_text=spec.input_text,
            labels={"tuibatch_item": key_label(spec.key)},
            request_json=spec.request_json,
        )
    )
    for _ in range(300):
        if r.terminal:
            return r
        await asyncio.sleep(0.02)
        r = await backend.poll(r.run_id)
    raise AssertionError(f"run stayed {r.status}")


def received(sim: SimulatorThread, backend: Any, route: str) -> dict[str, Any]:
    (entry,) = [b for b in sim.bodies() if b["route"] == route]
    assert entry["version"] == backend.version, entry["path"]
    body: dict[str, Any] = entry["body"]
    return body


# --------------------------------------------------------------------------- model path


async def test_a_batch_api_line_arrives_as_written(
    tmp_path: Path, sim: SimulatorThread, backend: Any
) -> None:
    request = {
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "Describe the figure and the paper."},
                    {"inlineData": {"mimeType": "image/png", "data": PNG}},
                    {
                        "fileData": {
                            "fileUri": "gs://bucket/paper.pdf",
                            "mimeType": "application/pdf",
                        }
                    },
                ],
            }
        ],
        "systemInstruction": {"parts": [{"text": "Answer in JSON."}]},
        "generationConfig": {
            "temperature": 0.2,
            "topP": 0.9,
            "topK": 20,
            "maxOutputTokens": 300,
            "stopSequences": ["<END>"],
            "seed": 7,
            "thinkingConfig": {"thinkingBudget": 0},
            "responseMimeType": "application/json",
            "responseJsonSchema": SCHEMA,
        },
        "safetySettings": [
            {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}
        ],
        "toolConfig": {"functionCallingConfig": {"mode": "NONE"}},
    }
    (spec,) = specs(tmp_path, {"key": "fig-1", "request": request}, model="sim-model")
    result = await launch(backend, spec)
    body = received(sim, backend, "generate")
    assert camel(body) == camel(request)
    assert body["generationConfig"]["responseJsonSchema"] == SCHEMA  # byte for byte, by value
    assert result.status == "completed"
    verdict = check_output(result.output, SCHEMA)
    assert verdict.ok, (verdict.error, result.output)


async def test_a_payload_line_with_batch_config_schema_and_instruction(
    tmp_path: Path, sim: SimulatorThread, backend: Any
) -> None:
    from tuibatch.genconfig import combine, config_from_flags

    batch = combine(
        config_from_flags(temperature=0.1, max_output_tokens=64, instruction="Batch rule."),
        config_from_flags(safety=["DANGEROUS_CONTENT=BLOCK_NONE"]),
    )
    line = {
        "key": "p-1",
        "payload": {"title": "Sparse attention", "pages": 12},
        "config": {"temperature": 0.7, "stopSequences": ["###"]},
        "instruction": "Item rule.",
    }
    (spec,) = specs(tmp_path, line, model="sim-model", config=batch, schema=SCHEMA)
    result = await launch(backend, spec)
    body = received(sim, backend, "generate")
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": '{"title": "Sparse attention", "pages": 12}'}]}
    ]
    assert camel(body["systemInstruction"]) == {"parts": [{"text": "Item rule."}], "role": "user"}
    gen = body["generationConfig"]
    assert gen["temperature"] == 0.7 and gen["stopSequences"] == ["###"]  # the item's win
    assert gen["maxOutputTokens"] == 64  # the batch's where the item says nothing
    assert gen["responseMimeType"] == "application/json"
    assert gen["responseJsonSchema"] == SCHEMA
    assert body["safetySettings"] == [
        {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "threshold": "BLOCK_NONE"}
    ]
    assert "labels" not in body  # the Gemini API takes none (Vertex AI only)
    assert check_output(result.output, SCHEMA).ok


async def test_a_first_release_row_is_still_sent_as_text(
    sim: SimulatorThread, backend: Any
) -> None:
    r = await backend.launch(
        LaunchSpec(key="old", input_text="plain old text", model="sim-model", instruction="Hi")
    )
    assert r.status == "completed"
    body = received(sim, backend, "generate")
    assert body["contents"] == [{"role": "user", "parts": [{"text": "plain old text"}]}]
    assert camel(body["systemInstruction"])["parts"] == [{"text": "Hi"}]
    assert "generationConfig" not in body or "responseMimeType" not in body["generationConfig"]


# --------------------------------------------------------------------------- agent path


async def test_an_interactions_input_line_arrives_as_written(
    tmp_path: Path, sim: SimulatorThread, backend: Any
) -> None:
    parts = [
        {"type": "text", "text": "What does this chart show?"},
        {"type": "image", "data": PNG, "mime_type": "image/png"},
    ]
    agent_config = {"type": "deep-research", "thinking_summaries": "auto"}
    line = {
        "key": "a-1",
        "input": parts,
        "agent_config": agent_config,
        "system_instruction": "Cite your sources.",
    }
    (spec,) = specs(tmp_path, line, agent="sim-agent", schema=SCHEMA)
    result = await launch(backend, spec)
    body = received(sim, backend, "create")
    assert body["agent"] == "sim-agent" and body["background"] is True
    # the SDK sends a list of content parts as one user_input step (_normalize_create_body)
    assert body["input"] == [{"type": "user_input", "content": parts}]
    assert body["agent_config"] == agent_config
    assert body["system_instruction"] == "Cite your sources."
    assert body["response_format"] == {
        "type": "text",
        "mime_type": "application/json",
        "schema": SCHEMA,
    }
    assert body["labels"] == {"tuibatch_item": key_label("a-1")}
    assert result.status == "completed"
    assert check_output(result.output, SCHEMA).ok, result.output


# ------------------------------------------------------------------------------ answers


@pytest.mark.parametrize("target", ["model", "agent"])
@pytest.mark.parametrize(
    ("fault", "error"),
    [("invalid_json", "not valid JSON"), ("schema_mismatch", "$.title: 12345 is not of type")],
)
async def test_scripted_bad_answers_fail_the_check(
    tmp_path: Path,
    sim: SimulatorThread,
    backend: Any,
    target: str,
    fault: str,
    error: str,
) -> None:
    side = {"model": "sim-model"} if target == "model" else {"agent": "sim-agent"}
    good, bad = specs(
        tmp_path,
        {"key": "good", "payload": "one"},
        {"key": "bad", "payload": "two"},
        schema=SCHEMA,
        **side,
    )
    # a model call carries no labels on the Gemini API: the rule matches the input text
    sim.set_faults([{"contains": "two", "fault": fault, "times": 1}])
    first = await launch(backend, bad)
    assert first.status == "completed"  # answered and billed: only the check can tell
    verdict = check_output(first.output, SCHEMA)
    assert not verdict.ok and verdict.error is not None and verdict.error.startswith(error)
    again = await launch(backend, bad)  # another sample (the rule fired once)
    assert check_output(again.output, SCHEMA).ok
    assert check_output((await launch(backend, good)).output, SCHEMA).ok


async def test_the_answer_is_built_from_the_input_record(
    tmp_path: Path, sim: SimulatorThread, backend: Any
) -> None:
    from tuibatch.demo import DEMO_SCHEMA, sample_items

    record = sample_items(1)[0]
    (spec,) = specs(tmp_path, record, agent="sim-agent", schema=DEMO_SCHEMA)
    payload: Any = record["payload"]
    result = await launch(backend, spec)
    verdict = check_output(result.output, DEMO_SCHEMA)
    assert verdict.ok, verdict.error
    assert verdict.value == {
        "title": payload["title"],
        "authors": payload["authors"].split("; "),
        "year": int(payload["year"]),
    }
    # the same input, the same answer
    assert (await launch(backend, spec)).output == result.output


def test_launch_spec_tells_the_engine_what_a_valid_answer_is(tmp_path: Path) -> None:
    plain, structured = specs(
        tmp_path,
        {"key": "p", "payload": "x"},
        {"key": "s", "payload": "y", "model": "sim-model"},
        model="gemini-2.5-flash",
        schema=SCHEMA,
    )
    spec = LaunchSpec(
        key="s", input_text="y", agent="ignored", request_json=structured.request_json
    )
    assert spec.expects_json and spec.schema == SCHEMA
    assert spec.target == "sim-model"  # what is billed: the request's own target
    old = LaunchSpec(key="o", input_text="y", model="m")
    assert (old.expects_json, old.schema, old.target) == (False, None, "m")
    assert LaunchSpec(key="p", input_text="x", request_json=plain.request_json).target == (
        "gemini-2.5-flash"
    )
