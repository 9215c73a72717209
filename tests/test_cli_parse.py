"""The command line itself: no guessed abbreviations, one line per usage error, options round-trip."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli, write_items

from tuibatch.cli import COMMANDS, main, parse, run_options
from tuibatch.options import QUIET, RunOptions
from tuibatch.states import ExitCode
from tuibatch.ui.worker import worker_args


def _main(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return int(exc.value.code or 0)


def _one_line(err: str, *words: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("tuibatch: ") and "Traceback" not in err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def test_an_abbreviated_flag_is_refused_end_to_end(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    write_items(items, 1)
    out = run_cli([str(items), "--headless", "--mod", "x"])
    assert out.returncode == ExitCode.USAGE
    _one_line(out.stderr, "unrecognized arguments: --mod x")
    assert out.stdout == ""
    assert not (tmp_path / "items.tuibatch.db").exists()


@pytest.mark.parametrize(
    "argv, words",
    [
        (["items.jsonl", "--mod", "batch"], ["--mod"]),  # once silently --model batch
        (["items.jsonl", "--concur", "2"], ["--concur"]),
        (["items.jsonl", "--no-such-flag"], ["--no-such-flag", "tuibatch --help"]),
        (["status", "--db", "x.db", "--bogus"], ["--bogus", "tuibatch status --help"]),
        (["export", "--d", "x.db"], ["--db"]),  # --d is not --db
        (["retry", "--db", "x.db", "--fail"], ["--fail"]),
        (["demo", "--item", "3"], ["--item"]),
    ],
)
def test_no_abbreviations_and_unknown_flags_are_one_line(
    argv: list[str], words: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _main(argv) == ExitCode.USAGE
    cap = capsys.readouterr()
    _one_line(cap.err, *words)
    assert cap.out == ""


@pytest.mark.parametrize("command", [c for c in COMMANDS if c != "sim"] + ["sim"])
def test_every_command_has_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _main([command, "--help"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert out.startswith("usage: tuibatch")
    if command not in ("sim", "demo", "doctor"):  # doctor checks a key, not a checkpoint
        assert "--db" in out


def test_help_without_a_command_is_the_run_commands_and_lists_the_others(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _main(["--help"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert "--log-level" in out and "--quiet" in out and "--concurrency" in out
    assert all(c in out for c in COMMANDS[1:])


def test_items_file_is_the_default_command() -> None:
    ns = parse(["some.jsonl", "--agent", "a"])
    assert ns.command == "run" and ns.items == Path("some.jsonl") and ns.agent == "a"
    assert parse(["run", "some.jsonl"]).items == Path("some.jsonl")


def test_bad_values_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, word in [
        (["x.jsonl", "--concurrency", "lots"], "--concurrency"),
        (["x.jsonl", "--max-attempts", "0"], "--max-attempts"),
        (["x.jsonl", "--timeout", "0"], "--timeout"),
        (["x.jsonl", "--agent", "a", "--model", "m"], "--model"),
        (["x.jsonl", "--log-level", "loud"], "--log-level"),
        (["x.jsonl", "--quiet", "--log-level", "debug"], "--quiet"),
        (["status"], "--db"),
        (["x.jsonl", "--temperature", "warm"], "--temperature"),
        (["x.jsonl", "--max-output-tokens", "0"], "--max-output-tokens"),
        (["x.jsonl", "--invalid-output-retries", "-1"], "--invalid-output-retries"),
        (["x.jsonl", "--seed", "1.5"], "--seed"),
        (["export", "--db", "x.db", "--format", "xlsx"], "--format"),
        (["export", "--db", "x.db", "--only", "finished"], "--only"),
    ]:
        assert _main(argv) == ExitCode.USAGE, argv
        _one_line(capsys.readouterr().err, word)


def test_quiet_is_a_spelling_of_the_progress_level() -> None:
    assert run_options(["x.jsonl"]).log_level is None
    assert run_options(["x.jsonl", "--quiet"]).log_level == QUIET == "progress"
    assert run_options(["x.jsonl", "--quiet", "--log-level", "progress"]).log_level == QUIET
    assert run_options(["x.jsonl", "--log-level", "warning"]).log_level == "warning"


def test_run_options_from_flags() -> None:
    o = run_options(["b.jsonl", "--concurrency", "auto", "--rpm", "60", "--budget", "2.5"])
    assert o == RunOptions(
        items=Path("b.jsonl"), db=Path("b.tuibatch.db"), adaptive=True, rpm=60.0, budget=2.5
    )


@pytest.mark.parametrize(
    "options",
    [
        RunOptions(items=Path("a.jsonl"), db=Path("a.tuibatch.db")),
        RunOptions(
            items=Path("-dir/a b.jsonl"),
            db=Path("-x.db"),
            agent="ag",
            instruction="-x",
            concurrency=3,
            adaptive=False,
            max_attempts=2,
            rpm=12.5,
            tpm=1e6,
            budget=0.0005,
            prices=Path("p.json"),
            base_url="http://127.0.0.1:9",
            timeout=0.5,
            poll_interval=0.05,
            poll_max=0.2,
            retry_initial=0.05,
            retry_max=0.2,
            rerun_changed=True,
            progress_every=60.0,
            log_level="debug",
        ),
        RunOptions(
            items=Path("a.jsonl"),
            db=Path("a.db"),
            model="m",
            adaptive=True,
            max_concurrency=5,
            log_level="progress",
        ),
        RunOptions(
            items=Path("a.jsonl"),
            db=Path("a.db"),
            model="m",
            config=Path("-cfg dir/c.json"),
            schema=Path("s.json"),
            temperature=0.25,
            top_p=0.9,
            top_k=40.0,
            max_output_tokens=512,
            seed=-3,
            stop=("END", "-x", "a=b", " "),
            thinking_budget=0,
            thinking_level="low",
            safety=("HARASSMENT=BLOCK_NONE", "hate_speech=off"),
            invalid_output_retries=0,
            accept_truncated=True,
        ),
        RunOptions(items=Path("a.jsonl"), db=Path("a.db"), invalid_output_retries=3),
    ],
)
def test_options_round_trip_through_argv(options: RunOptions) -> None:
    assert run_options(options.to_argv()) == options
    headless = parse(options.to_argv(headless=True))
    assert headless.headless and RunOptions.from_args(headless) == options


def test_request_flags_are_read_into_the_options() -> None:
    o = run_options(
        ["b.jsonl", "--config", "c.json", "--stop", "A", "--stop=-B", "--safety", "X=Y"]
        + ["--temperature", "0.5", "--top-k", "3", "--accept-truncated"]
    )
    assert (o.config, o.stop, o.safety, o.temperature, o.top_k) == (
        Path("c.json"),
        ("A", "-B"),
        ("X=Y",),
        0.5,
        3.0,
    )
    assert o.accept_truncated and o.invalid_output_retries == 1  # the default: one more try
    assert run_options(["b.jsonl"]).stop == () and not run_options(["b.jsonl"]).accept_truncated


def test_the_worker_gets_the_same_options_headless_and_quiet_unless_told() -> None:
    o = RunOptions(
        items=Path("a.jsonl"), db=Path("a.db"), budget=2.0, concurrency=4, adaptive=False
    )
    argv = worker_args(o)
    ns = parse(argv)
    assert ns.headless
    assert RunOptions.from_args(ns) == RunOptions(
        items=Path("a.jsonl"),
        db=Path("a.db"),
        budget=2.0,
        concurrency=4,
        adaptive=False,
        log_level=QUIET,
    )
    assert RunOptions.from_args(parse(["a.jsonl"])).adaptive  # auto unless a number is given
    debug = RunOptions(items=Path("a.jsonl"), db=Path("a.db"), log_level="debug")
    assert RunOptions.from_args(parse(worker_args(debug))).log_level == "debug"
