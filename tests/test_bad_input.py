"""Bad input end to end: one line naming file and line, exit 2, no traceback, checkpoint untouched.

The parser's every refusal is tested directly in test_items.py; here a few go through the real
command line, with and without a checkpoint from an earlier run.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from conftest import cli_env, run_cli, write_items
from test_items import REFUSED

from tuibatch.states import ExitCode

#: refusals also run end to end: a JSON error, a duplicate across lines, bytes that are not UTF-8
END_TO_END = ("malformed-json", "duplicate-key", "invalid-utf8")


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def _files(folder: Path) -> dict[str, str | None]:
    """Every file next to the items file (the checkpoint, its -wal/-shm if any), by content."""
    return {p.name: _digest(p) for p in sorted(folder.iterdir()) if p.name != "items.jsonl"}


def _assert_one_line(stderr: str, *needles: str) -> None:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_a_bad_items_file_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    data, line, problem = REFUSED["malformed-json"]
    items = tmp_path / "items.jsonl"
    items.write_bytes(data)
    out = run_cli([str(items), "--headless"])
    assert out.returncode == ExitCode.USAGE
    _assert_one_line(out.stderr, f"{items}:{line}: {problem}")
    assert _files(tmp_path) == {}, "nothing may be written for bad input"


def test_a_bad_items_file_leaves_the_existing_checkpoint_unchanged(tmp_path: Path, sim) -> None:
    items = tmp_path / "items.jsonl"
    write_items(items, 3)
    good = items.read_bytes()
    ok = run_cli(
        [str(items), "--headless", "--agent", "sim-agent", "--poll-interval", "0.05"],
        env=cli_env(sim.url),
    )
    assert ok.returncode == ExitCode.OK, ok.stderr
    before = _files(tmp_path)
    assert "items.tuibatch.db" in before
    for case in END_TO_END:
        data, line, problem = REFUSED[case]
        items.write_bytes(good + data)
        out = run_cli([str(items), "--headless"], env=cli_env(sim.url))
        assert out.returncode == ExitCode.USAGE, (case, out.stderr)
        # the line numbers in the message are the whole file's: three good lines come first
        problem = problem.replace("first on line 1", "first on line 4")
        _assert_one_line(out.stderr, f"{items}:{3 + line}: {problem}")
        assert _files(tmp_path) == before, case


def test_changed_payload_is_refused_then_rerun_on_request(tmp_path: Path, sim) -> None:
    items = tmp_path / "items.jsonl"
    db = tmp_path / "items.tuibatch.db"
    write_items(items, 4)
    assert (
        run_cli(
            [str(items), "--headless", "--agent", "sim-agent", "--poll-interval", "0.05"],
            env=cli_env(sim.url),
        ).returncode
        == 0
    )
    before = _digest(db)
    lines = items.read_text().splitlines()
    obj = json.loads(lines[2])
    obj["payload"]["title"] = "Changed"
    lines[2] = json.dumps(obj)
    items.write_text("\n".join(lines) + "\n")
    out = run_cli([str(items), "--headless", "--agent", "sim-agent"], env=cli_env(sim.url))
    assert out.returncode == 2
    _assert_one_line(out.stderr, "item-0002", "--rerun-changed")
    assert _digest(db) == before
    out = run_cli(
        [
            str(items),
            "--headless",
            "--agent",
            "sim-agent",
            "--poll-interval",
            "0.05",
            "--rerun-changed",
        ],
        env=cli_env(sim.url),
    )
    assert out.returncode == 0, out.stderr
    con = sqlite3.connect(db)
    state, output = con.execute("SELECT state, output FROM items WHERE key='item-0002'").fetchone()
    assert state == "done" and "Changed" in output
    # the old result stays in the event history
    old = [json.loads(m) for (m,) in con.execute("SELECT message FROM events WHERE kind='rerun'")]
    assert len(old) == 1 and old[0]["old_state"] == "done" and "Paper 2" in old[0]["old_output"]


@pytest.mark.parametrize(
    "content,problem",
    [
        (b"hello, this is not a database at all", "not a tuibatch checkpoint"),
        (None, "not a tuibatch checkpoint"),
        ("newer", "newer than this tuibatch"),
        ("corrupt", "corrupt"),
    ],
)
def test_checkpoint_that_is_not_ours_is_never_overwritten(
    tmp_path: Path, content, problem: str
) -> None:
    items = tmp_path / "items.jsonl"
    write_items(items, 2)
    db = tmp_path / "other.db"
    if content is None:
        con = sqlite3.connect(db)
        con.execute("CREATE TABLE invoices (id INTEGER)")
        con.commit()
        con.close()
    elif content == "newer":
        con = sqlite3.connect(db)
        con.executescript(
            "CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT); CREATE TABLE items (seq INTEGER);"
            "INSERT INTO meta VALUES ('app','tuibatch'),('schema_version','99');"
        )
        con.commit()
        con.close()
    elif content == "corrupt":
        con = sqlite3.connect(db)
        con.executescript(
            "CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT);"
            " CREATE TABLE items (seq INTEGER, x TEXT);"
            "INSERT INTO meta VALUES ('app','tuibatch'),('schema_version','1');"
        )
        con.executemany("INSERT INTO items VALUES (?, ?)", [(i, "x" * 500) for i in range(200)])
        con.commit()
        con.close()
        raw = bytearray(db.read_bytes())
        for off in range(4096 * 2 + 100, min(len(raw), 4096 * 4), 7):
            raw[off] = 0xA5
        db.write_bytes(bytes(raw))
    else:
        db.write_bytes(content)
    before = _digest(db)
    out = run_cli([str(items), "--headless", "--db", str(db)])
    assert out.returncode == 2
    _assert_one_line(out.stderr, str(db), problem)
    assert _digest(db) == before


def test_usage_errors_are_one_line(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    write_items(items, 1)
    for args in (
        ["--concurrency", "lots"],
        ["--max-attempts", "0"],
        ["--agent", "a", "--model", "m"],
        ["--no-such-flag"],
    ):
        out = run_cli([str(items), "--headless", *args])
        assert out.returncode == 2, args
        _assert_one_line(out.stderr)


def test_price_file_errors_are_one_line(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    write_items(items, 1)
    prices = tmp_path / "prices.json"
    prices.write_text('{"models": {"x": {"input": "cheap"}}}')
    out = run_cli([str(items), "--headless", "--prices", str(prices)])
    assert out.returncode == 2
    _assert_one_line(out.stderr, str(prices), "'x'")
    assert not (tmp_path / "items.tuibatch.db").exists()
