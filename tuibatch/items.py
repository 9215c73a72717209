"""One item as the checkpoint keeps it, and reading an items file line by line.

This module stays light (no SDK): the store, the simulator and the app's side import it.
The items file is read into validated requests by :mod:`tuibatch.itemsfile` (every line a
:class:`~tuibatch.request_spec.RequestSpec`), which the run command uses. The reading here
(:func:`parse_lines`, :func:`load_items`) is the first release's: ``{"key", "payload"}`` lines
whose target and config are decided at launch; it defines :func:`legacy_payload_hash`, the hash
checkpoints written by that release hold, and fills checkpoints the way it did (tests, benchmarks).

Parsing is all-or-nothing so that a typo on line 90 000 cannot leave a half-loaded
checkpoint behind; every problem is reported as one line naming file and line.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

#: Fields an item line may carry besides ``key`` and ``payload``.
OPTIONAL_FIELDS = ("agent", "model", "instruction")


class InputError(Exception):
    """Bad input: the message is the single line the user sees."""


_FIELDS = (
    "seq",
    "key",
    "input_text",
    "payload_hash",
    "line",
    "agent",
    "model",
    "instruction",
    "payload_json",
    "legacy_hash",
    "request_pieces",
)


class Item:
    """One line of the items file, as the checkpoint stores it (nothing changes it once built).

    ``payload_hash`` covers everything that changes what is sent (a finished key whose hash
    changed is refused). ``legacy_hash`` is set when the request is one the first release could
    send (a payload line without config or schema): a checkpoint that release wrote holds this
    hash for an unchanged key. ``request_json`` is the canonical request (see
    :mod:`tuibatch.request_sdk`); None for an item read the first release's way, whose target
    and instruction are decided at launch. ``payload_json`` is the line's payload (or
    ``request`` / ``input``) as JSON text, as the user wrote it; given a *source* (a function
    that makes it), it is made on use: only new keys are ever stored, so a file of 100k
    lines with one new key makes it once.
    """

    __slots__ = (*_FIELDS[:8], "_payload_json", "_source", "legacy_hash", "request_pieces")
    seq: int
    key: str
    input_text: str
    payload_hash: str
    line: int
    agent: str | None
    model: str | None
    instruction: str | None
    legacy_hash: str | None
    request_pieces: tuple[str, ...]
    _payload_json: str | None
    _source: Callable[[], str] | None

    def __init__(
        self,
        seq: int,
        key: str,
        input_text: str,
        payload_hash: str,
        line: int,
        agent: str | None = None,
        model: str | None = None,
        instruction: str | None = None,
        payload_json: str = "",
        legacy_hash: str | None = None,
        request_pieces: tuple[str, ...] = (),
        source: Callable[[], str] | None = None,
    ) -> None:
        self.seq = seq
        self.key = key
        self.input_text = input_text
        self.payload_hash = payload_hash
        self.line = line
        self.agent = agent
        self.model = model
        self.instruction = instruction
        self._payload_json = payload_json if source is None else None
        self._source = source
        self.legacy_hash = legacy_hash
        self.request_pieces = request_pieces

    @property
    def payload_json(self) -> str:
        """Made from *source* on each use when one was given, and not kept: the store reads
        it once, as it writes the row (100k of them are never held at once)."""
        text: str | None = self._payload_json
        if text is None:
            assert self._source is not None
            return self._source()
        return text

    @property
    def request_json(self) -> str | None:
        """The canonical request (``request_pieces`` joined: lines share their config pieces)."""
        return "".join(self.request_pieces) if self.request_pieces else None

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _FIELDS)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Item) and self._values() == other._values()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown_fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in _FIELDS[:5])
        return f"Item({shown_fields}, …)"


def canonical(value: Any) -> str:
    """Canonical JSON text: key order and whitespace never change a hash."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def key_label(key: str) -> str:
    """Label value for a key: lowercase, ≤ 63 chars, starts with a letter (Google's label rules)."""
    return "k" + sha256_hex(key)[:24]


def canonical_payload(payload: Any) -> str:
    """The payload's text as the first release hashed it (and derived a missing key from)."""
    if isinstance(payload, (str, int, float, bool)) or payload is None:
        return json.dumps(payload, ensure_ascii=False)
    return canonical(payload)


def legacy_payload_hash(item_fields: dict[str, Any], canonical_payload: str | None = None) -> str:
    """The first release's hash of a payload line: its payload and per-item overrides."""
    text = (
        canonical_payload
        if canonical_payload is not None
        else canonical(item_fields.get("payload"))
    )
    extras = "\x00".join(item_fields.get(k) or "" for k in OPTIONAL_FIELDS)
    return sha256_hex(f"{text}\x00{extras}")


#: the old name (benchmarks that build checkpoints the first release's way)
payload_hash = legacy_payload_hash


def fail(path: Path, line: int | None, problem: str) -> InputError:
    where = f"{path}:{line}" if line is not None else str(path)
    return InputError(f"{where}: {problem}")


