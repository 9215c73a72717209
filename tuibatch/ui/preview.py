"""The table's result column, in one line: a result preview, a job's wait, or the last error.

* A done item shows its result: the checked JSON answer compacted (``{title: "Dune", year:
  1965}``, keys unquoted where they are plain names), or a text answer's first characters with
  its whitespace squeezed. It works on the bounded prefix the store reads (a cut JSON text
  compacts as far as it goes), so no output is ever loaded or parsed whole.
* An item waiting in a Gemini Batch API job shows ``queued in job 3 · running · 4m05s``.
* Anything else shows its last error, as before.

Everything here is data from the service or the items file: made visible, never markup.
"""

from __future__ import annotations

import json
import re

from ..safe_text import visible
from ..states import ItemState
from . import fmt
from .data import TableRow

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")
_SPACE = " \t\r\n"
#: a Markdown code fence a model put around its JSON answer
_FENCE = re.compile(r"^\s*```[A-Za-z]*\s*")
_FENCE_END = re.compile(r"\s*```\s*$")


def _string(text: str, i: int) -> tuple[str, int, bool]:
    """The JSON string starting at ``text[i] == '"'``: (its raw text, the index after it,
    whether it is terminated). A string cut by the prefix runs to the end."""
    j = i + 1
    n = len(text)
    while j < n and text[j] != '"':
        j += 2 if text[j] == "\\" else 1
    if j >= n:
        return text[i:], n, False
    return text[i : j + 1], j + 1, True


def _decoded(raw: str, done: bool) -> str:
    """A JSON string as shown: its escapes decoded (``\\u00e9`` → é), kept in quotes."""
    if not done:
        return raw
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return '"' + value + '"' if isinstance(value, str) else raw


def compact_json(text: str, width: int) -> str:
    """JSON text (maybe cut short) on one line: no layout whitespace, ``: `` and ``, ``
    between members, object keys unquoted when they are plain names; cut to *width* cells."""
    out: list[str] = []
    size = 0
    i, n = 0, len(text)
    limit = width + 1 if width else n + 1
    while i < n and size < limit:
        c = text[i]
        if c == '"':
            raw, i, done = _string(text, i)
            k = i
            while k < n and text[k] in _SPACE:
                k += 1
            shown = _decoded(raw, done)
            if done and k < n and text[k] == ":" and _NAME.fullmatch(shown[1:-1]):
                shown = shown[1:-1]
            piece = shown
        elif c in _SPACE:
            i += 1
            continue
        elif c in ":,":
            piece = c + " "
            i += 1
        else:
            piece = c
            i += 1
        out.append(piece)
        size += len(piece)
    return fmt.cut(visible("".join(out).rstrip()), width)


def looks_like_json(text: str) -> bool:
    head = text.lstrip()[:1]
    return head in ("{", "[")


def result_text(preview: str | None, is_json: bool, width: int) -> str:
    """One line for a result prefix: JSON compacted, text squeezed; cut to *width* cells."""
    if not preview:
        return ""
    text = preview
    if not is_json:
        unfenced = text
        if text.lstrip().startswith("```"):
            unfenced = _FENCE_END.sub("", _FENCE.sub("", text, count=1))
        if looks_like_json(unfenced):
            text, is_json = unfenced, True
    if is_json:
        return compact_json(text, width)
    return fmt.one_line(text, width)


def job_text(row: TableRow, now: float, width: int = 0) -> str:
    """``queued in job 3 · running · 4m05s`` (``job 3 · running · 4m05s`` when narrow): the job
    holding the item, the service's state of it and its age."""
    if row.job_id is None:
        return ""
    state = (row.job_service_state or "").removeprefix("JOB_STATE_").lower()
    if not state:
        state = "creating" if row.job_phase == "planned" else (row.job_phase or "?")
    state = visible(state)
    age = fmt.duration(max(0.0, now - row.job_since)) if row.job_since is not None else ""
    text = f"queued in job {row.job_id} · {state}" + (f" · {age}" if age else "")
    if width and len(text) > width:
        text = f"job {row.job_id} · {state}" + (f" · {age}" if age else "")
    return fmt.cut(text, width)


def cell(row: TableRow, now: float, width: int) -> tuple[str, str]:
    """(text, kind) of the result column: kind is ``result``, ``job``, ``error`` or ``""``."""
    if row.cancel_requested:
        where = f" (job {row.job_id}: its result is ignored)" if row.job_id is not None else ""
        return fmt.cut("cancelling…" + where, width), "error"
    if row.job_id is not None:
        return job_text(row, now, width), "job"
    if row.state == ItemState.DONE and row.preview:
        return result_text(row.preview, row.preview_json, width), "result"
    if row.error:
        return fmt.one_line(row.error, width), "error"
    return "", ""
