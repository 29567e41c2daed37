"""Classification losses: softmax cross-entropy, NLL, binary cross-entropy (on probabilities and
on logits), hinge losses, focal loss and KL divergence.

Class scores follow PyTorch's layout: ``(N, C)``, ``(N, C, d1, ...)`` with the class axis 1, or
an unbatched ``(C,)`` with a 0-d target. Internally the class axis is moved last.
"""

from __future__ import annotations

import math

from .. import _checks as check
from .. import _stable, _xp
from .._loss import Loss, State, floating_input, option_array, per_row
from .._spec import Choices, Interval, LossSpec, OptionSpec
from ..definitions import pointwise, softmax_rows
from ._elementwise import Elementwise

# -- shared helpers for class-indexed losses ----------------------------------------------------


def _class_axis(x) -> int:
    return 0 if x.ndim == 1 else 1


def _num_classes(x, input_name: str) -> int:
    """The size of ``x``'s class axis; a ValueError when it is 0 (a distribution over no class has no log-probability
    to take: the softmax's log of 0 would divide by zero)."""
    num_classes = x.shape[_class_axis(x)]
    if num_classes == 0:
        raise ValueError(f"{input_name} of shape {tuple(x.shape)} have no classes (C = 0: class axis "
                         f"{_class_axis(x)}): give one score per class")
    return num_classes


def _class_last(xp, x):
    return x if x.ndim <= 1 else xp.moveaxis(x, 1, -1)


def _class_back(xp, g, ndim: int):
    return g if ndim <= 1 else xp.moveaxis(g, -1, 1)


def _class_weight(xp, weight, like, num_classes: int):
    w = option_array(xp, "weight", weight, like, f"one weight per class, length {num_classes}")
    if w is not None and tuple(w.shape) != (num_classes,):
        raise ValueError(
            f"weight must hold one value per class, shape ({num_classes},), got shape {tuple(w.shape)}"
        )
    return w


def _index_rows(xp, x, targets, ignore_index: int | None, input_name: str):
    """Integer class targets for class scores ``x`` (original layout), checked: the indices with
    ignored items set to class 0 (``safe``) and the valid mask."""
    num_classes = x.shape[_class_axis(x)]
    t = _xp.as_array(targets, xp, x)
    expected = tuple(s for i, s in enumerate(x.shape) if i != _class_axis(x))
    if _xp.is_floating(xp, t):
        raise TypeError(
            f"targets are floating point (dtype {t.dtype}, shape {tuple(t.shape)}) but class indices must be "
            f"integers: convert them (torch: targets.long(), NumPy: targets.astype(int)); probability targets "
            f"must have the shape of {input_name}, {tuple(x.shape)}"
        )
    if not _xp.is_integral(xp, t):
        raise TypeError(f"targets must be integer class indices, got dtype {t.dtype}")
    if tuple(t.shape) != expected:
        raise ValueError(
            f"targets must have shape {expected} ({input_name} {tuple(x.shape)} without its class axis "
            f"{_class_axis(x)}), got {tuple(t.shape)}"
        )
    checked = check.class_indices("targets", t, num_classes, ignore_index)
    valid = (t != ignore_index) if ignore_index is not None else xp.ones(t.shape, dtype=xp.bool, device=_xp.device(t))
    # ignored items pick class 0; an out-of-range index that could not be checked (jit, CUDA) is clipped
    # into range, so it gives a meaningless but finite row and never an out-of-bounds read
    safe = xp.where(valid, t, xp.zeros_like(t)) if ignore_index is not None else t
    if not checked:
        safe = xp.minimum(xp.maximum(safe, xp.zeros_like(safe)), xp.full_like(safe, num_classes - 1))
    if _xp.kind(safe) == "torch" and safe.dtype != xp.int64:
        safe = xp.astype(safe, xp.int64)  # torch's take_along_dim wants int64 indices
    return safe, valid


def _index_distribution(xp, x, targets, ignore_index, w, smoothing, input_name):
    """The target distribution of class indices (softmax_rows.IndexTargets), its divisor and w_y."""
    safe, valid = _index_rows(xp, x, targets, ignore_index, input_name)
    valid_f = xp.astype(valid, x.dtype)
    w_y = valid_f if w is None else xp.reshape(xp.take(w, xp.reshape(safe, (-1,)), axis=0), safe.shape) * valid_f
    q = softmax_rows.IndexTargets(xp, safe, valid_f, w_y, w, smoothing, x.shape[_class_axis(x)])
    return q, xp.sum(w_y), w_y


_INT64 = Interval(-(2**63), 2**63 - 1, integer=True)  # what an index array can hold on every backend
_LOGITS = "logits: raw scores, no softmax (softmax is applied inside, fused with the log)"


