"""The items-file parser, called directly: what is accepted, and the one line every refusal is."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tuibatch.items import InputError, Item, key_label, load_items, parse_lines

F = Path("batch/items.jsonl")


def parse(*lines: str | bytes, end: bytes = b"\n") -> list[Item]:
    data = end.join(ln if isinstance(ln, bytes) else ln.encode("utf-8") for ln in lines) + end
    return parse_lines(F, data)


def refusal(data: bytes) -> str:
    with pytest.raises(InputError) as err:
        parse_lines(F, data)
    message = str(err.value)
    assert "\n" not in message and "\r" not in message
    return message


# ------------------------------------------------------------------ accepted


def test_fields_are_read_and_items_numbered_in_file_order() -> None:
    items = parse(
        '{"key": "a", "payload": "plain text"}',
        '{"key": "b", "payload": {"title": "Été", "n": [1, 2]}, "agent": "my-agent"}',
        '{"key": "c", "payload": 7, "model": "m-1", "instruction": "Be brief."}',
    )
    assert [(it.seq, it.key, it.line) for it in items] == [(0, "a", 1), (1, "b", 2), (2, "c", 3)]
    a, b, c = items
    # a text payload is sent as it is; anything else as its JSON text, non-ASCII kept
    assert a.input_text == "plain text" and a.payload_json == '"plain text"'
    assert b.input_text == '{"title": "Été", "n": [1, 2]}'
    assert json.loads(b.payload_json) == {"title": "Été", "n": [1, 2]}
    assert c.input_text == "7"
    assert (a.agent, a.model, a.instruction) == (None, None, None)
    assert (b.agent, b.model) == ("my-agent", None)
    assert (c.agent, c.model, c.instruction) == (None, "m-1", "Be brief.")


def test_a_byte_order_mark_crlf_and_blank_lines_are_accepted() -> None:
    data = (
        b'\xef\xbb\xbf{"key": "a", "payload": "x"}\r\n'
        b"\r\n"
        b"   \t \r\n"
        b'{"key": "b", "payload": "y\\r\\n"}\r\n'
        b"\n"
        b'{"key": "c", "payload": "z"}'  # no newline at the end
    )
    items = parse_lines(F, data)
    assert [it.key for it in items] == ["a", "b", "c"]
    assert [it.seq for it in items] == [0, 1, 2]
    # line numbers are the file's, blank lines counted, so messages point at the right line
    assert [it.line for it in items] == [1, 4, 6]
    assert items[0].input_text == "x"  # neither the BOM nor the \r is part of the data
    assert items[1].input_text == "y\r\n"  # … but an escaped one inside the JSON is


def test_a_bom_is_only_skipped_at_the_start_of_the_file() -> None:
    msg = refusal(b'{"key": "a", "payload": "x"}\n\xef\xbb\xbf{"key": "b", "payload": "y"}\n')
    assert msg.startswith(f"{F}:2: malformed JSON")


def test_derived_keys_are_stable_across_key_order_and_whitespace() -> None:
    (one,) = parse('{"payload": {"b": 1, "a": {"y": [1, {"q": 2, "p": 3}], "x": null}}}')
    (two,) = parse('{"payload":{"a":{"x":null,"y":[1,{"p":3,"q":2}]},"b":1}}')
    assert one.key == two.key
    assert one.key.startswith("sha-") and len(one.key) == len("sha-") + 16
    assert one.payload_hash == two.payload_hash
    # a different payload is a different item
    (three,) = parse('{"payload": {"b": 2, "a": {"y": [1, {"q": 2, "p": 3}], "x": null}}}')
    assert three.key != one.key
    # text payloads get keys too, and equal text is the same key
    (t1,) = parse('{"payload": "hello"}')
    (t2,) = parse('{"payload":  "hello", "instruction": "other"}')
    assert t1.key == t2.key != parse('{"payload": "hello!"}')[0].key


@given(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=8))
def test_derived_key_and_hash_ignore_key_order(payload: dict[str, object]) -> None:
    pairs = list(payload.items())
    random.Random(len(pairs)).shuffle(pairs)
    (a,) = parse(json.dumps({"payload": payload}))
    (b,) = parse(json.dumps({"payload": dict(pairs)}, indent=None, separators=(",", ":")))
    assert (a.key, a.payload_hash) == (b.key, b.payload_hash)


def test_the_payload_hash_changes_with_everything_that_changes_what_is_sent() -> None:
    def h(**fields: object) -> str:
        (item,) = parse(json.dumps({"key": "k", "payload": {"t": 1}, **fields}))
        return item.payload_hash

    base = h()
    variants = {
        "payload": h(payload={"t": 2}),
        "instruction": h(instruction="Be brief."),
        "model": h(model="m-1"),
        "agent": h(agent="a-1"),
    }
    assert base not in variants.values()
    assert len(set(variants.values())) == len(variants)
    # … and with nothing that doesn't: the key, the field order, the spacing
    (other_key,) = parse('{"payload": {"t": 1}, "key": "zzz"}')
    assert other_key.payload_hash == base
    # a value can't slide from one field into another
    assert h(instruction="ab") != h(instruction="a", model="b")


def test_key_labels_follow_googles_label_rules() -> None:
    for key in ("a", "Item 1", "ü" * 300, "x/y:z"):
        label = key_label(key)
        assert label[0].isalpha() and label.islower() and len(label) <= 63
        assert label == key_label(key)
    assert key_label("a") != key_label("b")


def test_load_items_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_bytes(b'{"key": "a", "payload": "x"}\n{"payload": "y"}\n')
    items = load_items(path)
    assert [it.key for it in items] == ["a", parse('{"payload": "y"}')[0].key]


# ------------------------------------------------------------------ refused

REFUSED: dict[str, tuple[bytes, int, str]] = {
    "malformed-json": (
        b'{"key": "a", "payload": "x"}\n{"key": "b", "payload": \n',
        2,
        "malformed JSON: Expecting value (column 25)",
    ),
    "trailing-garbage": (
        b'{"key": "a", "payload": "x"} x\n',
        1,
        "malformed JSON: Extra data (column 30)",
    ),
    "single-quotes": (
        b"\n\n{'key': 'a', 'payload': 'x'}\n",
        3,
        "malformed JSON: Expecting property name enclosed in double quotes (column 2)",
    ),
    "not-an-object": (
        b'{"key": "a", "payload": "x"}\n[1, 2]\n',
        2,
        "expected a JSON object, got list",
    ),
    "a-bare-string": (b'"just text"\n', 1, "expected a JSON object, got str"),
    "missing-payload": (b'{"key": "a", "payload": "x"}\n\n{"key": "b"}\n', 3, 'missing "payload"'),
    "key-a-number": (
        b'{"key": 17, "payload": "x"}\n',
        1,
        '"key" must be a non-empty string, got 17',
    ),
    "key-empty": (b'{"key": "", "payload": "x"}\n', 1, '"key" must be a non-empty string, got ""'),
    "key-a-list": (
        b'{"key": ["a"], "payload": "x"}\n',
        1,
        '"key" must be a non-empty string, got ["a"]',
    ),
    "key-a-bool": (
        b'{"key": true, "payload": "x"}\n',
        1,
        '"key" must be a non-empty string, got true',
    ),
    "model-a-number": (b'{"payload": "x", "model": 3}\n', 1, '"model" must be a string, got 3'),
    "agent-an-object": (
        b'{"payload": "x", "agent": {"name": "a"}}\n',
        1,
        '"agent" must be a string, got {"name": "a"}',
    ),
    "instruction-a-list": (
        b'{"payload": "x", "instruction": ["be", "brief"]}\n',
        1,
        '"instruction" must be a string, got ["be", "brief"]',
    ),
    "agent-and-model": (
        b'{"key": "a", "payload": "x"}\n{"key": "b", "payload": "y", "agent": "a", "model": "m"}\n',
        2,
        'give "agent" or "model", not both',
    ),
    "duplicate-key": (
        b'{"key": "a", "payload": "x"}\n'
        b'{"key": "b", "payload": "y"}\n'
        b'{"key": "a", "payload": "z"}\n',
        3,
        "duplicate key 'a' (first on line 1)",
    ),
    "duplicate-derived-key": (
        b'{"payload": {"a": 1, "b": 2}}\n\n{"payload": {"b": 2, "a": 1}}\n',
        3,
        "duplicate key 'sha-",
    ),
    "invalid-utf8": (
        b'{"key": "a", "payload": "x"}\n{"key": "b", "payload": "\xff\xfe"}\n',
        2,
        "invalid UTF-8 at byte 26",
    ),
    "latin-1-file": (b'{"key": "caf\xe9", "payload": "x"}\n', 1, "invalid UTF-8 at byte 13"),
    "half-a-surrogate-in-the-payload": (
        b'{"key": "a", "payload": {"t": "\\ud800"}}\n',
        1,
        '"payload" contains "\\ud800", half a surrogate pair',
    ),
    "half-a-surrogate-in-the-key": (
        b'{"key": "\\udfffx", "payload": "x"}\n',
        1,
        '"key" contains "\\udfff", half a surrogate pair',
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_bad_line_is_one_message_naming_file_line_and_problem(case: str) -> None:
    data, line, problem = REFUSED[case]
    message = refusal(data)
    assert message.startswith(f"{F}:{line}: {problem}"), message


def test_a_long_bad_value_is_cut_short_and_control_characters_escaped() -> None:
    message = refusal(json.dumps({"payload": "x", "model": ["\x1b[31m" + "y" * 500]}).encode())
    assert len(message) < 120
    assert "\x1b" not in message and "\\u001b" in message


def test_the_first_problem_is_reported_and_nothing_is_returned() -> None:
    data = b'{"key": "a", "payload": "x"}\n{"key": 1, "payload": "x"}\n{"oops"\n'
    assert refusal(data) == f'{F}:2: "key" must be a non-empty string, got 1'


def test_a_file_that_cannot_be_read_is_one_message(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nope\.jsonl: no such file$"):
        load_items(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match=r": is a directory, not an items file$"):
        load_items(tmp_path)
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"\xef\xbb\xbf\n  \r\n\n")
    with pytest.raises(InputError) as err:
        load_items(empty)
    assert str(err.value) == f"{empty}: no items (the file is empty)"
