"""``tuibatch export``: JSONL, CSV and Parquet of a real run, in input order, ``--only``, 0600 files.

The batch runs through the real CLI against the simulator; the exports are read back with the
csv module and pyarrow. Structured answers (the ``output_json`` column the store adds) are
exported as JSON values: checked on rows that carry one.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import stat
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import FAST, cli_env, run_cli

from tuibatch.export import export_record, flat_record, write_csv, write_jsonl, write_parquet
from tuibatch.sim import SimulatorThread
from tuibatch.states import ExitCode
from tuibatch.store import Row, Store

#: keys a CSV writer must quote; the last one is failed by the fault plan
KEYS = ["plain", "with,comma", 'with "quotes"', "multi\nline", "tab\tand ünïcode", "fails"]


@pytest.fixture(scope="module")
def batch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One finished run: five done, one failed; the checkpoint's path."""
    tmp = tmp_path_factory.mktemp("export")
    items = tmp / "items.jsonl"
    with open(items, "w", encoding="utf-8") as f:
        for i, key in enumerate(KEYS):
            f.write(
                json.dumps({"key": key, "payload": {"title": f"T{i}", "year": 2000 + i}}) + "\n"
            )
    faults = [{"item": "fails", "fault": "http", "code": 400, "times": None, "message": "bad"}]
    with SimulatorThread(run_seconds=0.05, faults=faults) as sim:
        db = tmp / "items.tuibatch.db"
        out = run_cli(
            [str(items), "--headless", "--agent", "sim-agent", "--concurrency", "1", *FAST],
            env=cli_env(sim.url),
        )
        assert out.returncode == ExitCode.FAILED, out.stderr
    return db


def export(db: Path, *args: str) -> str:
    out = run_cli(["export", "--db", str(db), *args])
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_jsonl_holds_input_and_result_in_input_order(batch: Path) -> None:
    records = [json.loads(line) for line in export(batch).splitlines()]
    assert [r["key"] for r in records] == KEYS
    assert [r["status"] for r in records] == ["done"] * 5 + ["failed"]
    assert records[5]["error"]["message"].endswith("bad") and records[5]["output"] is None
    assert records[1]["input"] == {"title": "T1", "year": 2001}  # the payload as written
    assert records[0]["target"] == "sim-agent" and isinstance(records[0]["output"], str)
    assert set(records[0]) == {
        "key", "status", "input", "target", "output", "error", "attempts", "usage", "cost_usd",
        "run_id",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("only", "keys"),
    [
        (["done"], KEYS[:5]),
        (["failed"], KEYS[5:]),
        (["failed", "done"], KEYS),  # still input order
        (["skipped"], []),
        (["pending", "lost"], []),
    ],
)
def test_only_narrows_the_states(batch: Path, only: list[str], keys: list[str]) -> None:
    args = [a for state in only for a in ("--only", state)]
    assert [json.loads(x)["key"] for x in export(batch, *args).splitlines()] == keys
    rows = list(csv.DictReader(io.StringIO(export(batch, "--format", "csv", *args))))
    assert [r["key"] for r in rows] == keys


