"""Segmentation overlap losses: soft Dice, soft Jaccard (IoU), Tversky and focal Tversky as
segmentation_models_pytorch (SMP) defines them, and the Lovasz-Softmax and Lovasz hinge losses of
Berman, Rannen Triki & Blaschko (2018), as their reference code computes them.

Overlap losses take class scores ``(N, C, d1, ...)`` (class axis 1, any number of spatial axes) and
aggregate per class over the batch and every spatial position (SMP's ``dims=(0, 2)``): one soft
intersection, false-positive and false-negative mass per class, one loss per class, then the
(weighted) mean over the classes. The per-class losses are computed as (a FP + b FN) / denominator,
sums of non-negative terms, rather than 1 - score, so a loss of 1e-12 keeps its digits.

The Lovasz losses sort the per-pixel errors of each class (descending, stably: ties keep the pixels'
order, identically on NumPy, PyTorch and JAX) and weight them by the increments of the Jaccard loss
along that order (the Lovasz extension). Ignored pixels are kept in place with zero weight instead of
being removed, so shapes stay static under ``jax.jit``.
"""

from __future__ import annotations

import numbers

import numpy as np

from .. import _checks as check
from .. import _stable, _xp
from .._loss import Loss, State, floating_input, option_array
from .._spec import Choices, Interval, LossSpec, OptionSpec

_MODES = ("binary", "multiclass", "multilabel")
_INT64 = Interval(-(2**63), 2**63 - 1, integer=True)
_BINARY_FIX = "binary and multilabel targets are 0/1 masks (other values only as ignore_index)"


# -- shared helpers -------------------------------------------------------------------------------


def _targets_array(xp, targets, like):
    t = _xp.as_array(targets, xp, like)
    if t.dtype == xp.bool:
        t = xp.astype(t, like.dtype)
    return t


def _class_labels(xp, x, targets, ignore, input_name: str, mode_hint: str = ""):
    """Integer class labels for class scores ``x`` (N, C, ...): (labels with ignored pixels set to 0
    and, where the values could not be checked, clipped into range; the valid mask or None)."""
    num_classes = x.shape[1]
    t = _xp.as_array(targets, xp, x)
    expected = (x.shape[0], *x.shape[2:])
    if not _xp.is_integral(xp, t):
        raise TypeError(
            f"targets must be integer class indices of shape {expected} (dtype {t.dtype} given); convert them "
            f"(torch: targets.long(), NumPy: targets.astype(int)){mode_hint}"
        )
    if tuple(t.shape) != expected:
        raise ValueError(
            f"targets must have shape {expected} ({input_name} {tuple(x.shape)} without its class axis 1), "
            f"got {tuple(t.shape)}{mode_hint}"
        )
    checked = check.class_indices("targets", t, num_classes, ignore)
    valid = None if ignore is None else t != ignore
    safe = t if valid is None else xp.where(valid, t, xp.zeros_like(t))
    if not checked:  # an index out of range that could not be checked gives a meaningless but finite loss
        safe = xp.minimum(xp.maximum(safe, xp.zeros_like(safe)), xp.full_like(safe, num_classes - 1))
    return safe, valid


def _binary_targets(xp, t, ignore, name: str = "targets"):
    """Check 0/1 targets (ignore allowed) and return the valid mask (None without ``ignore``)."""
    allowed = (0.0, 1.0) if ignore is None else (0.0, 1.0, float(ignore))
    check.values_in(name, t, allowed, _BINARY_FIX)
    return None if ignore is None else t != ignore


def _probabilities_in_range(name: str, x, fix: str) -> None:
    """Every value of ``x`` in [0, 1]; NaN passes, to reach the output."""
    if not _xp.is_concrete(x):
        return
    v = _xp.to_numpy(x)
    bad = (v < 0) | (v > 1)
    if bad.any():
        raise ValueError(f"{name} must lie in [0, 1], got values {check._preview(v[bad])}; {fix}")


def _softmax_and_complement(xp, z):
    """softmax over axis 1 and 1 - softmax, both to a few ulps: 1 - p of the top class is the sum of the
    other classes' terms (1 - p by subtraction would be 0 for p within 1e-16 of 1, and a confident, correct
    prediction's loss would round to 0); for any other class (S - e_c) / S has no cancellation (S >= 1 + e_c)."""
    e = xp.exp(z - _stable._shift(xp, z, 1))
    total = xp.sum(e, axis=1, keepdims=True)
    c = z.shape[1]
    best = xp.argmax(z, axis=1, keepdims=True)
    top = best == xp.reshape(xp.arange(c, dtype=best.dtype, device=_xp.device(z)), (1, c, 1))
    rest = xp.sum(xp.where(top, xp.zeros_like(e), e), axis=1, keepdims=True)
    return e / total, xp.where(top, rest, total - e) / total


def _masked(a, m):
    return a if m is None else a * m


def _class_weight(xp, weight, like, num_classes: int):
    w = option_array(xp, "weight", weight, like, f"one weight per class, length {num_classes}")
    if w is None:
        return None
    if tuple(w.shape) != (num_classes,):
        raise ValueError(f"weight must hold one value per class, shape ({num_classes},), got shape {tuple(w.shape)}")
    check.values_above("weight", w, 0.0, "class weights are >= 0", inclusive=True)
    return w


# -- overlap losses (SMP) -------------------------------------------------------------------------

_MODE_OPTION = OptionSpec("mode", "'binary': (N, 1, ...) or (N, ...) scores and 0/1 masks; 'multiclass': (N, C, ...) "
                          "scores and class indices (N, ...); 'multilabel': (N, C, ...) scores and 0/1 masks",
                          Choices(_MODES))
