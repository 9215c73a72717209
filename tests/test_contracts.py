"""Layering and lint, checked on every run.

The import contracts live in ``.importlinter`` and are checked by import-linter (``lint-imports``),
which follows imports transitively: the engine side never reaches textual, the UI or the
simulator; the UI is a view of the store (no engine, backend, limiter or SDK); the simulator is
independent of the engine, the store and the UI; only ``tuibatch.ui`` names textual; only
``python -m tuibatch`` imports the command line. A runtime check backs them up for what a static
graph cannot see (a dependency that imports textual).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / ".importlinter"


def _tool(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    found = str(exe) if exe.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed (pip install -e '.[test]')")
    return found


def _lint_imports(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_tool("lint-imports"), "--no-cache", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _contract_ids() -> list[str]:
    return re.findall(r"^\[importlinter:contract:([\w-]+)\]", CONFIG.read_text("utf-8"), re.M)


def test_the_import_contracts_hold() -> None:
    assert len(_contract_ids()) >= 4
    out = _lint_imports(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr


# Each contract must catch a violation two imports away, through a module it does not name.
VIOLATIONS = {
    "engine-side": ("tuibatch/items.py", "import tuibatch.ui"),
    "ui-is-a-view": ("tuibatch/ui/__init__.py", "import google.genai"),
    "sim-is-independent": ("tuibatch/sim/__init__.py", "import tuibatch.store"),
    "only-the-ui-imports-textual": ("tuibatch/safe_text.py", "import textual.app"),
    "cli-is-only-the-command-line": ("tuibatch/demo.py", "import tuibatch.cli"),
}


@pytest.mark.parametrize("contract", sorted(VIOLATIONS))
def test_each_contract_catches_an_indirect_import(tmp_path: Path, contract: str) -> None:
    assert set(VIOLATIONS) == set(_contract_ids())
    shutil.copytree(
        ROOT / "tuibatch", tmp_path / "tuibatch", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(CONFIG, tmp_path / ".importlinter")
    file, statement = VIOLATIONS[contract]
    # the offending import sits in a new module, imported by one the contract names
    (tmp_path / "tuibatch" / "_probe.py").write_text(f"{statement}\n")
    with open(tmp_path / file, "a", encoding="utf-8") as f:
        f.write("\nimport tuibatch._probe  # noqa: E402\n")
    if contract == "only-the-ui-imports-textual":  # direct imports only: name it directly
        with open(tmp_path / file, "a", encoding="utf-8") as f:
            f.write(f"{statement}  # noqa: E402\n")
    out = _lint_imports(tmp_path, "--contract", contract)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Contracts: 0 kept, 1 broken." in out.stdout, out.stdout


ENGINE_SIDE = [
    "tuibatch.engine",
    "tuibatch.store",
    "tuibatch.policy",
    "tuibatch.limiter",
    "tuibatch.pricing",
    "tuibatch.backends",
    "tuibatch.items",
    "tuibatch.states",
    "tuibatch.ratewindow",
    "tuibatch.safe_text",
    "tuibatch.owner",
    "tuibatch.error_body",
    "tuibatch.usage",
    "tuibatch.doctor",
]

RUNTIME = {
    "engine-side": (ENGINE_SIDE, ["textual", "tuibatch.ui", "tuibatch.sim"]),
    "ui": (["tuibatch.ui"], ["tuibatch.engine", "tuibatch.backends", "tuibatch.limiter", "google"]),
    "sim": (["tuibatch.sim"], ["tuibatch.engine", "tuibatch.store", "tuibatch.ui", "textual"]),
}

# imports the given modules and, for a package, everything in it; prints what is then loaded
_IMPORT_ALL = """
import importlib, json, pkgutil, sys
for name in sys.argv[1:]:
    module = importlib.import_module(name)
    for sub in pkgutil.walk_packages(getattr(module, "__path__", []), name + "."):
        if not sub.name.rsplit(".", 1)[-1] == "__main__":
            importlib.import_module(sub.name)
print(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.parametrize("side", sorted(RUNTIME))
def test_nothing_forbidden_is_loaded_at_runtime(side: str) -> None:
    """Imported for real, in a fresh interpreter: dependencies' own imports count too."""
    modules, forbidden = RUNTIME[side]
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL, *modules],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout)
    assert any(m.startswith(modules[0]) for m in loaded)
    bad = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in forbidden)]
    assert bad == [], f"importing {side} loads {bad}"


def test_ruff_is_clean() -> None:
    out = subprocess.run(
        [_tool("ruff"), "check", "tuibatch", "tests", "benchmarks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_ruff_format_is_applied() -> None:
    out = subprocess.run(
        [_tool("ruff"), "format", "--check", "tuibatch", "tests", "benchmarks", "scripts"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_is_clean() -> None:
    out = subprocess.run([_tool("mypy"), "tuibatch"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
