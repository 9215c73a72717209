"""Structured output: the schema file is checked before anything runs, answers after."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from google.genai import types

from tuibatch.genconfig import FieldError
from tuibatch.items import InputError
from tuibatch.output_check import (
    OutputVerdict,
    agent_response_format,
    agent_schema_support,
    apply_schema,
    check_output,
    load_schema,
)

PAPER = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "authors": {"type": "array", "items": {"type": "string"}},
        "year": {"type": "integer"},
    },
    "required": ["title", "year"],
}


def write(tmp_path: Path, value: Any) -> Path:
    path = tmp_path / "schema.json"
    path.write_text(value if isinstance(value, str) else json.dumps(value))
    return path


def test_load_schema_returns_the_schema(tmp_path: Path) -> None:
    assert load_schema(write(tmp_path, PAPER)) == PAPER
    draft7 = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object"}
    assert load_schema(write(tmp_path, draft7)) == draft7


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            '{"type": "object",\n "properties": {]}',
            "{path}:2: malformed JSON: Expecting property name enclosed in "
            "double quotes (column 17)",
        ),
        ([{"type": "object"}], "{path}: a JSON Schema must be a JSON object, got list"),
        (
            {"type": "objet"},
            "{path}: not a valid JSON Schema: $.type: 'objet' is not valid under any of the given schemas",
        ),
        (
            {"type": "object", "properties": {"year": {"type": "integr"}}},
            "{path}: not a valid JSON Schema: $.properties.year.type: 'integr' is not valid under any of the given schemas",
        ),
        (
            {"type": "object", "required": "title"},
            "{path}: not a valid JSON Schema: $.required: 'title' is not of type 'array'",
        ),
        (
            {"$schema": "https://example.com/my-dialect", "type": "object"},
            '{path}: $schema: unknown JSON Schema dialect "https://example.com/my-dialect"',
        ),
    ],
)
def test_a_bad_schema_is_one_line_naming_the_file(tmp_path: Path, value: Any, message: str) -> None:
    path = write(tmp_path, value)
    with pytest.raises(InputError) as err:
        load_schema(path)
    assert str(err.value) == message.format(path=path)


def test_missing_schema_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        load_schema(tmp_path / "none.json")
    assert str(err.value) == f"{tmp_path / 'none.json'}: no such file"


def test_apply_schema_sets_json_mode_the_way_the_sdk_sends_it() -> None:
    config = apply_schema(types.GenerateContentConfig(temperature=0.2), PAPER)
    assert config.response_mime_type == "application/json"
    assert config.response_json_schema == PAPER
    assert config.response_schema is None and config.temperature == 0.2
    assert apply_schema(None, PAPER).response_json_schema == PAPER


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            types.GenerateContentConfig(response_mime_type="text/plain"),
            'config.response_mime_type: is "text/plain" but --schema needs application/json',
        ),
        (
            types.GenerateContentConfig(response_schema={"type": "OBJECT"}),
            "config.response_schema: give it or --schema, not both",
        ),
        (
            types.GenerateContentConfig(response_json_schema={"type": "array"}),
            "config.response_json_schema: differs from the --schema file",
        ),
    ],
)
def test_apply_schema_refuses_a_config_asking_for_something_else(
    config: types.GenerateContentConfig, message: str
) -> None:
    with pytest.raises(FieldError) as err:
        apply_schema(config, PAPER)
    assert str(err.value) == message


def test_agents_take_a_schema_through_response_format() -> None:
    assert (
        agent_schema_support() is None
    )  # CreateAgentInteraction.response_format in google-genai 3.6
    assert agent_response_format(PAPER) == {
        "type": "text",
        "mime_type": "application/json",
        "schema": PAPER,
    }


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        (
            '{"title": "On Sand", "authors": ["A. B."], "year": 1999}',
            OutputVerdict(True, {"title": "On Sand", "authors": ["A. B."], "year": 1999}),
        ),
        ('  {"title": "T", "year": 2001}\n', OutputVerdict(True, {"title": "T", "year": 2001})),
        (
            '{"title": "T", "year": "abc"}',
            OutputVerdict(False, error="$.year: 'abc' is not of type 'integer'"),
        ),
        (
            '{"title": "T", "year": 1, "authors": ["x", 7]}',
            OutputVerdict(False, error="$.authors[1]: 7 is not of type 'string'"),
        ),
        ('{"title": "T"}', OutputVerdict(False, error="$: 'year' is a required property")),
        (
            '{"title": "T", "year": 1',
            OutputVerdict(
                False, error="not valid JSON: Expecting ',' delimiter (line 1, column 25)"
            ),
        ),
        (
            '```json\n{"title": "T", "year": 1}\n```',
            OutputVerdict(False, error="not valid JSON: Expecting value (line 1, column 1)"),
        ),
        ("", OutputVerdict(False, error="no text in the answer")),
        (None, OutputVerdict(False, error="no text in the answer")),
    ],
)
def test_check_output(text: str | None, verdict: OutputVerdict) -> None:
    assert check_output(text, PAPER) == verdict


def test_without_a_schema_any_json_value_passes() -> None:
    assert check_output("[1, 2]", None) == OutputVerdict(True, [1, 2])
    assert check_output("not json", None).ok is False


def test_a_long_validation_error_stays_short() -> None:
    verdict = check_output(json.dumps({"title": "x" * 5000, "year": None}), PAPER)
    assert verdict.ok is False and verdict.error is not None
    assert verdict.error.startswith("$.year: None is not of type 'integer'")
    verdict = check_output(json.dumps(["x" * 5000]), PAPER)
    assert verdict.error is not None and len(verdict.error) <= 210 and "\n" not in verdict.error
