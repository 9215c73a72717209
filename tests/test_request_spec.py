"""RequestSpec: one items line → exactly what is sent, validated by the SDK's own types.

No network: these check the spec (canonical request, fingerprint, merged config, SDK objects);
that the SDK then sends it unchanged is for the simulator tests.
"""

from __future__ import annotations

import base64
import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import pydantic
import pytest
from google.genai import types
from hypothesis import given, settings
from hypothesis import strategies as st

from tuibatch.genconfig import combine, config_from_flags, load_batch_config
from tuibatch.items import InputError, canonical
from tuibatch.request_parts import LocalFiles, model_contents
from tuibatch.request_spec import RequestSpec, SpecBuilder, SpecDefaults, to_sdk

MODEL = "gemini-2.5-flash"
AGENT = "deep-research-pro-preview-12-2025"
SCHEMA = {"type": "object", "properties": {"year": {"type": "integer"}}, "required": ["year"]}


def spec(
    obj: dict[str, Any], path: Path = Path("items.jsonl"), line: int = 1, **defaults: Any
) -> RequestSpec:
    if "agent" not in defaults:
        defaults.setdefault("model", MODEL)
    return SpecBuilder(path, SpecDefaults(**defaults)).build(obj, line)


def request_line(**request: Any) -> dict[str, Any]:
    request.setdefault("contents", [{"role": "user", "parts": [{"text": "Hello"}]}])
    return {"key": "k", "request": request}


# ------------------------------------------------------------------------------ formats


def test_payload_line_is_one_user_turn_and_hashes_its_canonical_request() -> None:
    s = spec({"key": "a", "payload": "Summarise this", "instruction": "Be brief"})
    assert (s.format, s.model, s.agent, s.input_text) == ("payload", MODEL, None, "Summarise this")
    assert s.wire() == {
        "model": MODEL,
        "contents": [{"role": "user", "parts": [{"text": "Summarise this"}]}],
        "config": {"system_instruction": "Be brief"},
    }
    assert s.request_json == canonical(s.wire())
    assert s.fingerprint == hashlib.sha256(s.request_json.encode()).hexdigest()
    assert not s.expects_json and s.schema is None


def test_a_json_payload_is_sent_as_its_json_text() -> None:
    s = spec({"key": "a", "payload": {"title": "Ü", "year": 1999}})
    assert s.input_text == '{"title": "Ü", "year": 1999}'
    assert s.wire()["contents"][0]["parts"][0]["text"] == s.input_text


def test_a_missing_key_is_derived_from_the_line_content() -> None:
    a = spec({"payload": "x"})
    assert a.key == "sha-" + hashlib.sha256(b'"x"').hexdigest()[:16]  # same rule as today's items
    b = spec({"request": {"contents": [{"parts": [{"text": "x"}]}]}})
    assert b.key.startswith("sha-") and b.key != a.key