class CrossEntropy(Loss):
    """Parameters: ``logits`` (N, C) / (N, C, d1, ...) / (C,); ``targets`` integer class indices
    (shape of logits without axis 1) or class probabilities (the shape of logits); ``weight=None``
    (one per class); ``ignore_index=-100`` (integer targets only); ``label_smoothing=0.0`` in [0, 1];
    ``lse_square_scale=0.0`` (the z-loss weight, >= 0); ``softcap=None`` (> 0: cap the logits at
    c tanh(z / c) first).

    Divisors, as PyTorch: with integer targets ``mean`` divides by the sum of the target classes'
    weights over non-ignored items (their count without ``weight``); with probability targets
    by the number of items. ``hessian`` returns per-item C x C blocks, shape (N, C, C, d1, ...)."""

    name = "cross_entropy"
    inputs = ("logits",)
    spec = LossSpec(
        name="cross_entropy",
        family="classification",
        tasks=("multiclass",),
        summary="Softmax cross-entropy: the negative log-probability of the true class, from logits.",
        output_layer=_LOGITS,
        inputs={"logits": "real, class axis 1 (or 0 when unbatched)",
                "targets": "int class index in [0, C) or ignore_index; or probabilities in [0, 1] shaped like logits"},
        formula_latex=r"\ell = -\sum_c q_c \log \operatorname{softmax}(z)_c + s\,w_y \operatorname{lse}(z)^2,\quad q = (1-\varepsilon)\,w_y\,\mathrm{onehot}(y) + \tfrac{\varepsilon}{C} w",
        formula_text="l = -sum_c q_c log softmax(z)_c + s w_y lse(z)^2,   q = (1 - eps) w_y onehot(y) + (eps / C) w\n"
        "(no weight, no smoothing, no z-loss: l = logsumexp(z) - z_y = -log p_y);\n"
        "with softcap c the logits z are c tanh(x / c)",
        gradient_latex=r"\partial\ell/\partial z_c = \big(\textstyle\sum_k q_k + 2 s w_y \operatorname{lse}\big)\,p_c - q_c \quad(= p_c - y_c\ \text{unweighted})",
        gradient_text="dl/dz_c = (sum_k q_k + 2 s w_y lse) p_c - q_c   (= p_c - onehot(y)_c without weights), p = softmax(z)\n"
        "with softcap: dl/dx_c = dl/dz_c (1 - (z_c / c)^2)",
        hessian_text="d2l/dz dz^T = (sum_k q_k + 2 s w_y lse) (diag(p) - p p^T) + 2 s w_y p p^T   (softcap: chain rule)",
        convex=True,
        smooth=True,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="Multi-class classification with one correct class (ImageNet, next-token prediction). "
        "Feed logits; label_smoothing for over-confidence, weight for class imbalance.",
        peers={"pytorch": "torch.nn.functional.cross_entropy",
               "optax": "optax.losses.softmax_cross_entropy_with_integer_labels / softmax_cross_entropy",
               "keras": "keras.losses.SparseCategoricalCrossentropy(from_logits=True)"},
        torch_module="CrossEntropyLoss",
        options=(
            OptionSpec("label_smoothing", "mix the target with the uniform distribution", Interval(0.0, 1.0), 0.0, 1.0),
            OptionSpec("ignore_index", "targets equal to it contribute nothing", _INT64),
            OptionSpec("weight", "one weight per class (rebalance rare classes)", None, array_shape="C reals"),
            OptionSpec("lse_square_scale", "z-loss weight s: adds s w_y logsumexp(z)^2 per item (PaLM; keeps logits "
                       "from drifting)", Interval(0.0, None), 0.0, 0.1),
            OptionSpec("softcap", "soft-capping c: the logits become c tanh(z / c) first (Gemma 2)",
                       Interval(0.0, None, closed="neither"), none_means="no cap"),
        ),
        conventions="A mean over no valid item (all targets ignored) is 0 with a zero gradient (PyTorch: NaN). "
        "Probability targets are not renormalised (as PyTorch) but must lie in [0, 1]. "
        "The z-loss term s r lse^2 weighs an item by its target class's weight r = w_y (0 when ignored; 1 per item "
        "with probability targets), as losslab.gpu and the distributed loss do; it is not counted in the divisor. "
        "Convex in the logits without softcap (soft-capping bends it; with the z-loss, wherever "
        "sum(q) + 2 s r lse >= 0). -log p_y is never computed as lse - z_y, which float32 rounds at the logits' "
        "scale (4e-6 near 100): every engine keeps the row max and log sum exp(z - max) apart, or lse as an exact "
        "pair hi + lo, so a confident row's loss of 1e-3 keeps its digits (within 5e-5 of the float64 truth, as "
        "torch; Optax's integer-label loss: 2.5e-3).",
    )

    def prepare(self, xp, logits, targets, *, weight=None, ignore_index=-100, label_smoothing=0.0,
                lse_square_scale=0.0, softcap=None):
        x, dtype = floating_input(xp, "logits", logits)
        check.ndim_at_least("logits", x, 1, "class scores")
        num_classes = _num_classes(x, "logits")
        w = _class_weight(xp, weight, x, num_classes)
        t = _xp.as_array(targets, xp, x)
        z = _class_last(xp, x)
        eps = label_smoothing
        if _xp.is_floating(xp, t) and tuple(t.shape) == tuple(x.shape):
            if ignore_index != -100:
                raise ValueError(
                    f"ignore_index={ignore_index} applies to integer class targets only; probability targets "
                    "have no class index to ignore (give such items all-zero target rows instead)"
                )
            # probability targets: smoothed as t (1 - eps) + eps / C, weighted per class, mean over items
            check.values_between("targets", t, 0.0, 1.0, "probability targets are class probabilities")
            tz = _class_last(xp, xp.astype(t, z.dtype))
            w_vec = w if w is not None else xp.ones((num_classes,), dtype=z.dtype, device=_xp.device(z))
            q = softmax_rows.DenseTargets((tz * (1.0 - eps) + eps / num_classes) * w_vec)
            divisor = math.prod(z.shape[:-1])
            row_weight = xp.ones(z.shape[:-1], dtype=z.dtype, device=_xp.device(z))  # of the z-loss: once per item
        else:  # q_c = (1 - eps) w_y [c = y] + (eps / C) w_c, zero on ignored items; the z-loss weighs by w_y
            q, divisor, row_weight = _index_distribution(xp, x, t, ignore_index, w, eps, "logits")
        z_scale = None if _xp.is_concrete(lse_square_scale) and float(lse_square_scale) == 0 else lse_square_scale
        return State(z=z, q=q, divisor=divisor, ndim=x.ndim, input_dtypes=(dtype,), z_scale=z_scale, cap=softcap,
                     row_weight=row_weight)

    rows_are_items = True  # with probability targets; class indices divide by the weights of the targets not
    # ignored, which no block knows alone

    def splits_into_rows(self, bound):
        targets = bound["targets"]
        return (super().splits_into_rows(bound) and tuple(targets.shape) == tuple(bound["logits"].shape)
                and _xp.is_floating(_xp.namespace(targets), targets))

    def _capped(self, xp, st):
        return st.z if st.cap is None else softmax_rows.softcapped(xp, st.z, st.cap)

    def _rows(self, xp, st):
        """Capped logits, lse = hi + lo (``_stable.lse_parts``, axis kept) and probabilities of every row
        (class axis last)."""
        z = self._capped(xp, st)
        hi, lo, p = _stable.softmax_parts(xp, z, axis=-1)
        return z, hi, lo, p

    def terms(self, xp, st):
        z = self._capped(xp, st)
        hi, lo = _stable.lse_parts(xp, z, axis=-1)  # the value alone needs no probabilities
        return softmax_rows.loss(xp, z, hi, lo, st.q, st.row_weight, st.z_scale), st.divisor

    def grad_terms(self, xp, st, u, rows=None):
        z, hi, _, p = rows or self._rows(xp, st)  # hi: lse to the digits the z-loss's factor needs
        g = softmax_rows.grad(xp, p, st.q, hi[..., 0], st.row_weight, st.z_scale)
        if st.cap is not None:
            g = g * softmax_rows.softcap_slope(z, st.cap)
        return (_class_back(xp, xp.asarray(u)[..., None] * g, st.ndim),)

    def value_and_grads(self, xp, st, reduction, normalizer, ops=None):
        rows = self._rows(xp, st)  # once for the value and the gradient
        z, hi, lo, _ = rows
        terms = softmax_rows.loss(xp, z, hi, lo, st.q, st.row_weight, st.z_scale)
        value, u = self._reduced(xp, terms, st.divisor, st, reduction, normalizer)
        return value, self.grad_terms(xp, st, u, rows)

    def hessian_terms(self, xp, st, u):
        # per item, in the capped logits: a (diag(p) - p p^T) + 2 s r p p^T with a = Q + 2 s r lse; then
        # through the cap: d H d^T + diag(dloss/dz * d2z/dx2), d = dz/dx. Blocks laid out (N, C, C, d1, ...)
        z, hi, _, p = self._rows(xp, st)
        eye = xp.eye(p.shape[-1], dtype=p.dtype, device=_xp.device(p))
        outer = p[..., :, None] * p[..., None, :]
        a = softmax_rows.grad_scale(st.q.total(xp), hi[..., 0], st.row_weight, st.z_scale)
        h = a[..., None, None] * (p[..., None] * eye - outer)
        if st.z_scale is not None:
            h = h + (2.0 * st.z_scale * st.row_weight)[..., None, None] * outer
        if st.cap is not None:
            d = softmax_rows.softcap_slope(z, st.cap)
            g = softmax_rows.grad(xp, p, st.q, hi[..., 0], st.row_weight, st.z_scale)
            h = d[..., :, None] * h * d[..., None, :] + (g * softmax_rows.softcap_curvature(z, st.cap))[..., None] * eye
        h = xp.asarray(u)[..., None, None] * h
        if st.ndim <= 2:
            return h
        return xp.moveaxis(xp.moveaxis(h, -1, 1), -1, 1)


