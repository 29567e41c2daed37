"""The experiments that train, as races: several losses train the same model on the same data, one
epoch at a time, side by side.

One code path serves the terminal and the explorer: ``losslab experiment NAME`` and
``losslab.experiments.run(NAME, ...)`` drive :func:`race` to its end; the explorer's Train tab streams
the same epochs as they are computed. Every setting is declared once here (``Training.settings``:
range, default, meaning) and checked by :meth:`Training.configure`; the command line's flags and
the page's controls are read from these declarations.

Each epoch is one step of plain gradient descent through losslab's analytic gradients (no autodiff):
for a linear model z = X w + b, dL/dw = X^T dL/dz and dL/db = sum dL/dz, with dL/dz from ``.grad``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from .. import metrics
from .._spec import Interval, OptionSpec
from ..losses.classification import binary_cross_entropy_with_logits as bce_logits
from ..losses.classification import focal
from ..losses.regression import huber, log_cosh, mae, mse, smooth_l1
from ._core import EXPERIMENTS, ExperimentResult
from .runs import sigmoid

MAX_EPOCHS = 100_000


LR = OptionSpec("lr", "learning rate (step size of gradient descent)", Interval(0.0, 100.0, closed="right"), 0.01, 5.0)
EPOCHS = OptionSpec("epochs", "epochs of full-batch gradient descent", Interval(1, MAX_EPOCHS, integer=True), 10, 20_000,
                    integer=True)
SEED = OptionSpec("seed", "random seed of the data", Interval(0, 2**32 - 1, integer=True), 0, 99, integer=True)
DELTA = OptionSpec("delta", "Huber's delta", Interval(0.0, None, closed="neither"), 0.1, 10.0)
BETA = OptionSpec("beta", "smooth L1's beta", Interval(0.0, None, closed="neither"), 0.1, 10.0)
POS_WEIGHT = OptionSpec("pos_weight", "weight of the positive class in BCE + pos_weight",
                        Interval(0.0, None, closed="neither"), 1.0, 1000.0)
ALPHA = OptionSpec("alpha", "focal loss's alpha (weight of the positive class)", Interval(0.0, 1.0), 0.0, 1.0)
GAMMA = OptionSpec("gamma", "focal loss's gamma (focusing)", Interval(0.0, None), 0.0, 5.0)
SMOOTHING = OptionSpec("label_smoothing", "targets become y (1 - s) + s / 2, as Keras's binary label smoothing",
                       Interval(0.0, 1.0, closed="left"), 0.0, 0.5)


@dataclass
class Racer:
    """One model trained with one loss. ``step(epoch)`` runs one epoch and returns the metrics of the
    model it started from (so epoch 0 shows the untrained model); ``curve()`` is what the model
    predicts, as points (x, y) in the scene's coordinates."""

    name: str
    step: Callable[[int], dict[str, float]]
    curve: Callable[[], dict[str, list[float]]]