def test_camel_and_snake_case_request_lines_are_the_same_request() -> None:
    camel = request_line(
        systemInstruction={"parts": [{"text": "Be brief"}]},
        generationConfig={
            "maxOutputTokens": 50,
            "thinkingConfig": {"thinkingBudget": 0},
            "responseMimeType": "text/plain",
        },
        safetySettings=[{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        toolConfig={"functionCallingConfig": {"mode": "NONE"}},
    )
    snake = request_line(
        system_instruction={"parts": [{"text": "Be brief"}]},
        generation_config={
            "max_output_tokens": 50,
            "thinking_config": {"thinking_budget": 0},
            "response_mime_type": "text/plain",
        },
        safety_settings=[{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        tool_config={"function_calling_config": {"mode": "NONE"}},
    )
    a, b = spec(camel), spec(snake)
    assert a.fingerprint == b.fingerprint and a.request_json == b.request_json
    config = a.wire()["config"]
    assert config["max_output_tokens"] == 50 and config["thinking_config"] == {"thinking_budget": 0}
    assert config["safety_settings"] == [
        {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}
    ]
    assert a.config is not None and a.config.tool_config is not None


def test_fingerprint_ignores_key_order_and_spelling_of_the_same_request() -> None:
    one = {
        "key": "k",
        "request": {
            "contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
            "generationConfig": {"temperature": 0.5, "topP": 0.9},
        },
    }
    two = json.loads(
        '{"request": {"generationConfig": {"topP": 0.9, "temperature": 0.5}, '
        '"contents": [{"parts": [{"text": "Hi"}], "role": "user"}]}, "key": "k"}'
    )
    assert spec(one).fingerprint == spec(two).fingerprint
    # the same text as a payload line is the same request: converting a file keeps finished work
    assert (
        spec(
            {"key": "k", "payload": "Hi", "config": {"temperature": 0.5, "top_p": 0.9}}
        ).fingerprint
        == spec(one).fingerprint
    )


def test_request_model_and_line_model() -> None:
    assert spec(request_line(model="models/gemini-2.5-pro")).model == "gemini-2.5-pro"
    assert spec({**request_line(), "model": "gemini-2.5-pro"}).model == "gemini-2.5-pro"
    assert spec(request_line()).model == MODEL


def test_multimodal_parts_inline_data_file_uri_and_local_file(tmp_path: Path) -> None:
    (tmp_path / "cat.png").write_bytes(b"\x89PNG fake")
    line = request_line(
        contents=[
            {
                "role": "user",
                "parts": [
                    {"text": "Compare"},
                    {
                        "inlineData": {
                            "mimeType": "image/jpeg",
                            "data": base64.b64encode(b"jpeg bytes").decode(),
                        }
                    },
                    {
                        "file_data": {
                            "file_uri": "https://generativelanguage.googleapis.com/v1beta/files/abc",
                            "mime_type": "application/pdf",
                        }
                    },
                    {"file": "cat.png"},
                ],
            }
        ]
    )
    s = spec(line, tmp_path / "items.jsonl")
    got = s.wire()["contents"][0]["parts"]
    assert got[1] == {
        "inline_data": {"mime_type": "image/jpeg", "data": base64.b64encode(b"jpeg bytes").decode()}
    }
    assert got[2]["file_data"]["file_uri"].endswith("/files/abc")
    assert got[3] == {
        "inline_data": {
            "mime_type": "image/png",
            "data": base64.b64encode(b"\x89PNG fake").decode(),
        }
    }
    assert s.input_text == (
        "Compare\n\n[inline image/jpeg]\n\n[file https://generativelanguage.googleapis.com"
        "/v1beta/files/abc]\n\n[inline image/png]"
    )
    sdk = s.to_sdk()
    assert sdk.contents is not None
    parts = sdk.contents[0].parts or []
    assert isinstance(sdk.contents[0], types.Content)
    assert parts[1].inline_data is not None and parts[1].inline_data.data == b"jpeg bytes"
    assert parts[3].inline_data is not None and parts[3].inline_data.data == b"\x89PNG fake"
    before = s.fingerprint
    (tmp_path / "cat.png").write_bytes(b"\x89PNG another cat")
    assert spec(line, tmp_path / "items.jsonl").fingerprint != before, (
        "a changed file is a changed item"
    )


@settings(max_examples=200, deadline=None)
@given(
    texts=st.lists(st.text(), min_size=1, max_size=3),
    role=st.one_of(st.none(), st.text(max_size=8)),
)
def test_the_hand_written_text_path_equals_the_sdks_own_dump(
    texts: list[str], role: str | None
) -> None:
    content: dict[str, Any] = {"parts": [{"text": t} for t in texts]}
    if role is not None:
        content["role"] = role
    fast, shown = model_contents([content], ["request", "contents"], LocalFiles(Path(".")))
    sdk = types.Content.model_validate(content).model_dump(mode="json", exclude_none=True)
    assert fast == canonical([sdk])
    assert shown == "\n\n".join(texts)


# --------------------------------------------------------------------------- config merge


def test_merge_order_batch_then_item_config_then_request(tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"temperature": 0.1, "topP": 0.5, "seed": 1, "maxOutputTokens": 10}))
    flags = config_from_flags(max_output_tokens="20")
    batch = combine(load_batch_config(cfg), flags)
    line = {
        **request_line(generationConfig={"temperature": 0.3}),
        "config": {"temperature": 0.2, "seed": 2},
    }
    config = spec(line, config=batch).wire()["config"]
    assert config == {"temperature": 0.3, "seed": 2, "top_p": 0.5, "max_output_tokens": 20}


def test_item_instruction_over_batch_instruction() -> None:
    batch = config_from_flags(instruction="batch-wide", temperature=0.4)
    assert spec({"key": "a", "payload": "x"}, config=batch).wire()["config"] == {
        "system_instruction": "batch-wide",
        "temperature": 0.4,
    }
    assert spec({"key": "a", "payload": "x", "instruction": "mine"}, config=batch).wire()[
        "config"
    ] == {"system_instruction": "mine", "temperature": 0.4}


def test_the_shared_config_is_not_the_sdk_copy() -> None:
    s = spec({"key": "a", "payload": "x", "config": {"temperature": 0.7}})
    sdk = s.to_sdk()
    assert sdk.config is not None and sdk.config is not s.config and sdk.config.temperature == 0.7
    sdk.config.labels = {"tuibatch_item": "k1"}
    assert s.config is not None and s.config.labels is None


BASE = {"key": "k", "payload": "x"}


@pytest.mark.parametrize(
    "change",
    [
        {"config": {"temperature": 0.8}},
        {"config": {"max_output_tokens": 100}},
        {
            "config": {
                "safety_settings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "OFF"}]
            }
        },
        {"config": {"thinking_config": {"thinking_level": "LOW"}}},
        {"instruction": "Be brief"},
        {"model": "gemini-2.5-pro"},
        {"payload": "y"},
    ],
)
def test_any_change_of_what_is_sent_changes_the_fingerprint(change: dict[str, Any]) -> None:
    base = spec({**BASE, "config": {"temperature": 0.7}})
    changed = {**BASE, "config": {"temperature": 0.7}, **change}
    if "config" in change:
        changed["config"] = {"temperature": 0.7, **change["config"]}
    assert spec(changed).fingerprint != base.fingerprint


def test_batch_config_and_schema_change_the_fingerprint() -> None:
    plain = spec(BASE).fingerprint
    assert spec(BASE, config=config_from_flags(seed=3)).fingerprint != plain
    with_schema = spec(BASE, schema=SCHEMA)
    assert with_schema.fingerprint != plain
    assert with_schema.expects_json and with_schema.schema == SCHEMA
    assert with_schema.wire()["config"] == {
        "response_mime_type": "application/json",
        "response_json_schema": SCHEMA,
    }
    other = {**SCHEMA, "required": []}
    assert spec(BASE, schema=other).fingerprint != with_schema.fingerprint


def test_a_request_asking_for_json_is_checked_as_json() -> None:
    s = spec(
        request_line(
            generationConfig={"responseMimeType": "application/json", "responseJsonSchema": SCHEMA}
        )
    )
    assert s.expects_json and s.schema == SCHEMA
    assert to_sdk(s.request_json).schema == SCHEMA


def test_lines_sharing_a_config_share_one_validated_config_but_not_a_lookalike() -> None:
    b = SpecBuilder(Path("items.jsonl"), SpecDefaults(model=MODEL))
    one = b.build(request_line(generationConfig={"temperature": 1, "topK": 3}), 1)
    two = b.build(request_line(generationConfig={"temperature": 1, "topK": 3}), 2)
    assert one.config is two.config
    # 1 and true are equal in Python; in a JSON Schema they are different constraints
    s1 = {"type": "object", "properties": {"ok": {"const": 1}}}
    s2 = {"type": "object", "properties": {"ok": {"const": True}}}
    three = b.build(
        request_line(
            generationConfig={"responseMimeType": "application/json", "responseJsonSchema": s1}
        ),
        3,
    )
    four = b.build(
        request_line(
            generationConfig={"responseMimeType": "application/json", "responseJsonSchema": s2}
        ),
        4,
    )
    assert three.schema == s1 and four.schema == s2
    assert four.wire()["config"]["response_json_schema"]["properties"]["ok"]["const"] is True
    assert three.fingerprint != four.fingerprint


def test_unknown_enum_values_are_refused_without_sdk_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the SDK warns on unknown enum values; nothing may leak
        with pytest.raises(InputError) as err:
            spec(
                {
                    "key": "a",
                    "payload": "x",
                    "config": {"thinking_config": {"thinking_level": "ULTRA"}},
                }
            )
    assert str(err.value).startswith(
        'items.jsonl:1: config.thinking_config.thinking_level: unknown value "ULTRA" (one of'
    )


# ------------------------------------------------------------------------------- agents


def test_agent_lines_payload_and_interactions_input(tmp_path: Path) -> None:
    (tmp_path / "fig.png").write_bytes(b"img")
    s = spec(
        {
            "key": "a",
            "payload": "Research X",
            "agent_config": {"type": "deep-research", "thinking_summaries": "auto"},
        },
        agent=AGENT,
        config=config_from_flags(instruction="Cite sources"),
    )
    assert s.agent == AGENT and s.model is None and s.config is None
    assert s.wire() == {
        "agent": AGENT,
        "input": "Research X",
        "system_instruction": "Cite sources",
        "agent_config": {"type": "deep-research", "thinking_summaries": "auto"},
    }
    parts = spec(
        {
            "key": "b",
            "input": [
                {"type": "text", "text": "Look"},
                {"type": "image", "file": "fig.png"},
                {"type": "document", "uri": "https://example.com/a.pdf"},
            ],
        },
        tmp_path / "items.jsonl",
        agent=AGENT,
    )
    assert parts.format == "input"
    assert parts.wire()["input"] == [
        {"type": "text", "text": "Look"},
        {"type": "image", "data": base64.b64encode(b"img").decode(), "mime_type": "image/png"},
        {"type": "document", "uri": "https://example.com/a.pdf"},
    ]
    assert parts.input_text == "Look\n\n[image image/png]\n\n[document https://example.com/a.pdf]"
    sdk = parts.to_sdk()
    assert sdk.interaction is not None and set(sdk.interaction) == {"agent", "input"}


def test_agent_text_parts_equal_the_sdks_own_dump() -> None:
    from google.genai import interactions

    adapter = pydantic.TypeAdapter(interactions.Content)
    part = {"type": "text", "text": "héllo\n\u2028"}
    s = spec({"key": "a", "input": [part]}, agent=AGENT)
    assert s.wire()["input"] == [
        adapter.dump_python(
            adapter.validate_python(part), mode="json", exclude_none=True, by_alias=True
        )
    ]


def test_agent_instruction_spellings() -> None:
    s = spec({"key": "a", "input": "x", "system_instruction": "Be brief"}, agent=AGENT)
    assert s.wire()["system_instruction"] == "Be brief"
    assert (
        "system_instruction"
        not in spec({"key": "a", "input": "x", "instruction": ""}, agent=AGENT).wire()
    )
    with pytest.raises(InputError) as err:
        spec({"key": "a", "input": "x", "instruction": "a", "system_instruction": "b"}, agent=AGENT)
    assert (
        str(err.value)
        == 'items.jsonl:1: instruction: give "instruction" or "system_instruction", not both'
    )
    with pytest.raises(InputError) as err:
        spec({"key": "a", "input": [{"text": "no type"}]}, agent=AGENT)
    assert (
        str(err.value)
        == "items.jsonl:1: input[0].type: required (one of text, image, audio, document, video)"
    )


def test_agent_schema_goes_in_response_format() -> None:
    s = spec({"key": "a", "input": "Find the year"}, agent=AGENT, schema=SCHEMA)
    assert s.wire()["response_format"] == {
        "type": "text",
        "mime_type": "application/json",
        "schema": SCHEMA,
    }
    assert s.expects_json and s.schema == SCHEMA


# ----------------------------------------------------------------------------- bad input

A = {"agent": AGENT}
BAD: list[tuple[dict[str, Any], dict[str, Any], str]] = [
    (
        {"key": "a", "payload": "x", "config": {"temperature": "hot"}},
        {},
        'config.temperature: Input should be a valid number, unable to parse string as a number (got "hot")',
    ),
    (
        {"key": "a", "payload": "x", "config": {"tempurature": 1}},
        {},
        "config.tempurature: unknown field (did you mean temperature?)",
    ),
    (
        {"key": "a", "payload": "x", "config": {"thinkingConfig": {"thinkingBuget": 1}}},
        {},
        "config.thinkingConfig.thinkingBuget: unknown field",
    ),
    (
        {"key": "a", "payload": "x", "config": {"http_options": {"base_url": "http://evil"}}},
        {},
        "config.http_options: not allowed in a batch (tuibatch sets it)",
    ),
    (
        {"key": "a", "payload": "x", "config": {"maxOutputTokens": 1, "max_output_tokens": 2}},
        {},
        "config.max_output_tokens: given twice (also as maxOutputTokens)",
    ),
    ({"key": "a", "payload": "x", "config": [1]}, {}, "config: expected a JSON object, got list"),
    (
        {
            "key": "a",
            "payload": "x",
            "config": {
                "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOK"}]
            },
        },
        {},
        'config.safety_settings[0].threshold: unknown value "BLOK" (one of BLOCK_LOW_AND_ABOVE, '
        "BLOCK_MEDIUM_AND_ABOVE, BLOCK_ONLY_HIGH, BLOCK_NONE, OFF)",
    ),
    (
        {"key": "a", "payload": "x", "instruction": "i", "config": {"system_instruction": "j"}},
        {},
        'instruction: give "instruction" or config.system_instruction, not both',
    ),
    ({"key": "a", "request": {"generationConfig": {}}}, {}, 'request: missing "contents"'),
    (
        {"key": "a", "request": {"contents": []}},
        {},
        "request.contents: must be a non-empty list of contents",
    ),
    (
        {
            "key": "a",
            "request": {
                "contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "@@"}}]}]
            },
        },
        {},
        "request.contents[0].parts[0].inlineData.data: Data should be valid base64: Invalid symbol 64, "
        'offset 0. (got "@@")',
    ),
    (
        {"key": "a", "request": {"contents": [{"parts": [{"file": "missing.png"}]}]}},
        {},
        "request.contents[0].parts[0].file: no such file: ",
    ),
    (
        {"key": "a", "request": {"contents": [{"parts": [{"file": "notes"}]}]}},
        {},
        'request.contents[0].parts[0].file: cannot tell the MIME type of "notes": add "mime_type"',
    ),
    (
        {"key": "a", "request": {"contents": [{"parts": [{"txt": "x"}]}]}},
        {},
        "request.contents[0].parts[0].txt: unknown field",
    ),
    (
        {"key": "a", "request": {"contents": [{"parts": [{"text": "x"}]}], "temperature": 1}},
        {},
        "request.temperature: belongs in request.generationConfig",
    ),
    (
        {
            "key": "a",
            "request": {"contents": [{"parts": [{"text": "x"}]}], "sytemInstruction": "x"},
        },
        {},
        "request.sytemInstruction: unknown field (did you mean systemInstruction?)",
    ),
    (
        {
            "key": "a",
            "request": {
                "contents": [{"parts": [{"text": "x"}]}],
                "generationConfig": {"systemInstruction": "x"},
            },
        },
        {},
        "request.generationConfig.systemInstruction: belongs in request, beside generationConfig",
    ),
    (
        {
            "key": "a",
            "request": {
                "contents": [{"parts": [{"text": "x"}]}],
                "generationConfig": {"topP": "high"},
            },
        },
        {},
        'request.generationConfig.topP: Input should be a valid number, unable to parse string as a number (got "high")',
    ),
    (
        {"key": "a", "request": {"contents": [{"parts": [{"text": "x"}]}]}},
        A,
        f'a "request" line goes to a model, but the batch target is agent {AGENT}: give "model" or --model',
    ),
    ({"key": "a", "input": "x"}, {}, '"input" lines go to an agent: give "agent" or --agent'),
    (
        {"key": "a", "payload": "x", "config": {"temperature": 1}},
        A,
        f'config: agent {AGENT} takes no generation config: use "agent_config"',
    ),
    (
        {"key": "a", "input": [{"type": "txt", "text": "x"}]},
        A,
        'input[0].type: unknown content type "txt" (one of text, image, audio, document, video)',
    ),
    (
        {"key": "a", "input": [{"type": "text", "text": "x", "lang": "en"}]},
        A,
        "input[0].lang: unknown field",
    ),
    (
        {"key": "a", "input": [{"type": "image", "data": "!!", "mime_type": "image/png"}]},
        A,
        "input[0].data: not valid base64",
    ),
    (
        {"key": "a", "input": "x", "agent_config": {"thinking_summaries": "auto"}},
        A,
        "agent_config.type: required (one of antigravity, code-mender, deep-research, dynamic)",
    ),
    (
        {"key": "a", "input": "x", "agent_config": {"type": "deep-research", "depth": 3}},
        A,
        "agent_config.depth: unknown field",
    ),
    (
        {"key": "a", "payload": "x"},
        {"agent": AGENT, "config": "TEMPERATURE"},
        f"agent {AGENT} takes no generation config, but the batch sets temperature (--config or a flag)",
    ),
    (
        {"key": "a", "payload": "x", "request": {}},
        {},
        'give one of "payload", "request", not several',
    ),
    (
        {"key": "a"},
        {},
        'missing "payload" (or "request" for a Gemini Batch API line, "input" for an Interactions input)',
    ),
    ({"key": "a", "payload": "x", "model": 5}, {}, '"model" must be a string, got 5'),
    ({"key": "", "payload": "x"}, {}, '"key" must be a non-empty string, got ""'),
    ({"key": "a", "payload": "\ud800"}, {}, '"payload" contains "\\ud800", half a surrogate pair'),
    (
        {"key": "a", "payload": "x"},
        {"model": None},
        'no model or agent: give "model" or "agent", or --model or --agent',
    ),
]


