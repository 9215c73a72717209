"""``tuibatch demo``: its failures are planned, so it says so and exits 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuibatch.cli import main
from tuibatch.demo import explain_exit, planned_failures
from tuibatch.states import ExitCode


def test_demo_exits_0_when_exactly_the_planned_failures_happened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # the demo points the process at its own simulator: undo that after the test
    for name in ("GEMINI_API_KEY", "GOOGLE_GEMINI_BASE_URL"):
        monkeypatch.setenv(name, "restored-after-the-test")
    monkeypatch.chdir(tmp_path)
    # 42 items: the plan's first permanent 400 (article-0042) is in, its 429 storm is not
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--headless", "--items", "42", "--run-seconds", "0.05"])
    cap = capsys.readouterr()
    assert exc.value.code == ExitCode.OK, cap.err
    assert (tmp_path / "tuibatch-demo" / "items.jsonl").exists()
    last = cap.err.splitlines()[-1]
    assert last == "tuibatch: demo: the failure (article-0042) was planned by the demo's fault plan"
    assert "42/42 done" not in cap.out and "41/42 done, 1 failed" in cap.out.splitlines()[-1]

    db = tmp_path / "tuibatch-demo" / "items.tuibatch.db"
    keys = [f"article-{i:04d}" for i in range(1, 43)]
    assert planned_failures(keys) == {"article-0042"}
    # a failure the plan did not cause keeps exit 1, and is named
    assert explain_exit(ExitCode.FAILED, db, {"article-0007"}) == ExitCode.FAILED
    assert "1 failure(s) the fault plan did not cause: article-0042" in capsys.readouterr().err
    # other outcomes pass through untouched
    assert explain_exit(ExitCode.PAUSED, db, {"article-0042"}) == ExitCode.PAUSED
    assert explain_exit(ExitCode.INTERRUPTED, db, {"article-0042"}) == ExitCode.INTERRUPTED


def test_the_demo_directory_is_ignored_by_git() -> None:
    root = Path(__file__).resolve().parents[1]
    patterns = (root / ".gitignore").read_text("utf-8").splitlines()
    assert "tuibatch-demo/" in patterns