_OVERLAP_OPTIONS = (
    _MODE_OPTION,
    OptionSpec("from_logits", "apply the sigmoid (binary, multilabel) or the softmax over the class axis "
               "(multiclass) first; False: the input holds probabilities", Choices((True, False))),
    OptionSpec("smooth", "added to the numerator and the denominator of each class's score", Interval(0.0, None),
               0.0, 10.0),
    OptionSpec("eps", "floor of each class's denominator (SMP's clamp_min)", Interval(0.0, None, closed="neither"),
               1e-9, 1e-3),
    OptionSpec("weight", "one weight per class: the loss is the weighted mean of the per-class losses", None,
               array_shape="C reals >= 0"),
    OptionSpec("ignore_index", "target value whose pixels are masked out of predictions and targets", _INT64,
               none_means="no pixel ignored"),
)
_OVERLAP_INPUTS = {
    "logits": "(N, C, ...) class scores, class axis 1 ((N, 1, ...) or (N, ...) in binary mode); logits, or "
    "probabilities in [0, 1] with from_logits=False",
    "targets": "multiclass: int class indices (N, ...); binary/multilabel: 0/1 masks shaped like logits "
    "(binary also (N, ...) for (N, 1, ...) logits); ignore_index anywhere",
}
_OVERLAP_LAYER = "raw logits (sigmoid or softmax applied inside), or probabilities with from_logits=False"
_OVERLAP_CONVENTIONS = (
    "Aggregation as segmentation_models_pytorch: sums over the batch and every spatial position per class "
    "(dims=(0, 2)); a class absent from the (non-ignored) targets has its loss set to 0 but still counts in "
    "the mean over classes (SMP's mask y_true.sum(dims) > 0). ignore_index multiplies both the probabilities "
    "and the targets by the valid mask (SMP's DiceLoss; SMP's JaccardLoss has no ignore_index, here it masks "
    "the same way), so a NaN even at an ignored pixel reaches the loss, as in SMP. weight (not in SMP) makes "
    "the loss sum_c w_c L_c / sum_c w_c (absent classes included with L_c = 0); weights of 0 and 1 select "
    "classes as SMP's classes=[...] does. reduction='none' returns the weighted per-class losses w_c L_c, "
    "shape (C,) (C = 1 in binary mode); 'mean' divides their sum by sum(w) (C without weight), 'sum' does "
    "not. The denominator is clamped below at eps (SMP's clamp_min(eps)); where the clamp binds its "
    "derivative is 0, as torch's, and it never binds for a class present in the targets unless eps > 1. "
    "The loss of a class is computed as (a FP + b FN) / denominator (a sum of non-negative terms) rather "
    "than 1 - score: equal to SMP's up to rounding, and accurate for losses near 0. No log_loss and no "
    "classes option (use weight). Not convex in the logits (a ratio of sums of probabilities)."
)


