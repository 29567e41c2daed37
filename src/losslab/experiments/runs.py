"""The experiments. Plain NumPy gradient descent through losslab's analytic gradients: for a
linear model z = X w + b, dL/dw = X^T dL/dz and dL/db = sum dL/dz, with dL/dz from ``.grad``."""

from __future__ import annotations

import math

import numpy as np

from .. import _stable, metrics
from ..losses.classification import binary_cross_entropy_with_logits as bce_logits
from ..losses.classification import cross_entropy, focal
from ..losses.regression import huber, mae, mse
from ._core import ExperimentResult


def sigmoid(z):
    return _stable.sigmoid(np, z)



def _report(progress, epoch, epochs, label):
    if epoch % 50 == 0 or epoch == epochs - 1:
        progress(epoch + 1, epochs, label)


# -- outliers ---------------------------------------------------------------------------------------


def outliers(seed=0, progress=None):
    rng = np.random.default_rng(seed)
    n, true_slope, true_intercept = 200, 2.0, 1.0
    x = rng.uniform(0, 10, n)
    y = true_slope * x + true_intercept + rng.normal(0, 0.5, n)
    corrupted = np.argsort(x)[-10:]  # a sensor that over-reads at the top of its range: 5 % of the targets
    y[corrupted] += 30.0
    xs = (x - x.mean()) / x.std()  # standardised, so one learning rate suits every loss
    epochs, table, histories, fits = 3000, [], {}, {}
    for name, loss, options in (("mse", mse, {}), ("mae", mae, {}), ("huber", huber, {"delta": 1.0})):
        w = b = 0.0
        history = []
        for epoch in range(epochs):
            value, g = loss.value_and_grad(w * xs + b, y, **options)  # g = dL/dprediction
            lr = 0.5 / (1.0 + epoch / 50.0)  # decaying: MAE's gradient never shrinks near the optimum
            w, b = w - lr * float(g @ xs), b - lr * float(g.sum())
            history.append(float(value))
            _report(progress, epoch, epochs, f"outliers: {name}")
        slope, intercept = w / x.std(), b - w * x.mean() / x.std()
        fits[name] = (slope, intercept)
        histories[name] = {"loss": history}
        table.append({"loss": name, "slope": slope, "intercept": intercept, "slope error": abs(slope - true_slope),
                      "intercept error": abs(intercept - true_intercept)})
    err = {r["loss"]: r["slope error"] for r in table}
    claims = {"Huber recovers the slope better than MSE under outliers": err["huber"] < err["mse"],
              "MAE recovers the slope better than MSE under outliers": err["mae"] < err["mse"]}

    def draw(ax):
        ax.scatter(x, y, s=8, c=np.where(np.isin(np.arange(n), corrupted), "#e63946", "#888888"), label="data (red: corrupted)")
        grid = np.linspace(0, 10, 50)
        ax.plot(grid, true_slope * grid + true_intercept, "k--", lw=1, label="truth")
        for name, (s, i) in fits.items():
            ax.plot(grid, s * grid + i, lw=1.5, label=f"{name}: slope {s:.3f}")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.set_title("Linear fits with 5 % corrupted targets")
        ax.legend(fontsize=8)

    return ExperimentResult("outliers", f"Linear regression, {n} points, 10 targets corrupted by +30 (truth: slope 2, intercept 1)",
                            table, histories, claims, plots=[draw])


# -- the sigmoid trap -------------------------------------------------------------------------------


