"""Deterministic outputs and token counts: every answer proves which input it came from.

Kept apart from the server so tests can compute the expected output of an item offline.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tuibatch.items import sha256_hex

#: Fields that make a JSON payload look like article metadata (then ``summary`` is a record).
ARTICLE_FIELDS = frozenset(
    {"title", "authors", "author", "year", "doi", "abstract", "journal", "venue", "keywords"}
)

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9-]{3,}")


def content_item_id(input_text: str) -> str:
    """Item id used when a request carries no ``tuibatch_item`` label."""
    return "h" + sha256_hex(input_text)[:24]


def estimate_tokens(text: str) -> int:
    return len(text) // 4 + 1


def _first_author(authors: Any) -> str | None:
    if isinstance(authors, list):
        if not authors:
            return None
        first = authors[0]
        if isinstance(first, dict):
            name = first.get("name") or " ".join(
                str(first[k]) for k in ("given", "family") if first.get(k)
            )
            return str(name) if name else None
        return str(first)
    if isinstance(authors, str):
        for sep in (";", " and ", ","):
            if sep in authors:
                return authors.split(sep, 1)[0].strip()
        return authors.strip() or None
    return None


def _keywords(record: dict[str, Any]) -> list[str]:
    given = record.get("keywords")
    if isinstance(given, list) and given:
        return [str(k) for k in given[:5]]
    source = record.get("abstract") or record.get("title") or ""
    words: list[str] = []
    for word in _WORD.findall(str(source)):
        word = word.lower()
        if word not in words:
            words.append(word)
        if len(words) == 5:
            break
    return words


def summarize(input_text: str) -> Any:
    """Reshape article metadata into a record; anything else becomes its first 60 characters."""
    if input_text.startswith("{"):
        try:
            record = json.loads(input_text)
        except ValueError:
            record = None
        if isinstance(record, dict) and ARTICLE_FIELDS.intersection(record):
            year = record.get("year")
            return {
                "title": record.get("title"),
                "first_author": _first_author(record.get("authors", record.get("author"))),
                "year": year if isinstance(year, (int, str)) or year is None else str(year),
                "doi": record.get("doi"),
                "keywords": _keywords(record),
            }
    return input_text[:60]


def output_text_for(input_text: str) -> str:
    """The exact text the simulator answers for ``input_text`` (agents and models alike)."""
    return json.dumps(
        {"input_sha256": sha256_hex(input_text)[:16], "summary": summarize(input_text)},
        ensure_ascii=False,
    )