class _Overlap(Loss):
    """Shared machinery: per-class soft counts TP = sum p t, FP = sum p (1 - t), FN = sum (1 - p) t,
    score_c = (k TP + smooth) / max(k TP + a FP + b FN + smooth, eps), base_c = 1 - score_c."""

    inputs = ("logits",)
    k = 1.0  # weight of TP in the numerator and the denominator

    def prepare(self, xp, logits, targets, *, mode="multiclass", from_logits=True, smooth=0.0, eps=1e-7, weight=None,
                ignore_index=None):  # Dice's and Jaccard's options; Tversky's add alpha and beta
        return self._prepare(xp, logits, targets, mode, from_logits, smooth, eps, weight, ignore_index)

    def _coefficients(self, st):  # (a, b): weights of FP and FN in the denominator (Tversky: alpha, beta)
        return 1.0, 1.0

    def _prepare(self, xp, logits, targets, mode, from_logits, smooth, eps, weight, ignore_index, **extra):
        x, dtype = floating_input(xp, "logits", logits)
        hint = ""
        if mode == "multiclass":
            check.ndim_at_least("logits", x, 2, "(N, C, ...): batch, classes, then any spatial axes")
            t_raw = _xp.as_array(targets, xp, x)
            if _xp.is_floating(xp, t_raw) and tuple(t_raw.shape) == tuple(x.shape):
                hint = "; 0/1 masks shaped like logits need mode='multilabel'"
            labels, valid = _class_labels(xp, x, t_raw, ignore_index, "logits", hint)
            n, c = x.shape[0], x.shape[1]
            z = xp.reshape(x, (n, c, -1))
            labels = xp.reshape(labels, (n, 1, -1))
            classes = xp.reshape(xp.arange(c, dtype=labels.dtype, device=_xp.device(labels)), (1, c, 1))
            m = None if valid is None else xp.astype(xp.reshape(valid, (n, 1, -1)), z.dtype)
            t = _masked(xp.astype(labels == classes, z.dtype), m)
        else:
            t_raw = _targets_array(xp, targets, x)
            if mode == "binary":
                check.ndim_at_least("logits", x, 1, "(N, ...) or (N, 1, ...): one score per pixel")
                n, c = x.shape[0], 1
                ok = tuple(t_raw.shape) == tuple(x.shape) or (
                    x.ndim >= 2 and x.shape[1] == 1 and tuple(t_raw.shape) == (x.shape[0], *x.shape[2:]))
                if not ok:
                    raise ValueError(
                        f"targets must have the shape of logits {tuple(x.shape)} in mode='binary' (or, for (N, 1, ...) "
                        f"logits, (N, ...)), got {tuple(t_raw.shape)}; for C > 1 classes use mode='multiclass' "
                        "(class indices) or mode='multilabel' (0/1 masks)")
            else:
                check.ndim_at_least("logits", x, 2, "(N, C, ...): batch, classes, then any spatial axes")
                n, c = x.shape[0], x.shape[1]
                if tuple(t_raw.shape) != tuple(x.shape):
                    raise ValueError(
                        f"targets must have the shape of logits {tuple(x.shape)} in mode='multilabel' (one 0/1 mask "
                        f"per class), got {tuple(t_raw.shape)}; class indices need mode='multiclass'")
            valid = _binary_targets(xp, t_raw, ignore_index)
            z = xp.reshape(x, (n, c, -1))
            t = xp.reshape(xp.astype(t_raw, z.dtype), (n, c, -1))
            m = None if valid is None else xp.reshape(xp.astype(valid, z.dtype), (n, c, -1))
            t = _masked(t, m)
        if from_logits:
            if mode == "multiclass":
                p, q = _softmax_and_complement(xp, z)
            else:
                p, q = _stable.sigmoid(xp, z), _stable.sigmoid(xp, -z)
        else:
            _probabilities_in_range("logits", z, "with from_logits=False the input holds probabilities; pass "
                                    "raw scores with from_logits=True")
            p, q = z, 1.0 - z
        w = _class_weight(xp, weight, z, c)
        pm = _masked(p, m)
        pt = pm * t
        sums = (0, 2)
        tp, fp, fn = xp.sum(pt, axis=sums), xp.sum(pm - pt, axis=sums), xp.sum(q * t, axis=sums)
        present = xp.astype(xp.sum(t, axis=sums) > 0, z.dtype)
        return State(shape=tuple(x.shape), mode=mode, from_logits=from_logits, z=z, p=p, q=q, t=t, m=m, tp=tp, fp=fp,
                     fn=fn, present=present, smooth=smooth, eps=eps, w=w, num_classes=c, batch_size=n,
                     input_dtypes=(dtype,), **extra)

    def _base(self, xp, st):
        """(base = 1 - score per class, num, d, binds): the denominator d before the clamp."""
        a, b = self._coefficients(st)
        num = self.k * st.tp + st.smooth
        excess = a * st.fp + b * st.fn  # d - num
        d = num + excess
        binds = d < st.eps
        den = xp.where(binds, xp.full_like(d, st.eps), d)
        base = xp.where(binds, (st.eps - num) / den, excess / den)
        return base, num, den, binds

    def _outer(self, xp, st, base):
        """(per-class loss before masking, d loss / d base)."""
        return base, xp.ones_like(base)

    def terms(self, xp, st):
        base, *_ = self._base(xp, st)
        loss, _ = self._outer(xp, st, base)
        loss = loss * st.present
        if st.w is None:
            return loss, st.num_classes
        return st.w * loss, xp.sum(st.w)

    def grad_terms(self, xp, st, u):
        a, b = self._coefficients(st)
        base, num, den, binds = self._base(xp, st)
        _, slope = self._outer(xp, st, base)
        coef = u * slope * st.present
        if st.w is not None:
            coef = coef * st.w
        # d base / d (TP, FP, FN): unclamped (-k E, a num, b num) / d^2; where the clamp binds (-k / eps, 0, 0)
        inv2 = 1.0 / (den * den)
        zero = xp.zeros_like(den)
        excess = a * st.fp + b * st.fn
        d_tp = xp.where(binds, -self.k / den, -self.k * excess * inv2)
        d_fp = xp.where(binds, zero, a * num * inv2)
        d_fn = xp.where(binds, zero, b * num * inv2)
        # dTP/dp = t, dFP/dp = m (1 - t), dFN/dp = -t  (t is already masked)
        on_t = xp.reshape(coef * (d_tp - d_fp - d_fn), (1, -1, 1))
        on_m = xp.reshape(coef * d_fp, (1, -1, 1))
        g = st.t * on_t + (on_m if st.m is None else st.m * on_m)  # t has the input's full shape
        if st.from_logits:
            if st.mode == "multiclass":
                g = st.p * (g - xp.sum(st.p * g, axis=1, keepdims=True))
            else:
                g = g * (st.p * st.q)
        return (xp.reshape(g, st.shape),)


def _overlap_spec(name, summary, formula_latex, formula_text, gradient_latex, gradient_text, when, peers, module,
                  extra_options=(), conventions="", smooth=True):
    return LossSpec(
        name=name,
        family="segmentation",
        tasks=("segmentation", "multiclass", "binary", "multilabel"),
        summary=summary,
        output_layer=_OVERLAP_LAYER,
        inputs=dict(_OVERLAP_INPUTS),
        formula_latex=formula_latex,
        formula_text=formula_text,
        gradient_latex=gradient_latex,
        gradient_text=gradient_text,
        convex=False,
        smooth=smooth,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use=when,
        peers=peers,
        torch_module=module,
        options=_OVERLAP_OPTIONS + tuple(extra_options),
        conventions=_OVERLAP_CONVENTIONS + (" " + conventions if conventions else ""),
    )


_COUNTS_TEXT = ("p = sigmoid(z) (binary, multilabel) or softmax over classes (multiclass), t = 0/1 targets, both "
                "times the valid mask;\nper class c, summed over the batch and all pixels:  TP = sum p t,  "
                "FP = sum p (1 - t),  FN = sum (1 - p) t\n")
_AGG_TEXT = "\nL = sum_c w_c [T_c > 0] l_c / sum_c w_c   (w = 1 without weight; T_c = sum t)"
_GRAD_TEXT = ("\nd l_c/dp = dl/dTP t + dl/dFP m (1 - t) - dl/dFN t, then through the activation: "
              "sigmoid: dz = dp p (1 - p);  softmax: dz = p (dp - sum_k p_k dp_k)")


