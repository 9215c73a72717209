"""``tuibatch export``: every item's input and result, in the items' order, for people and programs.

* **JSONL** (default): one object per item — ``key``, ``status``, ``input`` (the line's
  ``payload``, ``request`` or ``input`` as written), ``target``, ``output``, ``error``,
  ``attempts``, ``usage``, ``cost_usd``, ``run_id``. A structured answer (``--schema``, JSON
  mode) is a JSON value, not a string. Characters a terminal would act on are written as
  ``\\u`` escapes, so the data stays exact and safe to print.
* **CSV**: one row per item, flattened: the columns above (``error_class``, ``error_code``,
  ``error_message``, ``input_tokens`` …), and for JSON objects one column per top-level field
  (``input.title``, ``output.year``); nested values as JSON text. Written to a terminal, control
  characters are shown escaped (``safe_text.visible``); to a file, exactly.
* **Parquet** (``pip install 'tuibatch[parquet]'``): the same columns, typed where every row
  agrees (``output.year`` int64, ``output.authors`` list<string>), else JSON text.

``--only STATE`` (repeatable) narrows the items. Files are created owner-only (0600), like the
checkpoint they come from. Reads go through the store's public views only.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from .options import UsageError
from .safe_text import visible
from .states import ExitCode, ItemState
from .store import Row, Store

FORMATS = ("jsonl", "csv", "parquet")
PARQUET_HINT = "parquet export needs pyarrow: pip install 'tuibatch[parquet]'"
PAGE = 2000
#: characters JSON may carry raw that a terminal would act on (C1 controls, line separators,
#: bidi overrides); written as \\u escapes, the exported value stays exact
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
#: CSV and Parquet columns before the flattened ``input.*`` / ``output.*`` ones
BASE_COLUMNS = (
    "key",
    "status",
    "target",
    "input",
    "output",
    "error_class",
    "error_code",
    "error_message",
    "attempts",
    "input_tokens",
    "output_tokens",
    "thought_tokens",
    "cost_usd",
    "run_id",
)
_MISSING = object()


def format_for(fmt: str | None, output: Path | None) -> str:
    """The export format: as given, else by the output file's extension, else jsonl."""
    if fmt is not None:
        return fmt
    suffix = output.suffix.lower() if output is not None else ""
    return {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}.get(suffix, "jsonl")


# ------------------------------------------------------------------------------ records


def input_value(row: Row) -> Any:
    """The line's payload (or request, or input) as the user wrote it; else the request sent."""
    if not row.payload:
        request = getattr(row, "request", None)
        if request:
            try:
                return json.loads(request)
            except ValueError:
                pass
        return row.input
    try:
        return json.loads(row.payload)
    except ValueError:
        return row.payload


def output_value(row: Row) -> Any:
    """A checked structured answer as its JSON value (``output_json``), else the answer's text."""
    raw = getattr(row, "output_json", None)
    if raw is not None:
        try:
            return json.loads(raw)
        except ValueError:
            pass
    return row.output


def structured(row: Row) -> bool:
    return getattr(row, "output_json", None) is not None


def target_of(row: Row) -> str | None:
    """The agent or model the item went to (or goes to)."""
    if row.run_target or row.agent or row.model:
        return row.run_target or row.agent or row.model
    request = getattr(row, "request", None)
    if request:
        try:
            wire = json.loads(request)
        except ValueError:
            return None
        target = wire.get("agent") or wire.get("model") if isinstance(wire, dict) else None
        return target if isinstance(target, str) else None
    return None


def export_record(row: Row) -> dict[str, Any]:
    """One exported item: its input, result, error, attempts, usage and cost."""
    error = None
    if row.state in (ItemState.FAILED, ItemState.SKIPPED, ItemState.LOST) and (
        row.err_message or row.err_code
    ):
        error = {"class": row.err_class, "code": row.err_code, "message": row.err_message}
    return {
        "key": row.key,
        "status": str(row.state),
        "input": input_value(row),
        "target": target_of(row),
        "output": output_value(row),
        "error": error,
        "attempts": row.attempts,
        "usage": {
            "input_tokens": row.tokens_in,
            "output_tokens": row.tokens_out,
            "thought_tokens": row.tokens_thought,
        },
        "cost_usd": round(row.cost_usd, 8) if row.price_known else None,
        "run_id": row.run_id,
    }