def test_csv_is_flat_exact_and_quoted(batch: Path, tmp_path: Path) -> None:
    target = tmp_path / "results.csv"
    export(batch, "-o", str(target))  # the format from the extension
    with open(target, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        header = reader.fieldnames or []
    assert header[:5] == ["key", "status", "target", "input", "output"]
    assert {"input.title", "input.year", "error_message", "input_tokens", "cost_usd"} <= set(header)
    assert [r["key"] for r in rows] == KEYS  # commas, quotes, newlines and tabs survive exactly
    assert [r["input.year"] for r in rows] == [str(2000 + i) for i in range(len(KEYS))]
    assert json.loads(rows[0]["input"]) == {"title": "T0", "year": 2000}
    assert int(rows[0]["input_tokens"]) > 0 and float(rows[0]["cost_usd"]) > 0
    assert rows[0]["output"] and rows[5]["error_class"] and rows[0]["error_class"] == ""
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_parquet_has_typed_columns(batch: Path, tmp_path: Path) -> None:
    target = tmp_path / "out.parquet"
    export(batch, "-o", str(target), "--only", "done")
    table = pq.read_table(target)
    assert table.column("key").to_pylist() == KEYS[:5]
    assert str(table.schema.field("input.year").type) == "int64"
    assert str(table.schema.field("input_tokens").type) == "int64"
    assert table.column("input.title").to_pylist() == ["T0", "T1", "T2", "T3", "T4"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    # --format wins over the extension
    other = tmp_path / "out.data"
    export(batch, "-o", str(other), "--format", "parquet")
    assert pq.read_table(other).num_rows == len(KEYS)


def test_an_existing_file_is_made_owner_only(batch: Path, tmp_path: Path) -> None:
    for name in ("a.jsonl", "b.csv", "c.parquet"):
        target = tmp_path / name
        target.write_text("old")
        target.chmod(0o644)
        export(batch, "-o", str(target))
        assert stat.S_IMODE(target.stat().st_mode) == 0o600, name
        assert target.read_bytes() != b"old"


def test_parquet_without_pyarrow_is_one_line(batch: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "no-pyarrow" / "pyarrow"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('pyarrow is not installed')\n")
    env = cli_env(None, PYTHONPATH=str(blocker.parent))
    target = tmp_path / "x.parquet"
    out = run_cli(["export", "--db", str(batch), "-o", str(target)], env=env)
    assert out.returncode == ExitCode.USAGE
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert lines == ["tuibatch: parquet export needs pyarrow: pip install 'tuibatch[parquet]'"]
    assert not target.exists()


def test_export_of_a_missing_checkpoint_is_one_line(tmp_path: Path) -> None:
    out = run_cli(["export", "--db", str(tmp_path / "none.db"), "--format", "csv"])
    assert out.returncode == ExitCode.USAGE
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


# ------------------------------------------------------------------ structured answers


if {"request", "output_json"} <= {f.name for f in fields(Row)}:

    def with_answer(row: Row, **columns: Any) -> Row:
        return replace(row, **columns)

else:  # a store from before the request/output_json columns

    @dataclass
    class _AnswerRow(Row):
        request: str | None = None
        output_json: str | None = None

    def with_answer(row: Row, **columns: Any) -> Row:
        return _AnswerRow(**asdict(row), **columns)


async def structured_rows(db: Path) -> list[Row]:
    """The run's rows as the store hands them out with a checked answer (``output_json``)."""
    store = await Store.open(db, readonly=True)
    try:
        rows = await store.items()
    finally:
        await store.close()
    out = []
    for i, row in enumerate(rows):
        answer = {"title": f"T{i}", "year": 2000 + i, "authors": ["A", "B"][: i % 2 + 1]}
        out.append(
            with_answer(
                row,
                request='{"agent": "sim-agent", "input": "x"}',
                output_json=json.dumps(answer) if row.output is not None else None,
            )
        )
    return out


def pages_of(rows: list[Any]) -> Any:
    async def pages() -> AsyncIterator[list[Row]]:
        yield rows[:2]
        yield rows[2:]

    return pages


def test_a_structured_answer_is_a_json_value_in_every_format(batch: Path, tmp_path: Path) -> None:
    rows = asyncio.run(structured_rows(batch))
    record = export_record(rows[1])
    assert record["output"] == {"title": "T1", "year": 2001, "authors": ["A", "B"]}
    assert export_record(rows[5])["output"] is None  # failed: no answer
    assert flat_record(rows[0])["output.year"] == 2000

    text = io.StringIO()
    asyncio.run(write_jsonl(pages_of(rows), text))
    assert json.loads(text.getvalue().splitlines()[3])["output"]["year"] == 2003

    text = io.StringIO()
    asyncio.run(write_csv(pages_of(rows), text))
    table = list(csv.DictReader(io.StringIO(text.getvalue())))
    assert table[1]["output.authors"] == '["A", "B"]' and table[1]["output.year"] == "2001"
    assert json.loads(table[1]["output"]) == record["output"]

    target = tmp_path / "s.parquet"
    with open(target, "wb") as f:
        asyncio.run(write_parquet(pages_of(rows), f))
    parquet = pq.read_table(target)
    assert str(parquet.schema.field("output.year").type) == "int64"
    authors = parquet.schema.field("output.authors").type
    assert pa.types.is_list(authors) and pa.types.is_string(authors.value_type)
    assert parquet.column("output.authors").to_pylist()[:2] == [["A"], ["A", "B"]]
    assert parquet.column("output.year").to_pylist()[4:] == [2004, None]


def test_columns_whose_values_disagree_fall_back_to_json_text(tmp_path: Path) -> None:
    import pyarrow as pa

    from tuibatch.export import _parquet_column

    assert _parquet_column(pa, [1, 2, None]).type == pa.int64()
    mixed = _parquet_column(pa, [1, "x", {"a": 1}, None])
    assert mixed.type == pa.string() and mixed.to_pylist() == ["1", "x", '{"a": 1}', None]
