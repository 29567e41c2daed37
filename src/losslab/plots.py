"""Figures that show what a loss does (matplotlib; ``pip install 'losslab[plots]'``).

Every function returns a ``matplotlib.figure.Figure`` and draws from the registry and the losses
themselves: a landscape's x-axis comes from the loss's spec (its input names and task), never from
per-loss plotting code. ``losslab plot NAME --out file.png`` writes any of them.

- ``landscape(name)``: loss and gradient against the prediction (error, probability, logit, margin, ...);
- ``compare(names)``: several losses on one axis; ``"mse:sigmoid"`` applies a loss after a sigmoid;
- ``confidence_scenarios()``: the seeds' confident-right / uncertain / confident-wrong bars;
- ``outlier_effect()``: one outlier's effect on each regression loss, value and gradient;
- ``gradient_vs_wrongness()``: how hard each loss pushes as the true class's probability falls;
- ``parameter_landscape()``: log loss (convex) vs MSE on a sigmoid (not) over a logistic model's (w, b);
- ``accuracy_vs_loss()``: accuracy is a staircase in the weight, cross-entropy is smooth.

``save(fig, path, dpi=110)`` writes one atomically, in the format its extension names (``formats()``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import _stable
from ._files import atomic_write
from .registry import get, get_loss

__all__ = ["PLOTS", "accuracy_vs_loss", "compare", "confidence_scenarios", "formats", "gradient_vs_wrongness",
           "landscape", "outlier_effect", "parameter_landscape", "save"]

DPI_RANGE = (10, 600)  # 600 dpi: a 10 x 6 inch figure is 6000 x 3600 pixels, about 86 MB to draw


def _pyplot():
    try:
        import matplotlib

        if matplotlib.get_backend().lower() not in ("agg", "svg", "pdf", "cairo"):
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - the plots extra is missing
        raise ImportError("losslab.plots needs matplotlib: pip install 'losslab[plots]'") from err
    return plt


def formats() -> list[str]:
    """The file extensions matplotlib can write (png, svg, pdf, ...)."""
    _pyplot()
    from matplotlib.backend_bases import FigureCanvasBase

    return sorted(FigureCanvasBase.get_supported_filetypes())


def check_dpi(dpi: int) -> int:
    low, high = DPI_RANGE
    if isinstance(dpi, bool) or not isinstance(dpi, int) or not low <= dpi <= high:
        raise ValueError(f"dpi must be a whole number in [{low}, {high}], got {dpi!r}")
    return dpi


def save(fig, path: str | Path, *, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path`` in the format its extension names, atomically: an error while
    drawing or writing leaves no partial file and any previous file as it was. Closes ``fig``."""
    check_dpi(dpi)
    path = Path(path)
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format=path.suffix[1:].lower()))
    finally:
        _pyplot().close(fig)


def sigmoid(z):
    return _stable.sigmoid(np, z)


@dataclass(frozen=True)
class Axis:
    """How to sweep one loss along one number: x values, and loss/gradient per x."""

    label: str
    x: np.ndarray
    values: np.ndarray
    grads: np.ndarray
    grad_label: str = "gradient"  # what ``grads`` is: a derivative along x, or a gradient's norm


@dataclass(frozen=True)
class TargetRange:
    """What the target of a loss's landscape can be: the explorer's target slider and ``landscape(target=)``."""

    low: float
    high: float
    default: float
    meaning: str


def target_range(name: str) -> TargetRange | None:
    """The range of ``target`` that ``_axis`` (and so ``landscape``) takes for this loss; None when its
    landscape has no target to move (class indices, -1/+1 labels that only flip the margin, embeddings)."""
    spec = get(name)
    first = next(iter(spec.inputs))
    if spec.family == "regression":
        low = max(v for v in (spec.prediction_low, spec.target_low, -math.inf) if v is not None)
        if low > -math.inf:  # a positive mean (MSLE: above -1) or counts: targets in its range
            return TargetRange(max(low, 0.0) + 0.5, 5.0, 3.0, "the target value")
        return TargetRange(-5.0, 5.0, 3.0, "the target value")
    if spec.task == "segmentation":  # a fixed small image
        return None
    if first == "probs" or (first == "logits" and spec.task in ("binary", "multilabel")):
        return TargetRange(0.0, 1.0, 1.0, "the label y: 1 or 0, or a soft label between")
    if first == "student_logits":
        return TargetRange(0.05, 0.95, 0.8, "the teacher's probability of class 0 (the other two share the rest)")
    if spec.task == "distribution":
        return TargetRange(0.05, 0.95, 0.8, "the target probability of class 0 (the other two share the rest)")
    if first == "logits" and "label_smoothing" in {o.name for o in spec.options}:  # cross-entropy takes probabilities
        return TargetRange(0.0, 1.0, 1.0, "the target probability of the true class (1: a class index; below 1: "
                           "probability targets, the other two classes share the rest)")
    return None


