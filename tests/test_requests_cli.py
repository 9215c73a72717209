"""Requests end to end through the real command line: Gemini Batch API files, config and schema
flags, bad input, the dry run. The simulator records what arrived (``/_sim/bodies``)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from conftest import FAST, cli_env, export, run_cli, write_items

from tuibatch.output_check import check_output
from tuibatch.sim import SimulatorThread
from tuibatch.states import ExitCode

SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "year": {"type": "integer"}},
    "required": ["title", "year"],
}


def batch_api_file(path: Path, n: int) -> list[dict[str, Any]]:
    """A Gemini Batch API input file, as a user would upload it to the Batch API."""
    lines = []
    for i in range(n):
        lines.append(
            {
                "key": f"req-{i}",
                "request": {
                    "contents": [
                        {"role": "user", "parts": [{"text": f"Paper {i}: give its title and year"}]}
                    ],
                    "systemInstruction": {"parts": [{"text": "Answer as JSON."}]},
                    "generationConfig": {
                        "temperature": 0.1,
                        "maxOutputTokens": 200,
                        "responseMimeType": "application/json",
                        "responseJsonSchema": SCHEMA,
                    },
                },
            }
        )
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return lines


def _files(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix not in (".jsonl", ".json", ".png")
    }


def _one_line(stderr: str, *needles: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_a_batch_api_file_runs_unchanged(tmp_path: Path, sim: SimulatorThread) -> None:
    items = tmp_path / "batch.jsonl"
    lines = batch_api_file(items, 5)
    out = run_cli([str(items), "--headless", "--model", "sim-model", *FAST], env=cli_env(sim.url))
    assert out.returncode == ExitCode.OK, out.stderr
    exported = export(tmp_path / "batch.tuibatch.db")
    assert [r["key"] for r in exported] == [ln["key"] for ln in lines]
    assert all(r["status"] == "done" for r in exported)
    # the input is exported as the user wrote it, next to the result
    assert [r["input"] for r in exported] == [ln["request"] for ln in lines]


def test_a_batch_api_file_arrives_as_written_and_exports_json_values(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    items = tmp_path / "batch.jsonl"
    lines = batch_api_file(items, 3)
    out = run_cli([str(items), "--headless", "--model", "sim-model", *FAST], env=cli_env(sim.url))
    assert out.returncode == ExitCode.OK, out.stderr
    bodies = [b["body"] for b in sim.bodies() if b["route"] == "generate"]
    assert len(bodies) == 3
    ordered = sorted(bodies, key=lambda b: b["contents"][0]["parts"][0]["text"])
    for body, line in zip(ordered, lines, strict=True):
        assert body["generationConfig"]["responseJsonSchema"] == SCHEMA
        assert body["generationConfig"]["temperature"] == 0.1
        assert body["contents"] == line["request"]["contents"]
    for record in export(tmp_path / "batch.tuibatch.db"):
        assert record["target"] == "sim-model"  # read from the stored request
        assert isinstance(record["output"], dict), record  # a JSON value, not a string
        assert check_output(json.dumps(record["output"]), SCHEMA).ok


def test_config_schema_and_instruction_flags_arrive(tmp_path: Path, sim: SimulatorThread) -> None:
    items = tmp_path / "items.jsonl"
    write_items(items, 2)
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA))
    config = tmp_path / "config.json"
    config.write_text('{"topP": 0.5, "stopSequences": ["x"]}')
    args = [str(items), "--headless", "--model", "sim-model", f"--config={config}"]
    args += ["--schema", str(schema), "--temperature", "0.3", "--stop", "END", "--stop=-x"]
    args += ["--instruction", "Be brief.", "--safety", "harassment=block_none", *FAST]
    out = run_cli(args, env=cli_env(sim.url))
    assert out.returncode == ExitCode.OK, out.stderr
    (body, _) = [b["body"] for b in sim.bodies() if b["route"] == "generate"]
    gen = body["generationConfig"]
    assert gen["temperature"] == 0.3 and gen["topP"] == 0.5
    assert gen["stopSequences"] == ["END", "-x"]  # the flag replaces the file's field whole
    assert gen["responseJsonSchema"] == SCHEMA
    assert body["systemInstruction"]["parts"] == [{"text": "Be brief."}]
    assert body["safetySettings"] == [
        {"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}
    ]


def test_a_changed_config_on_a_finished_key_is_refused(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    items = tmp_path / "items.jsonl"
    write_items(items, 3)
    base = [str(items), "--headless", "--agent", "sim-agent", *FAST]
    assert run_cli(base, env=cli_env(sim.url)).returncode == ExitCode.OK
    before = _files(tmp_path)
    # the same command again: nothing changed, nothing refused
    assert run_cli(base, env=cli_env(sim.url)).returncode == ExitCode.OK
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA))
    after_rerun = _files(tmp_path)
    out = run_cli([*base, "--schema", str(schema)], env=cli_env(sim.url))
    assert out.returncode == ExitCode.USAGE
    _one_line(out.stderr, "3 key(s)", "item-0000", "--rerun-changed", "config, schema")
    assert _files(tmp_path) == after_rerun
    assert set(before) == set(after_rerun)
    out = run_cli([*base, "--schema", str(schema), "--rerun-changed"], env=cli_env(sim.url))
    assert out.returncode == ExitCode.OK, out.stderr
    assert "3 changed item(s) put back to pending" in out.stderr


def test_a_checkpoint_of_the_first_release_resumes_without_changes(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    import asyncio

    from tuibatch import items as first_release
    from tuibatch.store import Store

    items = tmp_path / "items.jsonl"
    write_items(items, 3)

    async def fill() -> None:
        store = await Store.open(tmp_path / "items.tuibatch.db", create=True)
        await store.sync_items(first_release.load_items(items))
        await store.close()

    asyncio.run(fill())
    out = run_cli(
        [str(items), "--headless", "--agent", "sim-agent", "--instruction", "Hi", *FAST],
        env=cli_env(sim.url),
    )
    assert out.returncode == ExitCode.OK, out.stderr
    assert all(r["status"] == "done" for r in export(tmp_path / "items.tuibatch.db"))


# ------------------------------------------------------------------------------- bad input

#: case: (which file: payload lines run on sim-agent, request lines on sim-model; flags; a line
#: appended to the file; words of the one line)
BAD: dict[str, tuple[str, list[str], dict[str, Any] | None, list[str]]] = {
    "config-wrong-type": (
        "payload",
        ["--config", "{dir}/bad-config.json"],
        None,
        ["bad-config.json: temperature: Input should be a valid number"],
    ),
    "config-unknown-field": (
        "request",
        [],
        {
            "key": "x",
            "request": {"contents": [{"parts": [{"text": "y"}]}]},
            "config": {"tempurature": 1},
        },
        ["items.jsonl:4: config.tempurature: unknown field (did you mean temperature?)"],
    ),
    "schema-not-json-schema": (
        "payload",
        ["--schema", "{dir}/bad-schema.json"],
        None,
        ["bad-schema.json: not a valid JSON Schema"],
    ),
    "request-without-contents": (
        "request",
        [],
        {"key": "x", "request": {"generationConfig": {"temperature": 1}}},
        ['items.jsonl:4: request: missing "contents"'],
    ),
    "multimodal-file-missing": (
        "request",
        [],
        {"key": "x", "request": {"contents": [{"parts": [{"file": "figs/missing.png"}]}]}},
        ["items.jsonl:4: request.contents[0].parts[0].file: no such file"],
    ),
    "mixed-formats": (
        "request",
        [],
        {"key": "x", "payload": "y"},
        ['items.jsonl:4: a "payload" line in a file of "request" lines (first on line 1)'],
    ),
    "bad-thinking-level": (
        "payload",
        ["--thinking-level", "ultra"],
        None,
        ['--thinking-level: unknown value "ULTRA"'],
    ),
    "bad-safety": ("payload", ["--safety", "HARASSMENT"], None, ["--safety HARASSMENT"]),
    "bad-temperature": ("payload", ["--temperature", "hot"], None, ["--temperature", "hot"]),
}


def test_bad_config_schema_and_requests_are_one_line_and_touch_nothing(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    (tmp_path / "bad-config.json").write_text('{"temperature": "hot"}')
    (tmp_path / "bad-schema.json").write_text('{"type": "objekt"}')
    files = {"payload": tmp_path / "p" / "items.jsonl", "request": tmp_path / "r" / "items.jsonl"}
    target = {"payload": ["--agent", "sim-agent"], "request": ["--model", "sim-model"]}
    for kind, items in files.items():
        items.parent.mkdir()
        if kind == "payload":
            write_items(items, 3)
        else:
            batch_api_file(items, 3)
        ok = run_cli([str(items), "--headless", *target[kind], *FAST], env=cli_env(sim.url))
        assert ok.returncode == ExitCode.OK, ok.stderr
    good = {kind: p.read_bytes() for kind, p in files.items()}
    before = {kind: _files(p.parent) for kind, p in files.items()}
    requests = sim.stats()["requests"]
    for case, (kind, flags, line, words) in BAD.items():
        items = files[kind]
        items.write_bytes(good[kind] + (json.dumps(line) + "\n").encode() if line else good[kind])
        args = [str(items), "--headless", *target[kind]]
        args += [f.format(dir=tmp_path) for f in flags]
        out = run_cli([*args, *FAST], env=cli_env(sim.url))
        assert out.returncode == ExitCode.USAGE, (case, out.stderr)
        _one_line(out.stderr, *words)
        assert {k: _files(p.parent) for k, p in files.items()} == before, case
        items.write_bytes(good[kind])
    assert sim.stats()["requests"] == requests, "bad input sent something"


def test_an_agent_given_generation_flags_is_one_line(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    write_items(items, 2)
    out = run_cli([str(items), "--headless", "--agent", "sim-agent", "--temperature", "0.2"])
    assert out.returncode == ExitCode.USAGE
    _one_line(out.stderr, "items.jsonl:1:", "takes no generation config", "temperature")
    assert not (tmp_path / "items.tuibatch.db").exists()


# --------------------------------------------------------------------------------- dry run


def test_dry_run_checks_every_line_and_prices_each_model(
    tmp_path: Path, sim: SimulatorThread
) -> None:
    items = tmp_path / "batch.jsonl"
    lines = batch_api_file(items, 4)
    lines[1]["request"]["model"] = "models/gemini-2.5-pro"
    lines[2]["model"] = "mystery-model"
    items.write_text("".join(json.dumps(ln) + "\n" for ln in lines))
    out = run_cli([str(items), "--dry-run", "--model", "sim-model"], env=cli_env(sim.url))
    assert out.returncode == ExitCode.OK, out.stderr
    text = out.stdout
    assert "4 items to run" in text and "≈4 characters a token" in text
    assert "  sim-model: 2 items" in text and "  gemini-2.5-pro: 1 items" in text
    assert "mystery-model: 1 items" in text and "price unknown for: mystery-model" in text
    assert "4 item(s) ask for JSON" in text
    assert sim.stats()["requests"] == 0
    assert not (tmp_path / "batch.tuibatch.db").exists()
    # a bad line anywhere fails the dry run too, with its one line
    items.write_text(items.read_text() + '{"key": "z", "request": {}}\n')
    out = run_cli([str(items), "--dry-run", "--model", "sim-model"], env=cli_env(sim.url))
    assert out.returncode == ExitCode.USAGE
    _one_line(out.stderr, "batch.jsonl:5:", 'missing "contents"')


def test_dry_run_caps_the_high_end_at_max_output_tokens(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps({"key": "a", "payload": "x" * 4000}) + "\n")

    def high(*flags: str) -> float:
        out = run_cli([str(items), "--dry-run", "--model", "gemini-2.5-flash", *flags])
        assert out.returncode == ExitCode.OK, out.stderr
        line = next(ln for ln in out.stdout.splitlines() if ln.startswith("estimated cost"))
        return float(line.split("– $")[1].split()[0])

    assert high("--max-output-tokens", "10") < high()


def test_an_agent_batch_with_a_schema_asks_for_json(tmp_path: Path, sim: SimulatorThread) -> None:
    items = tmp_path / "items.jsonl"
    write_items(items, 2)
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA))
    out = run_cli(
        [str(items), "--dry-run", "--agent", "sim-agent", "--schema", str(schema)],
        env=cli_env(sim.url),
    )
    assert out.returncode == ExitCode.OK, out.stderr
    assert "agent sim-agent: 2 items" in out.stdout and "2 item(s) ask for JSON" in out.stdout
    assert sim.stats()["requests"] == 0