@pytest.mark.parametrize(("obj", "defaults", "message"), BAD, ids=[m[:40] for _, _, m in BAD])
def test_bad_input_is_one_line_naming_file_line_and_field(
    tmp_path: Path, obj: dict[str, Any], defaults: dict[str, Any], message: str
) -> None:
    if defaults.get("config") == "TEMPERATURE":
        defaults = {**defaults, "config": config_from_flags(temperature=0.3)}
    path = tmp_path / "items.jsonl"
    (tmp_path / "notes").write_text("a file with no extension")
    with pytest.raises(InputError) as err:
        spec(obj, path, 7, **defaults)
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith(f"{path}:7: {message}"), text


def test_a_file_mixing_formats_is_refused() -> None:
    b = SpecBuilder(Path("items.jsonl"), SpecDefaults(model=MODEL))
    b.build({"key": "a", "payload": "x"}, 1)
    b.build({"key": "b", "payload": "y"}, 2)
    with pytest.raises(InputError) as err:
        b.build(request_line(), 3)
    assert str(err.value) == (
        'items.jsonl:3: a "request" line in a file of "payload" lines (first on line 1): '
        "one format per file"
    )
    assert b.format == "payload"


def test_a_field_name_from_the_file_is_escaped_in_the_message() -> None:
    with pytest.raises(InputError) as err:
        spec({"key": "a", "payload": "x", "config": {"\x1b]0;pwned\x07": 1}})
    assert "\x1b" not in str(err.value) and '"\\u001b]0;pwned\\u0007"' in str(err.value)


