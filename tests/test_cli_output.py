"""What a headless run prints: levels, and service or items-file text never reaching a terminal raw.

The real CLI runs against the simulator over HTTP; the text under test comes back from the
service (an error message) or from the items file (a key).
"""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

import pytest
from conftest import FAST, cli_env, run_cli, write_items

from tuibatch.cli import main
from tuibatch.options import RunOptions
from tuibatch.sim import SimulatorThread
from tuibatch.ui.worker import WorkerProcess, log_path_for

#: a key that sets the window title and then tries to forge a progress line
EVIL_KEY = "evil\x1b]0;pwned\x07\n12:34:56 9/9 done, 0 failed"
#: an error message that writes the clipboard (OSC 52) and uses a C1 CSI
EVIL_MESSAGE = "\x1b]52;c;cHduZWQ=\x07 bad \x9b31m request"
RAW = ("\x1b", "\x07", "\x9b")
STAMP = re.compile(r"^\d\d:\d\d:\d\d ")


def _evil_batch(tmp_path: Path, sim: SimulatorThread) -> tuple[Path, Path]:
    items = tmp_path / "items.jsonl"
    with open(items, "w", encoding="utf-8") as f:
        for key in ("ok-1", EVIL_KEY, "ok-2"):
            f.write(json.dumps({"key": key, "payload": {"text": key}}) + "\n")
    sim.set_faults(
        [{"item": EVIL_KEY, "fault": "http", "code": 400, "message": EVIL_MESSAGE, "times": None}]
    )
    return items, tmp_path / "items.tuibatch.db"


def _no_raw(text: str) -> None:
    for ch in RAW:
        assert ch not in text, f"{ch!r} reached the terminal raw: {text!r}"