class Dice(_Overlap):
    """Parameters: ``logits`` (N, C, ...) class scores (class axis 1), ``targets`` (class indices for
    mode='multiclass', 0/1 masks for 'binary' and 'multilabel'); ``mode="multiclass"``;
    ``from_logits=True``; ``smooth=0.0``; ``eps=1e-7``; ``weight=None`` (one per class);
    ``ignore_index=None``. As segmentation_models_pytorch's ``DiceLoss``; ``reduction="none"``
    returns the (weighted) per-class losses, shape (C,)."""

    name = "dice"
    k = 2.0
    spec = _overlap_spec(
        "dice",
        "Soft Dice loss: one minus the soft Dice coefficient 2|P∩T| / (|P| + |T|) per class, averaged over classes "
        "(segmentation_models_pytorch's DiceLoss; Milletari et al. 2016).",
        r"\ell_c = 1 - \frac{2\,TP_c + s}{\max(2\,TP_c + FP_c + FN_c + s,\ \epsilon)},\quad "
        r"L = \frac{\sum_c w_c\,[T_c > 0]\,\ell_c}{\sum_c w_c}",
        _COUNTS_TEXT + "l_c = 1 - (2 TP + smooth) / max(2 TP + FP + FN + smooth, eps)   (2 TP + FP + FN = sum p + sum t)"
        + _AGG_TEXT,
        r"\frac{\partial\ell_c}{\partial p} = -\frac{2\,t}{d_c} + \frac{(2\,TP_c + s)\,m}{d_c^2},\quad d_c = 2\,TP_c + FP_c + FN_c + s"
        r"\ \ (\text{times the valid mask; 0 from } d_c \text{ where the eps clamp binds})",
        "per class, d = 2 TP + FP + FN + smooth (unclamped): dl_c/dp = -2 t / d + (2 TP + smooth) m / d^2;\n"
        "where d < eps: dl_c/dp = -2 t / eps" + _GRAD_TEXT,
        "Semantic or medical segmentation with strong class imbalance (small foreground): the loss of each class is "
        "independent of its pixel count. Often added to cross-entropy.",
        {"pytorch": "none (segmentation_models_pytorch.losses.DiceLoss)", "optax": "none",
         "keras": "keras.losses.Dice (on probabilities, one ratio pooled over all classes and pixels, eps added to "
                  "the denominator, no smoothing, no per-class mean)"},
        "DiceLoss",
    )


class Jaccard(_Overlap):
    """Parameters as ``dice``. Soft Jaccard (IoU) loss, as segmentation_models_pytorch's
    ``JaccardLoss`` (plus ``ignore_index`` and ``weight``); ``reduction="none"`` returns the
    (weighted) per-class losses, shape (C,)."""

    name = "jaccard"
    k = 1.0
    spec = _overlap_spec(
        "jaccard",
        "Soft Jaccard (IoU) loss: one minus the soft intersection over union per class, averaged over classes "
        "(segmentation_models_pytorch's JaccardLoss).",
        r"\ell_c = 1 - \frac{TP_c + s}{\max(TP_c + FP_c + FN_c + s,\ \epsilon)},\quad "
        r"L = \frac{\sum_c w_c\,[T_c > 0]\,\ell_c}{\sum_c w_c}",
        _COUNTS_TEXT + "l_c = 1 - (TP + smooth) / max(U + smooth, eps),  U = TP + FP + FN = sum p + sum t - TP" + _AGG_TEXT,
        r"\frac{\partial\ell_c}{\partial p} = \frac{-(FP_c + FN_c)\,t - 2\,(TP_c + s)\,t + (TP_c + s)\,m}{d_c^2},"
        r"\quad d_c = TP_c + FP_c + FN_c + s",
        "per class, d = TP + FP + FN + smooth (unclamped): dl_c/dp = (-(FP + FN) t - 2 (TP + smooth) t + (TP + smooth) m) / d^2;\n"
        "where d < eps: dl_c/dp = -t / eps" + _GRAD_TEXT,
        "Segmentation scored by IoU (mIoU benchmarks): the soft IoU per class, insensitive to class size. "
        "Jaccard >= Dice for the same prediction; the two order predictions alike.",
        {"pytorch": "none (segmentation_models_pytorch.losses.JaccardLoss)", "optax": "none", "keras": "none"},
        "JaccardLoss",
    )


_ALPHA = OptionSpec("alpha", "weight of the false positives", Interval(0.0, None), 0.0, 1.0)
_BETA = OptionSpec("beta", "weight of the false negatives (beta > alpha favours recall)", Interval(0.0, None), 0.0, 1.0)


class Tversky(_Overlap):
    """Parameters as ``dice``, plus ``alpha=0.5`` (weight of false positives) and ``beta=0.5``
    (weight of false negatives). As segmentation_models_pytorch's ``TverskyLoss`` (gamma = 1);
    alpha = beta = 0.5 is the Dice loss when smooth = 0. ``reduction="none"`` returns the (weighted)
    per-class losses, shape (C,)."""

    name = "tversky"
    k = 1.0
    spec = _overlap_spec(
        "tversky",
        "Tversky loss: one minus the Tversky index TP / (TP + alpha FP + beta FN) per class, averaged over classes; "
        "alpha and beta trade false positives against false negatives (Salehi et al. 2017; SMP's TverskyLoss).",
        r"\ell_c = 1 - \frac{TP_c + s}{\max(TP_c + \alpha FP_c + \beta FN_c + s,\ \epsilon)},\quad "
        r"L = \frac{\sum_c w_c\,[T_c > 0]\,\ell_c}{\sum_c w_c}",
        _COUNTS_TEXT + "l_c = 1 - (TP + smooth) / max(TP + alpha FP + beta FN + smooth, eps)" + _AGG_TEXT,
        r"\frac{\partial\ell_c}{\partial p} = \frac{-(\alpha FP_c + \beta FN_c)\,t - (\alpha + \beta)(TP_c + s)\,t + \alpha\,(TP_c + s)\,m}{d_c^2},"
        r"\quad d_c = TP_c + \alpha FP_c + \beta FN_c + s",
        "per class, d = TP + alpha FP + beta FN + smooth (unclamped), E = alpha FP + beta FN, n = TP + smooth:\n"
        "dl_c/dp = (-E t - (alpha + beta) n t + alpha n m) / d^2;  where d < eps: dl_c/dp = -t / eps" + _GRAD_TEXT,
        "Segmentation where false negatives cost more than false positives (small lesions): beta > alpha pushes "
        "recall up. alpha = beta = 0.5 is Dice, alpha = beta = 1 Jaccard (smooth = 0).",
        {"pytorch": "none (segmentation_models_pytorch.losses.TverskyLoss)", "optax": "none",
         "keras": "keras.losses.Tversky (on probabilities, one index pooled over all classes and pixels, eps added "
                  "to the denominator, no smoothing)"},
        "TverskyLoss",
        extra_options=(_ALPHA, _BETA),
    )

    def prepare(self, xp, logits, targets, *, mode="multiclass", from_logits=True, smooth=0.0, eps=1e-7, weight=None,
                ignore_index=None, alpha=0.5, beta=0.5):
        return self._prepare(xp, logits, targets, mode, from_logits, smooth, eps, weight, ignore_index,
                             alpha=alpha, beta=beta)

    def _coefficients(self, st):
        return st.alpha, st.beta


