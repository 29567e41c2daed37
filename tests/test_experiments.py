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


def test_training_settings_are_checked_and_named():
    with pytest.raises(TypeError, match="outliers has no setting 'gamma'"):
        lx.run("outliers", gamma=1.0)
    with pytest.raises(ValueError, match=r"lr must be a finite number in \(0, 100\], got -1"):
        lx.run("sigmoid-trap", lr=-1)
    with pytest.raises(ValueError, match=r"epochs must be an int in \[1, 100000\], got 0"):
        lx.run("overfitting", epochs=0)
    with pytest.raises(ValueError, match="epochs must be an int"):
        lx.run("overfitting", epochs=2.5)
    with pytest.raises(ValueError, match=r"losses must be 1 to 3 different names from \['bce'"):
        lx.run("imbalance", losses=["bce", "bce"])
    with pytest.raises(TypeError, match="losses must be a list of names"):
        lx.run("imbalance", losses="bce")
    with pytest.raises(TypeError, match="mle does not train; it takes only seed"):
        lx.run("mle", lr=0.1)
    with pytest.raises(KeyError, match="no training experiment named 'mle'"):
        lx.describe("mle")


def test_describe_lists_what_the_train_tab_offers():
    info = lx.describe("imbalance")
    assert info["default_racers"] == ["bce", "bce + pos_weight", "focal"] and info["metric"] == "recall"
    settings = {s["name"]: s for s in info["settings"]}
    assert list(settings) == ["lr", "epochs", "seed", "pos_weight", "alpha", "gamma"]
    assert settings["pos_weight"]["default"] == 499.0 and settings["epochs"]["integer"]
    assert lx.describe("overfitting")["settings"][0]["default"] is None  # auto: 1 / L


def test_a_race_streams_what_run_returns_and_stops_when_asked():
    whole = lx.run("outliers", losses=["mae", "huber"], delta=0.5, epochs=300, seed=2)
    steps = list(lx.race(lx.prepare("outliers", losses=["mae", "huber"], delta=0.5, epochs=300, seed=2)))
    assert [s.epoch for s in steps[:-1]] == list(range(300)) and steps[-1].to_dict() == whole.to_dict()
    assert [s.metrics["huber"]["loss"] for s in steps[:-1]] == whole.histories["huber"]["loss"]
    count = iter(range(10**6))
    stopped = list(lx.race(lx.prepare("overfitting", epochs=50_000), stop=lambda: next(count) >= 40))
    assert len(stopped) == 41 and len(stopped[-1].histories["mse"]["loss"]) == 40  # the result covers the epochs run
    smoothed = lx.run("sigmoid-trap", label_smoothing=0.2, epochs=200)
    assert smoothed.histories["bce with logits"]["loss"][-1] > lx.run("sigmoid-trap", epochs=200).histories[
        "bce with logits"]["loss"][-1]  # smoothed targets cannot be fitted to zero loss


def test_cli_takes_the_train_tabs_settings(capsys):
    main(["experiment", "imbalance", "--losses", "bce + pos_weight", "--epochs", "100", "--option", "pos_weight=50",
          "--json"])
    data = json.loads(capsys.readouterr().out)
    assert list(data["histories"]) == ["bce + pos_weight"] and len(data["histories"]["bce + pos_weight"]["loss"]) == 100
    with pytest.raises(SystemExit, match="imbalance has no setting 'delta'"):
        main(["experiment", "imbalance", "--option", "delta=1"])


def test_an_option_for_a_loss_that_does_not_race_is_refused_not_ignored(capsys):
    with pytest.raises(ValueError, match=r"gamma changes only focal, which is not racing"):
        lx.run("imbalance", losses=["bce"], gamma=3.0)
    assert lx.describe("imbalance")["settings"][5]["used_by"] == ["focal"]
    with pytest.raises(SystemExit, match="give epochs as --epochs, not in --option"):
        main(["experiment", "outliers", "--option", "epochs=2"])


@pytest.mark.parametrize("name", list(lx.TRAININGS))
def test_a_race_stopped_before_its_first_epoch_still_has_a_result(name):
    steps = list(lx.race(lx.prepare(name), stop=lambda: True))
    assert len(steps) == 1 and isinstance(steps[0], lx.ExperimentResult)