def export_line(row: Row) -> str:
    """The JSON line for *row*; safe to print on a terminal, exact when parsed."""
    text = json.dumps(export_record(row), ensure_ascii=False)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _as_text(value: Any) -> Any:
    """A column value for CSV: scalars as they are, anything else as JSON text."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return json.dumps(value, ensure_ascii=False)


def flat_record(row: Row) -> dict[str, Any]:
    """One row of a CSV or Parquet export (values not yet converted to text)."""
    inp, out = input_value(row), output_value(row)
    flat: dict[str, Any] = {
        "key": row.key,
        "status": str(row.state),
        "target": target_of(row),
        "input": inp if isinstance(inp, str) else json.dumps(inp, ensure_ascii=False),
        "output": out
        if isinstance(out, str) or out is None
        else json.dumps(out, ensure_ascii=False),
        "error_class": str(row.err_class) if row.err_class is not None else None,
        "error_code": row.err_code,
        "error_message": row.err_message,
        "attempts": row.attempts,
        "input_tokens": row.tokens_in,
        "output_tokens": row.tokens_out,
        "thought_tokens": row.tokens_thought,
        "cost_usd": round(row.cost_usd, 8) if row.price_known else None,
        "run_id": row.run_id,
    }
    if isinstance(inp, dict):
        flat.update({f"input.{k}": v for k, v in inp.items()})
    if structured(row) and isinstance(out, dict):
        flat.update({f"output.{k}": v for k, v in out.items()})
    return flat


# ---------------------------------------------------------------------------- reading

#: the rows to export, page by page; called once per pass (CSV and Parquet make two)
Pages = Callable[[], AsyncIterator[list[Row]]]


def store_pages(store: Store, only: Sequence[ItemState] | None) -> Pages:
    async def pages() -> AsyncIterator[list[Row]]:
        offset = 0
        while True:
            rows = await store.items(only, limit=PAGE, offset=offset)
            if not rows:
                return
            yield rows
            offset += len(rows)

    return pages


async def columns_of(pages: Pages) -> list[str]:
    """Every column, the flattened ones in order of first appearance."""
    extra: dict[str, None] = {}
    async for rows in pages():
        for row in rows:
            for name in flat_record(row):
                if name not in BASE_COLUMNS:
                    extra.setdefault(name, None)
    return [*BASE_COLUMNS, *extra]


# ---------------------------------------------------------------------------- writing


@contextlib.contextmanager
def _output(path: Path | None, binary: bool = False) -> Iterator[IO[Any]]:
    if path is None:
        yield sys.stdout.buffer if binary else sys.stdout
        return
    try:  # owner-only, like the checkpoint it comes from
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write ({exc.strerror})") from None
    os.fchmod(fd, 0o600)  # a file that existed before is made owner-only too
    if binary:
        with open(fd, "wb") as fb:
            yield fb
    else:
        with open(fd, "w", encoding="utf-8", newline="") as f:
            yield f


async def write_jsonl(pages: Pages, out: IO[str]) -> None:
    async for rows in pages():
        out.write("".join(export_line(row) + "\n" for row in rows))


async def write_csv(pages: Pages, out: IO[str], *, terminal: bool = False) -> None:
    """CSV; *terminal*: control characters shown escaped (a display, not data)."""
    columns = await columns_of(pages)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    async for rows in pages():
        for row in rows:
            flat = flat_record(row)
            values = [_as_text(flat.get(c)) for c in columns]
            if terminal:
                values = [visible(v) if isinstance(v, str) else v for v in values]
            writer.writerow(["" if v is None else v for v in values])


def _parquet_column(pa: Any, values: list[Any]) -> Any:
    """A typed column where the values agree on a type; else JSON text."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        text = [
            v if isinstance(v, str) or v is None else json.dumps(v, ensure_ascii=False)
            for v in values
        ]
        return pa.array(text, pa.string())


async def write_parquet(pages: Pages, out: IO[bytes]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = await columns_of(pages)
    data: dict[str, list[Any]] = {c: [] for c in columns}
    async for rows in pages():
        for row in rows:
            flat = flat_record(row)
            for c in columns:
                data[c].append(flat.get(c))
    arrays = [_parquet_column(pa, data[c]) for c in columns]
    pq.write_table(pa.Table.from_arrays(arrays, names=columns), out)


async def export(
    db: Path,
    output: Path | None,
    *,
    fmt: str | None = None,
    only: Sequence[str] | None = None,
) -> ExitCode:
    """Write the export; a bad format, a missing pyarrow or an unwritable file is one line."""
    from .runner import open_existing

    kind = format_for(fmt, output)
    if kind not in FORMATS:
        raise UsageError(f"unknown export format {kind!r} (one of {', '.join(FORMATS)})")
    states = None if not only else [ItemState(s) for s in dict.fromkeys(only)]
    if kind == "parquet":
        try:
            import pyarrow.parquet  # noqa: F401
        except ImportError:
            raise UsageError(PARQUET_HINT) from None
        if output is None and sys.stdout.isatty():
            raise UsageError("parquet is binary: give -o FILE (or pipe standard output)")
    store = await open_existing(db, readonly=True)
    try:
        pages = store_pages(store, states)
        with _output(output, binary=kind == "parquet") as out:
            if kind == "jsonl":
                await write_jsonl(pages, out)
            elif kind == "csv":
                await write_csv(pages, out, terminal=output is None and out.isatty())
            else:
                await write_parquet(pages, out)
            out.flush()
    finally:
        await store.close()
    return ExitCode.OK
