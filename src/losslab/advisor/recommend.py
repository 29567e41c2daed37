"""The loss advisor: from a task name, or from the targets themselves, which loss, with which
options, which output layer, which metrics to report, and why.

Deterministic rules, each stated in the reasons it returns:
- task from the targets: a 2-D 0/1 matrix is multi-label; 1-D labels with two values (0/1 or -1/+1)
  are binary; integer labels with 3 or more values (or float labels that are whole numbers, at most 20
  of them) are multi-class; anything else is regression. Ranking is never guessed: name it.
- regression outliers by the modified z-score (Iglewicz & Hoaglin): |0.6745 (y - median) / MAD| > 3.5;
  they count when more than 0.1 % of the targets are outliers (a normal sample has about 0.05 %).
  With outliers, Huber with delta = 1.345 x the robust scale (1.4826 MAD): Huber's 95 %-efficiency
  tuning, where the quadratic zone covers the ordinary residuals.
- class imbalance when the minority share is under 20 %: ``pos_weight`` = negatives / positives
  (binary, per label for multi-label); class weights N / (C n_c) for multi-class (as scikit-learn's
  "balanced") when the largest class is over 3x the smallest; focal offered when positives are rarer
  than 1 %; and accuracy dropped from the metrics, since the trivial classifier already scores high.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .. import _xp
from ..registry import get

TASKS = ("regression", "binary", "multiclass", "multilabel", "segmentation", "ranking", "preference", "distribution")
MINORITY_SHARE = 0.2  # below it, classes count as imbalanced
RARE_SHARE = 0.01  # below it, focal is offered
CLASS_RATIO = 3.0  # multi-class: largest / smallest class count above it gets class weights
MODIFIED_Z = 3.5
OUTLIER_SHARE = 0.001  # twice what a normal sample shows beyond MODIFIED_Z
HUBER_TUNING = 1.345


@dataclass(frozen=True)
class Recommendation:
    task: str
    loss: str  # a registry name: ll.get_loss(rec.loss)(predictions, targets, **rec.options)
    output_layer: str
    options: dict[str, Any]
    alternatives: tuple[str, ...]
    metrics: tuple[str, ...]
    reasons: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    stats: dict[str, Any] = field(default_factory=dict)  # what was measured on the targets

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        opts = ", ".join(f"{k}={_short(v)}" for k, v in self.options.items())
        lines = [f"task: {self.task}", f"loss: {self.loss}({opts})", f"output layer: {self.output_layer}",
                 f"alternatives: {', '.join(self.alternatives) or 'none'}", f"report: {', '.join(self.metrics)}", "why:"]
        lines += [f"  - {r}" for r in self.reasons]
        if self.warnings:
            lines += ["warnings:"] + [f"  - {w}" for w in self.warnings]
        return "\n".join(lines)


def _short(v: Any) -> str:
    if isinstance(v, list):
        return "[" + ", ".join(f"{x:.4g}" for x in v) + "]"
    return f"{v:.4g}" if isinstance(v, float) else repr(v)


def _targets(targets: Any) -> np.ndarray:
    arr = _xp.host_numbers("targets", targets, "recommend()")
    if arr.ndim == 0 or (arr.ndim <= 2 and arr.shape[0] < 2):
        raise ValueError(f"targets must be 1-D (one per item), 2-D (items x outputs) with at least 2 items, or masks "
                         f"(images x height x width ...), got shape {arr.shape}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError("targets must be finite (found NaN or inf); drop or impute them first")
    return arr


def _whole(arr: np.ndarray) -> bool:
    return arr.dtype.kind in "biu" or bool(np.all(arr == np.round(arr)))


def detect_task(targets: Any) -> str:
    """The task the targets imply (never "ranking", "preference" or "distribution", which labels cannot show); 3-D
    or larger arrays of whole numbers >= 0 are segmentation masks (images x height x width ...)."""
    arr = _targets(targets)
    values = np.unique(arr)
    if arr.ndim >= 3:  # one label per pixel: masks
        return "segmentation" if _whole(arr) and values.min() >= 0 else "regression"
    if arr.ndim == 2:
        return "multilabel" if np.all(np.isin(values, (0, 1))) else "regression"
    if values.size <= 2 and (np.all(np.isin(values, (0, 1))) or np.all(np.isin(values, (-1, 1)))):
        return "binary"
    if _whole(arr) and values.size >= 3 and values.min() >= 0 and (arr.dtype.kind in "biu" or values.size <= 20):
        return "multiclass"
    return "regression"


def _spec_reason(name: str) -> str:
    spec = get(name)
    props = ", ".join(p for p, on in (("convex", spec.convex), ("smooth", spec.smooth),
                                      ("robust to outliers", spec.robust_to_outliers)) if on) or "no convexity or smoothness guarantee"
    return f"{name}: {spec.summary} ({props}; expects {spec.output_layer}). {spec.when_to_use}"


def recommend(task: str | None = None, *, targets: Any = None) -> Recommendation:
    """Recommend a loss from a task name ("regression", "binary", "multiclass", "multilabel",
    "ranking", "preference": pairs of chosen and rejected responses, "distribution": a teacher's logits
    or probabilities to match) or from the targets (NumPy/torch/JAX array or list), or both (the task wins; the
    targets then set the options)."""
    if task is None and targets is None:
        raise ValueError(f"give a task (one of {TASKS}) or targets= to detect it from")
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    arr = _targets(targets) if targets is not None else None
    detected = detect_task(arr) if arr is not None else None
    chosen = task or detected
    build = {"regression": _regression, "binary": _binary, "multiclass": _multiclass,
             "multilabel": _multilabel, "segmentation": _segmentation, "ranking": _ranking, "preference": _preference,
             "distribution": _distribution}[chosen]
    rec = build(arr)
    if task is not None and detected is not None and detected != task:
        rec = Recommendation(**{**rec.to_dict(), "warnings": (*rec.warnings,
                              f"the targets look like a {detected} task, but task={task!r} was given: check the labels")})
    return rec


def _regression(y: np.ndarray | None) -> Recommendation:
    reasons = ["Targets are continuous values, so the model needs a linear (unbounded) output and a distance-type loss."]
    if y is None:
        return Recommendation("regression", "mse", get("mse").output_layer, {}, ("huber", "mae", "log_cosh", "quantile"),
                              ("mae", "mse"), (*reasons, _spec_reason("mse"),
                                               "Without the targets, outliers cannot be checked: switch to huber if some are far off."))
    flat = y.reshape(-1).astype(np.float64)
    if y.ndim <= 2 and _whole(flat) and flat.min() >= 0 and np.unique(flat).size >= 3:
        return _counts(flat, reasons)
    median = float(np.median(flat))
    mad = float(np.median(np.abs(flat - median)))
    scale = 1.4826 * mad if mad > 0 else float(np.mean(np.abs(flat - median))) * 1.2533
    z = 0.6745 * (flat - median) / mad if mad > 0 else np.zeros_like(flat)
    outliers = int(np.sum(np.abs(z) > MODIFIED_Z))
    stats = {"n": int(flat.size), "median": median, "mad": mad, "robust_scale": scale, "outliers": outliers,
             "outlier_share": outliers / flat.size}
    if outliers <= OUTLIER_SHARE * flat.size:
        return Recommendation("regression", "mse", get("mse").output_layer, {}, ("huber", "mae", "log_cosh"), ("mae", "mse"),
                              (*reasons, f"{outliers} of {flat.size} targets are outliers by the modified z-score "
                               f"(|0.6745 (y - median) / MAD| > {MODIFIED_Z}), no more than a normal sample shows, so MSE's "
                               "quadratic penalty is safe and estimates the conditional mean.", _spec_reason("mse")),
                              (), stats)
    delta = HUBER_TUNING * scale
    return Recommendation(
        "regression", "huber", get("huber").output_layer, {"delta": delta}, ("mae", "log_cosh", "quantile", "mse"), ("mae", "mse"),
        (*reasons, f"{outliers} of {flat.size} targets ({outliers / flat.size:.1%}) are outliers by the modified z-score "
         f"(> {MODIFIED_Z}): under MSE their squared errors would dominate the gradient.",
         f"delta = {HUBER_TUNING} x robust scale (1.4826 MAD = {scale:.4g}) = {delta:.4g}: ordinary residuals stay in the "
         "quadratic zone, outliers get a bounded gradient (slope delta).", _spec_reason("huber")),
        (f"{outliers} outlying targets: check whether they are errors before training on them",), stats)


def _counts(flat: np.ndarray, reasons: list[str]) -> Recommendation:
    mean, var = float(flat.mean()), float(flat.var())
    stats = {"n": int(flat.size), "mean": mean, "variance": var, "zeros": int(np.sum(flat == 0)),
             "dispersion": var / mean if mean > 0 else float("nan")}
    return Recommendation(
        "regression", "poisson_deviance", get("poisson_deviance").output_layer, {},
        ("tweedie_deviance", "mse", "huber"), ("poisson_deviance", "mae", "mse"),
        ("All targets are non-negative whole numbers: counts. Their spread grows with their mean (variance "
         f"{var:.4g} against mean {mean:.4g}), which the Poisson deviance expects and MSE ignores.",
         "Predict the log of the mean and exponentiate, so the prediction stays positive; the gradient of the "
         "deviance in that log is p - t, as cross-entropy's.", _spec_reason("poisson_deviance")),
        (f"variance / mean = {stats['dispersion']:.3g}: well above 1 (overdispersion), try tweedie_deviance with "
         "power between 1 and 2",) if stats["dispersion"] > 2 else (), stats)


def _binary_metrics(share: float) -> tuple[str, ...]:
    if min(share, 1 - share) < MINORITY_SHARE:
        return ("average_precision", "recall", "precision", "f1", "roc_auc", "balanced_accuracy")
    return ("accuracy", "roc_auc", "log_loss", "f1")


def _binary(y: np.ndarray | None) -> Recommendation:
    name = "binary_cross_entropy_with_logits"
    reasons = ["Two classes: one logit per item, sigmoid fused into the loss (stable for any logit; BCE is the "
               "Bernoulli negative log-likelihood, convex in the logit).", _spec_reason(name)]
    alternatives = ["hinge", "binary_cross_entropy", "focal"]
    if y is None:
        return Recommendation("binary", name, get(name).output_layer, {}, tuple(alternatives), _binary_metrics(0.5), tuple(reasons))
    labels = (y.reshape(-1) > 0).astype(np.int64)  # -1/+1 -> 0/1
    positives, n = int(labels.sum()), labels.size
    share = positives / n
    stats = {"n": n, "positives": positives, "positive_share": share}
    warnings, options = [], {}
    if positives == 0 or positives == n:
        warnings.append("only one class is present: the loss has nothing to separate; check the labels")
    elif min(share, 1 - share) < MINORITY_SHARE:
        options["pos_weight"] = (n - positives) / positives
        reasons.append(f"Positives are {share:.2%} of the items: pos_weight = negatives / positives = {options['pos_weight']:.4g} "
                       "gives both classes the same total weight in the loss, so the rare class is not ignored.")
        warnings.append(f"accuracy is misleading here: always predicting the majority class scores {max(share, 1 - share):.2%}; "
                        "report average precision, recall and F1")
    if 0 < share < RARE_SHARE:
        alternatives.remove("focal")
        alternatives.insert(0, "focal")
        reasons.append(f"Positives are rarer than {RARE_SHARE:.0%}: focal loss (gamma = 2) down-weights the many easy negatives.")
    if np.any(y < 0):
        reasons.append("Targets are -1/+1: map them to 0/1 with (t + 1) / 2 for BCE (hinge takes -1/+1 as they are).")
    return Recommendation("binary", name, get(name).output_layer, options, tuple(alternatives), _binary_metrics(share),
                          tuple(reasons), tuple(warnings), stats)


def _multiclass(y: np.ndarray | None) -> Recommendation:
    name = "cross_entropy"
    reasons = ["One correct class among several: softmax cross-entropy on logits (the categorical negative "
               "log-likelihood; its gradient is softmax - onehot).", _spec_reason(name)]
    alternatives = ("multiclass_hinge", "nll")
    if y is None:
        return Recommendation("multiclass", name, get(name).output_layer, {}, alternatives,
                              ("accuracy", "balanced_accuracy", "f1", "log_loss"), tuple(reasons))
    labels = y.reshape(-1).astype(np.int64)
    classes = int(labels.max()) + 1
    counts = np.bincount(labels, minlength=classes)
    present = counts[counts > 0]
    stats = {"n": int(labels.size), "classes": classes, "counts": counts.tolist()}
    warnings, options = [], {}
    if np.any(counts == 0):
        warnings.append(f"class indices {np.nonzero(counts == 0)[0].tolist()[:10]} never occur: the logits need {classes} "
                        "outputs anyway (indices must be < C)")
    ratio = float(present.max() / present.min())
    metrics = ("accuracy", "balanced_accuracy", "f1", "log_loss")
    if ratio > CLASS_RATIO:
        weight = np.where(counts > 0, labels.size / (len(present) * np.maximum(counts, 1)), 0.0)
        options["weight"] = [float(w) for w in weight]
        reasons.append(f"The largest class is {ratio:.1f}x the smallest: class weights N / (C n_c) (scikit-learn's "
                       "'balanced') make every class count equally in the mean.")
        warnings.append("accuracy is dominated by the large classes: report balanced accuracy and macro F1")
        metrics = ("balanced_accuracy", "f1", "log_loss", "confusion_matrix")
    return Recommendation("multiclass", name, get(name).output_layer, options, alternatives, metrics,
                          tuple(reasons), tuple(warnings), stats)


def _multilabel(y: np.ndarray | None) -> Recommendation:
    name = "binary_cross_entropy_with_logits"
    reasons = ["Several labels can be on at once: one sigmoid (one binary cross-entropy) per label, not a softmax.",
               _spec_reason(name)]
    if y is None:
        return Recommendation("multilabel", name, get(name).output_layer, {}, ("focal",), ("f1", "average_precision"), tuple(reasons))
    positives = y.sum(axis=0).astype(np.float64)
    n = y.shape[0]
    shares = positives / n
    stats = {"n": int(n), "labels": int(y.shape[1]), "positive_share": shares.tolist()}
    warnings, options = [], {}
    if np.any(positives == 0):
        warnings.append(f"labels {np.nonzero(positives == 0)[0].tolist()[:10]} are never positive: their logits only learn 'off'")
    rare = (shares > 0) & (np.minimum(shares, 1 - shares) < MINORITY_SHARE)
    if np.any(rare):
        options["pos_weight"] = [float((n - p) / p) if p > 0 else 1.0 for p in positives]
        reasons.append("Some labels are rare: pos_weight = negatives / positives per label (broadcast along the last axis).")
    alternatives = ("focal",) if np.any((shares > 0) & (shares < RARE_SHARE)) else ("focal", "binary_cross_entropy")
    return Recommendation("multilabel", name, get(name).output_layer, options, alternatives, ("f1", "average_precision", "recall"),
                          tuple(reasons), tuple(warnings), stats)


def _ranking(y: np.ndarray | None) -> Recommendation:
    name = "info_nce"
    reasons = ["Paired embeddings (image-text, query-document, two views): every other item of the batch serves as a "
               "negative in a softmax over similarities.", _spec_reason(name),
               "siglip scales to large batches (no batch-wide softmax); triplet_margin and contrastive need explicit "
               "negatives or pair labels."]
    return Recommendation("ranking", name, get(name).output_layer, {"temperature": 0.07}, ("siglip", "triplet_margin", "contrastive"),
                          ("recall@k", "mean reciprocal rank"), tuple(reasons))


def _preference(y: np.ndarray | None) -> Recommendation:
    name = "dpo"
    reasons = ["Pairs of responses to one prompt, one preferred (chosen) over the other (rejected): a preference loss on "
               "the policy's log-probabilities of the two, against a frozen reference model's.", _spec_reason(name),
               "simpo and orpo need no reference model (less memory and compute); simpo takes length-averaged "
               "log-probabilities, orpo is added to the chosen response's cross-entropy."]
    return Recommendation("preference", name, get(name).output_layer, {"beta": 0.1}, ("simpo", "orpo"),
                          ("reward accuracy (share of pairs with D > 0)", "reward margin beta D", "win rate"),
                          tuple(reasons))


def _distribution(y: np.ndarray | None) -> Recommendation:
    name = "distill_kl"
    reasons = ["Targets are a teacher's logits (or a distribution per item): match the whole distribution, not only "
               "its top class.", _spec_reason(name),
               "jsd is bounded and moves between forward and reverse KL with beta; kl_div takes log-probabilities and "
               "target probabilities directly."]
    return Recommendation("distribution", name, get(name).output_layer, {"temperature": 2.0}, ("jsd", "kl_div"),
                          ("KL to the teacher", "top-1 agreement with the teacher", "the task's own metric"), tuple(reasons))


def _segmentation(y: np.ndarray | None) -> Recommendation:
    name = "dice"
    reasons = ["One label per pixel (masks): sum cross-entropy, which gives every pixel a well-behaved gradient from "
               "the start, and dice, which scores the overlap of each class as the metric does and ignores how large "
               "the background is: loss = cross_entropy(logits, masks) + dice(logits, masks).", _spec_reason(name)]
    options: dict[str, Any] = {"mode": "multiclass"}
    stats: dict[str, Any] = {}
    warnings: list[str] = []
    if y is not None:
        values, counts = np.unique(y, return_counts=True)
        shares = counts / y.size
        stats = {"images": int(y.shape[0]), "classes": values.astype(int).tolist(), "pixel_share": shares.tolist()}
        if values.size <= 2 and np.all(np.isin(values, (0, 1))):
            options["mode"] = "binary"
            reasons.append("Two values (0/1): a binary mask, one logit per pixel; pair dice with "
                           "binary_cross_entropy_with_logits.")
        else:
            reasons.append(f"{values.size} classes: one logit per class and pixel (N, C, H, W), softmax inside.")
        if shares.min() < MINORITY_SHARE:
            reasons.append(f"The rarest class covers {shares.min():.1%} of the pixels: per-pixel cross-entropy alone "
                           "would mostly learn the background; dice weighs every class's overlap equally. For thin "
                           "structures try focal_tversky (alpha < beta penalises missed pixels more).")
        if values.size == 1:
            warnings.append("every pixel has the same label: nothing to segment")
    return Recommendation("segmentation", name, get(name).output_layer, options,
                          ("cross_entropy", "focal_tversky", "lovasz_softmax", "jaccard"),
                          ("mean IoU", "Dice coefficient per class", "pixel accuracy"), tuple(reasons), tuple(warnings), stats)