class FocalTversky(Tversky):
    """Parameters as ``tversky``, plus ``gamma=1.0``: each class's Tversky loss is raised to the power
    gamma before the mean over classes (Abraham & Khan 2019 write the exponent 1/gamma). gamma = 1 is
    ``tversky``. ``reduction="none"`` returns the (weighted) per-class losses (1 - T_c)^gamma, shape (C,)."""

    name = "focal_tversky"
    spec = _overlap_spec(
        "focal_tversky",
        "Focal Tversky loss: each class's Tversky loss raised to the power gamma, then averaged over classes "
        "(Abraham & Khan 2019, with their 1/gamma written gamma).",
        r"\ell_c = \Big(1 - \frac{TP_c + s}{\max(TP_c + \alpha FP_c + \beta FN_c + s,\ \epsilon)}\Big)^{\gamma},\quad "
        r"L = \frac{\sum_c w_c\,[T_c > 0]\,\ell_c}{\sum_c w_c}",
        _COUNTS_TEXT + "l_c = (1 - (TP + smooth) / max(TP + alpha FP + beta FN + smooth, eps))^gamma" + _AGG_TEXT,
        r"\frac{\partial\ell_c}{\partial p} = \gamma\,b_c^{\gamma-1}\,\frac{\partial b_c}{\partial p},\quad b_c = 1 - \mathrm{TI}_c",
        "dl_c/dp = gamma b_c^(gamma - 1) db_c/dp with b_c = 1 - TI_c and db_c/dp the tversky gradient;\n"
        "0 where b_c = 0 and gamma < 1" + _GRAD_TEXT,
        "Small structures in segmentation: gamma < 1 raises the loss (and gradient) of classes that are already "
        "fairly well segmented less than of those that are not (as the paper's 1/gamma = 0.75); gamma > 1 focuses "
        "on the worst classes.",
        {"pytorch": "none (segmentation_models_pytorch.losses.TverskyLoss with gamma, and FocalTverskyLoss: both "
                    "differ, see conventions)", "optax": "none", "keras": "none"},
        "FocalTverskyLoss",
        extra_options=(_ALPHA, _BETA, OptionSpec("gamma", "exponent applied to each class's Tversky loss",
                                                 Interval(0.0, None, closed="neither"), 0.5, 3.0)),
        conventions="The power is per class, before the mean: SMP's TverskyLoss(gamma) raises the mean over classes "
        "to gamma instead, and SMP's FocalTverskyLoss returns 1 - (1 - TI_c)^gamma per class, averaged, then raised to "
        "gamma (at gamma = 1 that is TI itself); all coincide for one class with gamma = 1, and this one matches "
        "TverskyLoss(gamma) exactly for a single class (binary mode). gamma < 1: the derivative of b^gamma at b = 0 "
        "(a perfectly segmented class) is unbounded; its gradient there is taken as 0 (the point is the minimum), "
        "so with gamma < 1 the loss is not smooth there (smooth for gamma >= 1, the default 1).",
    )

    def prepare(self, xp, logits, targets, *, mode="multiclass", from_logits=True, smooth=0.0, eps=1e-7, weight=None,
                ignore_index=None, alpha=0.5, beta=0.5, gamma=1.0):
        return self._prepare(xp, logits, targets, mode, from_logits, smooth, eps, weight, ignore_index,
                             alpha=alpha, beta=beta, gamma=gamma)

    def _outer(self, xp, st, base):
        gamma = st.gamma
        if isinstance(gamma, numbers.Real) and gamma == 1:
            return base, xp.ones_like(base)
        positive = base > 0  # base >= 0 always; at 0 the slope is 0 (gamma > 1) or taken as 0 (gamma < 1)
        safe = xp.where(positive, base, xp.ones_like(base))
        slope = _stable.keep_nan(xp, base, xp.where(positive, gamma * safe ** (gamma - 1.0), xp.zeros_like(base)))
        loss = _stable.keep_nan(xp, base, xp.where(positive, safe**gamma, xp.zeros_like(base)))
        return loss, slope


# -- Lovasz losses (Berman, Rannen Triki & Blaschko 2018) ----------------------------------------------