# -------------------------------------------------------------------- batch-wide config


def test_config_file_in_either_spelling(tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(
        '{"temperature": 0.2, "maxOutputTokens": 64, "thinking_config": {"thinkingBudget": 0},'
        ' "stopSequences": ["END"]}'
    )
    config = load_batch_config(cfg)
    assert (config.temperature, config.max_output_tokens, config.stop_sequences) == (
        0.2,
        64,
        ["END"],
    )
    assert config.thinking_config is not None and config.thinking_config.thinking_budget == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{"temperature": 0.2,\n "topP": }',
            "{path}:2: malformed JSON: Expecting value (column 10)",
        ),
        ('{"tempurature": 0.2}', "{path}: tempurature: unknown field (did you mean temperature?)"),
        (
            '{"seed": 1.5}',
            "{path}: seed: Input should be a valid integer, got a number with a fractional part (got 1.5)",
        ),
        (
            '{"httpOptions": {"baseUrl": "http://elsewhere"}}',
            "{path}: httpOptions: not allowed in a batch (tuibatch sets it)",
        ),
        ("[1]", "{path}: expected a JSON object, got list"),
    ],
)
def test_bad_config_file_is_one_line_naming_the_file(
    tmp_path: Path, text: str, message: str
) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(text)
    with pytest.raises(InputError) as err:
        load_batch_config(cfg)
    assert str(err.value) == message.format(path=cfg)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        load_batch_config(tmp_path / "nope.json")
    assert str(err.value) == f"{tmp_path / 'nope.json'}: no such file"