class Training:
    """A training experiment. Subclasses declare their settings, racers and claim, and build data,
    racers and the result from ``self.config`` (checked settings)."""

    name = ""
    title = ""
    claim = ""  # what the experiment checks, in one sentence (shown before and after a run)
    metric = ""  # the headline metric, drawn beside the loss
    racers: ClassVar[dict[str, str]] = {}  # name -> what it is
    default_racers: tuple[str, ...] = ()
    options: tuple[OptionSpec, ...] = ()  # loss options
    used_by: ClassVar[dict[str, tuple[str, ...]]] = {}  # loss option -> the racers it changes (absent: every one)
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self) -> None:
        self.config: dict[str, Any] = {}

    @property
    def settings(self) -> tuple[OptionSpec, ...]:
        return (LR, EPOCHS, SEED, *self.options)

    def configure(self, *, losses: list[str] | tuple[str, ...] | None = None, **settings: Any) -> Training:
        """Check and store the settings (None or absent: the default); raises ValueError/TypeError naming one."""
        known = {s.name: s for s in self.settings}
        unknown = sorted(set(settings) - set(known))
        if unknown:
            raise TypeError(f"{self.name} has no setting {unknown[0]!r}; its settings are {sorted(known)}")
        config: dict[str, Any] = {"losses": self._losses(losses)}
        for name, spec in known.items():
            value = settings.get(name)
            config[name] = self.defaults[name] if value is None else _checked(spec, value)
            users = self.used_by.get(name)
            if value is not None and users and not set(users) & set(config["losses"]):
                raise ValueError(f"{name} changes only {' and '.join(users)}, which is not racing (losses "
                                 f"{config['losses']}); add it to losses or leave {name} out")
        self.config = config
        return self

    def _losses(self, losses) -> list[str]:
        if losses is None:
            return list(self.default_racers)
        if isinstance(losses, str) or not all(isinstance(n, str) for n in losses):
            raise TypeError(f"losses must be a list of names from {list(self.racers)}, got {losses!r}")
        unknown = [n for n in losses if n not in self.racers]
        if unknown or not losses or len(set(losses)) != len(losses):
            raise ValueError(f"losses must be 1 to {len(self.racers)} different names from {list(self.racers)}, "
                             f"got {list(losses)}")
        return list(losses)

    def describe(self) -> dict[str, Any]:
        """What the page needs to offer this experiment: racers, settings with ranges and defaults."""
        return {"name": self.name, "title": self.title, "claim": self.claim, "metric": self.metric,
                "racers": self.racers, "default_racers": list(self.default_racers),
                "settings": [{"name": s.name, "description": s.description, "valid": s.valid, "low": s.low,
                              "high": s.high, "integer": s.integer, "default": self.defaults[s.name],
                              "none_means": s.none_means, "used_by": list(self.used_by.get(s.name, ()))}
                             for s in self.settings]}

    # subclasses
    def build(self) -> tuple[list[Racer], dict[str, Any]]:  # the racers and the scene (data drawn under the curves)
        raise NotImplementedError

    def result(self, histories: dict[str, dict[str, list[float]]]) -> ExperimentResult:
        raise NotImplementedError