def _lovasz_weights(xp, errors, fg, valid):
    """The Lovasz extension's weights of the Jaccard loss for each row of ``errors`` (..., P), in the
    pixels' own order: w_i = J_k - J_{k-1} at pixel i's rank k in the stable descending sort of the
    errors, J_k = 1 - |fg \\ prefix| / |fg ∪ prefix| counted over valid pixels (Berman's lovasz_grad).
    ``fg`` and ``valid`` are boolean ((..., P) and broadcastable to it; valid may be None). Counts are
    integers, so J_k = (valid pixels so far) / (|fg| + background pixels so far) is one rounding."""
    order = xp.argsort(errors, axis=-1, descending=True, stable=True)
    idx = order.dtype
    fg_i = xp.astype(xp.broadcast_to(fg, errors.shape), idx)
    v_i = xp.ones_like(fg_i) if valid is None else xp.astype(xp.broadcast_to(valid, errors.shape), idx)
    fg_s = xp.take_along_axis(fg_i, order, axis=-1)
    v_s = xp.take_along_axis(v_i, order, axis=-1)
    seen = xp.cumulative_sum(v_s, axis=-1)  # valid pixels up to rank k: |union| - |intersection|
    union = xp.sum(fg_i, axis=-1, keepdims=True) + xp.cumulative_sum(v_s - fg_s, axis=-1)
    dt = errors.dtype
    nonempty = union > 0
    jac = xp.where(nonempty, xp.astype(seen, dt) / xp.astype(xp.where(nonempty, union, xp.ones_like(union)), dt),
                   xp.zeros(union.shape, dtype=dt, device=_xp.device(errors)))
    previous = xp.concat([xp.zeros((*jac.shape[:-1], 1), dtype=dt, device=_xp.device(jac)), jac[..., :-1]], axis=-1)
    weights_sorted = jac - previous
    inverse = xp.argsort(order, axis=-1)
    return xp.take_along_axis(weights_sorted, inverse, axis=-1)


def _drop_ignored(xp, e, valid):
    """Errors of ignored pixels set to 0 (their weight is 0 anyway; an infinite one must not give
    inf * 0), NaN kept, so a NaN anywhere reaches the loss."""
    if valid is None:
        return e
    return _stable.keep_nan(xp, e, xp.where(valid, e, xp.zeros_like(e)))


def _selected_classes(xp, classes, num_classes: int, like):
    """'all', 'present' or a list of class indices -> ('all' | 'present' | a boolean (C,) numpy mask)."""
    if isinstance(classes, str):
        if classes not in ("all", "present"):
            raise ValueError(f"classes must be 'all', 'present' or a list of class indices, got {classes!r}")
        return classes
    if isinstance(classes, (bool, np.bool_)) or classes is None:
        raise TypeError(f"classes must be 'all', 'present' or a list of class indices, got {classes!r}")
    try:
        arr = _xp.host_numbers("classes", classes, "a list of class indices")
    except TypeError:
        raise TypeError(f"classes must be 'all', 'present' or a list of class indices, got "
                        f"{type(classes).__name__} {check.shown(classes)}") from None
    if arr.size == 0:
        raise ValueError("classes is an empty list; give at least one class index, or 'all' / 'present'")
    if arr.dtype.kind not in "iu" or arr.ndim != 1:
        raise TypeError(f"classes must be 'all', 'present' or a 1-d list of integer class indices, got "
                        f"{check.shown(classes)} (dtype {arr.dtype}, {arr.ndim}-d)")
    if ((arr < 0) | (arr >= num_classes)).any():
        raise ValueError(f"classes holds indices out of range [0, {num_classes - 1}]: {check._preview(arr[(arr < 0) | (arr >= num_classes)])}; "
                         f"the class axis of probs has size {num_classes}")
    if np.unique(arr).size != arr.size:
        raise ValueError(f"classes lists a class twice: {arr.tolist()}; list each class once")
    mask = np.zeros(num_classes, dtype=bool)
    mask[arr] = True
    return mask