class NLL(Loss):
    """Parameters: ``log_probs`` (log-probabilities, e.g. from log_softmax) shaped like
    cross_entropy's logits; integer ``targets``; ``weight=None`` (one per class);
    ``ignore_index=-100``. ``mean`` divides by the sum of the target classes' weights.
    ``hessian`` is exactly zero (the loss is linear in its input); for curvature in the logits
    use cross_entropy.hessian."""

    name = "nll"
    inputs = ("log_probs",)
    spec = LossSpec(
        name="nll",
        family="classification",
        tasks=("multiclass",),
        summary="Negative log-likelihood: minus the (weighted) log-probability given to the true class.",
        output_layer="log-probabilities (log_softmax output)",
        inputs={"log_probs": "log-probabilities (<= 0), class axis 1", "targets": "int class index in [0, C) or ignore_index"},
        formula_latex=r"\ell = -w_y\,x_y",
        formula_text="l = -w_y x_y   (x = log-probabilities)",
        gradient_latex=r"\partial\ell/\partial x_c = -w_y [c = y]",
        gradient_text="dl/dx_c = -w_y if c = y else 0",
        hessian_text="0 (linear in the log-probabilities)",
        convex=True,
        smooth=True,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="After an explicit log_softmax layer; log_softmax + nll equals cross_entropy on logits.",
        peers={"pytorch": "torch.nn.functional.nll_loss", "optax": "none", "keras": "none"},
        torch_module="NLLLoss",
        options=(OptionSpec("ignore_index", "targets equal to it contribute nothing", _INT64),),
        conventions="Lower bound 0 holds for log-probabilities (x <= 0). A mean over no valid item is 0.",
    )

    def prepare(self, xp, log_probs, targets, *, weight=None, ignore_index=-100):
        x, dtype = floating_input(xp, "log_probs", log_probs)
        check.ndim_at_least("log_probs", x, 1, "class scores")
        w = _class_weight(xp, weight, x, _num_classes(x, "log_probs"))
        q, divisor, _ = _index_distribution(xp, x, targets, ignore_index, w, 0.0, "log_probs")  # q = w_y onehot(y)
        return State(z=_class_last(xp, x), q=q, divisor=divisor, ndim=x.ndim, input_dtypes=(dtype,))

    def terms(self, xp, st):
        return -st.q.dot(xp, st.z), st.divisor

    def grad_terms(self, xp, st, u):  # d/dx_c (-w_y x_y) = -w_y [c = y]
        g = st.q.subtracted_from(xp, xp.zeros_like(st.z))
        return (_class_back(xp, xp.asarray(u)[..., None] * g, st.ndim),)

    def hessian_terms(self, xp, st, u):
        c = st.z.shape[-1]
        h = xp.zeros((*st.z.shape, c), dtype=st.z.dtype, device=_xp.device(st.z))
        return h if st.ndim <= 2 else xp.moveaxis(xp.moveaxis(h, -1, 1), -1, 1)


# -- binary losses ------------------------------------------------------------------------------

_BINARY_TARGET_FIX = "binary targets are 0/1 labels or probabilities"


_BINARY_SMOOTHING = OptionSpec("label_smoothing", "targets become t (1 - ls) + ls / 2, as Keras's",
                               Interval(0.0, 1.0), 0.0, 0.5)
_BINARY_SMOOTHING_NOTE = (" label_smoothing moves each target toward 1/2 before the loss (Keras's definition; PyTorch's "
                          "BCE losses have none); the value checks apply to the targets as given.")


def _smooth_binary(xp, st, label_smoothing):
    if label_smoothing:
        st.t = pointwise.smoothed_binary_targets(st.t, label_smoothing)
    return st


