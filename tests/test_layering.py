"""Layering and lint, checked on every run: the engine never imports textual, the UI never
imports the engine or the SDK, and the tree is ruff- and mypy-clean."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "tuibatch"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                rel = path.relative_to(PKG).parent.parts[: len(path.relative_to(PKG).parent.parts) - node.level + 1]
                base = ".".join(("tuibatch", *rel, base)) if base else ".".join(("tuibatch", *rel))
            names.add(base)
    return names


def test_only_the_ui_imports_textual() -> None:
    offenders = [str(p.relative_to(ROOT)) for p in PKG.rglob("*.py")
                 if "ui" not in p.relative_to(PKG).parts[:1]
                 and any(n == "textual" or n.startswith("textual.") for n in _imports(p))]
    assert offenders == []


def test_the_ui_never_imports_the_engine_or_the_sdk() -> None:
    forbidden = ("tuibatch.engine", "tuibatch.backends", "google", "tuibatch.limiter")
    offenders = [(str(p.relative_to(ROOT)), n) for p in (PKG / "ui").rglob("*.py") for n in _imports(p)
                 if any(n == f or n.startswith(f + ".") for f in forbidden)]
    assert offenders == []


def test_the_engine_does_not_import_the_simulator() -> None:
    for name in ("engine.py", "store.py", "policy.py", "limiter.py", "backends/gemini.py"):
        assert not any(n.startswith("tuibatch.sim") for n in _imports(PKG / name)), name


def _tool(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    found = str(exe) if exe.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed (pip install -e '.[test]')")
    return found


def test_ruff_is_clean() -> None:
    out = subprocess.run([_tool("ruff"), "check", "tuibatch", "tests", "benchmarks"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_is_clean() -> None:
    out = subprocess.run([_tool("mypy"), "tuibatch"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