def _target(name: str, target: float | None) -> float | None:
    allowed = target_range(name)
    if allowed is None:
        if target is not None:
            raise ValueError(f"{name}'s landscape has no target to set (its targets are class indices, -1/+1 labels or "
                             "pairs); leave target out")
        return None
    if target is None:
        return allowed.default
    if not (math.isfinite(target) and allowed.low <= target <= allowed.high):
        raise ValueError(f"target must be in [{allowed.low:g}, {allowed.high:g}] for {name} ({allowed.meaning}), "
                         f"got {target!r}")
    return float(target)


def _axis(name: str, target: float | None, options: dict[str, Any], n: int = 401) -> Axis:
    """The natural x-axis of a loss, derived from its spec: regression -> prediction around the target;
    probabilities -> p of the true class; binary logits -> logit; class scores -> the true class's
    score; -1/+1 scores -> the margin y s; embeddings -> distance or cosine similarity; student logits -> the
    student's logit of one class against a fixed teacher; preference pairs -> the chosen-rejected margin (ORPO:
    the chosen log-probability, since its odds depend on more than the margin).
    ``target`` moves the target where the loss has one to move (``target_range``)."""
    spec, loss = get(name), get_loss(name)
    first, task = next(iter(spec.inputs)), spec.task
    t = _target(name, target)
    if spec.family == "regression":
        low = t - 4 if spec.prediction_low is None else max(t - 4, spec.prediction_low + 0.02)  # inside the domain
        x = np.linspace(low, t + 4, n)
        if "var" in spec.inputs:  # gaussian_nll: a unit variance
            v, (g, _) = loss.value_and_grad(x, np.full(n, t), np.ones(n), reduction="none", **options)
            return Axis(f"prediction, variance 1 (target {t:g})", x, v, g, "dL/d prediction")
        v, g = loss.value_and_grad(x, np.full(n, t), reduction="none", **options)
        return Axis(f"prediction (target {t:g})", x, v, g, "dL/d prediction")
    if "input_lengths" in spec.inputs:  # CTC: 3 frames, target [1], the label's log-probability at the middle frame
        x = np.linspace(-8, -0.01, n)
        frames = np.full((3, n, 2), np.log(0.5))
        frames[1, :, 1], frames[1, :, 0] = x, np.log1p(-np.exp(x))
        v, g = loss.value_and_grad(frames, np.ones((n, 1), dtype=np.int64), np.full(n, 3), np.ones(n, dtype=np.int64),
                                   reduction="none", **options)
        return Axis("log-probability of the label at the middle frame (3 frames, target [1], the others 0.5)", x, v,
                    g[1, :, 1], "dL/d log p (label, middle frame)")
    if task == "segmentation":  # one image of 4 pixels (2 foreground): sweep one foreground pixel, the others fairly right
        x = np.linspace(-6, 6, n)
        values, grads = [], []
        for z in x:
            if first == "probs":  # lovasz_softmax: two classes' probabilities
                p = np.array([[sigmoid(z), 0.88, 0.12, 0.12]])
                probs, labels = np.stack([p, 1 - p], axis=1)[..., None], np.array([[[0], [0], [1], [1]]])
                v, g = loss.value_and_grad(probs, labels.reshape(1, 4, 1), **options)
                values.append(float(v))
                grads.append(float(g[0, 0, 0, 0] - g[0, 1, 0, 0]) * p[0, 0] * (1 - p[0, 0]))  # chain to the logit
                continue
            logits = np.array([[[z, 2.0, -2.0, -2.0]]])
            if name == "lovasz_hinge":
                v, g = loss.value_and_grad(logits, np.array([[[1, 1, 0, 0]]]), **options)
                values.append(float(v))
                grads.append(float(g[0, 0, 0]))
                continue
            v, g = _overlap_point(loss, logits[:, :, None, :], options)
            values.append(v)
            grads.append(g)
        return Axis("logit of one foreground pixel (4 pixels: 2 foreground, the other 3 fairly right)", x,
                    np.array(values), np.array(grads), "dL/dz (that pixel)")
    if first == "embeddings" and "centers" in spec.inputs:  # the angle between an embedding and its class centre
        theta = np.linspace(0, np.pi, n)
        e = np.c_[np.cos(theta), np.sin(theta)]
        v, (g, _) = loss.value_and_grad(e, np.array([[1.0, 0.0], [0.0, 1.0]]), np.zeros(n, dtype=np.int64),
                                        reduction="none", **options)
        return Axis("angle to its own class centre, radians (the other centre at pi/2)", theta, v,
                    np.linalg.norm(g, axis=1), "|dL/de| (norm of the gradient for the embedding)")
    if first == "embeddings":  # a batch of 4 in 2 groups: the cosine of the first positive pair
        c = np.linspace(-1, 1, n)
        values, grads = [], []
        for cos in c:
            e = np.array([[1.0, 0.0], [cos, np.sqrt(1 - cos**2)], [0.0, 1.0], [0.0, -1.0]])
            v, g = loss.value_and_grad(e, np.array([0, 0, 1, 1]), **options)
            values.append(float(v))
            grads.append(float(np.linalg.norm(g[0])))
        return Axis("cosine similarity of a positive pair (a batch of 4 in 2 groups)", c, np.array(values),
                    np.array(grads), "|dL/de_0| (norm of the gradient for the first embedding)")
    if first == "probs":
        x = np.linspace(0.001, 0.999, n)
        v, g = loss.value_and_grad(x, np.full(n, t), reduction="none", **options)
        return Axis(f"predicted probability p (label {t:g})", x, v, g, "dL/dp")
    if first == "logits" and task in ("binary", "multilabel"):
        x = np.linspace(-8, 8, n)
        v, g = loss.value_and_grad(x, np.full(n, t), reduction="none", **options)
        return Axis(f"logit z (label {t:g})", x, v, g, "dL/dz")
    if first == "scores" and task == "binary":
        x = np.linspace(-3, 3, n)
        v, g = loss.value_and_grad(x, np.ones(n), reduction="none", **options)
        return Axis("margin y s (target +1)", x, v, g, "dL/ds")
    if first == "scores" and task == "multilabel":  # one positive label's score, the two negatives' at 0
        x = np.linspace(-6, 6, n)
        rows = np.zeros((n, 3))
        rows[:, 0] = x
        labels = ([0, -1, -1] if name == "multilabel_margin" else [1.0, 0.0, 0.0])  # class indices, or 0/1 per label
        v, g = loss.value_and_grad(rows, np.tile(np.array(labels), (n, 1)), reduction="none", **options)
        return Axis("score of the positive label (two negatives at 0)", x, v, g[:, 0], "dL/ds (positive label)")
    if first == "distances":
        x = np.linspace(0, 3, n)
        v, g = loss.value_and_grad(x, -np.ones(n), reduction="none", **options)
        return Axis("distance of a dissimilar pair (target -1)", x, v, g, "dL/d distance")
    if first == "input1":
        x = np.linspace(-3, 3, n)
        v, (g, _) = loss.value_and_grad(x, np.zeros(n), np.ones(n), reduction="none", **options)
        return Axis("score difference x1 - x2 (x1 should rank higher)", x, v, g, "dL/dx1")
    if first in ("logits", "scores", "log_probs"):  # class scores: sweep the true class's entry, others 0
        x = np.linspace(-8, 8, n) if first != "log_probs" else np.linspace(-8, -0.01, n)  # p < 1: the others keep some mass
        rows = np.zeros((n, 3))
        rows[:, 0] = x
        if first == "log_probs":
            rows[:, 1:] = np.log((1 - np.exp(x)) / 2)[:, None]  # a proper distribution over 3 classes
        if t is None:
            targets = np.zeros(n, dtype=np.int64)
        else:  # a distribution: t on class 0, the rest split evenly
            targets = np.tile([t, (1 - t) / 2, (1 - t) / 2], (n, 1))
            if options.get("log_target"):  # kl_div told its targets are log-probabilities
                targets = np.log(targets)
        v, g = loss.value_and_grad(rows, targets, reduction="none", **options)
        v = v if v.ndim == 1 else v.sum(axis=1)
        label = {"logits": "logit of the true class (others 0)", "scores": "score of the true class (others 0)",
                 "log_probs": "log-probability of the true class"}[first]
        if t is not None:
            label = (f"log-probability of class 0 (target q0 = {t:g})" if task == "distribution"
                     else f"{label[:-1]}; target probability {t:g})")
        return Axis(label, x, v, g[:, 0], {"logits": "dL/dz (true class)", "scores": "dL/ds (true class)",
                                           "log_probs": "dL/d log p (class 0)" if t is not None else "dL/d log p (true class)"}[first])
    if first == "student_logits":  # the student's logit of class 0 against a teacher that gives class 0 probability t
        x = np.linspace(-8, 8, n)
        rows = np.zeros((n, 3))
        rows[:, 0] = x
        teacher = np.tile(np.log([t, (1 - t) / 2, (1 - t) / 2]), (n, 1))
        v, g = loss.value_and_grad(rows, teacher, reduction="none", **options)
        return Axis(f"student logit of class 0 (others 0; teacher probability {t:g})", x, v, g[:, 0], "dL/ds (class 0)")
    if first in ("policy_chosen", "chosen_avg_logps") and name != "orpo":  # the log-probability margin
        x = np.linspace(-10, 10, n)
        zeros = np.zeros(n)  # DPO's other log-probabilities (its reference's too): D is the margin
        v, grads = loss.value_and_grad(x, *[zeros] * (len(spec.inputs) - 1), reduction="none", **options)
        return Axis("log-probability margin, chosen - rejected", x, v, grads[0],
                    "dL/d chosen log-probability")
    if first == "chosen_avg_logps":  # ORPO's odds depend on the log-probabilities themselves, not only their margin
        x = np.linspace(-6, -0.01, n)
        v, grads = loss.value_and_grad(x, np.full(n, -1.0), reduction="none", **options)
        return Axis("chosen response's average log-probability (rejected's -1)", x, v, grads[0],
                    "dL/d chosen log-probability")
    if name == "cosine_embedding":  # the cosine of a dissimilar pair
        c = np.linspace(-1, 1, n)
        a, b = np.c_[np.ones(n), np.zeros(n)], np.c_[c, np.sqrt(1 - c**2)]
        v, (g, _) = loss.value_and_grad(a, b, -np.ones(n), reduction="none", **options)
        return Axis("cosine similarity of a dissimilar pair (target -1)", c, v, np.linalg.norm(g, axis=1),
                    "|dL/dx1| (norm of the gradient for the first embedding)")
    if first in ("x1", "anchor"):  # distance between embeddings
        d = np.linspace(0, 3, n)
        a, b = np.c_[d, np.zeros(n)], np.zeros((n, 2))
        if name == "contrastive":
            v, (g, _) = loss.value_and_grad(a, b, np.zeros(n), reduction="none", **options)
            return Axis("distance of a dissimilar pair", d, v, np.linalg.norm(g, axis=1),
                        "|dL/dx1| (norm of the gradient for the first embedding)")
        v, grads = loss.value_and_grad(b, np.c_[np.ones(n), np.zeros(n)], a, reduction="none", **options)
        return Axis("anchor-negative distance (anchor-positive 1)", d, v, np.linalg.norm(grads[2], axis=1),
                    "|dL/d negative| (norm of the gradient for the negative)")
    # paired embeddings: cosine similarity of the matching pair within a batch of 2
    c = np.linspace(-1, 1, n)
    values, grads = [], []
    for cos in c:
        a = np.array([[1.0, 0.0], [0.0, 1.0]])
        b = np.array([[cos, np.sqrt(1 - cos**2)], [0.0, 1.0]])
        v, (ga, _) = loss.value_and_grad(a, b, **options)
        values.append(float(v))
        grads.append(float(np.linalg.norm(ga)))
    return Axis("cosine similarity of a matching pair", c, np.array(values), np.array(grads),
                "|dL/da| (norm of the gradient for the first batch's embeddings)")


