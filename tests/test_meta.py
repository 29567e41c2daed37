"""Checks on the project itself: the README's tour runs, and no test asserts nothing."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_tour_runs():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    tour = re.search(r"## A tour\n\n```python\n(.*?)```", text, re.S).group(1)
    namespace: dict = {}
    exec(compile(tour, "README tour", "exec"), namespace)
    assert float(namespace["value"]) > 0 and namespace["grad"].shape == (1, 3)


def test_readme_choosing_example_runs_and_prints_what_it_says(capsys):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## Choosing a loss.*?```python\n(.*?)```", text, re.S).group(1)
    exec(compile(block, "README choosing", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    promised = [line.removeprefix("# ").strip() for line in block.splitlines() if line.startswith("# ")]
    for line in promised:  # every "# output" comment in the block is what the code above it printed
        assert line in printed


def _asserts_something(fn: ast.FunctionDef) -> bool:
    for node in ast.walk(fn):
        if isinstance(node, ast.Assert):
            return True
        if isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            if any(k in name for k in ("assert", "raises", "fail", "approx")):
                return True
    return False


def test_every_test_asserts_something():
    silent = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_") and not _asserts_something(node):
                silent.append(f"{path.name}::{node.name}")
    assert not silent, f"tests that assert nothing: {silent}"