def _checked(spec: OptionSpec, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{spec.name} must be a number, got {value!r}")
    if spec.integer and float(value) != int(value):
        raise ValueError(f"{spec.name} must be {spec.valid}, got {value!r}")
    value = int(value) if spec.integer else float(value)
    if not spec.domain.contains(value):
        raise ValueError(f"{spec.name} must be {spec.valid}, got {value!r}")
    return value


@dataclass
class Epochs:
    """What one epoch of a race produced: each racer's metrics (from the model the epoch started from)."""

    epoch: int
    metrics: dict[str, dict[str, float]]


def race(training: Training, *, stop: Callable[[], bool] | None = None,
         on_start: Callable[[list[Racer], dict[str, Any]], None] | None = None) -> Iterator[Epochs | ExperimentResult]:
    """Train every racer for ``config["epochs"]`` epochs, yielding each epoch's metrics as it is
    computed, then the ExperimentResult. ``stop()`` is asked before each epoch: when it says True the
    race ends there and the result covers the epochs run."""
    racers, scene = training.build()
    if on_start is not None:
        on_start(racers, scene)
    histories: dict[str, dict[str, list[float]]] = {r.name: {} for r in racers}
    for epoch in range(training.config["epochs"]):
        if stop is not None and stop():
            break
        row = {}
        for r in racers:
            row[r.name] = values = r.step(epoch)
            for key, value in values.items():
                histories[r.name].setdefault(key, []).append(value)
        yield Epochs(epoch, row)
    yield training.result(histories)


# -- outliers ---------------------------------------------------------------------------------------


class Outliers(Training):
    name = "outliers"
    title = EXPERIMENTS["outliers"]
    claim = "Huber and MAE recover the true slope under outliers; MSE is dragged towards them"
    metric = "slope error"
    racers: ClassVar[dict[str, str]] = {
        "mse": "mean squared error", "mae": "mean absolute error", "huber": "Huber (delta)",
        "smooth_l1": "smooth L1 (beta)", "log_cosh": "log-cosh"}
    default_racers = ("mse", "mae", "huber")
    options = (DELTA, BETA)
    used_by: ClassVar[dict[str, tuple[str, ...]]] = {"delta": ("huber",), "beta": ("smooth_l1",)}
    defaults: ClassVar[dict[str, Any]] = {"lr": 0.5, "epochs": 3000, "seed": 0, "delta": 1.0,
                                                                 "beta": 1.0}

    true_slope, true_intercept, n = 2.0, 1.0, 200

    def build(self):
        c = self.config
        rng = np.random.default_rng(c["seed"])
        x = rng.uniform(0, 10, self.n)
        y = self.true_slope * x + self.true_intercept + rng.normal(0, 0.5, self.n)
        self.corrupted = corrupted = np.argsort(x)[-10:]  # a sensor that over-reads at the top of its range: 5 %
        y[corrupted] += 30.0
        mean, std = x.mean(), x.std()
        xs = (x - mean) / std  # standardised, so one learning rate suits every loss
        self.data = (x, y)
        self.fits: dict[str, tuple[float, float]] = {}
        losses = {"mse": (mse, {}), "mae": (mae, {}), "huber": (huber, {"delta": c["delta"]}),
                  "smooth_l1": (smooth_l1, {"beta": c["beta"]}), "log_cosh": (log_cosh, {})}

        def racer(name):
            loss, options = losses[name]
            model = {"w": 0.0, "b": 0.0}

            def fit():  # slope and intercept in the data's units
                return model["w"] / std, model["b"] - model["w"] * mean / std

            def step(epoch):
                slope, _ = self.fits[name] = fit()
                value, g = loss.value_and_grad(model["w"] * xs + model["b"], y, **options)  # g = dL/dprediction
                lr = c["lr"] / (1.0 + epoch / 50.0)  # decaying: MAE's gradient never shrinks near the optimum
                model["w"], model["b"] = model["w"] - lr * float(g @ xs), model["b"] - lr * float(g.sum())
                self.fits[name] = fit()
                return {"loss": float(value), "slope error": abs(slope - self.true_slope)}

            def curve():
                s, i = fit()
                return {"x": [0.0, 10.0], "y": [i, s * 10.0 + i]}

            return Racer(name, step, curve)

        scene = {"x_label": "x", "y_label": "y", "points": {"x": x.tolist(), "y": y.tolist(),
                 "flag": np.isin(np.arange(self.n), corrupted).tolist(), "flag_label": "corrupted target (+30)"},
                 "reference": {"x": [0.0, 10.0], "y": [self.true_intercept, self.true_slope * 10 + self.true_intercept],
                               "label": "truth: y = 2 x + 1"}}
        return [racer(n) for n in c["losses"]], scene

    def result(self, histories):
        x, y = self.data
        table = [{"loss": name, "slope": s, "intercept": i, "slope error": abs(s - self.true_slope),
                  "intercept error": abs(i - self.true_intercept)} for name, (s, i) in self.fits.items()]
        err = {r["loss"]: r["slope error"] for r in table}
        claims = {f"{name.upper() if name == 'mae' else name.capitalize()} recovers the slope better than MSE under outliers":
                  bool(err[name] < err["mse"]) for name in ("huber", "mae") if name in err and "mse" in err}
        fits, corrupted, n = dict(self.fits), self.corrupted, self.n

        def draw(ax):
            ax.scatter(x, y, s=8, c=np.where(np.isin(np.arange(n), corrupted), "#e63946", "#888888"),
                       label="data (red: corrupted)")
            grid = np.linspace(0, 10, 50)
            ax.plot(grid, self.true_slope * grid + self.true_intercept, "k--", lw=1, label="truth")
            for name, (s, i) in fits.items():
                ax.plot(grid, s * grid + i, lw=1.5, label=f"{name}: slope {s:.3f}")
            ax.set_xlabel("x")
            ax.set_ylabel("y")
            ax.set_title("Linear fits with 5 % corrupted targets")
            ax.legend(fontsize=8)

        return ExperimentResult("outliers", f"Linear regression, {n} points, 10 targets corrupted by +30 "
                                "(truth: slope 2, intercept 1)", table, histories, claims, plots=[draw])


# -- the sigmoid trap -------------------------------------------------------------------------------


class SigmoidTrap(Training):
    name = "sigmoid-trap"
    title = EXPERIMENTS["sigmoid-trap"]
    claim = "from a confidently wrong start, BCE learns quickly while MSE on a sigmoid stalls (its gradient ~ p (1 - p) ~ 0)"
    metric = "accuracy"
    racers: ClassVar[dict[str, str]] = {
        "mse on sigmoid": "MSE of sigmoid(z) against y", "bce with logits": "binary cross-entropy on the logit z"}
    default_racers = ("mse on sigmoid", "bce with logits")
    options = (SMOOTHING,)
    defaults: ClassVar[dict[str, Any]] = {"lr": 1.0, "epochs": 3000, "seed": 0,
                                                                 "label_smoothing": 0.0}
    n, start_weight, goal = 400, -6.0, 0.9

    def build(self):
        c = self.config
        rng = np.random.default_rng(c["seed"])
        x = rng.normal(0, 1, self.n)
        y = (x + rng.normal(0, 0.3, self.n) > 0).astype(np.float64)
        s = c["label_smoothing"]
        target = y * (1.0 - s) + 0.5 * s if s else y

        def racer(name):
            model = {"w": self.start_weight, "b": 0.0}  # confidently wrong: sigmoid(-6 x) says the opposite

            def step(epoch):
                z = model["w"] * x + model["b"]
                p = sigmoid(z)
                if name == "bce with logits":
                    value, g = bce_logits.value_and_grad(z, target)
                else:  # chain rule through the sigmoid: dL/dz = dL/dp * p (1 - p)
                    value, g_p = mse.value_and_grad(p, target)
                    g = g_p * p * (1.0 - p)
                gw, gb = float(g @ x), float(g.sum())
                accuracy = metrics.accuracy(y, p)
                model["w"], model["b"] = model["w"] - c["lr"] * gw, model["b"] - c["lr"] * gb
                return {"loss": float(value), "gradient": math.hypot(gw, gb), "accuracy": accuracy}

            def curve():
                grid = np.linspace(x.min(), x.max(), 61)
                return {"x": grid.tolist(), "y": sigmoid(model["w"] * grid + model["b"]).tolist()}

            return Racer(name, step, curve)

        scene = {"x_label": "x", "y_label": "label y / predicted probability p", "points": {
            "x": x.tolist(), "y": y.tolist(), "flag": (y == 1).tolist(), "flag_label": "label 1"}}
        return [racer(n) for n in c["losses"]], scene

    def result(self, histories):
        key = f"epochs to {self.goal:.0%} accuracy"
        table = []
        for name, h in histories.items():
            reached = next((e for e, a in enumerate(h.get("accuracy", [])) if a >= self.goal), None)
            gradient, accuracy = h.get("gradient", []), h.get("accuracy", [])  # empty when stopped before epoch 1
            table.append({"loss": name, "gradient at start": gradient[0] if gradient else None, key: reached,
                          "final accuracy": accuracy[-1] if accuracy else None})
        rows = {r["loss"]: r for r in table}
        claims = {}
        if {"mse on sigmoid", "bce with logits"} <= set(rows) and all(r["gradient at start"] is not None for r in table):
            m, b = rows["mse on sigmoid"], rows["bce with logits"]
            claims = {"BCE reaches 90 % accuracy in fewer epochs than MSE on a sigmoid":
                      b[key] is not None and (m[key] is None or b[key] < m[key]),
                      "when confidently wrong, BCE's gradient is far larger than MSE-on-sigmoid's (p (1 - p) ~ 0)":
                      b["gradient at start"] > 10 * m["gradient at start"]}

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

        return ExperimentResult("sigmoid-trap", f"Logistic model from w = -6 (confidently wrong), {self.n} points, "
                                f"lr {self.config['lr']:g}", table, histories, claims,
                                plots=[curves("accuracy", "From a confidently wrong start", False),
                                       curves("gradient", "The gradient that drives learning", True)])


# -- class imbalance --------------------------------------------------------------------------------


class Imbalance(Training):
    name = "imbalance"
    title = EXPERIMENTS["imbalance"]
    claim = "with 0.2 % fraud, the trivial model scores 99.8 % accuracy and catches nothing; weighting the loss catches fraud"
    metric = "recall"
    racers: ClassVar[dict[str, str]] = {
        "bce": "binary cross-entropy", "bce + pos_weight": "BCE with the positives weighted by pos_weight",
        "focal": "focal loss (alpha, gamma)"}
    default_racers = ("bce", "bce + pos_weight", "focal")
    options = (POS_WEIGHT, ALPHA, GAMMA)
    used_by: ClassVar[dict[str, tuple[str, ...]]] = {"pos_weight": ("bce + pos_weight",), "alpha": ("focal",),
                                                     "gamma": ("focal",)}
    n, positives = 20000, 40  # 0.2 % fraud
    defaults: ClassVar[dict[str, Any]] = {
        "lr": 0.5, "epochs": 1500, "seed": 0, "pos_weight": (20000 - 40) / 40, "alpha": 0.25, "gamma": 2.0}
    trivial = "trivial (always negative)"

    def build(self):
        c = self.config
        rng = np.random.default_rng(c["seed"])
        y = np.zeros(self.n)
        y[:self.positives] = 1.0
        X = rng.normal(0, 1, (self.n, 2)) + y[:, None] * 2.5
        self.data = (X, y)
        self.models: dict[str, dict[str, Any]] = {}
        setups = {"bce": (bce_logits, {}), "bce + pos_weight": (bce_logits, {"pos_weight": c["pos_weight"]}),
                  "focal": (focal, {"alpha": c["alpha"], "gamma": c["gamma"]})}

        def racer(name):
            loss, options = setups[name]
            model = self.models[name] = {"w": np.zeros(2), "b": 0.0}

            def step(epoch):
                z = X @ model["w"] + model["b"]
                flagged = z >= 0.0  # sigmoid(z) >= 0.5
                value, g = loss.value_and_grad(z, y, **options)
                model["w"], model["b"] = model["w"] - c["lr"] * (X.T @ g), model["b"] - c["lr"] * float(g.sum())
                return {"loss": float(value), "recall": metrics.recall(y, flagged),
                        "accuracy": metrics.accuracy(y, flagged)}

            def curve():  # the decision boundary w . x + b = 0 (p = 0.5)
                (w1, w2), b = model["w"], model["b"]
                if abs(w2) < 1e-12 and abs(w1) < 1e-12:
                    return {"x": [], "y": []}
                if abs(w2) >= abs(w1):
                    xs = np.array([-4.0, 6.5])
                    return {"x": xs.tolist(), "y": (-(w1 * xs + b) / w2).tolist()}
                ys = np.array([-4.0, 6.5])
                return {"x": (-(w2 * ys + b) / w1).tolist(), "y": ys.tolist()}

            return Racer(name, step, curve)

        shown = np.r_[np.arange(self.positives), np.arange(self.positives, self.positives + 760)]  # all fraud, some rest
        scene = {"x_label": "feature 1", "y_label": "feature 2 (lines: decision boundary, p = 0.5)", "points": {
            "x": X[shown, 0].tolist(), "y": X[shown, 1].tolist(), "flag": (y[shown] == 1).tolist(),
            "flag_label": f"fraud (all {self.positives}; 760 of {self.n - self.positives} others shown)"}}
        return [racer(n) for n in c["losses"]], scene

    def result(self, histories):
        X, y = self.data
        scores = {name: sigmoid(X @ m["w"] + m["b"]) for name, m in self.models.items()}
        table = []
        for name, s in [(self.trivial, np.zeros(self.n)), *scores.items()]:
            flagged = (s >= 0.5).astype(int)
            table.append({"model": name, "accuracy": metrics.accuracy(y, flagged), "recall": metrics.recall(y, flagged),
                          "precision": metrics.precision(y, flagged), "f1": metrics.f1(y, flagged),
                          "pr_auc": metrics.average_precision(y, s)})
        rows = {r["model"]: r for r in table}
        claims = {"the trivial model scores >= 99.8 % accuracy and catches no fraud":
                  rows[self.trivial]["accuracy"] >= 0.998 and rows[self.trivial]["recall"] == 0}
        if {"bce", "bce + pos_weight"} <= set(rows):
            claims["pos_weight catches more fraud than unweighted BCE at the 0.5 threshold"] = (
                rows["bce + pos_weight"]["recall"] > rows["bce"]["recall"])
        trained = [m for m in rows if m != self.trivial]
        if trained:
            claims["every trained model ranks fraud far better than the base rate (PR-AUC)"] = all(
                rows[m]["pr_auc"] > 10 * self.positives / self.n for m in trained)
        notes = []
        if "bce + pos_weight" in scores:
            choice = metrics.threshold_for(y, scores["bce + pos_weight"], recall=0.99)
            claims["a threshold reaching 99 % recall exists on the pos_weight model"] = choice.recall >= 0.99
            notes = [f"99 % recall (the loan-default exercise): flag scores >= {choice.threshold:.4g}; precision "
                     f"{choice.precision:.4f}, {choice.flagged} of {self.n} flagged. The training loss alone does not "
                     "pick this operating point; the threshold does."]

        def draw(ax):
            names = [r["model"] for r in table]
            xs = np.arange(len(names))
            for k, key in enumerate(("accuracy", "recall", "f1", "pr_auc")):
                ax.bar(xs + (k - 1.5) * 0.2, [r[key] for r in table], width=0.2, label=key)
            ax.set_xticks(xs, [nm.replace(" (", "\n(") for nm in names], fontsize=7)
            ax.set_title("0.2 % fraud: accuracy flatters the useless model")
            ax.legend(fontsize=8)

        return ExperimentResult("imbalance", f"{self.n} transactions, {self.positives} fraudulent (0.2 %), logistic "
                                "models, threshold 0.5", table, histories, claims, notes, plots=[draw])


# -- overfitting ------------------------------------------------------------------------------------


class Overfitting(Training):
    name = "overfitting"
    title = EXPERIMENTS["overfitting"]
    claim = "training loss keeps falling while validation loss turns up: the model memorises the noise"
    metric = "validation mse"
    racers: ClassVar[dict[str, str]] = {
        "mse": "mean squared error", "mae": "mean absolute error", "huber": "Huber (delta)"}
    default_racers = ("mse",)
    options = (DELTA,)
    used_by: ClassVar[dict[str, tuple[str, ...]]] = {"delta": ("huber",)}
    defaults: ClassVar[dict[str, Any]] = {"lr": None, "epochs": 20000, "seed": 0, "delta": 1.0}
    centers = np.linspace(-1, 1, 60)

    @property
    def settings(self):
        auto = OptionSpec("lr", LR.description, LR.domain, LR.low, LR.high,
                          none_means="1 / L, L the Lipschitz constant of the MSE gradient: the largest stable step")
        return (auto, EPOCHS, SEED, *self.options)

    def features(self, x):  # 60 narrow radial basis functions: far more capacity than 20 points need
        return np.exp(-((x[:, None] - self.centers[None, :]) ** 2) / (2 * 0.04**2))

    def build(self):
        c = self.config
        rng = np.random.default_rng(c["seed"])

        def sample(k):
            x = rng.uniform(-1, 1, k)
            return x, self.features(x), np.sin(3 * x) + rng.normal(0, 0.3, k)

        (x, P, y), (_, Pv, yv) = sample(20), sample(400)
        lr = c["lr"] if c["lr"] is not None else 1.0 / (2 * np.linalg.eigvalsh(P.T @ P / len(y)).max())
        self.lr = lr
        losses = {"mse": (mse, {}), "mae": (mae, {}), "huber": (huber, {"delta": c["delta"]})}
        grid = np.linspace(-1, 1, 201)
        G = self.features(grid)

        def racer(name):
            loss, options = losses[name]
            w = np.zeros(len(self.centers))

            def step(epoch):
                value, g = loss.value_and_grad(P @ w, y, **options)
                w[:] -= lr * (P.T @ g)
                return {"loss": float(value), "validation mse": float(mse(Pv @ w, yv))}

            def curve():
                return {"x": grid.tolist(), "y": (G @ w).tolist()}

            return Racer(name, step, curve)

        scene = {"x_label": "x", "y_label": "y", "points": {"x": x.tolist(), "y": y.tolist()},
                 "reference": {"x": grid.tolist(), "y": np.sin(3 * grid).tolist(), "label": "truth: sin(3x)"}}
        return [racer(n) for n in c["losses"]], scene

    def result(self, histories):
        table, claims, best_epochs = [], {}, {}
        for name, h in histories.items():
            train, val = h.get("loss", []), h.get("validation mse", [])
            if not val:
                continue
            best = best_epochs[name] = int(np.argmin(val))
            last = len(val) - 1
            prefix = f"{name}: " if len(histories) > 1 else ""
            table += [{"epoch": f"{prefix}{label}", "train loss": train[e], "validation mse": val[e]}
                      for label, e in (("1", 0), (f"{best + 1} (early stop)", best), (f"{last + 1} (last)", last))]
            claims[f"{prefix}training loss keeps falling after the validation minimum"] = train[-1] < train[best]
            claims[f"{prefix}validation loss rises after its minimum (overfitting)"] = val[-1] > 1.05 * val[best]

        def draw(ax):
            for name, h in histories.items():
                label = f"{name} " if len(histories) > 1 else ""
                ax.plot(h["loss"], label=f"{label}train")
                ax.plot(h["validation mse"], label=f"{label}validation")
                if name in best_epochs:
                    ax.axvline(best_epochs[name], color="k", ls="--", lw=1, label=f"early stop: epoch {best_epochs[name] + 1}")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("epoch")
            ax.set_ylabel("loss")
            ax.set_title("20 points, 60 features: memorising the noise")
            ax.legend()

        return ExperimentResult("overfitting", "20 noisy samples of sin(3x), 60 radial-basis features, gradient descent "
                                f"(lr {self.lr:.4g})", table, histories, claims, plots=[draw])


TRAININGS: dict[str, type[Training]] = {t.name: t for t in (Outliers, SigmoidTrap, Imbalance, Overfitting)}


def prepare(name: str, **settings: Any) -> Training:
    """The training experiment ``name`` with its settings checked (KeyError for an unknown name)."""
    if name not in TRAININGS:
        raise KeyError(f"no training experiment named {name!r}; choose one of {', '.join(TRAININGS)}")
    return TRAININGS[name]().configure(**settings)


def describe(name: str) -> dict[str, Any]:
    """A training experiment's racers and settings (ranges, defaults, meaning): what the Train tab offers."""
    if name not in TRAININGS:
        raise KeyError(f"no training experiment named {name!r}; choose one of {', '.join(TRAININGS)}")
    return TRAININGS[name]().describe()