def test_escape_sequences_in_a_key_and_an_error_never_reach_headless_output_raw(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    items, db = _evil_batch(tmp_path, sim)
    out = run_cli([str(items), "--headless", "--agent", "sim-agent", *FAST], env=cli_env(sim.url))
    assert out.returncode == 1, out.stderr  # the evil item failed (400)
    _no_raw(out.stdout)
    _no_raw(out.stderr)
    lines = out.stdout.splitlines()
    assert lines and all(STAMP.match(line) for line in lines), out.stdout
    # the key's newline is shown escaped: no line of its own, so no forged progress line
    assert not any(line[9:].startswith("9/9 done") for line in lines), out.stdout
    failure = [line for line in lines if "evil" in line]
    assert failure, out.stdout  # the failure is reported, escaped, on one line
    assert "evil␛]0;pwned\\x07\\n12:34:56 9/9 done" in failure[0]
    assert "␛]52;c;cHduZWQ=\\x07 bad \\x9b31m request" in failure[0]
    assert "2/3 done, 1 failed" in lines[-1]

    # export: exact data (JSON escapes), nothing a terminal would act on, owner-only file
    exported = run_cli(["export", "--db", str(db)])
    assert exported.returncode == 0, exported.stderr
    _no_raw(exported.stdout)
    records = {r["key"]: r for r in map(json.loads, exported.stdout.splitlines())}
    assert records[EVIL_KEY]["status"] == "failed"
    assert EVIL_MESSAGE in records[EVIL_KEY]["error"]["message"]
    target = tmp_path / "out.jsonl"
    assert run_cli(["export", "--db", str(db), "-o", str(target)]).returncode == 0
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_text("utf-8") == exported.stdout

    # skip prints the key back: escaped too
    skipped = run_cli(["skip", "--db", str(db), EVIL_KEY])
    assert skipped.returncode == 0, skipped.stderr
    _no_raw(skipped.stdout)
    assert skipped.stdout.count("\n") == 1 and "evil␛]0;pwned" in skipped.stdout


def test_a_key_in_a_usage_error_is_one_escaped_line(
    tmp_path: Path, sim_env: SimulatorThread, capsys: pytest.CaptureFixture[str]
) -> None:
    items, _db = _evil_batch(tmp_path, sim_env)
    sim_env.set_faults([])
    args = [str(items), "--headless", "--agent", "sim-agent", *FAST]
    assert _main(args, capsys)[0] == 0
    with open(items, "w", encoding="utf-8") as f:  # the same keys, another payload
        for key in ("ok-1", EVIL_KEY, "ok-2"):
            f.write(json.dumps({"key": key, "payload": {"text": key + " v2"}}) + "\n")
    code, _out, err = _main(args, capsys)
    assert code == 2
    _no_raw(err)
    lines = err.splitlines()
    assert (
        len(lines) == 1 and lines[0].startswith("tuibatch: ") and "what is sent changed" in lines[0]
    )
    assert "evil␛]0;pwned\\x07\\n12:34:56" in lines[0]


def _main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """The real CLI in this process (the SDK is imported once for all runs): code, out, err."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(argv)
    cap = capsys.readouterr()
    return int(exc.value.code or 0), cap.out, cap.err


@pytest.fixture
def sim_env(sim: SimulatorThread, monkeypatch: pytest.MonkeyPatch) -> SimulatorThread:
    for name, value in cli_env(sim.url).items():
        monkeypatch.setenv(name, value)
    return sim


def _levels_run(
    tmp_path: Path, sim: SimulatorThread, capsys: pytest.CaptureFixture[str], name: str, *flags: str
) -> list[str]:
    """A 3-item batch whose item-0001 is retried once (a per-item line at info); stdout lines."""
    sim.reset()
    sim.set_faults([{"item": "item-0001", "fault": "http", "code": 503, "times": 1}])
    d = tmp_path / name
    d.mkdir()
    write_items(d / "items.jsonl", 3)
    args = [str(d / "items.jsonl"), "--headless", "--agent", "sim-agent", *flags, *FAST]
    code, out, err = _main(args, capsys)
    assert code == 0, err
    assert err == ""
    return out.splitlines()


def test_log_levels_and_quiet(
    tmp_path: Path, sim_env: SimulatorThread, capsys: pytest.CaptureFixture[str]
) -> None:
    def run(name: str, *flags: str) -> list[str]:
        return _levels_run(tmp_path, sim_env, capsys, name, *flags)

    default = run("default")
    assert any("item-0001" in line for line in default), default  # the retry line
    assert "3/3 done" in default[-1]

    for name, flags in (("quiet", ["--quiet"]), ("progress", ["--log-level", "progress"])):
        lines = run(name, *flags)
        assert not any("item-0001" in line for line in lines), lines
        assert lines and "3/3 done" in lines[-1]  # progress lines stay

    warning = run("warning", "--log-level", "warning")
    assert not any("done" in line or "item-0001" in line for line in warning), warning

    debug = run("debug", "--log-level", "debug")
    assert any("item-0001" in line for line in debug) and "3/3 done" in debug[-1]


def test_the_worker_log_is_owner_only_and_escaped(tmp_path: Path, sim: SimulatorThread) -> None:
    items, db = _evil_batch(tmp_path, sim)
    log = log_path_for(db)
    log.write_text("an earlier run's log, created 0644\n")
    log.chmod(0o644)
    options = RunOptions(
        items=items,
        db=db,
        agent="sim-agent",
        poll_interval=0.05,
        poll_max=0.2,
        retry_initial=0.05,
        retry_max=0.2,
        log_level="info",
    )
    worker = WorkerProcess(options, env=cli_env(sim.url))
    worker.start()
    try:
        assert worker.wait(60) == 1  # the evil item failed
    finally:
        worker.kill()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    text = log.read_text("utf-8")
    assert text.startswith("an earlier run's log")
    _no_raw(text)
    assert "evil␛]0;pwned" in text and "␛]52;c;" in text


def test_a_new_worker_log_is_created_owner_only(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text('{"key": "a", "payload": 1}\n{not json\n', encoding="utf-8")
    db = tmp_path / "items.tuibatch.db"
    worker = WorkerProcess(RunOptions(items=items, db=db, agent="sim-agent"), env=cli_env())
    worker.start()
    try:
        assert worker.wait(60) == 2  # bad input
    finally:
        worker.kill()
    assert stat.S_IMODE(log_path_for(db).stat().st_mode) == 0o600
    assert "items.jsonl:2" in worker.error_line()


def test_the_probe_reaches_the_engine(
    tmp_path: Path, sim_env: SimulatorThread, capsys: pytest.CaptureFixture[str]
) -> None:
    """``main(argv, probe=…)``: the engine calls it at its crash points (tests' crash hook)."""
    write_items(tmp_path / "items.jsonl", 2)
    seen: list[str] = []
    args = [str(tmp_path / "items.jsonl"), "--headless", "--agent", "sim-agent", *FAST]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(args, probe=seen.append)
    assert exc.value.code == 0, capsys.readouterr().err
    assert seen.count("after_launch") == 2 and "after_commit" in seen, seen  # one launch each
