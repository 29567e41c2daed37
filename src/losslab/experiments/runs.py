"""The experiments that do not train (the training ones, as races, are in ``training.py``)."""

from __future__ import annotations

import math

import numpy as np

from .. import _stable
from ..losses.classification import binary_cross_entropy_with_logits as bce_logits
from ..losses.classification import cross_entropy
from ..losses.regression import mse
from ._core import ExperimentResult


def sigmoid(z):
    return _stable.sigmoid(np, z)



# -- convexity --------------------------------------------------------------------------------------


def convexity(seed=0, progress=None):
    rng = np.random.default_rng(seed)
    n = 300
    X = np.c_[rng.normal(0, 1, (n, 2)), np.ones(n)]
    y = (X[:, 0] - X[:, 1] + rng.normal(0, 0.5, n) > 0).astype(np.float64)
    points = 200
    smallest = {"bce (logistic regression)": [], "mse on sigmoid": []}
    for k in range(points):
        w = rng.normal(0, 3, 3)
        z = X @ w
        # H = X^T diag(d2L/dz2) X: the losses give d2L/dz2 (BCE) or d2L/dp2 and dL/dp (MSE, chained through sigmoid)
        h_bce = bce_logits.hessian(z, y)
        p = sigmoid(z)
        s1, s2 = p * (1 - p), p * (1 - p) * (1 - 2 * p)
        h_mse = mse.hessian(p, y) * s1**2 + mse.grad(p, y) * s2
        for name, h in (("bce (logistic regression)", h_bce), ("mse on sigmoid", h_mse)):
            smallest[name].append(float(np.linalg.eigvalsh(X.T @ (h[:, None] * X)).min()))
        if progress is not None:
            progress(k + 1, points, "convexity: Hessians")
    table = [{"loss": name, "smallest eigenvalue (min over points)": min(v), "points with negative curvature": int(np.sum(np.array(v) < -1e-12))}
             for name, v in smallest.items()]
    claims = {"the log loss Hessian is positive semi-definite at every point": min(smallest["bce (logistic regression)"]) >= -1e-12,
              "MSE on a sigmoid has directions of negative curvature (not convex)": min(smallest["mse on sigmoid"]) < -1e-6}

    def draw(ax):
        for name, v in smallest.items():
            ax.hist(v, bins=40, alpha=0.6, label=name)
        ax.axvline(0, color="k", lw=1)
        ax.set_xlabel("smallest Hessian eigenvalue at a random w")
        ax.set_title("Log loss is convex; MSE on a sigmoid is not")
        ax.legend(fontsize=8)

    return ExperimentResult("convexity", f"Hessians of two losses for a logistic model, at {points} random weights",
                            table, {"smallest eigenvalue": smallest}, claims, plots=[draw])


# -- maximum likelihood -----------------------------------------------------------------------------


def mle(seed=0, progress=None):
    rng = np.random.default_rng(seed)
    n, c = 500, 5
    logits = rng.normal(0, 2, (n, c))
    labels = rng.integers(0, c, n)
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    log_likelihood = float(np.sum(np.log(probs[np.arange(n), labels])))  # log of prod_i p_(y_i)
    ce = float(cross_entropy(logits, labels))
    coin = float(bce_logits(np.zeros(1000), (rng.uniform(size=1000) < 0.5).astype(np.float64)))
    better = logits + 3.0 * np.eye(c)[labels]  # a model that puts more probability on the truth
    table = [{"quantity": "mean cross-entropy (losslab)", "value": ce},
             {"quantity": "-log(likelihood) / n (by hand)", "value": -log_likelihood / n},
             {"quantity": "BCE of a random binary classifier (p = 0.5)", "value": coin},
             {"quantity": "ln 2", "value": math.log(2)},
             {"quantity": "cross-entropy of a more likely model", "value": float(cross_entropy(better, labels))}]
    if progress is not None:
        progress(1, 1, "mle")
    claims = {"cross-entropy equals the categorical negative log-likelihood per item": math.isclose(ce, -log_likelihood / n, rel_tol=1e-12),
              "a random binary classifier scores ln 2": math.isclose(coin, math.log(2), rel_tol=1e-12),
              "the more likely model has the lower cross-entropy": table[4]["value"] < ce}
    return ExperimentResult("mle", f"Categorical model: {n} items, {c} classes", table, {}, claims)
