"""``--dry-run --count-tokens``: the service counts each distinct request, through the real SDK
against the simulator's countTokens route; nothing is launched or written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import cli_env, run_cli, write_items

from tuibatch.sim import SimulatorThread
from tuibatch.sim.tokens import count
from tuibatch.states import ExitCode

INSTRUCTION = "Answer in one short sentence, please."


def _request_file(path: Path, texts: list[str]) -> list[dict[str, Any]]:
    """Batch API lines, one per text (two parts each, so the service's count and the local
    ≈4-characters estimate of the joined text differ)."""
    lines = [
        {
            "key": f"k{i}",
            "request": {
                "contents": [{"role": "user", "parts": [{"text": t}, {"text": t.upper()}]}],
                "systemInstruction": {"parts": [{"text": INSTRUCTION}]},
                "generationConfig": {"temperature": 0.1, "maxOutputTokens": 50},
            },
        }
        for i, t in enumerate(texts)
    ]
    path.write_text("".join(json.dumps(ln) + "\n" for ln in lines))
    return lines


def _tokens_line(stdout: str) -> str:
    return next(ln for ln in stdout.splitlines() if "items to run" in ln)


def _total(stdout: str) -> int:
    figure = _tokens_line(stdout).split(", ")[1].split(" input tokens")[0]
    return int(figure.removeprefix("about ").replace(",", ""))


def test_the_service_counts_each_distinct_request_as_it_would_be_sent(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    items = tmp_path / "batch.jsonl"
    texts = ["alpha beta gamma", "a much longer text " * 7, "alpha beta gamma", "x"]
    lines = _request_file(items, texts)
    args = [str(items), "--dry-run", "--model", "sim-model", "--count-tokens"]
    out = run_cli(args, env=cli_env(sim.url))
    assert out.returncode == ExitCode.OK, out.stderr
    bodies = [b for b in sim.bodies() if b["route"] == "count_tokens"]
    contents = [b["body"]["contents"] for b in bodies]
    # one call per distinct request (items 0 and 2 send the same one), the contents exactly as
    # written, and the system instruction once, counted as contents (the Gemini API's SDK
    # counts contents only)
    distinct = [lines[0], lines[1], lines[3]]
    for ln in distinct:
        assert ln["request"]["contents"] in contents
    instruction = [{"parts": [{"text": INSTRUCTION}]}]
    assert contents.count(instruction) == 1
    assert len(bodies) == len(distinct) + 1
    assert all(b["path"].endswith("/models/sim-model:countTokens") for b in bodies), bodies
    per_instruction = count({"contents": instruction})
    expected = sum(
        count({"contents": lines[i]["request"]["contents"]}) + per_instruction for i in range(4)
    )
    assert _total(out.stdout) == expected
    assert "counted by the service (countTokens) for all 3 distinct requests" in out.stdout
    assert f"  sim-model: 4 items, {expected:,} input tokens" in out.stdout
    # the local estimate differs (it reads the joined text): the count is what is shown
    plain = run_cli([str(items), "--dry-run", "--model", "sim-model"], env=cli_env(sim.url))
    assert plain.returncode == ExitCode.OK, plain.stderr
    assert _total(plain.stdout) != expected and "≈4 characters a token" in plain.stdout
    stats = sim.stats()
    assert stats["by_route"]["generate"] == 0 and stats["by_route"]["create"] == 0
    assert not (tmp_path / "batch.tuibatch.db").exists()


def test_a_sample_is_counted_and_the_rest_extrapolated(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    items = tmp_path / "batch.jsonl"
    _request_file(items, [f"text number {i} " * (i + 1) for i in range(10)])
    args = [str(items), "--dry-run", "--model", "sim-model", "--count-tokens"]
    out = run_cli([*args, "--count-tokens-sample", "3"], env=cli_env(sim.url))
    assert out.returncode == ExitCode.OK, out.stderr
    calls = [b for b in sim.bodies() if b["route"] == "count_tokens"]
    assert len(calls) == 3 + 1  # three requests and their shared instruction
    assert "a sample of 3 of 10 distinct requests, the rest extrapolated" in out.stdout
    assert "  sim-model: 10 items, ~" in out.stdout  # not all counted: marked as approximate
    full = run_cli(args, env=cli_env(sim.url))
    exact, sampled = _total(full.stdout), _total(out.stdout)
    assert abs(sampled - exact) <= 0.1 * exact


def test_agents_cannot_be_counted_and_say_so(tmp_path: Path, sim: SimulatorThread) -> None:
    items = tmp_path / "items.jsonl"
    write_items(items, 3, extra={2: {"model": "sim-model"}})
    args = [str(items), "--dry-run", "--agent", "sim-agent", "--count-tokens"]
    out = run_cli(args, env=cli_env(sim.url))
    assert out.returncode == ExitCode.OK, out.stderr
    assert "agents cannot be counted" in out.stdout
    assert "  agent sim-agent: 2 items, ~" in out.stdout
    assert len([b for b in sim.bodies() if b["route"] == "count_tokens"]) == 1
    assert sim.stats()["by_route"]["create"] == 0


def test_a_bad_key_is_one_line_and_nothing_is_written(tmp_path: Path) -> None:
    items = tmp_path / "batch.jsonl"
    _request_file(items, ["hello"])
    env = cli_env()
    with SimulatorThread(invalid_keys=[env["GEMINI_API_KEY"]]) as sim:
        env["GOOGLE_GEMINI_BASE_URL"] = sim.url
        args = [str(items), "--dry-run", "--model", "sim-model", "--count-tokens"]
        out = run_cli(args, env=env)
    assert out.returncode == ExitCode.FAILED
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert "counting tokens with sim-model failed (bad API key)" in lines[0]
    assert "nothing was launched or written" in lines[0]
    assert out.stdout == ""
    assert not (tmp_path / "batch.tuibatch.db").exists()


def test_no_network_is_one_line(tmp_path: Path) -> None:
    items = tmp_path / "batch.jsonl"
    _request_file(items, ["hello"])
    # port 9 on loopback: nothing listens there
    args = [str(items), "--dry-run", "--model", "sim-model", "--count-tokens"]
    out = run_cli(args, env=cli_env("http://127.0.0.1:9"))
    assert out.returncode == ExitCode.FAILED
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "counting tokens with sim-model failed" in lines[0], out.stderr
    assert not (tmp_path / "batch.tuibatch.db").exists()


def test_count_flags_are_checked(tmp_path: Path) -> None:
    items = tmp_path / "batch.jsonl"
    _request_file(items, ["hello"])
    for flags, needle in (
        (["--count-tokens"], "--count-tokens goes with --dry-run"),
        (["--dry-run", "--count-tokens-sample", "2"], "goes with --count-tokens"),
        (["--dry-run", "--count-tokens", "--count-tokens-sample", "0"], "at least 1"),
    ):
        out = run_cli([str(items), "--model", "sim-model", *flags])
        assert out.returncode == ExitCode.USAGE and needle in out.stderr, out.stderr


def test_batch_mode_prices_model_items_at_half_the_interactive_rate(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps({"key": "a", "payload": "x" * 40_000}) + "\n")

    def costs(*flags: str) -> tuple[float, float, str]:
        out = run_cli([str(items), "--dry-run", "--model", "gemini-2.5-flash", *flags])
        assert out.returncode == ExitCode.OK, out.stderr
        line = next(ln for ln in out.stdout.splitlines() if ln.startswith("estimated cost"))
        low, high = line.split("$")[1].split()[0], line.split("– $")[1].split()[0]
        return float(low), float(high), out.stdout

    low, high, text = costs()
    assert "batch rate" not in text
    b_low, b_high, b_text = costs("--mode", "batch")
    assert b_low == round(low / 2, 4) or abs(b_low - low / 2) < 1e-4
    assert abs(b_high - high / 2) < 1e-4 and b_high < high
    assert "Batch API rate, half the interactive price" in b_text
    assert "at the batch rate" in b_text


def test_batch_mode_says_agent_items_are_refused(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    write_items(items, 2)
    out = run_cli([str(items), "--dry-run", "--agent", "sim-agent", "--mode", "batch"])
    assert out.returncode == ExitCode.OK, out.stderr
    assert "--mode batch refuses agent items: 2 here" in out.stdout
    assert "at the batch rate" not in out.stdout
