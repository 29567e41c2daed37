"""Every experiment runs, is deterministic, and the seed claims it checks hold with fixed seeds."""

from __future__ import annotations

import json

import pytest

import losslab.experiments as lx
from losslab.cli import main


@pytest.fixture(scope="module")
def results():
    return {name: lx.run(name) for name in lx.EXPERIMENTS}


@pytest.mark.parametrize("name", list(lx.EXPERIMENTS))
def test_every_claim_holds(results, name):
    result = results[name]
    assert result.claims and all(result.claims.values()), str(result)
    assert result.table and name in result.name and str(result).startswith(result.title)


def test_outliers_numbers(results):
    rows = {r["loss"]: r for r in results["outliers"].table}
    assert rows["huber"]["slope error"] < 0.1 < rows["mse"]["slope error"]
    assert rows["mae"]["intercept error"] < 0.2 < rows["mse"]["intercept error"]


def test_sigmoid_trap_numbers(results):
    mse_row, bce_row = results["sigmoid-trap"].table
    assert bce_row["epochs to 90% accuracy"] < mse_row["epochs to 90% accuracy"]


def test_imbalance_the_accuracy_trap(results):
    rows = {r["model"]: r for r in results["imbalance"].table}
    trivial = rows["trivial (always negative)"]
    assert trivial["accuracy"] == pytest.approx(0.998) and trivial["recall"] == 0 and trivial["pr_auc"] == pytest.approx(0.002)
    assert rows["bce + pos_weight"]["recall"] >= 0.9
    assert "99 % recall" in results["imbalance"].notes[0]


def test_deterministic_and_seeded():
    assert lx.run("convexity").table == lx.run("convexity").table
    assert lx.run("mle", seed=1).table != lx.run("mle", seed=2).table


def test_save_plots(results, tmp_path):
    for name in ("outliers", "sigmoid-trap", "imbalance", "overfitting", "convexity"):
        paths = results[name].save_plots(tmp_path)
        assert paths and all(p.exists() and p.stat().st_size > 5000 and p.read_bytes()[:4] == b"\x89PNG" for p in paths)


def test_unknown_experiment():
    with pytest.raises(KeyError, match="no experiment named 'outlier'"):
        lx.run("outlier")


def test_cli(capsys, tmp_path):
    main(["experiment"])
    assert "sigmoid-trap" in capsys.readouterr().out
    main(["experiment", "mle", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["name"] == "mle" and all(data["claims"].values())
    main(["experiment", "convexity", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "[ok] the log loss Hessian is positive semi-definite" in out and (tmp_path / "convexity-1.png").exists()
    with pytest.raises(SystemExit, match="no experiment named"):
        main(["experiment", "nope"])