def _overlap_point(loss, logits, options) -> tuple[float, float]:
    """An overlap loss (dice, ...) on a (1, 1, 1, 4) foreground logit map with foreground [1, 1, 0, 0], in the
    options' mode (multiclass: a background class at logit 0, so the foreground's softmax is the same sigmoid);
    from_logits=False passes the sigmoid probabilities. Returns the value and dL/d(the first pixel's logit)."""
    mode = options.get("mode", "multiclass")
    p = sigmoid(logits)
    if mode == "multiclass":
        scores = np.concatenate([np.zeros_like(logits), logits], axis=1)
        inputs = scores if options.get("from_logits", True) else np.concatenate([1 - p, p], axis=1)
        targets = np.array([[[1, 1, 0, 0]]])
    else:
        inputs = logits if options.get("from_logits", True) else p
        targets = np.array([[[[1.0, 1.0, 0.0, 0.0]]]])
    v, g = loss.value_and_grad(inputs, targets, **options)
    first = p[0, 0, 0, 0] * (1 - p[0, 0, 0, 0])  # dp/dz of the first pixel
    if mode == "multiclass":
        dz = g[0, 1, 0, 0] if options.get("from_logits", True) else (g[0, 1, 0, 0] - g[0, 0, 0, 0]) * first
    else:
        dz = g[0, 0, 0, 0] if options.get("from_logits", True) else g[0, 0, 0, 0] * first
    return float(v), float(dz)


