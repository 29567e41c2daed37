"""Evaluation metrics against scikit-learn, on every backend, with ties, imbalance and bad input."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as sk

from losslab import metrics as m


def _data(seed, n=300, positive_rate=0.3, ties=True):
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=n) < positive_rate).astype(np.int64)
    y[:2] = [0, 1]  # both classes present
    s = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1)
    return y, (np.round(s, 2) if ties else s)


def _as(backend, x):
    return {"numpy": lambda v: v, "torch": torch.as_tensor, "jax": jnp.asarray, "list": lambda v: v.tolist()}[backend](x)


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax", "list"])
@pytest.mark.parametrize("seed", range(4))
def test_binary_metrics_match_scikit_learn(seed, backend):
    y, s = _data(seed, positive_rate=[0.5, 0.3, 0.05, 0.01][seed] + 0.02)
    yb, sb = _as(backend, y), _as(backend, s)
    pred = (s >= 0.5).astype(np.int64)
    assert m.roc_auc(yb, sb) == pytest.approx(sk.roc_auc_score(y, s), rel=1e-12)
    assert m.average_precision(yb, sb) == pytest.approx(sk.average_precision_score(y, s), rel=1e-12)
    assert m.log_loss(yb, sb) == pytest.approx(sk.log_loss(y, s), rel=1e-12)
    assert m.brier_score(yb, sb) == pytest.approx(sk.brier_score_loss(y, s), rel=1e-12)
    assert m.accuracy(yb, sb) == pytest.approx(sk.accuracy_score(y, pred))  # scores thresholded at 0.5
    assert m.balanced_accuracy(yb, _as(backend, pred)) == pytest.approx(sk.balanced_accuracy_score(y, pred))
    for ours, theirs in ((m.precision, sk.precision_score), (m.recall, sk.recall_score), (m.f1, sk.f1_score)):
        assert ours(yb, _as(backend, pred)) == pytest.approx(theirs(y, pred, zero_division=0))
    np.testing.assert_array_equal(m.confusion_matrix(yb, _as(backend, pred)), sk.confusion_matrix(y, pred))


@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
def test_multiclass_metrics_match_scikit_learn(average):
    rng = np.random.default_rng(3)
    y = rng.integers(0, 4, 250)
    logits = rng.normal(size=(250, 4)) + 1.5 * np.eye(4)[y]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    pred = probs.argmax(1)
    assert m.accuracy(y, probs) == pytest.approx(sk.accuracy_score(y, pred))
    assert m.balanced_accuracy(y, pred) == pytest.approx(sk.balanced_accuracy_score(y, pred))
    for ours, theirs in ((m.precision, sk.precision_score), (m.recall, sk.recall_score), (m.f1, sk.f1_score)):
        assert ours(y, pred, average=average) == pytest.approx(theirs(y, pred, average=average, zero_division=0))
    assert m.log_loss(y, probs) == pytest.approx(sk.log_loss(y, probs), rel=1e-12)
    np.testing.assert_array_equal(m.confusion_matrix(y, pred), sk.confusion_matrix(y, pred))
    np.testing.assert_array_equal(m.confusion_matrix(y, pred, labels=[3, 1]), sk.confusion_matrix(y, pred, labels=[3, 1]))


@settings(max_examples=60, deadline=None)
@given(data=st.data(), n=st.integers(2, 40))
def test_ranking_metrics_match_scikit_learn_on_any_ties(data, n):
    y = np.array(data.draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    y[0], y[1] = 0, 1
    s = np.array(data.draw(st.lists(st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]), min_size=n, max_size=n)))
    assert m.roc_auc(y, s) == pytest.approx(sk.roc_auc_score(y, s), abs=1e-12)
    assert m.average_precision(y, s) == pytest.approx(sk.average_precision_score(y, s), abs=1e-12)


def test_the_seeds_fraud_story_accuracy_flatters_the_trivial_model():
    y = np.zeros(5000, dtype=int)
    y[:10] = 1  # 0.2 % fraud
    always_negative = np.zeros_like(y)
    assert m.accuracy(y, always_negative) == pytest.approx(0.998)
    assert m.recall(y, always_negative) == 0.0
    assert m.f1(y, always_negative) == 0.0
    assert m.balanced_accuracy(y, always_negative) == pytest.approx(0.5)


@pytest.mark.parametrize("target", [0.5, 0.9, 0.99, 1.0])
def test_threshold_for_recall_is_the_highest_threshold_reaching_it(target):
    y, s = _data(7, n=500, ties=False)
    choice = m.threshold_for(y, s, recall=target)
    flagged = s >= choice.threshold
    assert m.recall(y, flagged.astype(int)) == pytest.approx(choice.recall) and choice.recall >= target
    assert m.precision(y, flagged.astype(int)) == pytest.approx(choice.precision)
    assert choice.flagged == flagged.sum()
    above = s[s > choice.threshold]
    if above.size:  # the next higher threshold misses the target
        assert m.recall(y, (s >= above.min()).astype(int)) < target
    _fpr, tpr, thresholds = sk.roc_curve(y, s, drop_intermediate=False)
    assert choice.threshold == thresholds[np.argmax(tpr >= target)]


def test_threshold_for_precision_is_the_lowest_threshold_reaching_it():
    y, s = _data(8, n=500, ties=False)
    choice = m.threshold_for(y, s, precision=0.8)
    assert choice.precision >= 0.8
    below = s[s < choice.threshold]
    if below.size:
        assert m.precision(y, (s >= below.max()).astype(int)) < 0.8
    assert "recall" in str(choice)


BAD = [
    (lambda: m.roc_auc([0, 0, 0], [0.1, 0.2, 0.3]), ValueError, "both classes"),
    (lambda: m.roc_auc([0, 1, 2], [0.1, 0.2, 0.3]), ValueError, "binary 0/1 labels"),
    (lambda: m.roc_auc([0, 1], [0.1, 0.2, 0.3]), ValueError, "one score per item"),
    (lambda: m.accuracy([0, 1, 1], [0, 1]), ValueError, "one label per item"),
    (lambda: m.precision([0, 1], [0, 1], average="mean"), ValueError, "average must be one of"),
    (lambda: m.log_loss([0, 1], [0.2, 1.7]), ValueError, "pass probabilities, not logits"),
    (lambda: m.log_loss([0, 3], np.full((2, 3), 1 / 3)), ValueError, r"labels outside \[0, 2\]"),
    (lambda: m.threshold_for([0, 1], [0.2, 0.8]), ValueError, "exactly one of recall= or precision="),
    (lambda: m.threshold_for([0, 1], [0.2, 0.8], recall=1.5), ValueError, r"target must be in \(0, 1\]"),
    (lambda: m.accuracy([], []), ValueError, "at least one item"),
    (lambda: m.accuracy(["a"], ["b"]), TypeError, "must hold numbers"),
]


@pytest.mark.parametrize(("call", "exception", "pattern"), BAD, ids=[b[2] for b in BAD])
def test_bad_input(call, exception, pattern):
    with pytest.raises(exception, match=pattern):
        call()


def test_traced_values_are_refused():
    import jax

    with pytest.raises(TypeError, match="traced value"):
        jax.jit(lambda s: m.roc_auc(jnp.array([0, 1]), s))(jnp.array([0.1, 0.9]))


def test_cli_metrics(tmp_path, capsys):
    from losslab.cli import main

    y, s = _data(11, n=200)
    path = tmp_path / "scores.csv"
    path.write_text("y,score\n" + "\n".join(f"{a},{b}" for a, b in zip(y, s)) + "\n")
    main(["metrics", str(path), "--labels", "y", "--scores", "score", "--recall", "0.9", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["roc_auc"] == pytest.approx(sk.roc_auc_score(y, s))
    assert data["threshold_for"]["recall"] >= 0.9
    main(["metrics", str(path), "--labels", "y", "--scores", "score"])
    assert "average_precision" in capsys.readouterr().out
