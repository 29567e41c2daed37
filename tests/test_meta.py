"""Checks on the project itself: the README's tour runs, and no test asserts nothing."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

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


def test_readme_post_training_example_runs_and_prints_what_it_says(capsys):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"### Post-training and distillation.*?```python\n(.*?)```", text, re.S).group(1)
    exec(compile(block, "README post-training", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    promised = [line.removeprefix("# ").strip() for line in block.splitlines() if line.startswith("# ")]
    assert promised and all(line in printed for line in promised)


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


def test_every_command_of_the_readmes_command_line_block_runs_as_written(tmp_path):
    """From a copy of the repository's examples/: the CSV files the lines read are shipped."""
    import json
    import shlex
    import shutil
    import subprocess
    import sys

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## The command line\n\n```bash\n(.*?)```", text, re.S).group(1)
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    ran = []
    for line in block.splitlines():
        command = re.sub(r"\s+# .*$", "", line).strip()
        if not command.startswith("losslab ") or command.split()[1] in ("explore", "quiz"):  # interactive
            continue
        # the optional parts in [brackets] given: the line's every flag is tried once
        for variant in (command.replace("[", "").replace("]", ""),):
            args = shlex.split(variant)[1:]
            out = subprocess.run([sys.executable, "-m", "losslab.cli", *args], cwd=tmp_path, capture_output=True,
                                 text=True, timeout=300, stdin=subprocess.DEVNULL)
            expected = 1 if "exit 1" in line and "exit 1 if not" not in line else 0
            assert out.returncode == expected, (variant, out.stdout[-500:], out.stderr[-1500:])
            assert "Traceback" not in out.stderr, variant
            if "--json" in args:
                json.loads(out.stdout, parse_constant=lambda c, v=variant: pytest.fail(f"{v}: {c} is not JSON"))
            ran.append(args[0])
    assert {"list", "compare", "ce", "recommend", "check", "metrics", "experiment", "plot", "examples"} <= set(ran)
    assert (tmp_path / "focal.png").exists() and list((tmp_path / "plots").glob("sigmoid-trap-*.png"))


def test_every_json_output_of_the_command_line_is_standard_and_alike():
    import json
    import subprocess
    import sys

    commands = [["list", "--json"], ["show", "mse", "--json"], ["compare", "--pred", "1", "--target", "3", "--json"],
                ["ce", "--logits", "2", "1", "--target", "0", "--json"], ["recommend", "--task", "binary", "--json"],
                ["examples", "--seed", "002", "--json"], ["quiz", "--id", "bce-p-0.05", "--json"],
                ["experiment", "mle", "--json"]]
    for args in commands:
        out = subprocess.run([sys.executable, "-m", "losslab.cli", *args], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, (args, out.stderr[-1000:])
        data = json.loads(out.stdout, parse_constant=lambda c, a=args: pytest.fail(f"{a}: {c} is not JSON"))
        assert out.stdout == json.dumps(data, indent=2) + "\n", args  # one style: indented, standard
    compared = json.loads(subprocess.run([sys.executable, "-m", "losslab.cli", *commands[2]], capture_output=True,
                                         text=True, timeout=120).stdout)
    assert set(compared["mse"]) == {"value", "grad"}  # compare keeps its {loss: {value, grad}} shape