class BinaryCrossEntropy(Elementwise):
    """Parameters: ``probs`` (probabilities in [0, 1], e.g. a sigmoid output), ``targets`` in [0, 1]
    (same shape), ``weight=None`` (rescales each element; broadcasts; ``mean`` divides by the
    element count, as PyTorch). Prefer binary_cross_entropy_with_logits: it is stable for any logit."""

    name = "binary_cross_entropy"
    definition = pointwise.BinaryCrossEntropy
    inputs = ("probs",)
    mean_divides_by_weight_sum = False
    spec = LossSpec(
        name="binary_cross_entropy",
        family="classification",
        tasks=("binary", "multilabel"),
        summary="Binary cross-entropy on probabilities: -[t log p + (1 - t) log(1 - p)].",
        output_layer="sigmoid probabilities in [0, 1]",
        inputs={"probs": "[0, 1]", "targets": "[0, 1], same shape"},
        formula_latex=r"\ell = -\big[y\log p + (1-y)\log(1-p)\big]",
        formula_text="l = -[t log p + (1 - t) log(1 - p)]   (each log clamped at -100)",
        gradient_latex=r"\partial\ell/\partial p = \frac{p - y}{p(1-p)}",
        gradient_text="dl/dp = (p - t) / max(p (1 - p), 1e-12)",
        hessian_text="d2l/dp2 = t / p^2 + (1 - t) / (1 - p)^2   (p, 1 - p floored at 1e-12)",
        convex=True,
        smooth=True,
        lower_bound=0.0,
        robust_to_outliers=False,
        when_to_use="Binary or multi-label classification when the model already outputs probabilities. "
        "With logits available use binary_cross_entropy_with_logits (stable, no clamping).",
        peers={"pytorch": "torch.nn.functional.binary_cross_entropy", "optax": "none (optax.losses.sigmoid_binary_cross_entropy takes logits)",
               "keras": "keras.losses.BinaryCrossentropy(from_logits=False)"},
        torch_module="BCELoss",
        options=(_BINARY_SMOOTHING,),
        conventions="log is clamped at -100 (PyTorch), so p = 0 or 1 gives a finite loss (at most 100); "
        "the gradient uses PyTorch's (p - t) / max(p (1 - p), 1e-12), finite at p = 0 and 1." + _BINARY_SMOOTHING_NOTE,
    )

    def prepare(self, xp, probs, targets, *, weight=None, label_smoothing=0.0):
        st = self.elementwise_state(xp, probs, targets, weight, name="probs")
        check.values_between("probs", st.x, 0.0, 1.0, "pass probabilities (apply a sigmoid), or use binary_cross_entropy_with_logits on logits")
        check.values_between("targets", st.t, 0.0, 1.0, _BINARY_TARGET_FIX)
        return _smooth_binary(xp, st, label_smoothing)


class BinaryCrossEntropyWithLogits(Elementwise):
    """Parameters: ``logits`` (real), ``targets`` in [0, 1] (same shape), ``weight=None`` (rescales
    each element), ``pos_weight=None`` (weight of the positive term, broadcast along the last,
    class, axis: negatives/positives for an imbalanced label). ``mean`` divides by the element count."""

    name = "binary_cross_entropy_with_logits"
    definition = pointwise.BinaryCrossEntropyWithLogits
    inputs = ("logits",)
    mean_divides_by_weight_sum = False
    spec = LossSpec(
        name="binary_cross_entropy_with_logits",
        family="classification",
        tasks=("binary", "multilabel"),
        summary="Binary cross-entropy on logits (sigmoid fused in): stable for any logit, with pos_weight.",
        output_layer="logits: raw scores, no sigmoid (sigmoid is applied inside)",
        inputs={"logits": "real", "targets": "[0, 1], same shape"},
        formula_latex=r"\ell = -\big[w_+ y\log\sigma(x) + (1-y)\log(1-\sigma(x))\big] = w_+ y\,\mathrm{softplus}(-x) + (1-y)\,\mathrm{softplus}(x)",
        formula_text="l = pos_weight t softplus(-x) + (1 - t) softplus(x)\n"
        "  = -[pos_weight t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))]",
        gradient_latex=r"\partial\ell/\partial x = (1-y)\,\sigma(x) - w_+ y\,\sigma(-x)\quad(= \sigma(x) - y\ \text{for}\ w_+=1)",
        gradient_text="dl/dx = (1 - t) sigmoid(x) - pos_weight t sigmoid(-x)   (= sigmoid(x) - t when pos_weight = 1)",
        hessian_text="d2l/dx2 = ((1 - t) + pos_weight t) sigmoid(x) sigmoid(-x)",
        convex=True,
        smooth=True,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="Binary classification and multi-label (one sigmoid per class): the default. "
        "pos_weight = negatives / positives counters class imbalance.",
        peers={"pytorch": "torch.nn.functional.binary_cross_entropy_with_logits",
               "optax": "optax.losses.sigmoid_binary_cross_entropy",
               "keras": "keras.losses.BinaryCrossentropy(from_logits=True)"},
        torch_module="BCEWithLogitsLoss",
        options=(OptionSpec("pos_weight", "weight of positive examples, per class", None, array_shape="reals along the last axis"),
                 _BINARY_SMOOTHING),
        conventions="Logits of +-inf give finite losses where the target agrees (t = 1 with +inf, t = 0 with -inf) "
        "and never NaN." + _BINARY_SMOOTHING_NOTE,
    )

    def prepare(self, xp, logits, targets, *, weight=None, pos_weight=None, label_smoothing=0.0):
        st = self.elementwise_state(xp, logits, targets, weight, name="logits")
        check.values_between("targets", st.t, 0.0, 1.0, _BINARY_TARGET_FIX)
        _smooth_binary(xp, st, label_smoothing)
        pw = option_array(xp, "pos_weight", pos_weight, st.x, "one weight per class (last axis)")
        if pw is not None:
            check.broadcastable_to("pos_weight", pw, tuple(st.x.shape), "logits")
            pw = xp.broadcast_to(pw, tuple(st.x.shape))
        st.pos_weight = pw
        return st


_HINGE_TARGET_FIX = "hinge targets are -1/+1 labels (map 0/1 labels with 2 * t - 1)"