def landscape(name: str, *, target: float | None = None, **options):
    """Loss (left axis) and its gradient (right axis) against the loss's natural prediction axis."""
    plt = _pyplot()
    ax_data = _axis(name, target, options)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot(ax_data.x, ax_data.values, color="#3b82f6", label=f"{name} loss")
    twin = ax.twinx()
    twin.plot(ax_data.x, ax_data.grads, color="#ef4444", label="gradient")
    twin.axhline(0, color="#ef4444", lw=0.5, ls=":")
    ax.set_xlabel(ax_data.label)
    ax.set_ylabel("loss", color="#3b82f6")
    twin.set_ylabel(ax_data.grad_label.split(" (")[0], color="#ef4444")
    opts = ", ".join(f"{k}={v:g}" for k, v in options.items() if isinstance(v, (int, float)))
    ax.set_title(f"{name}{f' ({opts})' if opts else ''}\n{_title_formula(get(name).formula_text)}", fontsize=8,
                 family="monospace", loc="left")
    _legend_below(fig, ax, twin, f"{name} loss", ax_data.grad_label)
    return fig


def _title_formula(text: str, width: int = 78) -> str:
    """A formula for a title: its own lines kept (a piecewise definition stays piecewise), long lines wrapped
    at spaces, so the title fits the figure instead of being cut on both sides."""
    import textwrap

    lines = []
    for line in text.splitlines():
        lines += textwrap.wrap(line, width, subsequent_indent="    ", drop_whitespace=False) or [""]
    return "\n".join(line.rstrip() for line in lines)


