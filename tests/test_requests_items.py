"""The items file read as requests (``tuibatch.itemsfile``): Items, hashes old and new, the batch side.

No network: what these requests look like on the wire is tests/test_requests_wire.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_items import REFUSED

from tuibatch import items as first_release
from tuibatch.engine import DEFAULT_MODEL
from tuibatch.genconfig import config_from_flags
from tuibatch.items import InputError, Item, legacy_payload_hash
from tuibatch.itemsfile import (
    batch_defaults,
    batch_digest,
    iter_specs,
    load_items,
    members,
    parse_lines,
    top_level_value,
)
from tuibatch.options import RunOptions
from tuibatch.request_spec import SpecDefaults

F = Path("batch/items.jsonl")
SCHEMA = {"type": "object", "properties": {"year": {"type": "integer"}}, "required": ["year"]}


def parse(*lines: dict[str, Any] | str, **defaults: Any) -> list[Item]:
    data = "".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n" for ln in lines)
    return parse_lines(F, data.encode(), SpecDefaults(**defaults) if defaults else None)


def refusal(data: bytes, **defaults: Any) -> str:
    with pytest.raises(InputError) as err:
        parse_lines(F, data, SpecDefaults(**defaults) if defaults else None)
    message = str(err.value)
    assert "\n" not in message and "\r" not in message
    return message


# ------------------------------------------------------------------------------ items


def test_every_item_carries_its_checked_request() -> None:
    payload, request, agent_input = (
        parse({"key": "p", "payload": {"title": "Été"}, "instruction": "Be brief."})[0],
        parse(
            {
                "key": "r",
                "request": {
                    "model": "models/gemini-2.5-pro",
                    "contents": [{"parts": [{"text": "Hi"}]}],
                    "generationConfig": {"temperature": 0.5},
                },
            }
        )[0],
        parse({"key": "i", "input": "Find it", "system_instruction": "Cite."}, agent="sim-agent")[
            0
        ],
    )
    ((_, spec),) = iter_specs(
        F, b'{"key": "p", "payload": {"title": "\\u00c9t\\u00e9"}, "instruction": "Be brief."}'
    )
    assert payload.request_json == spec.request_json
    assert payload.payload_hash == spec.fingerprint
    assert json.loads(payload.request_json or "") == {
        "model": DEFAULT_MODEL,  # the engine's default when neither the line nor the batch names one
        "contents": [{"role": "user", "parts": [{"text": '{"title": "Été"}'}]}],
        "config": {"system_instruction": "Be brief."},
    }
    assert (payload.input_text, payload.payload_json) == ('{"title": "Été"}', '{"title": "Été"}')
    assert (payload.agent, payload.model, payload.instruction) == (None, None, "Be brief.")
    # a request line: its own model is the line's target; its request is kept as written
    assert request.model == "gemini-2.5-pro" and request.agent is None
    assert json.loads(request.payload_json)["generationConfig"] == {"temperature": 0.5}
    assert json.loads(request.request_json or "")["config"] == {"temperature": 0.5}
    assert request.input_text == "Hi"
    # an Interactions input line
    assert json.loads(agent_input.request_json or "") == {
        "agent": "sim-agent",
        "input": "Find it",
        "system_instruction": "Cite.",
    }
    assert agent_input.instruction == "Cite." and agent_input.agent is None


def test_lines_share_the_pieces_of_their_request() -> None:
    a, b = parse(
        {"key": "a", "payload": "one", "config": {"temperature": 0.3}},
        {"key": "b", "payload": "two", "config": {"temperature": 0.3}},
    )
    assert a.request_pieces[0] is b.request_pieces[0]  # the config part, once in memory
    assert a.request_pieces[-1] is b.request_pieces[-1]  # the model part


# ------------------------------------------------------------------ the first release's hash


@pytest.mark.parametrize(
    "line",
    [
        {"key": "a", "payload": "plain"},
        {"key": "b", "payload": {"title": "T", "n": [1, 2]}, "instruction": "Be brief."},
        {"payload": 7, "model": "m-1"},
        {"key": "d", "payload": None, "agent": "sim-agent"},
    ],
)
def test_a_request_the_first_release_could_send_keeps_its_hash_too(line: dict[str, Any]) -> None:
    """A checkpoint the first release wrote holds legacy hashes: an unchanged key matches one."""
    data = (json.dumps(line) + "\n").encode()
    (old,) = first_release.parse_lines(F, data)
    assert old.payload_hash == legacy_payload_hash(
        line, first_release.canonical_payload(line["payload"])
    )
    for defaults in (None, SpecDefaults(agent="sim-agent"), SpecDefaults(model="sim-model")):
        (new,) = parse_lines(F, data, defaults)
        assert new.key == old.key
        assert new.legacy_hash == old.payload_hash
        assert new.payload_hash != new.legacy_hash  # the new hash covers the whole request
    # the batch's instruction was not part of the first release's hash, and still is not
    (with_instruction,) = parse_lines(
        F, data, SpecDefaults(model="sim-model", config=config_from_flags(instruction="Hi"))
    )
    assert with_instruction.legacy_hash == old.payload_hash


@pytest.mark.parametrize(
    ("line", "defaults"),
    [
        ({"key": "a", "payload": "x", "config": {"temperature": 1}}, {}),
        ({"key": "a", "payload": "x"}, {"config": config_from_flags(temperature=0.2)}),
        ({"key": "a", "payload": "x"}, {"schema": SCHEMA}),
        ({"key": "a", "request": {"contents": [{"parts": [{"text": "x"}]}]}}, {}),
        ({"key": "a", "input": "x"}, {"agent": "sim-agent"}),
        (
            {"key": "a", "payload": "x", "agent_config": {"type": "deep-research"}},
            {"agent": "sim-agent"},
        ),
    ],
)
def test_anything_the_first_release_could_not_send_has_no_legacy_hash(
    line: dict[str, Any], defaults: dict[str, Any]
) -> None:
    defaults.setdefault("model", None if "agent" in defaults else "sim-model")
    (item,) = parse(line, **defaults)
    assert item.legacy_hash is None and item.request_json is not None


def test_a_changed_config_or_schema_changes_the_hash() -> None:
    line = {"key": "k", "payload": "x"}
    base = parse(line, model="m")[0].payload_hash
    assert parse(line, model="m", config=config_from_flags(temperature=0.2))[0].payload_hash != base
    assert parse(line, model="m", schema=SCHEMA)[0].payload_hash != base
    assert parse({**line, "config": {"seed": 1}}, model="m")[0].payload_hash != base
    assert parse(line, model="m")[0].payload_hash == base


def test_the_default_model_is_the_engines() -> None:
    (item,) = parse({"key": "k", "payload": "x"})
    assert json.loads(item.request_json or "")["model"] == DEFAULT_MODEL
    assert batch_defaults(RunOptions(items=F, db=Path("x.db"))).model == DEFAULT_MODEL
    assert batch_defaults(RunOptions(items=F, db=Path("x.db"), agent="a")).model is None


# ------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_every_refusal_of_the_first_release_is_kept(case: str) -> None:
    data, line, problem = REFUSED[case]
    assert refusal(data).startswith(f"{F}:{line}: {problem}")


def test_a_bom_crlf_and_blank_lines_are_fine() -> None:
    data = b'\xef\xbb\xbf{"key": "a", "payload": "x"}\r\n\r\n  \r\n{"key": "b", "payload": "y"}'
    assert [(it.key, it.line, it.seq) for it in parse_lines(F, data)] == [("a", 1, 0), ("b", 4, 1)]


def test_a_mixed_file_is_one_line() -> None:
    data = (
        b'{"key": "a", "payload": "x"}\n'
        b'{"key": "b", "request": {"contents": [{"parts": [{"text": "y"}]}]}}\n'
    )
    assert refusal(data) == (
        f'{F}:2: a "request" line in a file of "payload" lines (first on line 1): '
        "one format per file"
    )


def test_a_duplicate_key_across_formats_of_keys_is_one_line() -> None:
    data = b'{"key": "a", "input": "x"}\n{"key": "a", "input": "y"}\n'
    assert refusal(data, agent="sim-agent") == f"{F}:2: duplicate key 'a' (first on line 1)"


def test_an_empty_file_and_a_missing_file(tmp_path: Path) -> None:
    empty = tmp_path / "e.jsonl"
    empty.write_bytes(b"\n\n")
    with pytest.raises(InputError, match=r"e\.jsonl: no items \(the file is empty\)$"):
        load_items(empty)
    with pytest.raises(InputError, match=r"nope\.jsonl: no such file$"):
        load_items(tmp_path / "nope.jsonl")


# ------------------------------------------------------------------------- the batch side


def options(tmp_path: Path, **kw: Any) -> RunOptions:
    return RunOptions(items=tmp_path / "items.jsonl", db=tmp_path / "x.db", **kw)


def test_the_batch_side_from_file_flags_and_schema(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"temperature": 0.9, "maxOutputTokens": 10}')
    (tmp_path / "schema.json").write_text(json.dumps(SCHEMA))
    d = batch_defaults(
        options(
            tmp_path,
            model="sim-model",
            config=tmp_path / "config.json",
            schema=tmp_path / "schema.json",
            temperature=0.1,
            stop=("END", "--"),
            safety=("HARASSMENT=BLOCK_NONE",),
            thinking_level="low",
            instruction="Be brief.",
        )
    )
    assert d.model == "sim-model" and d.schema == SCHEMA and d.config is not None
    dump = d.config.model_dump(mode="json", exclude_none=True)
    assert dump == {
        "temperature": 0.1,  # a flag wins over the file
        "max_output_tokens": 10,
        "stop_sequences": ["END", "--"],
        "safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
        "thinking_config": {"thinking_level": "LOW"},
        "system_instruction": "Be brief.",
    }


@pytest.mark.parametrize(
    ("files", "kw", "message"),
    [
        ({"c.json": '{"temperature": "hot"}'}, {"config": "c.json"}, "c.json: temperature: "),
        ({"c.json": '{"tempurature": 1}'}, {"config": "c.json"}, "c.json: tempurature: unknown"),
        ({"s.json": '{"type": "objekt"}'}, {"schema": "s.json"}, "s.json: not a valid JSON Schema"),
        ({}, {"schema": "none.json"}, "none.json: no such file"),
        ({}, {"thinking_level": "ultra"}, '--thinking-level: unknown value "ULTRA"'),
        ({}, {"safety": ("HARASSMENT",)}, "--safety HARASSMENT: expected CATEGORY=THRESHOLD"),
    ],
)
def test_a_bad_batch_side_is_one_line(
    tmp_path: Path, files: dict[str, str], kw: dict[str, Any], message: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    for name in ("config", "schema"):
        if name in kw:
            kw[name] = tmp_path / kw[name]
    with pytest.raises(InputError) as err:
        batch_defaults(options(tmp_path, **kw))
    text = str(err.value)
    assert "\n" not in text and message in text, text


def test_the_digest_covers_the_file_and_the_batch_side() -> None:
    data = b'{"key": "a", "payload": "x"}\n'
    base = batch_digest(data, SpecDefaults(model="m"))
    assert base is not None and base == batch_digest(data, SpecDefaults(model="m"))
    others = [
        batch_digest(data + b"\n", SpecDefaults(model="m")),
        batch_digest(data, SpecDefaults(model="n")),
        batch_digest(data, SpecDefaults(agent="m")),
        batch_digest(data, SpecDefaults(model="m", schema=SCHEMA)),
        batch_digest(data, SpecDefaults(model="m", config=config_from_flags(seed=1))),
    ]
    assert base not in others and len(set(others)) == len(others)
    # a line that reads a local file: its bytes are not in the digest, so there is none
    assert (
        batch_digest(
            b'{"key": "a", "request": {"contents": [{"parts": [{"file": "x.png"}]}]}}',
            SpecDefaults(model="m"),
        )
        is None
    )


def test_a_request_is_kept_exactly_as_written() -> None:
    written = (
        '{ "contents" : [ {"parts": [{"text": "caf\\u00e9"}]} ],"generationConfig":{"topK":3}}'
    )
    lines = [
        '{"key": "a", "request": ' + written + "}",
        # the format's name first appears inside the key: the value is still found
        '{"key": "a \\"request\\": {}", "request":' + written + ', "model": "m"}',
        '{"request"  :\t' + written + ', "key": "c"}',
    ]
    items = parse_lines(F, "\n".join(lines).encode(), SpecDefaults(model="m"))
    assert [it.payload_json for it in items] == [written] * 3
    (agent,) = parse_lines(
        F, b'{"key": "i", "input": [ {"type": "text", "text": "x"} ]}', SpecDefaults(agent="a")
    )
    assert agent.payload_json == '[ {"type": "text", "text": "x"} ]'
    (plain,) = parse_lines(F, b'{"key": "p", "payload": "caf\\u00e9 \\"q\\""}')
    assert plain.payload_json == json.dumps('café "q"', ensure_ascii=False)


@given(
    st.dictionaries(
        st.text(max_size=6),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=8),
            lambda inner: (
                st.lists(inner, max_size=3)
                | st.dictionaries(st.text(max_size=4), inner, max_size=3)
            ),
            max_leaves=8,
        ),
        max_size=5,
    ),
    st.sampled_from([(", ", ": "), (",", ":"), (" ,\t", " :\n ")]),
)
def test_a_fields_text_is_cut_from_the_line_exactly(
    obj: dict[str, Any], separators: tuple[str, str]
) -> None:
    text = "  " + json.dumps(obj, separators=separators, ensure_ascii=False) + " "
    read = members(text)  # the line read member by member, as the items file is
    assert read is not None and read[0] == obj
    for name, value in obj.items():
        found = top_level_value(text, name)
        assert found is not None and json.loads(found) == value
        assert found == found.strip() and found in text
        start, end = read[1][name]
        assert text[start:end] == found
    assert top_level_value(text, "\x00absent") is None
    # a repeated field: the last one, as json.loads keeps it
    assert top_level_value('{"a": 1, "a": [2]}', "a") == "[2]"


def test_the_quick_cut_never_takes_a_name_that_is_not_the_top_level_key() -> None:
    """The first ``"request"`` in a line may be a value, nested, inside a string or repeated:
    the value found is always the top-level field's, as ``json.loads`` keeps it."""
    tricky = [
        '{"key": "request", "request": {"a": 1}}',
        '{"meta": {"request": 0}, "request": [1, 2]}',
        '{"meta": ["x", "request"], "request": 3}',
        '{"key": "say \\"request", "request": {"b": "request"}}',
        '{"request": 1, "key": "k"}',
        '{"request": 1, "request": 2}',
        '{"request": 1, "key": "k", "request": {"c": 2}}',
        '{"requ\\u0065st": 5, "request": 6}',
        '{"request": 1, "requ\\u0065st": 7}',
        ' {\t"request" :\n{"d": [ ] } , "k": {"request": 0} } ',
    ]
    for text in tricky:
        read = members(text)
        assert read is not None and read[0] == json.loads(text), text
        assert text[slice(*read[1]["request"])] == top_level_value(text, "request"), text
        found = top_level_value(text, "request")
        assert found is not None, text
        assert json.loads(found) == json.loads(text)["request"], text
        assert found in text and found == found.strip(), text


def test_a_line_that_is_not_a_plain_object_is_left_to_json_loads() -> None:
    for text in ['{"a": 1} x', '{"a": 1,}', '{"a" 1}', "[1]", '{"a": [1}', '{"a": nul}', "{", ""]:
        assert members(text) is None, text
    assert members(" { } ") == ({}, {})
    assert members('{"a": NaN}') is not None  # as json.loads reads it
