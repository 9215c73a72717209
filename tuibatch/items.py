"""The items file: one JSON object per line, read whole before anything is written.

Parsing is all-or-nothing so that a typo on line 90 000 cannot leave a half-loaded
checkpoint behind; every problem is reported as one line naming file and line.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Fields an item line may carry besides ``key`` and ``payload``.
OPTIONAL_FIELDS = ("agent", "model", "instruction")


class InputError(Exception):
    """Bad input: the message is the single line the user sees."""


@dataclass(frozen=True)
class Item:
    seq: int
    key: str
    input_text: str
    payload_hash: str
    line: int
    agent: str | None = None
    model: str | None = None
    instruction: str | None = None
    payload_json: str = ""


def canonical(value: Any) -> str:
    """Canonical JSON text: key order and whitespace never change a hash."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def derived_key(payload: Any) -> str:
    return "sha-" + sha256_hex(canonical(payload))[:16]


def key_label(key: str) -> str:
    """Label value for a key: lowercase, ≤ 63 chars, starts with a letter (Google's label rules)."""
    return "k" + sha256_hex(key)[:24]


def payload_hash(item_fields: dict[str, Any], canonical_payload: str | None = None) -> str:
    """Hash of everything that changes what is sent: payload and per-item overrides."""
    text = canonical_payload if canonical_payload is not None else canonical(item_fields.get("payload"))
    extras = "\x00".join(item_fields.get(k) or "" for k in OPTIONAL_FIELDS)
    return sha256_hex(f"{text}\x00{extras}")


def _fail(path: Path, line: int | None, problem: str) -> InputError:
    where = f"{path}:{line}" if line is not None else str(path)
    return InputError(f"{where}: {problem}")


def parse_lines(path: Path, data: bytes) -> list[Item]:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    items: list[Item] = []
    first_line_of: dict[str, int] = {}
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _fail(path, lineno, f"invalid UTF-8 at byte {exc.start + 1}") from None
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _fail(path, lineno, f"malformed JSON: {exc.msg} (column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise _fail(path, lineno, f"expected a JSON object, got {type(obj).__name__}")
        if "payload" not in obj:
            raise _fail(path, lineno, 'missing "payload"')
        key = obj.get("key")
        payload = obj["payload"]
        as_json = json.dumps(payload, ensure_ascii=False)
        canon = as_json if isinstance(payload, (str, int, float, bool)) or payload is None else canonical(payload)
        if key is None:
            key = "sha-" + sha256_hex(canon)[:16]
        elif not isinstance(key, str) or not key:
            raise _fail(path, lineno, f'"key" must be a non-empty string, got {json.dumps(key)}')
        for field in OPTIONAL_FIELDS:
            value = obj.get(field)
            if value is not None and not isinstance(value, str):
                raise _fail(path, lineno, f'"{field}" must be a string')
        if obj.get("agent") and obj.get("model"):
            raise _fail(path, lineno, 'give "agent" or "model", not both')
        if key in first_line_of:
            raise _fail(path, lineno, f"duplicate key {key!r} (first on line {first_line_of[key]})")
        first_line_of[key] = lineno
        items.append(
            Item(
                seq=len(items),
                key=key,
                input_text=payload if isinstance(payload, str) else as_json,
                payload_hash=payload_hash(obj, canon),
                line=lineno,
                agent=obj.get("agent"),
                model=obj.get("model"),
                instruction=obj.get("instruction"),
                payload_json=as_json,
            )
        )
    return items


def load_items(path: Path) -> list[Item]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise _fail(path, None, "no such file") from None
    except IsADirectoryError:
        raise _fail(path, None, "is a directory, not an items file") from None
    except OSError as exc:
        raise _fail(path, None, f"cannot read: {exc.strerror}") from None
    items = parse_lines(path, data)
    if not items:
        raise _fail(path, None, "no items (the file is empty)")
    return items