class Hinge(Elementwise):
    """Parameters: ``scores`` (real), ``targets`` in {-1, +1} (same shape), ``margin=1.0``."""

    name = "hinge"
    definition = pointwise.Hinge
    inputs = ("scores",)
    mean_divides_by_weight_sum = False
    spec = LossSpec(
        name="hinge",
        family="classification",
        tasks=("binary",),
        summary="Hinge loss (SVM): zero once the signed score clears the margin, linear otherwise.",
        output_layer="raw scores (no sigmoid); targets -1/+1",
        inputs={"scores": "real", "targets": "-1 or +1, same shape"},
        formula_latex=r"\ell = \max(0,\ m - y\,s)",
        formula_text="l = max(0, margin - t s)",
        gradient_latex=r"\partial\ell/\partial s = -y\,[m - y s > 0]",
        gradient_text="dl/ds = -t if t s < margin else 0",
        convex=True,
        smooth=False,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="Max-margin binary classifiers (SVMs) when calibrated probabilities are not needed.",
        peers={"pytorch": "none (torch.nn.HingeEmbeddingLoss is a different loss)", "optax": "optax.losses.hinge_loss",
               "keras": "keras.losses.Hinge"},
        torch_module="HingeLoss",
        options=(OptionSpec("margin", "score margin to clear", Interval(), -5.0, 5.0),),
        conventions="At the kink (t s = margin) the gradient is 0, as ReLU's and torch.multi_margin_loss's.",
    )

    def prepare(self, xp, scores, targets, *, margin=1.0):
        st = self.elementwise_state(xp, scores, targets, None, name="scores", margin=margin)
        check.values_in("targets", st.t, (-1.0, 1.0), _HINGE_TARGET_FIX)
        return st


class SquaredHinge(Hinge):
    """Parameters: ``scores`` (real), ``targets`` in {-1, +1} (same shape), ``margin=1.0``."""

    name = "squared_hinge"
    definition = pointwise.SquaredHinge
    spec = LossSpec(
        name="squared_hinge",
        family="classification",
        tasks=("binary",),
        summary="Squared hinge: the hinge loss squared, differentiable at the margin.",
        output_layer="raw scores (no sigmoid); targets -1/+1",
        inputs={"scores": "real", "targets": "-1 or +1, same shape"},
        formula_latex=r"\ell = \max(0,\ m - y\,s)^2",
        formula_text="l = max(0, margin - t s)^2",
        gradient_latex=r"\partial\ell/\partial s = -2y\max(0,\ m - y s)",
        gradient_text="dl/ds = -2 t max(0, margin - t s)",
        convex=True,
        smooth=True,
        lower_bound=0.0,
        robust_to_outliers=False,
        when_to_use="Margin classifiers that want a smooth gradient (L2-SVM); punishes violations quadratically.",
        peers={"pytorch": "none", "optax": "none", "keras": "keras.losses.SquaredHinge"},
        torch_module="SquaredHingeLoss",
        options=(OptionSpec("margin", "score margin to clear", Interval(), -5.0, 5.0),),
    )



class MulticlassHinge(Loss):
    """Parameters: ``scores`` (N, C) or (C,) (or 0-d); integer ``targets`` (N,) or () (or (1,) for
    (C,) scores); ``p=1`` (1 or 2); ``margin=1.0``; ``weight=None`` (per class, scales an item's term
    by its target class's weight). Each item's sum is divided by C and ``mean`` divides by N."""

    name = "multiclass_hinge"
    rows_are_items = True
    inputs = ("scores",)
    spec = LossSpec(
        name="multiclass_hinge",
        family="classification",
        tasks=("multiclass",),
        summary="Multi-class hinge (Crammer-Singer style, as torch's multi_margin_loss).",
        output_layer="raw class scores (no softmax)",
        inputs={"scores": "real, (N, C) or (C,)", "targets": "int class index in [0, C)"},
        formula_latex=r"\ell = \frac{w_y}{C}\sum_{j\ne y}\max(0,\ m - s_y + s_j)^p",
        formula_text="l = w_y / C * sum_{j != y} max(0, margin - s_y + s_j)^p",
        gradient_latex=r"\partial\ell/\partial s_j = \frac{w_y}{C}\,p\,h_j^{p-1}[h_j>0],\quad \partial\ell/\partial s_y = -\sum_{j\ne y}\partial\ell/\partial s_j",
        gradient_text="dl/ds_j = w_y / C * p h_j^(p-1) [h_j > 0] for j != y,  dl/ds_y = -sum_j dl/ds_j,  h_j = margin - s_y + s_j",
        convex=True,
        smooth=False,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="Multi-class margin classifiers (multi-class SVM) when probabilities are not needed.",
        peers={"pytorch": "torch.nn.functional.multi_margin_loss", "optax": "none",
               "keras": "keras.losses.CategoricalHinge (a different variant)"},
        torch_module="MultiMarginLoss",
        options=(OptionSpec("margin", "score margin to clear", Interval(), -5.0, 5.0),
                 OptionSpec("p", "power of each violation", Choices((1, 2)), 1.0, 2.0, integer=True)),
        conventions="At a kink (h_j = 0) the gradient is 0, as PyTorch.",
    )

    def prepare(self, xp, scores, targets, *, p=1, margin=1.0, weight=None):
        x, dtype = floating_input(xp, "scores", scores)
        if x.ndim > 2:
            raise ValueError(f"scores must have shape (N, C), (C,) or (), got {tuple(x.shape)}")
        t = _xp.as_array(targets, xp, x)
        out_shape = tuple(t.shape)
        allowed = [(x.shape[0],)] if x.ndim == 2 else [(), (1,)] if x.ndim == 1 else [()]
        if _xp.is_floating(xp, t) or not _xp.is_integral(xp, t):
            raise TypeError(f"targets must be integer class indices, got dtype {t.dtype}; convert them (torch: .long())")
        if out_shape not in allowed:
            raise ValueError(f"targets for scores of shape {tuple(x.shape)} must have shape {' or '.join(map(str, allowed))}, got {out_shape}")
        if x.ndim:
            _num_classes(x, "scores")
        x2 = xp.reshape(x, (-1, x.shape[-1]) if x.ndim else (1, 1))
        y, _ = _index_rows(xp, x2, xp.reshape(t, (-1,)), None, "scores")
        w = _class_weight(xp, weight, x2, x2.shape[1])
        w_y = xp.take(w, y, axis=0) if w is not None else None
        return State(x=x2, y=y, w_y=w_y, p=p, margin=margin, out_shape=out_shape,
                     in_shape=tuple(x.shape), input_dtypes=(dtype,))

    def _violations(self, xp, st):
        """h_j = margin - s_y + s_j where positive and j is not the target (0 elsewhere), and the
        target mask; s_y is gathered, no one-hot rows."""
        s_y = xp.take_along_axis(st.x, st.y[:, None], axis=-1)
        h = st.margin - s_y + st.x
        is_target = st.y[:, None] == xp.arange(st.x.shape[1], device=_xp.device(st.y))
        zero = xp.zeros_like(h)
        # a NaN score stays NaN (PyTorch's multi_margin_loss skips it: a deliberate difference)
        return xp.where(is_target, zero, _stable.keep_nan(xp, h, xp.where(h > 0, h, zero))), is_target

    def _terms_of(self, xp, st, h):
        per_item = xp.sum(h if st.p == 1 else h * h, axis=-1) / st.x.shape[1]
        if st.w_y is not None:
            per_item = st.w_y * per_item
        return xp.reshape(per_item, st.out_shape), st.x.shape[0]

    def terms(self, xp, st):
        return self._terms_of(xp, st, self._violations(xp, st)[0])

    def grad_terms(self, xp, st, u):
        return self._grads(xp, st, *self._violations(xp, st), u)

    def value_and_grads(self, xp, st, reduction, normalizer, ops=None):
        h, is_target = self._violations(xp, st)  # once for value and gradient
        terms, divisor = self._terms_of(xp, st, h)
        value, u = self._reduced(xp, terms, divisor, st, reduction, normalizer)
        return value, self._grads(xp, st, h, is_target, u)

    def _grads(self, xp, st, h, is_target, u):
        slope = _stable.keep_nan(xp, h, xp.astype(h > 0, h.dtype)) if st.p == 1 else 2.0 * h  # d h^p / dh
        u_item = xp.reshape(xp.broadcast_to(xp.asarray(u), st.out_shape), (-1,)) / st.x.shape[1]
        if st.w_y is not None:
            u_item = u_item * st.w_y
        a = u_item[:, None] * slope
        # s_y enters every h_j with sign -1: its gradient is minus the row's sum
        g = xp.where(is_target, -xp.sum(a, axis=-1, keepdims=True), a)
        return (xp.reshape(g, st.in_shape),)