class LovaszSoftmax(Loss):
    """Parameters: ``probs`` (N, C, ...) class probabilities (a softmax output; class axis 1),
    ``targets`` (N, ...) integer class indices; ``classes="present"`` ('all', 'present' or a list of
    class indices to average over); ``per_image=False``; ``ignore=None`` (a label whose pixels are left
    out). As Berman's ``lovasz_softmax``. ``reduction="none"`` returns the per-class losses of the
    whole batch, shape (C,), with 0 for classes not averaged (divisor: the number averaged), or with
    ``per_image=True`` the per-image losses, shape (N,) (divisor N)."""

    name = "lovasz_softmax"
    inputs = ("probs",)
    spec = LossSpec(
        name="lovasz_softmax",
        family="segmentation",
        tasks=("segmentation", "multiclass"),
        summary="Lovasz-Softmax: a convex surrogate of the per-class Jaccard (IoU) loss, the Lovasz extension "
        "applied to the sorted pixel errors |fg - p| of each class (Berman, Rannen Triki & Blaschko 2018).",
        output_layer="softmax probabilities over the class axis 1 (apply the softmax first)",
        inputs={"probs": "(N, C, ...) probabilities in [0, 1], class axis 1",
                "targets": "(N, ...) int class indices in [0, C), or the ignore label"},
        formula_latex=r"\ell_c = \sum_{k} e_{c,\pi(k)}\,\big(J_c(k) - J_c(k-1)\big),\quad e_{c,i} = |[y_i = c] - p_{c,i}|,"
        r"\quad J_c(k) = 1 - \frac{|F_c| - |F_c \cap \pi_{1..k}|}{|F_c| + |\pi_{1..k} \setminus F_c|},\quad "
        r"L = \frac{1}{|S|}\sum_{c \in S}\ell_c",
        formula_text="per class c: e_i = |[y_i = c] - p_ci| over the valid pixels, pi = the errors' order (descending, "
        "stable)\nJ(k) = 1 - (|F| - |F among the first k|) / (|F| + |not F among the first k|),  J(0) = 0,  F = pixels "
        "of class c\nl_c = sum_k e_pi(k) (J(k) - J(k-1));  L = mean of l_c over the classes S ('all', 'present' in "
        "the targets, or listed)\nper_image: L per image, then the mean over the N images",
        gradient_latex=r"\frac{\partial\ell_c}{\partial p_{c,i}} = \operatorname{sign}(p_{c,i} - [y_i = c])\,\big(J_c(k_i) - J_c(k_i - 1)\big),"
        r"\ k_i = \text{rank of pixel } i",
        gradient_text="dl_c/dp_ci = sign(p_ci - [y_i = c]) (J(k_i) - J(k_i - 1)), k_i = pixel i's rank in the sort "
        "(the order held fixed); 0 for ignored pixels and other classes;\ntimes 1/|S| for c in S (0 otherwise), and "
        "1/N per image with per_image",
        convex=True,
        smooth=False,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="Fine-tuning semantic segmentation for the mean IoU metric itself (after or alongside "
        "cross-entropy); per_image=True when the metric is averaged per image.",
        peers={"pytorch": "none (segmentation_models_pytorch.losses.LovaszLoss(mode='multiclass') on logits; Berman's "
               "lovasz_losses.lovasz_softmax)", "optax": "none", "keras": "none"},
        torch_module="LovaszSoftmaxLoss",
        options=(
            OptionSpec("classes", "the classes averaged: 'all', 'present' (in the non-ignored targets) or a list of "
                       "class indices", None, array_shape="'all', 'present' or a list of distinct class indices"),
            OptionSpec("per_image", "the loss of each image, then their mean (else the batch as one image)",
                       Choices((False, True))),
            OptionSpec("ignore", "label whose pixels are left out", _INT64, none_means="no pixel ignored"),
        ),
        conventions="The subgradient is that of the sorted form with the sort order held fixed: ties in the errors "
        "keep the pixels' order (a stable descending sort, the same on NumPy, PyTorch and JAX; Berman's torch.sort "
        "is not stable, so at exact ties his gradient may pick another of the equally valid subgradients; the value "
        "does not depend on it); |x|' = 0 at x = 0 (torch's). Convex in the probabilities (not in the logits behind "
        "them). When no class is averaged (classes='present' with every pixel ignored, or absent from an image) the "
        "loss is 0 (Berman's empty mean), and such an image still counts in the per-image mean. Ignored pixels "
        "stay in place with weight 0 (shapes stay static under jax.jit) rather than being removed; a NaN even at an "
        "ignored pixel reaches the loss. classes lists distinct indices (Berman's would count a repeated class twice). "
        "Berman's sigmoid special case (C = 1 with (N, H, W) probabilities) is not supported: use lovasz_hinge or "
        "two classes.",
    )

    def prepare(self, xp, probs, targets, *, classes="present", per_image=False, ignore=None):
        x, dtype = floating_input(xp, "probs", probs)
        check.ndim_at_least("probs", x, 2, "(N, C, ...): batch, classes, then any spatial axes")
        n, c = x.shape[0], x.shape[1]
        selection = _selected_classes(xp, classes, c, x)
        _probabilities_in_range("probs", x, "pass softmax probabilities over the class axis 1 (apply a softmax to "
                                "logits first)")
        labels, valid = _class_labels(xp, x, targets, ignore, "probs")
        p = xp.reshape(x, (n, c, -1))
        labels = xp.reshape(labels, (n, 1, -1))
        valid = None if valid is None else xp.reshape(valid, (n, 1, -1))
        if not per_image:  # the batch as one image: (1, C, N * S)
            p = xp.reshape(xp.permute_dims(p, (1, 0, 2)), (1, c, -1))
            labels = xp.reshape(labels, (1, 1, -1))
            valid = None if valid is None else xp.reshape(valid, (1, 1, -1))
        class_ids = xp.reshape(xp.arange(c, dtype=labels.dtype, device=_xp.device(labels)), (1, c, 1))
        fg = labels == class_ids
        if valid is not None:
            fg = xp.logical_and(fg, valid)
        fg_f = xp.astype(fg, p.dtype)
        errors = _drop_ignored(xp, xp.abs(fg_f - p), valid)
        weights = _lovasz_weights(xp, errors, fg, valid)
        if isinstance(selection, str) and selection == "all":
            sel = xp.ones((p.shape[0], c), dtype=p.dtype, device=_xp.device(p))
        elif isinstance(selection, str):
            sel = xp.astype(xp.any(fg, axis=-1), p.dtype)
        else:
            sel = xp.broadcast_to(xp.asarray(selection.astype(np.float64), dtype=p.dtype, device=_xp.device(p))[None, :],
                                  (p.shape[0], c))
        return State(shape=tuple(x.shape), p=p, fg=fg_f, valid=valid, errors=errors, weights=weights, sel=sel,
                     per_image=per_image, selection=selection, num_classes=c, batch_size=n, input_dtypes=(dtype,))

    def _count(self, xp, st):
        """The number of classes averaged per group (G,) as an array, or as a Python int when fixed."""
        if isinstance(st.selection, str) and st.selection == "all":
            return st.num_classes
        if not isinstance(st.selection, str):
            return int(st.selection.sum())
        return xp.sum(st.sel, axis=-1)

    def _per_group_scale(self, xp, st):
        """1 / (number of classes averaged) per group, 0 where none is."""
        k = self._count(xp, st)
        if isinstance(k, int):
            return 1.0 / k
        return xp.where(k > 0, 1.0 / xp.where(k > 0, k, xp.ones_like(k)), xp.zeros_like(k))

    def terms(self, xp, st):
        losses = xp.sum(st.errors * st.weights, axis=-1) * st.sel  # (G, C)
        if st.per_image:
            scale = self._per_group_scale(xp, st)
            return xp.sum(losses, axis=-1) * scale, st.batch_size
        k = self._count(xp, st)
        return losses[0, :], (k if isinstance(k, int) else k[0])

    def grad_terms(self, xp, st, u):
        if st.per_image:
            coef = (u * self._per_group_scale(xp, st))
            coef = coef[:, None] * st.sel if _xp.is_array(coef) and coef.ndim == 1 else coef * st.sel
        else:
            coef = u * st.sel  # u: a number, a 0-d array or one per class (C,)
        g = coef[..., None] * st.weights * xp.sign(st.p - st.fg)
        if not st.per_image:
            g = xp.permute_dims(xp.reshape(g, (st.num_classes, st.batch_size, -1)), (1, 0, 2))
        return (xp.reshape(g, st.shape),)