def sigmoid_trap(seed=0, progress=None):
    rng = np.random.default_rng(seed)
    n = 400
    x = rng.normal(0, 1, n)
    y = (x + rng.normal(0, 0.3, n) > 0).astype(np.float64)
    epochs, lr, target = 3000, 1.0, 0.9
    table, histories = [], {}
    for name in ("mse on sigmoid", "bce with logits"):
        w, b = -6.0, 0.0  # confidently wrong: sigmoid(-6 x) says the opposite of the labels
        history = {"loss": [], "gradient": [], "accuracy": []}
        reached = None
        for epoch in range(epochs):
            z = w * x + b
            p = sigmoid(z)
            if name == "bce with logits":
                value, g = bce_logits.value_and_grad(z, y)
            else:  # chain rule through the sigmoid: dL/dz = dL/dp * p (1 - p)
                value, g_p = mse.value_and_grad(p, y)
                g = g_p * p * (1.0 - p)
            gw, gb = float(g @ x), float(g.sum())
            accuracy = metrics.accuracy(y, p)
            history["loss"].append(float(value))
            history["gradient"].append(math.hypot(gw, gb))
            history["accuracy"].append(accuracy)
            if reached is None and accuracy >= target:
                reached = epoch
            w, b = w - lr * gw, b - lr * gb
            _report(progress, epoch, epochs, f"sigmoid-trap: {name}")
        histories[name] = history
        table.append({"loss": name, "gradient at start": history["gradient"][0], f"epochs to {target:.0%} accuracy": reached,
                      "final accuracy": history["accuracy"][-1]})
    mse_row, bce_row = table
    key = f"epochs to {target:.0%} accuracy"
    claims = {"BCE reaches 90 % accuracy in fewer epochs than MSE on a sigmoid":
              bce_row[key] is not None and (mse_row[key] is None or bce_row[key] < mse_row[key]),
              "when confidently wrong, BCE's gradient is far larger than MSE-on-sigmoid's (p (1 - p) ~ 0)":
              bce_row["gradient at start"] > 10 * mse_row["gradient at start"]}

    def curves(metric, title, log_y):
        def draw(ax):
            for name, h in histories.items():
                ax.plot(h[metric], label=name)
            ax.set_xscale("log")
            if log_y:
                ax.set_yscale("log")
            ax.set_xlabel("epoch")
            ax.set_ylabel(metric if metric != "gradient" else "|gradient|")
            ax.set_title(title)
            ax.legend()

        return draw

    draw_accuracy = curves("accuracy", "From a confidently wrong start", False)
    draw_gradient = curves("gradient", "The gradient that drives learning", True)

    return ExperimentResult("sigmoid-trap", f"Logistic model from w = -6 (confidently wrong), {n} points, lr {lr}",
                            table, histories, claims, plots=[draw_accuracy, draw_gradient])


# -- class imbalance --------------------------------------------------------------------------------