def _legend_below(fig, ax, twin, *labels: str) -> None:
    """One legend for a plot and its twin axis, under the axes: it covers neither a curve nor an axis label."""
    handles = ax.get_lines()[:1] + twin.get_lines()[:1]
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))


def _composed(entry: str, target: float | None) -> Axis:
    """A registry loss, or 'loss:sigmoid' (the loss applied to sigmoid(logit), gradient by the chain rule)."""
    name, _, link = entry.partition(":")
    if not link:
        return _axis(name, target, {})
    if link != "sigmoid":
        raise ValueError(f"unknown link {link!r} in {entry!r}: only 'name:sigmoid' is supported")
    t = _target("binary_cross_entropy", target)  # the target of a sigmoid output is a label in [0, 1]
    z = np.linspace(-8, 8, 401)
    p = sigmoid(z)
    v, g = get_loss(name).value_and_grad(p, np.full_like(p, t), reduction="none")
    return Axis(f"logit z (label {t:g})", z, v, g * p * (1 - p), "dL/dz")


def shared_axis(names, target: float | None = None) -> tuple[str, list[tuple[str, Axis]]]:
    """The curves of several entries (registry names or 'name:sigmoid') over their common x-axis."""
    axes = [(entry, _composed(entry, target)) for entry in names]
    labels = {a.label for _, a in axes}
    if len(labels) != 1 or not all(np.array_equal(a.x, axes[0][1].x) for _, a in axes):
        raise ValueError(f"these losses do not share an axis ({sorted(labels)}); compare losses of one kind")
    return labels.pop(), axes