class Focal(Elementwise):
    """Parameters: ``logits`` (real), ``targets`` in [0, 1] (same shape), ``alpha=0.25`` (weight of
    positives in [0, 1]; None or negative: no class weighting), ``gamma=2.0`` (>= 0, focusing).
    Reduction defaults to ``mean`` (torchvision's sigmoid_focal_loss defaults to none)."""

    name = "focal"
    definition = pointwise.Focal
    inputs = ("logits",)
    mean_divides_by_weight_sum = False
    spec = LossSpec(
        name="focal",
        family="classification",
        tasks=("binary", "multilabel"),
        summary="Sigmoid focal loss (RetinaNet): BCE scaled by (1 - p_t)^gamma to down-weight easy examples.",
        output_layer="logits: raw scores, no sigmoid",
        inputs={"logits": "real", "targets": "[0, 1], same shape"},
        formula_latex=r"\ell = \alpha_t (1-p_t)^\gamma\,\mathrm{BCE}(x, y),\quad p_t = p y + (1-p)(1-y),\ \alpha_t = \alpha y + (1-\alpha)(1-y)",
        formula_text="l = alpha_t (1 - p_t)^gamma BCE_logits(x, t),   p = sigmoid(x)\n"
        "p_t = p t + (1 - p)(1 - t),   alpha_t = alpha t + (1 - alpha)(1 - t)",
        gradient_latex=r"\partial\ell/\partial x = \alpha_t m^\gamma\big[\gamma(1-2y)\,r\,\mathrm{BCE} + p - y\big],\ m = 1-p_t,\ r = p(1-p)/m",
        gradient_text="dl/dx = alpha_t m^gamma [gamma (1 - 2t) r BCE + (p - t)],   m = 1 - p_t,  r = p (1 - p) / m  (in [0, 1])",
        hessian_text="d2l/dx2 = alpha_t m^gamma [gamma (gamma - 1)(1 - 2t)^2 r^2 BCE + gamma (1 - 2t)(1 - 2p) r BCE\n"
        "                      + 2 gamma (1 - 2t) r (p - t) + p (1 - p)]",
        convex=False,
        smooth=True,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="Dense detection and extreme imbalance (positives far below 1 %): easy negatives stop "
        "dominating the loss.",
        peers={"pytorch": "torchvision.ops.sigmoid_focal_loss", "optax": "optax.losses.sigmoid_focal_loss",
               "keras": "keras.losses.BinaryFocalCrossentropy"},
        torch_module="FocalLoss",
        options=(OptionSpec("alpha", "weight of the positive class", Interval(0.0, 1.0), 0.0, 1.0, none_means="no weighting",
                            negative_means="no weighting"),
                 OptionSpec("gamma", "focusing strength (0 gives BCE)", Interval(0.0, None), 0.0, 5.0)),
        conventions="Not convex in the logit for gamma > 0. Computed with r = p(1-p)/(1-p_t), which lies in "
        "[0, 1], so gradients and Hessians stay finite for every finite logit.",
    )

    def prepare(self, xp, logits, targets, *, alpha=0.25, gamma=2.0):
        if alpha is not None and _xp.is_concrete(alpha) and float(alpha) < 0:
            alpha = None  # a negative alpha means no class weighting, as None
        st = self.elementwise_state(xp, logits, targets, None, name="logits", alpha=alpha, gamma=gamma)
        check.values_between("targets", st.t, 0.0, 1.0, _BINARY_TARGET_FIX)
        return st