class LovaszHinge(Loss):
    """Parameters: ``logits`` (N, ...) one real score per pixel, ``targets`` 0/1 masks of the same
    shape; ``per_image=True``; ``ignore=None`` (a label whose pixels are left out). As Berman's
    ``lovasz_hinge`` (ReLU of the hinge errors, his ``lovasz_hinge_flat``). ``reduction="none"``
    returns the per-image losses, shape (N,), or with ``per_image=False`` the batch's loss, shape (1,)."""

    name = "lovasz_hinge"
    inputs = ("logits",)
    spec = LossSpec(
        name="lovasz_hinge",
        family="segmentation",
        tasks=("segmentation", "binary"),
        summary="Lovasz hinge: a convex surrogate of the foreground Jaccard (IoU) loss, the Lovasz extension applied "
        "to the sorted hinge errors max(0, 1 - s z) (Yu & Blaschko 2015; Berman, Rannen Triki & Blaschko 2018).",
        output_layer="raw logits, one per pixel (no sigmoid)",
        inputs={"logits": "(N, ...) real scores", "targets": "0/1 masks shaped like logits, or the ignore label"},
        formula_latex=r"\ell = \sum_k \max(0, e_{\pi(k)})\,\big(J(k) - J(k-1)\big),\quad e_i = 1 - z_i s_i,\ s_i = 2y_i - 1",
        formula_text="e_i = 1 - z_i s_i, s_i = 2 y_i - 1, over the valid pixels of an image; pi = the errors' order "
        "(descending, stable)\nJ(k) = 1 - (|F| - |F among the first k|) / (|F| + |not F among the first k|),  J(0) = 0,"
        "  F = foreground pixels\nl = sum_k max(0, e_pi(k)) (J(k) - J(k-1));  per_image: the mean over images, else the "
        "batch as one image",
        gradient_latex=r"\frac{\partial\ell}{\partial z_i} = -s_i\,[e_i > 0]\,\big(J(k_i) - J(k_i - 1)\big)",
        gradient_text="dl/dz_i = -s_i [e_i > 0] (J(k_i) - J(k_i - 1)), k_i = pixel i's rank in the sort (the order held "
        "fixed); 0 for ignored pixels; 1/N per image with per_image",
        convex=True,
        smooth=False,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="Binary segmentation trained for the foreground IoU directly (Berman's recommendation for "
        "binary masks: per_image=True).",
        peers={"pytorch": "none (segmentation_models_pytorch.losses.LovaszLoss(mode='binary'); Berman's "
               "lovasz_losses.lovasz_hinge)", "optax": "none", "keras": "none"},
        torch_module="LovaszHingeLoss",
        options=(
            OptionSpec("per_image", "the loss of each image, then their mean (else the batch as one image)",
                       Choices((True, False))),
            OptionSpec("ignore", "label whose pixels are left out", _INT64, none_means="no pixel ignored"),
        ),
        conventions="ReLU of the hinge errors (Berman's lovasz_hinge_flat; his elu + 1 variant is not used); "
        "relu'(0) = 0 (torch's). The subgradient is that of the sorted form with the sort order held fixed: ties keep "
        "the pixels' order (a stable descending sort, the same on NumPy, PyTorch and JAX; Berman's torch.sort is not "
        "stable, so at exact ties his gradient may differ; the value does not). Convex in the logits. An image whose "
        "pixels are all ignored has loss 0 and counts in the per-image mean (as Berman's). Ignored pixels stay in "
        "place with weight 0 rather than being removed; a NaN even at an ignored pixel reaches the loss.",
    )

    def prepare(self, xp, logits, targets, *, per_image=True, ignore=None):
        x, dtype = floating_input(xp, "logits", logits)
        check.ndim_at_least("logits", x, 1, "(N, ...): batch, then any spatial axes")
        t = _targets_array(xp, targets, x)
        check.same_shape("logits", x, "targets", t)
        valid = _binary_targets(xp, t, ignore)
        groups = x.shape[0] if per_image else 1
        z = xp.reshape(x, (groups, -1))
        t = xp.reshape(t, (groups, -1))
        valid = None if valid is None else xp.reshape(valid, (groups, -1))
        fg = t == 1
        if valid is not None:
            fg = xp.logical_and(fg, valid)
        signs = 2.0 * xp.astype(fg, z.dtype) - 1.0
        errors = _drop_ignored(xp, 1.0 - z * signs, valid)
        weights = _lovasz_weights(xp, errors, fg, valid)
        return State(shape=tuple(x.shape), errors=errors, signs=signs, weights=weights, groups=groups,
                     batch_size=x.shape[0], input_dtypes=(dtype,))

    def terms(self, xp, st):
        hinge = xp.maximum(st.errors, xp.zeros_like(st.errors))
        return xp.sum(hinge * st.weights, axis=-1), st.groups

    def grad_terms(self, xp, st, u):
        e = st.errors
        active = _stable.keep_nan(xp, e, xp.astype(e > 0, e.dtype))
        coef = u[:, None] if _xp.is_array(u) and u.ndim == 1 else u
        g = -(coef * st.signs * active * st.weights)
        return (xp.reshape(g, st.shape),)


dice, jaccard, tversky, focal_tversky = Dice(), Jaccard(), Tversky(), FocalTversky()
lovasz_softmax, lovasz_hinge = LovaszSoftmax(), LovaszHinge()
LOSSES = (dice, jaccard, tversky, focal_tversky, lovasz_softmax, lovasz_hinge)