# The seeds' side-by-side comparisons (the explorer offers them as presets)
COMPARISONS = {
    "MSE vs MAE vs Huber": ("mse", "mae", "huber"),
    "Huber vs smooth L1 vs log-cosh": ("huber", "smooth_l1", "log_cosh"),
    "BCE vs MSE on a sigmoid": ("binary_cross_entropy_with_logits", "mse:sigmoid"),
    "BCE vs focal": ("binary_cross_entropy_with_logits", "focal"),
    "hinge vs squared hinge": ("hinge", "squared_hinge"),
    "DPO vs SimPO": ("dpo", "simpo"),
    "distillation: KL vs JSD": ("distill_kl", "jsd"),
    "Dice vs Jaccard vs Tversky": ("dice", "jaccard", "tversky"),
    "ArcFace vs CosFace": ("arcface", "cosface"),
    "NT-Xent vs SupCon": ("ntxent", "supcon"),
}


def compare(names: list[str] | tuple[str, ...] = ("mse", "mae", "huber"), *, target: float | None = None):
    """Several losses (and their gradients) on one axis, e.g. ("mse", "mae", "huber") or
    ("binary_cross_entropy_with_logits", "mse:sigmoid")."""
    plt = _pyplot()
    label, axes = shared_axis(names, target)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 6.0), sharex=True)
    for entry, a in axes:
        top.plot(a.x, a.values, label=entry)
        bottom.plot(a.x, a.grads, label=entry)
    top.set_ylabel("loss")
    bottom.set_ylabel("gradient")
    bottom.axhline(0, color="k", lw=0.5)
    bottom.set_xlabel(label)
    top.legend(fontsize=8)
    top.set_title("Loss and gradient, side by side")
    fig.tight_layout()
    return fig


SCENARIOS = {"confident & correct": [5.0, 0.5, 0.5], "uncertain": [1.2, 1.0, 0.8], "confident & wrong": [0.5, 0.5, 5.0]}


def confidence_scenarios(scenarios: dict[str, list[float]] | None = None, *, target: int = 0):
    """Cross-entropy for a few logit vectors (seed 002's scenarios), with their softmax probabilities."""
    plt = _pyplot()
    scenarios = scenarios or SCENARIOS
    ce = get_loss("cross_entropy")
    losses = [float(ce(np.asarray(z), np.asarray(target))) for z in scenarios.values()]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    bars = ax.bar(list(scenarios), losses, color=["#2dc653", "#f4a261", "#e63946"][: len(scenarios)], width=0.5)
    for bar, value, z in zip(bars, losses, scenarios.values()):
        e = np.exp(np.asarray(z) - max(z))
        probs = ", ".join(f"{p:.2f}" for p in e / e.sum())
        ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height(), f"{value:.2f}\np = [{probs}]", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel(f"cross-entropy (true class {target})")
    ax.set_ylim(0, max(losses) * 1.3)
    ax.set_title("How confidence affects the loss")
    fig.tight_layout()
    return fig


def outlier_effect(names: tuple[str, ...] = ("mse", "mae", "huber", "log_cosh"), *,
                   predictions=(2.5, 0.0, 2.0, 8.0), targets=(3.0, -0.5, 2.0, 7.0), outlier: float = 50.0):
    """Each loss's value and its gradient on the last prediction, before and after it becomes an outlier."""
    plt = _pyplot()
    p, t = np.asarray(predictions, dtype=float), np.asarray(targets, dtype=float)
    q = p.copy()
    q[-1] = outlier
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.8))
    xs = np.arange(len(names))
    for k, (label, pred) in enumerate((("clean", p), (f"last prediction {outlier:g}", q))):
        vg = [get_loss(n).value_and_grad(pred, t) for n in names]
        left.bar(xs + (k - 0.5) * 0.4, [float(v) for v, _ in vg], width=0.4, label=label)
        right.bar(xs + (k - 0.5) * 0.4, [float(g[-1]) for _, g in vg], width=0.4, label=label)
    for ax, title in ((left, "loss (mean)"), (right, "gradient on the last prediction")):
        ax.set_xticks(xs, names)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=8)
    left.set_yscale("log")
    fig.suptitle("One outlier: MSE's loss and gradient explode, robust losses stay bounded", fontsize=10)
    fig.tight_layout()
    return fig