class KLDiv(Elementwise):
    """Parameters: ``log_probs`` (the model's log-probabilities), ``targets`` (probabilities in
    [0, 1], or log-probabilities with ``log_target=True``), same shape. Reductions add
    ``"batchmean"`` (sum / first dimension: the true KL per sample; PyTorch's advice)."""

    name = "kl_div"
    definition = pointwise.KLDivergence
    mean_divides_by_weight_sum = False  # (no weight: the mean divides by the element count, as torch's)
    inputs = ("log_probs",)
    reductions = ("none", "mean", "sum", "batchmean")
    spec = LossSpec(
        name="kl_div",
        family="classification",
        tasks=("distribution", "multiclass"),
        summary="Kullback-Leibler divergence KL(target || model), the model given as log-probabilities.",
        output_layer="log-probabilities (log_softmax output)",
        inputs={"log_probs": "log-probabilities", "targets": "probabilities in [0, 1] (or log-probabilities)"},
        formula_latex=r"\ell = y\,(\log y - x)\quad(\text{log\_target: } e^{y}(y - x))",
        formula_text="l = t (log t - x)   (0 where t = 0);  with log_target: exp(t) (t - x)",
        gradient_latex=r"\partial\ell/\partial x = -y\quad(-e^{y})",
        gradient_text="dl/dx = -t   (with log_target: -exp(t))",
        convex=True,
        smooth=True,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="Knowledge distillation and matching a target distribution; use reduction='batchmean'.",
        peers={"pytorch": "torch.nn.functional.kl_div", "optax": "optax.losses.kl_divergence",
               "keras": "keras.losses.KLDivergence"},
        torch_module="KLDivLoss",
        options=(OptionSpec("log_target", "targets are log-probabilities", Choices((False, True))),),
        conventions="Per-element terms can be negative; the summed KL over a distribution is >= 0. A target "
        "probability of 0 contributes 0 and a zero gradient whatever the prediction, -inf included (a masked class: "
        "0 log 0 = 0); PyTorch's kl_div and Optax's kl_divergence give NaN there (0 times -inf). With "
        "log_target=True a target of -inf (probability 0) gives NaN, as PyTorch: exp(t) (t - x) is not guarded.",
    )

    def prepare(self, xp, log_probs, targets, *, log_target=False):
        x, dtype = floating_input(xp, "log_probs", log_probs)
        t = _xp.as_array(targets, xp, x)
        check.floating(xp, "targets", t)
        check.same_shape("log_probs", x, "targets", t)
        t = t if t.dtype == x.dtype else xp.astype(t, x.dtype)
        if not log_target:
            check.values_between("targets", t, 0.0, 1.0, "targets are probabilities (pass log_target=True for log-probabilities)")
        batch = x.shape[0] if x.ndim else 1
        return State(x=x, t=t, w=None, log_target=log_target, batch_size=batch, input_dtypes=(dtype,))


cross_entropy, nll = CrossEntropy(), NLL()
binary_cross_entropy, binary_cross_entropy_with_logits = BinaryCrossEntropy(), BinaryCrossEntropyWithLogits()
hinge, squared_hinge, multiclass_hinge = Hinge(), SquaredHinge(), MulticlassHinge()
# -- the rest of PyTorch's classification losses --------------------------------------------------------


class SoftMargin(Elementwise):
    """Parameters: ``scores`` (real), ``targets`` in {-1, +1} (same shape). PyTorch's soft_margin_loss:
    the mean over every element."""

    name = "soft_margin"
    definition = pointwise.SoftMargin
    inputs = ("scores",)
    mean_divides_by_weight_sum = False
    spec = LossSpec(
        name="soft_margin",
        family="classification",
        tasks=("binary",),
        summary="Soft margin loss: the logistic loss on -1/+1 targets (BCE with logits, relabelled).",
        output_layer="raw scores (no sigmoid); targets -1/+1",
        inputs={"scores": "real", "targets": "-1 or +1, same shape"},
        formula_latex=r"\ell = \log(1 + e^{-y s})",
        formula_text="l = log(1 + exp(-t s))   (computed as softplus(-t s))",
        gradient_latex=r"\partial\ell/\partial s = -y\,\sigma(-y s)",
        gradient_text="dl/ds = -t sigmoid(-t s)",
        hessian_text="d2l/ds2 = sigmoid(t s) sigmoid(-t s)",
        convex=True,
        smooth=True,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="Binary classification with -1/+1 labels when a smooth margin loss is wanted: equal to "
        "binary_cross_entropy_with_logits(s, (t + 1) / 2).",
        peers={"pytorch": "torch.nn.functional.soft_margin_loss", "optax": "optax.losses.sigmoid_binary_cross_entropy "
               "(on 0/1 labels)", "keras": "none"},
        torch_module="SoftMarginLoss",
    )

    def prepare(self, xp, scores, targets):
        st = self.elementwise_state(xp, scores, targets, None, name="scores")
        check.values_in("targets", st.t, (-1.0, 1.0), _HINGE_TARGET_FIX)
        return st


def _class_rows(xp, name, x, targets_name, targets, hint="an array or a list of numbers"):
    """Scores (N, C) or (C,) and same-shape targets; their class axis is the last one."""
    x, dtype = floating_input(xp, name, x)
    if x.ndim not in (1, 2):
        raise ValueError(f"{name} must be (N, C) or (C,), got shape {tuple(x.shape)}")
    t = _xp.as_array(targets, xp, x, name=targets_name, hint=hint)
    check.same_shape(name, x, targets_name, t)
    _num_classes(x, name)
    return x, t, dtype