def shown(value: Any, limit: int = 40) -> str:
    """A bad value as it appears in a message: JSON, ASCII-escaped, short enough for one line."""
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check_text(path: Path, line: int, field: str, text: str) -> None:
    """JSON's \\u escapes can spell half a surrogate pair, which is not text (nor storable)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = json.dumps(text[exc.start])
        raise fail(path, line, f'"{field}" contains {bad}, half a surrogate pair') from None


def read_file(path: Path) -> bytes:
    """The items file's bytes; a file that cannot be read is one line."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise fail(path, None, "no such file") from None
    except IsADirectoryError:
        raise fail(path, None, "is a directory, not an items file") from None
    except OSError as exc:
        raise fail(path, None, f"cannot read: {exc.strerror}") from None


def read_json_file(path: Path, what: str) -> Any:
    """A JSON file the user names (``--config``, ``--schema``): its value, or one line saying
    what is wrong and where (*what* names the kind of file in the "is a directory" line)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a {what}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: invalid UTF-8 at byte {exc.start + 1}") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{path}:{exc.lineno}: malformed JSON: {exc.msg} (column {exc.colno})"
        ) from None


def iter_lines(path: Path, data: bytes) -> Iterator[tuple[int, str]]:
    """(line number, text) for every non-blank line; a leading UTF-8 BOM, CRLF line ends and
    blank lines are fine. InputError names the first line that is not UTF-8."""
    # line by line, without a list of every line: a 100k-line file is not held twice
    start = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    size, lineno = len(data), 0
    while start <= size:
        end = data.find(b"\n", start)
        if end < 0:
            end = size
        raw = data[start:end].rstrip(b"\r")
        start, lineno = end + 1, lineno + 1
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise fail(path, lineno, f"invalid UTF-8 at byte {exc.start + 1}") from None
        yield lineno, text


def load_object(path: Path, lineno: int, text: str) -> dict[str, Any]:
    """One line's JSON object, or InputError naming the line."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(path, lineno, f"malformed JSON: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        raise fail(path, lineno, "malformed JSON: nested too deeply") from None
    if not isinstance(obj, dict):
        raise fail(path, lineno, f"expected a JSON object, got {type(obj).__name__}")
    return obj


def iter_objects(path: Path, data: bytes) -> Iterator[tuple[int, dict[str, Any], str]]:
    """(line number, JSON object, the line's text) for every non-blank line (see
    :func:`iter_lines`). InputError names the first line that is not a JSON object."""
    for lineno, text in iter_lines(path, data):
        yield lineno, load_object(path, lineno, text), text


class KeyLines:
    """Where each key was first seen: a key given twice is refused naming both lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._first: dict[str, int] = {}

    def add(self, key: str, line: int) -> None:
        first = self._first.setdefault(key, line)
        if first != line:
            raise fail(self.path, line, f"duplicate key {key!r} (first on line {first})")


def parse_lines(path: Path, data: bytes) -> list[Item]:
    """Every item of an items file's *data*, read the first release's way (payload lines; the
    target decided at launch), or InputError naming the first bad line."""
    items: list[Item] = []
    keys = KeyLines(path)
    for lineno, obj, _text in iter_objects(path, data):
        if "payload" not in obj:
            raise fail(path, lineno, 'missing "payload"')
        key = obj.get("key")
        payload = obj["payload"]
        as_json = json.dumps(payload, ensure_ascii=False)
        canon = canonical_payload(payload)
        _check_text(path, lineno, "payload", canon)
        if key is None:
            key = "sha-" + sha256_hex(canon)[:16]
        elif not isinstance(key, str) or not key:
            raise fail(path, lineno, f'"key" must be a non-empty string, got {shown(key)}')
        else:
            _check_text(path, lineno, "key", key)
        for field in OPTIONAL_FIELDS:
            value = obj.get(field)
            if value is not None and not isinstance(value, str):
                raise fail(path, lineno, f'"{field}" must be a string, got {shown(value)}')
            if value:
                _check_text(path, lineno, field, value)
        if obj.get("agent") and obj.get("model"):
            raise fail(path, lineno, 'give "agent" or "model", not both')
        keys.add(key, lineno)
        legacy = legacy_payload_hash(obj, canon)
        items.append(
            Item(
                seq=len(items),
                key=key,
                input_text=payload if isinstance(payload, str) else as_json,
                payload_hash=legacy,
                line=lineno,
                agent=obj.get("agent"),
                model=obj.get("model"),
                instruction=obj.get("instruction"),
                payload_json=as_json,
                legacy_hash=legacy,
            )
        )
    return items


def load_items(path: Path) -> list[Item]:
    """:func:`parse_lines` of a file; an empty file is refused."""
    items = parse_lines(path, read_file(path))
    if not items:
        raise fail(path, None, "no items (the file is empty)")
    return items