def gradient_vs_wrongness(classes: int = 3):
    """|d loss / d logit of the true class| as its probability p falls: cross-entropy keeps pushing
    (p - 1), MSE on a sigmoid/softmax output fades (its gradient carries p (1 - p))."""
    plt = _pyplot()
    p = np.logspace(-6, np.log10(0.999), 300)
    z = np.log(p / (1 - p))  # the logit giving probability p (binary)
    ce_grad = np.abs(get_loss("binary_cross_entropy_with_logits").grad(z, np.ones_like(z), reduction="none"))
    mse_grad = np.abs(get_loss("mse").grad(p, np.ones_like(p), reduction="none") * p * (1 - p))
    # softmax with `classes` classes: the true logit z, the others 0
    rows = np.zeros((p.size, classes))
    rows[:, 0] = np.log(p * (classes - 1) / (1 - p))
    ce_soft = np.abs(get_loss("cross_entropy").grad(rows, np.zeros(p.size, dtype=np.int64), reduction="none")[:, 0])
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.loglog(p, ce_grad, label="BCE with logits: |p - 1|")
    ax.loglog(p, ce_soft, "--", label=f"softmax cross-entropy ({classes} classes)")
    ax.loglog(p, mse_grad, label="MSE on sigmoid: |2 (p - 1) p (1 - p)|")
    ax.invert_xaxis()
    ax.set_xlabel("predicted probability of the true class (more wrong to the right)")
    ax.set_ylabel("|gradient w.r.t. the logit|")
    ax.set_title("Confidently wrong: who still pushes?")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _logistic_data(seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, 200)
    y = (x + rng.normal(0, 0.5, 200) > 0.3).astype(np.float64)
    return x, y


def parameter_landscape(*, seed: int = 0):
    """Contours of the mean loss over (w, b) of p = sigmoid(w x + b): BCE (convex) beside MSE on a sigmoid."""
    plt = _pyplot()
    x, y = _logistic_data(seed)
    w, b = np.meshgrid(np.linspace(-10, 10, 121), np.linspace(-10, 10, 121))
    z = w[..., None] * x + b[..., None]
    bce = get_loss("binary_cross_entropy_with_logits")
    mse = get_loss("mse")
    surfaces = {"log loss (BCE): convex": np.mean(bce(z, np.broadcast_to(y, z.shape), reduction="none"), axis=-1),
                "MSE on a sigmoid: flat plateaus, not convex": np.mean(mse(sigmoid(z), np.broadcast_to(y, z.shape), reduction="none"), axis=-1)}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, (title, surface) in zip(axes, surfaces.items()):
        contours = ax.contourf(w, b, surface, levels=30, cmap="viridis")
        fig.colorbar(contours, ax=ax)
        ax.set_xlabel("weight w")
        ax.set_ylabel("bias b")
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def accuracy_vs_loss(*, seed: int = 0):
    """Along the weight of a logistic model: accuracy is a staircase (zero gradient almost everywhere),
    cross-entropy is smooth: why accuracy cannot be the training loss."""
    from . import metrics

    plt = _pyplot()
    x, y = _logistic_data(seed)
    ws = np.linspace(-3, 6, 400)
    bce = get_loss("binary_cross_entropy_with_logits")
    acc = [metrics.accuracy(y, sigmoid(w * x - 0.3 * w)) for w in ws]
    ce = [float(bce(w * x - 0.3 * w, y)) for w in ws]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot(ws, acc, drawstyle="steps-mid", color="#2dc653", label="accuracy")
    twin = ax.twinx()
    twin.plot(ws, ce, color="#8b5cf6", label="cross-entropy")
    ax.set_xlabel("weight w")
    ax.set_ylabel("accuracy", color="#2dc653")
    twin.set_ylabel("cross-entropy", color="#8b5cf6")
    ax.set_title("Accuracy is piecewise constant; the loss gives a gradient everywhere", fontsize=10)
    _legend_below(fig, ax, twin, "accuracy", "cross-entropy")
    return fig


PLOTS = {"landscape": landscape, "compare": compare, "confidence": confidence_scenarios, "outlier": outlier_effect,
         "gradient": gradient_vs_wrongness, "parameter-landscape": parameter_landscape, "accuracy-vs-loss": accuracy_vs_loss}
