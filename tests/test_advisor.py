"""The advisor on synthetic targets with known answers, every task, every backend, and the CLI."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest
import torch

import losslab as ll
from losslab.advisor import detect_task
from losslab.cli import main


def test_clean_regression_gets_mse():
    y = np.random.default_rng(0).normal(3.0, 2.0, 2000)
    # a plain normal sample: about 0.05 % lie beyond the cutoff, under the 0.1 % that counts
    rec = ll.recommend(targets=y)
    assert (rec.task, rec.loss, rec.options) == ("regression", "mse", {})
    assert rec.stats["outliers"] <= 2 and "huber" in rec.alternatives


def test_regression_with_outliers_gets_huber_with_a_delta_from_the_robust_scale():
    rng = np.random.default_rng(1)
    y = rng.normal(0.0, 2.0, 1000)
    y = np.clip(y, -6, 6)
    y[:20] = 500.0  # 2 % corrupted
    rec = ll.recommend(targets=y)
    assert rec.loss == "huber" and rec.stats["outliers"] == 20
    assert rec.options["delta"] == pytest.approx(1.345 * 1.4826 * np.median(np.abs(y - np.median(y))))
    assert rec.options["delta"] == pytest.approx(1.345 * 2.0, rel=0.1)  # about 1.345 sigma of the clean part
    assert any("outlying targets" in w for w in rec.warnings) and rec.output_layer == ll.get("huber").output_layer


def test_balanced_binary():
    y = np.tile([0, 1], 500)
    rec = ll.recommend(targets=y)
    assert (rec.task, rec.loss, rec.options) == ("binary", "binary_cross_entropy_with_logits", {})
    assert "accuracy" in rec.metrics and not rec.warnings


def test_imbalanced_binary_gets_pos_weight_negatives_over_positives():
    y = np.zeros(1000, dtype=np.int64)
    y[:50] = 1
    rec = ll.recommend(targets=torch.as_tensor(y))
    assert rec.options == {"pos_weight": 19.0}
    assert "accuracy" not in rec.metrics and rec.metrics[0] == "average_precision"
    assert rec.alternatives[0] != "focal"  # 5 % is imbalanced, not rare


def test_the_fraud_story_rare_positives_offer_focal_and_warn_about_accuracy():
    y = np.zeros(5000, dtype=np.int64)
    y[:10] = 1  # 0.2 %
    rec = ll.recommend(targets=jnp.asarray(y))
    assert rec.options["pos_weight"] == pytest.approx(499.0)
    assert rec.alternatives[0] == "focal"
    assert any("99.80%" in w for w in rec.warnings)


def test_minus_one_plus_one_labels_are_binary():
    rec = ll.recommend(targets=[-1, 1, 1, -1, 1, -1])
    assert rec.task == "binary" and any("(t + 1) / 2" in r for r in rec.reasons)


def test_imbalanced_multiclass_gets_balanced_class_weights():
    y = np.repeat([0, 1, 2, 3], [700, 200, 70, 30])
    rec = ll.recommend(targets=y)
    assert rec.task == "multiclass" and rec.loss == "cross_entropy"
    np.testing.assert_allclose(rec.options["weight"], 1000 / (4 * np.array([700, 200, 70, 30])))
    assert "balanced_accuracy" in rec.metrics and "accuracy" not in rec.metrics
    z = np.random.default_rng(2).normal(size=(1000, 4))
    assert np.isfinite(ll.get_loss(rec.loss)(z, y, **rec.options))  # the options plug straight in


def test_multiclass_with_a_missing_class_warns():
    rec = ll.recommend(targets=[0, 1, 3, 0, 1, 3, 0])
    assert rec.stats["classes"] == 4 and any("never occur" in w for w in rec.warnings)


def test_multilabel_gets_per_label_pos_weight():
    rng = np.random.default_rng(3)
    y = np.stack([rng.uniform(size=1000) < p for p in (0.5, 0.1, 0.005)], axis=1).astype(np.int64)
    rec = ll.recommend(targets=y)
    assert rec.task == "multilabel" and rec.loss == "binary_cross_entropy_with_logits"
    expected = (1000 - y.sum(0)) / y.sum(0)
    np.testing.assert_allclose(rec.options["pos_weight"], expected)
    assert rec.alternatives == ("focal",)


def test_task_names_alone():
    for task, loss in (("regression", "mse"), ("binary", "binary_cross_entropy_with_logits"), ("multiclass", "cross_entropy"),
                       ("multilabel", "binary_cross_entropy_with_logits"), ("ranking", "info_nce"), ("segmentation", "dice"),
                       ("preference", "dpo"), ("distribution", "distill_kl")):
        rec = ll.recommend(task)
        assert (rec.task, rec.loss) == (task, loss)
        assert rec.reasons and rec.metrics and rec.output_layer == ll.get(loss).output_layer
        assert set(rec.alternatives) <= {s.name for s in ll.losses()}


def test_masks_get_dice_with_cross_entropy():
    rng = np.random.default_rng(0)
    masks = rng.integers(0, 4, size=(3, 16, 16))
    masks[:, :2] = 0
    rec = ll.recommend(targets=masks)
    assert (rec.task, rec.loss, rec.options) == ("segmentation", "dice", {"mode": "multiclass"})
    assert "cross_entropy" in rec.alternatives and "cross_entropy(logits, masks) + dice" in rec.reasons[0]
    assert rec.stats["classes"] == [0, 1, 2, 3]
    binary = ll.recommend(targets=(rng.uniform(size=(2, 32, 32)) < 0.05).astype(int))
    assert binary.options == {"mode": "binary"} and any("rarest class covers" in r for r in binary.reasons)
    assert detect_task(rng.normal(size=(2, 4, 4))) == "regression"  # a dense real map (depth): regression


def test_task_and_targets_that_disagree_warn():
    rec = ll.recommend("regression", targets=[0, 1, 0, 1])
    assert rec.task == "regression" and any("look like a binary task" in w for w in rec.warnings)


@pytest.mark.parametrize(("targets", "task"), [([0.5, 1.7, 2.2], "regression"), ([0, 2, 1, 2], "multiclass"),
                                               ([1.0, 0.0, 1.0], "binary"), ([[0, 1], [1, 1]], "multilabel"),
                                               ([[0.2, 1.5], [1.0, 3.0]], "regression"), (np.arange(100.0), "regression")])
def test_detect_task(targets, task):
    assert detect_task(np.asarray(targets)) == task


@pytest.mark.parametrize(("call", "exception", "pattern"), [
    (lambda: ll.recommend(), ValueError, "give a task"),
    (lambda: ll.recommend("vision"), ValueError, "task must be one of"),
    (lambda: ll.recommend(targets=[1.0]), ValueError, "at least 2 items"),
    (lambda: ll.recommend(targets=[1.0, float("nan")]), ValueError, "finite"),
    (lambda: ll.recommend(targets=["a", "b"]), TypeError, "must hold numbers"),
])
def test_bad_input(call, exception, pattern):
    with pytest.raises(exception, match=pattern):
        call()


def test_cli_recommend_from_a_csv(tmp_path, capsys):
    path = tmp_path / "loans.csv"
    rows = ["income,default"] + [f"{1000 + i},{1 if i < 3 else 0}" for i in range(300)]
    path.write_text("\n".join(rows) + "\n")
    main(["recommend", "--targets", str(path), "--column", "default", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["task"] == "binary" and data["options"]["pos_weight"] == pytest.approx(99.0)
    main(["recommend", "--task", "multiclass"])
    assert "loss: cross_entropy()" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="has no column 'target'"):
        main(["recommend", "--targets", str(path), "--column", "target"])
    with pytest.raises(SystemExit, match="give --task or --targets"):
        main(["recommend"])


def test_counts_get_the_poisson_deviance():
    import losslab as ll

    rng = np.random.default_rng(5)
    rec = ll.recommend(targets=rng.poisson(40.0, 300).astype(float))  # 40-odd distinct whole numbers: counts
    assert rec.task == "regression" and rec.loss == "poisson_deviance" and "log" in rec.output_layer
    assert rec.warnings == () and rec.stats["dispersion"] == pytest.approx(1.0, abs=0.3)
    over = ll.recommend("regression", targets=rng.negative_binomial(2, 0.1, 300).astype(float))
    assert over.loss == "poisson_deviance" and "tweedie_deviance" in over.warnings[0]  # variance >> mean
    assert ll.recommend(targets=rng.normal(50, 5, 300)).loss == "mse"  # not counts: unchanged