def imbalance(seed=0, progress=None):
    rng = np.random.default_rng(seed)
    n, positives = 20000, 40  # 0.2 % fraud
    y = np.zeros(n)
    y[:positives] = 1.0
    X = rng.normal(0, 1, (n, 2)) + y[:, None] * 2.5
    setups = {"trivial (always negative)": None, "bce": {}, "bce + pos_weight": {"pos_weight": (n - positives) / positives},
              "focal": {"alpha": 0.25, "gamma": 2.0}}
    epochs, lr = 1500, 0.5
    table, histories, scores = [], {}, {}
    for name, options in setups.items():
        if options is None:
            s = np.zeros(n)
        else:
            loss = focal if name == "focal" else bce_logits
            w, b, history = np.zeros(2), 0.0, []
            for epoch in range(epochs):
                value, g = loss.value_and_grad(X @ w + b, y, **options)
                w, b = w - lr * (X.T @ g), b - lr * float(g.sum())
                history.append(float(value))
                _report(progress, epoch, epochs, f"imbalance: {name}")
            histories[name] = {"loss": history}
            s = sigmoid(X @ w + b)
        scores[name] = s
        flagged = (s >= 0.5).astype(int)
        table.append({"model": name, "accuracy": metrics.accuracy(y, flagged), "recall": metrics.recall(y, flagged),
                      "precision": metrics.precision(y, flagged), "f1": metrics.f1(y, flagged),
                      "pr_auc": metrics.average_precision(y, s)})
    rows = {r["model"]: r for r in table}
    choice = metrics.threshold_for(y, scores["bce + pos_weight"], recall=0.99)
    claims = {"the trivial model scores >= 99.8 % accuracy and catches no fraud":
              rows["trivial (always negative)"]["accuracy"] >= 0.998 and rows["trivial (always negative)"]["recall"] == 0,
              "pos_weight catches more fraud than unweighted BCE at the 0.5 threshold": rows["bce + pos_weight"]["recall"] > rows["bce"]["recall"],
              "every trained model ranks fraud far better than the base rate (PR-AUC)":
              all(rows[m]["pr_auc"] > 10 * positives / n for m in ("bce", "bce + pos_weight", "focal")),
              "a threshold reaching 99 % recall exists on the pos_weight model": choice.recall >= 0.99}
    notes = [f"99 % recall (the loan-default exercise): flag scores >= {choice.threshold:.4g}; precision {choice.precision:.4f}, "
             f"{choice.flagged} of {n} flagged. The training loss alone does not pick this operating point; the threshold does."]

    def draw(ax):
        names = [r["model"] for r in table]
        xs = np.arange(len(names))
        for k, key in enumerate(("accuracy", "recall", "f1", "pr_auc")):
            ax.bar(xs + (k - 1.5) * 0.2, [r[key] for r in table], width=0.2, label=key)
        ax.set_xticks(xs, [nm.replace(" (", "\n(") for nm in names], fontsize=7)
        ax.set_title("0.2 % fraud: accuracy flatters the useless model")
        ax.legend(fontsize=8)

    return ExperimentResult("imbalance", f"{n} transactions, {positives} fraudulent (0.2 %), logistic models, threshold 0.5",
                            table, histories, claims, notes, plots=[draw])


# -- overfitting ------------------------------------------------------------------------------------


def overfitting(seed=0, progress=None):
    rng = np.random.default_rng(seed)
    centers = np.linspace(-1, 1, 60)

    def features(x):  # 60 narrow radial basis functions: far more capacity than 20 points need
        return np.exp(-((x[:, None] - centers[None, :]) ** 2) / (2 * 0.04**2))

    def sample(k):
        x = rng.uniform(-1, 1, k)
        return features(x), np.sin(3 * x) + rng.normal(0, 0.3, k)

    (P, y), (Pv, yv) = sample(20), sample(400)
    lr = 1.0 / (2 * np.linalg.eigvalsh(P.T @ P / len(y)).max())  # 1 / Lipschitz constant of the MSE gradient
    w = np.zeros(len(centers))
    epochs = 20000
    train, val = [], []
    for epoch in range(epochs):
        value, g = mse.value_and_grad(P @ w, y)
        w -= lr * (P.T @ g)
        train.append(float(value))
        val.append(float(mse(Pv @ w, yv)))
        _report(progress, epoch, epochs, "overfitting")
    best = int(np.argmin(val))
    table = [{"epoch": label, "train mse": train[e], "validation mse": val[e]}
             for label, e in (("1", 0), (f"{best + 1} (early stop)", best), (f"{epochs} (last)", epochs - 1))]
    claims = {"training loss keeps falling after the validation minimum": train[-1] < train[best],
              "validation loss rises after its minimum (overfitting)": val[-1] > 1.05 * val[best]}

    def draw(ax):
        ax.plot(train, label="train")
        ax.plot(val, label="validation")
        ax.axvline(best, color="k", ls="--", lw=1, label=f"early stop: epoch {best + 1}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("MSE")
        ax.set_title("20 points, 60 features: memorising the noise")
        ax.legend()

    return ExperimentResult("overfitting", "20 noisy samples of sin(3x), 60 radial-basis features, gradient descent on MSE",
                            table, {"model": {"train": train, "validation": val}}, claims, plots=[draw])


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
