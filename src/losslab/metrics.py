"""Evaluation metrics: what to report about a classifier, as opposed to what to train it on.

Accuracy is piecewise constant in the model's parameters (zero gradient almost everywhere), so it
cannot be a training loss; and under class imbalance it flatters a useless model (the seeds' 0.2 %
fraud story: "always negative" scores 99.8 %). Train with a loss (``ll.binary_cross_entropy_with_logits``),
report these.

Inputs may be NumPy, PyTorch or JAX arrays, or lists. Metrics are computed on the host in float64
(they sort and count; they are not differentiable) and return Python floats (``confusion_matrix``: a
NumPy array). Definitions follow scikit-learn, and the tests hold them to it.

Predictions: class labels (integers or booleans), or scores. Where a metric needs labels and gets
scores, a 1-D float array is thresholded (``>= threshold``, default 0.5) and an (N, C) array takes
its argmax.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _xp

__all__ = [
    "ThresholdChoice",
    "accuracy",
    "average_precision",
    "balanced_accuracy",
    "brier_score",
    "confusion_matrix",
    "f1",
    "log_loss",
    "precision",
    "recall",
    "roc_auc",
    "threshold_for",
]

_AVERAGES = ("binary", "macro", "micro", "weighted")


def _host(name: str, x: Any) -> np.ndarray:
    arr = _xp.host_numbers(name, x, "a metric")
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one item, got shape {arr.shape}")
    return arr


def _labels(name: str, y: Any, threshold: float = 0.5) -> np.ndarray:
    arr = _host(name, y)
    if arr.dtype.kind == "f":
        if arr.ndim == 2:
            return np.argmax(arr, axis=1)
        if arr.ndim == 1 and not np.all(arr == np.round(arr)):  # scores, not float-typed labels
            return (arr >= threshold).astype(np.int64)
        return arr.astype(np.int64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D class labels (or (N, C) scores), got shape {arr.shape}")
    return arr.astype(np.int64)


def _pair(y_true: Any, y_pred: Any, threshold: float = 0.5):
    t, p = _labels("y_true", y_true), _labels("y_pred", y_pred, threshold)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have one label per item, got shapes {t.shape} and {p.shape}")
    return t, p


def _binary_scores(y_true: Any, scores: Any):
    t = _labels("y_true", y_true)
    s = _host("scores", scores).astype(np.float64)
    if s.ndim != 1 or s.shape != t.shape:
        raise ValueError(f"scores must be 1-D with one score per item of y_true {t.shape}, got {s.shape}")
    classes = np.unique(t)
    if not np.all(np.isin(classes, (0, 1))):
        raise ValueError(f"y_true must be binary 0/1 labels for this metric, got values {classes.tolist()[:5]}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    return t, s


def confusion_matrix(y_true: Any, y_pred: Any, *, labels: Any = None, threshold: float = 0.5) -> np.ndarray:
    """C[i, j] = number of items of true class labels[i] predicted as labels[j]."""
    t, p = _pair(y_true, y_pred, threshold)
    classes = np.unique(np.concatenate([t, p])) if labels is None else np.asarray(labels)
    index = {c: i for i, c in enumerate(classes.tolist())}
    out = np.zeros((len(classes), len(classes)), dtype=np.int64)
    keep = np.isin(t, classes) & np.isin(p, classes)
    np.add.at(out, (np.array([index[v] for v in t[keep].tolist()], dtype=np.int64),
                    np.array([index[v] for v in p[keep].tolist()], dtype=np.int64)), 1)
    return out


def accuracy(y_true: Any, y_pred: Any, *, threshold: float = 0.5) -> float:
    """Fraction of items predicted right. Not a training loss: its gradient is zero almost everywhere."""
    t, p = _pair(y_true, y_pred, threshold)
    return float(np.mean(t == p))


def balanced_accuracy(y_true: Any, y_pred: Any, *, threshold: float = 0.5) -> float:
    """Mean over classes of the recall: the trivial majority-class predictor scores 1 / C, not the majority rate."""
    t, p = _pair(y_true, y_pred, threshold)
    classes = np.unique(t)
    return float(np.mean([np.mean(p[t == c] == c) for c in classes]))


def _per_class(t, p, pos_label, average):
    if average not in _AVERAGES:
        raise ValueError(f"average must be one of {_AVERAGES}, got {average!r}")
    if average == "binary":
        classes = np.array([pos_label])
    else:
        classes = np.unique(np.concatenate([t, p]))
    tp = np.array([np.sum((p == c) & (t == c)) for c in classes], dtype=np.float64)
    fp = np.array([np.sum((p == c) & (t != c)) for c in classes], dtype=np.float64)
    fn = np.array([np.sum((p != c) & (t == c)) for c in classes], dtype=np.float64)
    support = np.array([np.sum(t == c) for c in classes], dtype=np.float64)
    return tp, fp, fn, support


def _ratio(num, den):
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)  # 0 when undefined (zero_division=0)


def _averaged(values, tp, fp, fn, support, average, micro):
    if average == "micro":
        return float(micro(tp.sum(), fp.sum(), fn.sum()))
    if average == "weighted":
        return float(np.sum(values * support) / support.sum()) if support.sum() else 0.0
    return float(np.mean(values))


def precision(y_true: Any, y_pred: Any, *, average: str = "binary", pos_label: int = 1, threshold: float = 0.5) -> float:
    """TP / (TP + FP): of the items flagged positive, the fraction that are. 0 when nothing is flagged."""
    tp, fp, fn, support = _per_class(*_pair(y_true, y_pred, threshold), pos_label, average)
    values = _ratio(tp, tp + fp)
    return _averaged(values, tp, fp, fn, support, average, lambda a, b, c: a / (a + b) if a + b else 0.0)


def recall(y_true: Any, y_pred: Any, *, average: str = "binary", pos_label: int = 1, threshold: float = 0.5) -> float:
    """TP / (TP + FN): of the positives, the fraction caught (the loan-default exercise's target)."""
    tp, fp, fn, support = _per_class(*_pair(y_true, y_pred, threshold), pos_label, average)
    values = _ratio(tp, tp + fn)
    return _averaged(values, tp, fp, fn, support, average, lambda a, b, c: a / (a + c) if a + c else 0.0)


def f1(y_true: Any, y_pred: Any, *, average: str = "binary", pos_label: int = 1, threshold: float = 0.5) -> float:
    """Harmonic mean of precision and recall, 2 TP / (2 TP + FP + FN)."""
    tp, fp, fn, support = _per_class(*_pair(y_true, y_pred, threshold), pos_label, average)
    values = _ratio(2 * tp, 2 * tp + fp + fn)
    return _averaged(values, tp, fp, fn, support, average, lambda a, b, c: 2 * a / (2 * a + b + c) if a + b + c else 0.0)


def _curve(t, s):
    """Cumulative TP/FP counts at each distinct threshold, highest score first."""
    order = np.argsort(-s, kind="mergesort")
    s, t = s[order], t[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tps = np.cumsum(t)[distinct].astype(np.float64)
    fps = (distinct + 1 - tps).astype(np.float64)
    return tps, fps, s[distinct]


def roc_auc(y_true: Any, scores: Any) -> float:
    """Area under the ROC curve: the probability a random positive outscores a random negative (ties count 1/2)."""
    t, s = _binary_scores(y_true, scores)
    pos, neg = t.sum(), t.size - t.sum()
    if pos == 0 or neg == 0:
        raise ValueError("roc_auc needs both classes in y_true (it is undefined with one class)")
    tps, fps, _ = _curve(t, s)
    tpr, fpr = np.r_[0.0, tps / pos], np.r_[0.0, fps / neg]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def average_precision(y_true: Any, scores: Any) -> float:
    """PR-AUC as average precision: sum over thresholds of (R_n - R_(n-1)) P_n (scikit-learn's definition)."""
    t, s = _binary_scores(y_true, scores)
    if t.sum() == 0:
        raise ValueError("average_precision needs at least one positive in y_true")
    tps, fps, _ = _curve(t, s)
    prec, rec = tps / (tps + fps), tps / t.sum()
    return float(np.sum(np.diff(np.r_[0.0, rec]) * prec))


def log_loss(y_true: Any, probs: Any) -> float:
    """Mean negative log-likelihood of the true labels: binary probabilities (N,) or class probabilities (N, C).

    Probabilities are clipped to [eps, 1 - eps] (eps of float64) and (N, C) rows renormalised, as scikit-learn."""
    t = _labels("y_true", y_true)
    p = _host("probs", probs).astype(np.float64)
    if p.ndim == 1:
        p = np.stack([1.0 - p, p], axis=1)
    if p.ndim != 2 or p.shape[0] != t.shape[0]:
        raise ValueError(f"probs must be (N,) or (N, C) with N = {t.shape[0]}, got {p.shape}")
    if np.any((p < 0) | (p > 1)):
        raise ValueError("probs must lie in [0, 1] (pass probabilities, not logits)")
    if t.min() < 0 or t.max() >= p.shape[1]:
        raise ValueError(f"y_true holds labels outside [0, {p.shape[1] - 1}]")
    eps = np.finfo(np.float64).eps
    p = np.clip(p, eps, 1 - eps)
    p = p / p.sum(axis=1, keepdims=True)
    return float(-np.mean(np.log(p[np.arange(t.size), t])))


def brier_score(y_true: Any, probs: Any) -> float:
    """Mean squared error of binary probabilities against 0/1 outcomes (calibration and sharpness together)."""
    t, p = _binary_scores(y_true, probs)
    if np.any((p < 0) | (p > 1)):
        raise ValueError("probs must lie in [0, 1]")
    return float(np.mean((p - t) ** 2))


@dataclass(frozen=True)
class ThresholdChoice:
    """A decision threshold with the precision and recall it gives (flag an item when score >= threshold)."""

    threshold: float
    precision: float
    recall: float
    flagged: int  # items at or above the threshold

    def __str__(self) -> str:
        return (f"threshold {self.threshold:.6g}: recall {self.recall:.4f}, precision {self.precision:.4f}, "
                f"{self.flagged} items flagged")


def threshold_for(y_true: Any, scores: Any, *, recall: float | None = None, precision: float | None = None) -> ThresholdChoice:
    """The decision threshold that reaches a target recall (the highest such threshold, so the fewest items
    are flagged) or a target precision (the lowest such threshold, so the most positives are caught).

    The seeds' loan-default exercise: the bank wants 99 % of defaulters caught, whatever the loss was
    trained on; ``threshold_for(y, p, recall=0.99)`` says which threshold does it and what precision it costs."""
    if (recall is None) == (precision is None):
        raise ValueError("give exactly one of recall= or precision=")
    target = recall if recall is not None else precision
    if not isinstance(target, (int, float)) or not 0 < target <= 1:
        raise ValueError(f"the target must be in (0, 1], got {target!r}")
    t, s = _binary_scores(y_true, scores)
    if t.sum() == 0:
        raise ValueError("threshold_for needs at least one positive in y_true")
    tps, fps, thresholds = _curve(t, s)
    rec, prec = tps / t.sum(), tps / (tps + fps)
    if recall is not None:
        i = int(np.argmax(rec >= recall - 1e-12))  # the first (highest) threshold that reaches it
    else:
        ok = np.nonzero(prec >= precision - 1e-12)[0]
        if ok.size == 0:
            raise ValueError(f"no threshold reaches precision {precision} (the best is {prec.max():.4f})")
        i = int(ok[-1])  # the lowest threshold that still reaches it
    return ThresholdChoice(float(thresholds[i]), float(prec[i]), float(rec[i]), int(tps[i] + fps[i]))