class MultilabelSoftMargin(Loss):
    """Parameters: ``scores`` (N, C) or (C,) logits; ``targets`` (same shape) in [0, 1]; ``weight=None``
    (per class, broadcast against the scores). PyTorch's multilabel_soft_margin_loss: each row's BCE with
    logits averaged over its C classes, then the mean over rows."""

    name = "multilabel_soft_margin"
    rows_are_items = True
    inputs = ("scores",)
    spec = LossSpec(
        name="multilabel_soft_margin",
        family="classification",
        tasks=("multilabel",),
        summary="Multi-label soft margin: BCE with logits per label, averaged over the labels of each item.",
        output_layer="raw logits, one per label (no sigmoid)",
        inputs={"scores": "(N, C) or (C,) real", "targets": "0/1 (or soft) per label, same shape"},
        formula_latex=r"\ell_n = -\tfrac1C\sum_c w_c\big[y_c\log\sigma(x_c) + (1-y_c)\log\sigma(-x_c)\big]",
        formula_text="l_n = -(1/C) sum_c w_c [t_c log s(x_c) + (1 - t_c) log s(-x_c)]",
        gradient_latex=r"\partial\ell_n/\partial x_c = w_c\,(\sigma(x_c) - y_c)/C",
        gradient_text="dl_n/dx_c = w_c (s(x_c) - t_c) / C",
        hessian_text="d2l_n/dx_c2 = w_c s(x_c) s(-x_c) / C",
        convex=True,
        smooth=True,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="Multi-label classification as PyTorch users write it: binary_cross_entropy_with_logits whose "
        "mean counts items, not item-label pairs (the same up to the factor C).",
        peers={"pytorch": "torch.nn.functional.multilabel_soft_margin_loss", "optax": "none",
               "keras": "none (keras.losses.BinaryCrossentropy(from_logits=True))"},
        torch_module="MultilabelSoftMarginLoss",
        options=(OptionSpec("weight", "per-class weights", None, array_shape="an array broadcastable to the scores (C,)"),),
    )

    def prepare(self, xp, scores, targets, *, weight=None):
        x, t, dtype = _class_rows(xp, "scores", scores, "targets", targets)
        t = t if t.dtype == x.dtype else xp.astype(t, x.dtype)
        check.values_between("targets", t, 0.0, 1.0, "multi-label targets are 0/1 (or probabilities) per label")
        w = option_array(xp, "weight", weight, x, "per class, broadcastable to the scores")
        if w is not None:
            check.broadcastable_to("weight", w, tuple(x.shape), "scores")
        return State(x=x, t=t, w=w, classes=x.shape[-1], input_dtypes=(dtype,))

    def _weighted(self, st, v):
        return v if st.w is None else v * st.w

    def terms(self, xp, st):
        per = pointwise.BinaryCrossEntropyWithLogits.value(xp, st.x, st.t)
        rows = xp.sum(self._weighted(st, per), axis=-1) / st.classes
        return rows, math.prod(rows.shape)

    def grad_terms(self, xp, st, u):
        g = self._weighted(st, _stable.sigmoid(xp, st.x) - st.t) / st.classes
        return (g * per_row(u),)

    def hessian_terms(self, xp, st, u):
        h = self._weighted(st, _stable.sigmoid(xp, st.x) * _stable.sigmoid(xp, -st.x)) / st.classes
        return h * per_row(u)



class MultilabelMargin(Loss):
    """Parameters: ``scores`` (N, C) or (C,); ``targets`` (same shape, integers): each row's target classes
    first, ended by -1 (the rest is ignored). PyTorch's multilabel_margin_loss: every target class must
    beat every non-target class by 1; each row's sum is divided by C."""

    name = "multilabel_margin"
    rows_are_items = True
    inputs = ("scores",)
    spec = LossSpec(
        name="multilabel_margin",
        family="classification",
        tasks=("multilabel",),
        summary="Multi-label margin (hinge) loss: every target class's score must exceed every other class's by 1.",
        output_layer="raw scores, one per class (no activation)",
        inputs={"scores": "(N, C) or (C,) real", "targets": "class indices per row, padded with -1 after the last, "
                "same shape"},
        formula_latex=r"\ell_n = \tfrac1C\sum_{j\in Y_n}\sum_{i\notin Y_n}\max(0,\ 1 - (x_j - x_i))",
        formula_text="l_n = (1/C) sum_{j in Y_n} sum_{i not in Y_n} max(0, 1 - (x_j - x_i)),  Y_n = targets before the first -1",
        gradient_latex=r"\partial\ell_n/\partial x_i = \tfrac1C\big(\#\{j: i\ \text{violates}\} - [i\in Y_n]\,\#\{i': \text{violations of } i\}\big)",
        gradient_text="each violated pair (j in Y_n, i not in Y_n, x_j - x_i < 1) adds -1/C to dl/dx_j and +1/C to dl/dx_i",
        convex=True,
        smooth=False,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="Multi-label ranking with a margin (every right label above every wrong one), as PyTorch's "
        "MultiLabelMarginLoss; for probabilities use binary_cross_entropy_with_logits.",
        peers={"pytorch": "torch.nn.functional.multilabel_margin_loss", "optax": "none", "keras": "none"},
        torch_module="MultilabelMarginLoss",
        conventions="Exactly on the margin (x_j - x_i = 1) the pair adds nothing and no gradient, as PyTorch's "
        "strict inequality. A target listed twice counts twice, as PyTorch. Work and memory grow as N C^2.",
    )

    def prepare(self, xp, scores, targets):
        x, t, dtype = _class_rows(xp, "scores", scores, "targets", targets,
                                  hint="class indices, -1 after the last target of a row")
        if not _xp.is_integral(xp, t):
            raise TypeError(f"targets must be integer class indices (padded with -1), got dtype {t.dtype}")
        c = x.shape[-1]
        check.values_between("targets", t, -1, c - 1, f"targets are class indices in [0, {c - 1}], ended by -1")
        ended = xp.cumulative_sum(xp.astype(t == -1, xp.int32), axis=-1) > 0
        classes = xp.arange(c, device=_xp.device(x))
        onehot = (t[..., :, None] == classes) & ~ended[..., :, None]  # (..., slot, class)
        is_target = xp.any(onehot, axis=-2)
        target_scores = xp.sum(xp.where(onehot, x[..., None, :], xp.zeros_like(x[..., None, :])), axis=-1)
        margins = 1.0 - target_scores[..., :, None] + x[..., None, :]  # (..., slot, class)
        active = (margins > 0) & ~ended[..., :, None] & ~is_target[..., None, :]
        return State(margins=margins, active=active, onehot=onehot, classes=c, input_dtypes=(dtype,))

    def row_elements(self, bound):
        return bound["scores"].shape[-1] ** 2  # the (slot, class) margins of a row

    def terms(self, xp, st):
        hinge = xp.where(st.active, st.margins, xp.zeros_like(st.margins))
        rows = _stable.keep_nan(xp, xp.sum(st.margins, axis=(-2, -1)), xp.sum(hinge, axis=(-2, -1))) / st.classes
        return rows, math.prod(rows.shape)

    def grad_terms(self, xp, st, u):
        a = xp.astype(st.active, st.margins.dtype)
        pushed = xp.sum(a, axis=-2)  # per non-target class: how many targets it violates
        pulled = xp.sum(xp.astype(st.onehot, a.dtype) * xp.sum(a, axis=-1)[..., :, None], axis=-2)
        g = (pushed - pulled) / st.classes
        return (g * per_row(u),)


focal, kl_div = Focal(), KLDiv()
soft_margin, multilabel_soft_margin, multilabel_margin = SoftMargin(), MultilabelSoftMargin(), MultilabelMargin()
LOSSES = (cross_entropy, nll, binary_cross_entropy, binary_cross_entropy_with_logits, hinge, squared_hinge,
          multiclass_hinge, focal, kl_div, soft_margin, multilabel_soft_margin, multilabel_margin)