def test_flags_are_coerced_like_the_sdk_does() -> None:
    config = config_from_flags(
        temperature="0.5",
        max_output_tokens="100",
        top_p=None,
        seed="7",
        thinking_level="low",
        stop_sequences=["###"],
        safety=["harassment=block_none", "HARM_CATEGORY_HATE_SPEECH=OFF"],
    )
    assert config is not None
    assert config.model_dump(mode="json", exclude_none=True) == {
        "temperature": 0.5,
        "max_output_tokens": 100,
        "seed": 7,
        "stop_sequences": ["###"],
        "thinking_config": {"thinking_level": "LOW"},
        "safety_settings": [
            {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"},
            {"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "OFF"},
        ],
    }
    assert config_from_flags(temperature=None) is None


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            {"temperature": "warm"},
            '--temperature: Input should be a valid number, unable to parse string as a number (got "warm")',
        ),
        (
            {"thinking_budget": "lots"},
            '--thinking-budget: Input should be a valid integer, unable to parse string as an integer (got "lots")',
        ),
        (
            {"thinking_level": "ultra"},
            '--thinking-level: unknown value "ULTRA" (one of MINIMAL, LOW, MEDIUM, HIGH, XHIGH)',
        ),
        (
            {"safety": ["HARASSMENT"]},
            "--safety HARASSMENT: expected CATEGORY=THRESHOLD, e.g. HARASSMENT=BLOCK_NONE",
        ),
        (
            {"safety": ["HARASMENT=BLOCK_NONE"]},
            "--safety HARASMENT=BLOCK_NONE: unknown category (one of HARASSMENT, ",
        ),
        (
            {"safety": ["HARASSMENT=NEVER"]},
            "--safety HARASSMENT=NEVER: unknown threshold (one of BLOCK_LOW_AND_ABOVE, ",
        ),
    ],
)
def test_bad_flag_is_one_line_naming_the_flag(flags: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError) as err:
        config_from_flags(**flags)
    assert str(err.value).startswith(message), str(err.value)
