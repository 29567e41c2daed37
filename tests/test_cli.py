"""The losslab command line, run as a user would (a subprocess) and in-process for JSON."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

import losslab as ll
from losslab.cli import main


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "losslab.cli", *args], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def test_compare_prints_the_seed_playground_table():
    out = run("compare", "--pred", "1.5", "2.5", "3.0", "--target", "1.0", "3.0", "3.0")
    assert out.returncode == 0, out.stderr
    for name, value in (("mse", "0.1667"), ("mae", "0.3333"), ("huber (delta=1)", "0.0833"), ("smooth_l1", "0.0833"), ("log_cosh", "0.0801"), ("quantile", "0.1667")):
        line = next(line for line in out.stdout.splitlines() if name in line)
        assert value in line
    assert "[0.3333, -0.3333, 0.0000]" in out.stdout  # MSE's gradient 2 e / n


def test_compare_json_is_one_object_of_values_and_gradients(capsys):
    main(["compare", "--pred", "1.5", "2.5", "3.0", "--target", "1.0", "3.0", "3.0", "--delta", "0.3", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert set(data) == {s.name for s in ll.losses(family="regression") if len(s.inputs) == 2}  # not gaussian_nll's var
    assert data["huber"]["value"] == pytest.approx(float(ll.huber([1.5, 2.5, 3.0], [1.0, 3.0, 3.0], delta=0.3)))
    assert data["mse"]["grad"] == pytest.approx([1 / 3, -1 / 3, 0.0])


def test_compare_negative_numbers_and_mismatched_lengths():
    ok = run("compare", "--pred", "-1.5", "2", "--target", "0", "-2", "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["mae"]["value"] == pytest.approx(2.75)
    bad = run("compare", "--pred", "1", "2", "--target", "1")
    assert bad.returncode != 0 and "--pred has 2 numbers but --target has 1" in bad.stderr
    bad_delta = run("compare", "--pred", "1", "--target", "1", "--delta", "-1")
    assert bad_delta.returncode != 0 and "delta must be a finite number" in bad_delta.stderr


def test_ce_prints_softmax_loss_and_gradient():
    out = run("ce", "--logits", "2", "1", "0.1", "--target", "0")
    assert out.returncode == 0, out.stderr
    assert "0.6590" in out.stdout and "0.2424" in out.stdout and "0.0986" in out.stdout
    assert "0.4170" in out.stdout and "-0.3410" in out.stdout


def test_ce_json_and_bad_target(capsys):
    main(["ce", "--logits", "2", "5", "1", "--target", "1", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["loss"] == pytest.approx(0.0659, abs=1e-4)
    assert sum(data["probabilities"]) == pytest.approx(1.0)
    assert sum(data["grad"]) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(SystemExit, match="out of range"):
        main(["ce", "--logits", "1", "2", "--target", "5"])


def test_list_and_show(capsys):
    main(["list", "--json"])
    assert [d["name"] for d in json.loads(capsys.readouterr().out)] == [s.name for s in ll.losses()]
    main(["show", "huber"])
    text = capsys.readouterr().out
    assert "clip(e, -delta, delta)" in text and "torch.nn.functional.huber_loss" in text
    with pytest.raises(SystemExit, match="did you mean huber"):
        main(["show", "hubr"])
    out = run("list")
    assert out.returncode == 0 and "binary_cross_entropy_with_logits" in out.stdout


def test_console_script_is_installed():
    import shutil
    from pathlib import Path

    beside = Path(sys.executable).with_name("losslab")  # the environment running the tests
    exe = str(beside) if beside.exists() else shutil.which("losslab")
    assert exe, "the losslab console script is not on PATH"
    out = subprocess.run([exe, "ce", "--logits", "5", "1", "2", "--target", "1", "--json"], capture_output=True, text=True, timeout=120)
    assert json.loads(out.stdout)["loss"] == pytest.approx(4.0659, abs=1e-4)


def test_quiz_in_the_terminal_grades_piped_answers():
    from losslab.quiz import questions

    first = questions()[:2]
    letters = "abcd"
    answers = f"{letters[first[0].answer]}\n{letters[(first[1].answer + 1) % 4]}\nq\n"
    out = subprocess.run([sys.executable, "-m", "losslab.cli", "quiz"], input=answers, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Correct." in out.stdout and f"Not quite: the answer is {letters[first[1].answer]})" in out.stdout
    assert "1 of 2 answered correctly." in out.stdout
    listed = json.loads(run("quiz", "--json").stdout)
    assert [q["id"] for q in listed] == [q.id for q in questions()] and "answer" not in listed[0]
    one = run("quiz", "--id", "design-a-loss")
    assert one.returncode == 0 and "model answer" in one.stdout.lower()
    assert "no question 'nope'" in run("quiz", "--id", "nope").stderr


def test_version():
    import losslab

    out = run("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"losslab {losslab.__version__}"


def test_a_reader_that_goes_away_gets_no_traceback():
    out = subprocess.run(f"{sys.executable} -m losslab.cli list --json | true", shell=True, capture_output=True,
                         text=True, timeout=120)
    assert "Traceback" not in out.stderr and "BrokenPipeError" not in out.stderr, out.stderr


CSV_PROBLEMS = [
    (b"id,y\n1,0.5\n2,1.5\n3,9.0\n", ["--column", "y"], None),  # fine with --column
    (b"id,y\n1,0.5\n2,1.5\n3,9.0\n", [], r"has columns \['id', 'y'\]: name the targets' column with --column"),
    (b"y,y\n1,2\n3,4\n", ["--column", "y"], r"names column\(s\) \['y'\] more than once"),
    (b"y,z\n1,2\n3\n", ["--column", "y"], r"line 3 of .* has 1 values but the header names 2 columns"),
    (b"y\n\xff\xfe1\n", ["--column", "y"], r"is not UTF-8 text"),
]


@pytest.mark.parametrize(("content", "extra", "error"), CSV_PROBLEMS)
def test_csv_problems_are_named_never_guessed(tmp_path, content, extra, error):
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    out = run("recommend", "--targets", str(path), *extra)
    if error is None:
        assert out.returncode == 0, out.stderr
    else:
        assert out.returncode != 0 and re.search(error, out.stderr), out.stderr
    assert "Traceback" not in out.stderr


def test_a_byte_order_mark_is_not_part_of_the_first_name(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffy\n0.5\n1.5\n9.0\n".encode())
    out = run("recommend", "--targets", str(path), "--column", "y")
    assert out.returncode == 0, out.stderr


def test_the_smoothed_loss_is_labelled_as_such():
    out = run("ce", "--logits", "2", "1", "0.1", "--target", "0", "--label-smoothing", "0.1")
    assert "(1 - 0.1) (-log p[0]) + 0.1 mean_k(-log p[k])" in out.stdout
    assert "loss = -log p[0] =" in run("ce", "--logits", "2", "1", "0.1", "--target", "0").stdout
