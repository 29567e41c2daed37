"""Segmentation losses against independent references: segmentation_models_pytorch's DiceLoss,
JaccardLoss and TverskyLoss and Berman's lovasz_softmax / lovasz_hinge, transcribed into plain
PyTorch and differentiated by autograd; finite differences; properties that tie the losses together;
errors, NaN and bf16 handling."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from losslab.losses.segmentation import dice, focal_tversky, jaccard, lovasz_hinge, lovasz_softmax, tversky

jax.config.update("jax_enable_x64", True)

RNG = np.random.default_rng(11)

# -- references: SMP's overlap losses and Berman's Lovasz losses, in plain torch -------------------


def _smp_per_class(kind, logits, targets, mode, from_logits=True, smooth=0.0, eps=1e-7, ignore_index=None,
                   alpha=0.5, beta=0.5, gamma=1.0):
    """SMP's DiceLoss.forward up to the masked per-class losses (before aggregate_loss); jaccard and tversky
    swap in soft_jaccard_score / soft_tversky_score; ignore_index masks as DiceLoss does; focal raises each
    class's loss to gamma (the definition under test; SMP raises the mean, checked separately)."""
    y_pred = logits
    if from_logits:
        y_pred = logits.log_softmax(dim=1).exp() if mode == "multiclass" else F.logsigmoid(logits).exp()
    bs = targets.size(0)
    num_classes = y_pred.size(1) if mode != "binary" else 1
    dims = (0, 2)
    if mode in ("binary", "multilabel"):
        y_true = targets.view(bs, num_classes, -1)
        y_pred = y_pred.reshape(bs, num_classes, -1)
        if ignore_index is not None:
            mask = y_true != ignore_index
            y_pred = y_pred * mask
            y_true = y_true * mask
    else:
        y_true = targets.view(bs, -1)
        y_pred = y_pred.reshape(bs, num_classes, -1)
        if ignore_index is not None:
            mask = y_true != ignore_index
            y_pred = y_pred * mask.unsqueeze(1)
            y_true = F.one_hot((y_true * mask).to(torch.long), num_classes).permute(0, 2, 1) * mask.unsqueeze(1)
        else:
            y_true = F.one_hot(y_true, num_classes).permute(0, 2, 1)
    y_true = y_true.type_as(y_pred)
    inter = torch.sum(y_pred * y_true, dim=dims)
    card = torch.sum(y_pred + y_true, dim=dims)
    if kind == "dice":
        score = (2.0 * inter + smooth) / (card + smooth).clamp_min(eps)
    elif kind == "jaccard":
        score = (inter + smooth) / (card - inter + smooth).clamp_min(eps)
    else:
        fp = torch.sum(y_pred * (1.0 - y_true), dim=dims)
        fn = torch.sum((1 - y_pred) * y_true, dim=dims)
        score = (inter + smooth) / (inter + alpha * fp + beta * fn + smooth).clamp_min(eps)
    loss = 1.0 - score
    if kind == "focal_tversky":
        loss = loss**gamma
    return loss * (y_true.sum(dims) > 0).to(loss.dtype)


def _lovasz_grad(gt_sorted):
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1 - gt_sorted).cumsum(0)
    jac = 1.0 - intersection / union
    return torch.cat([jac[:1], jac[1:] - jac[:-1]])


def _mean(values):
    values = list(values)
    return sum(values[1:], values[0]) / len(values) if values else None


def _lovasz_softmax_flat(probas, labels, classes):
    if probas.numel() == 0:
        return None
    losses = []
    for c in range(probas.size(1)) if classes in ("all", "present") else classes:
        fg = (labels == c).to(probas.dtype)
        if classes == "present" and fg.sum() == 0:
            continue
        errors = (fg - probas[:, c]).abs()
        errors_sorted, perm = torch.sort(errors, dim=0, descending=True, stable=True)
        losses.append(torch.dot(errors_sorted, _lovasz_grad(fg[perm])))
    return _mean(losses)


def _flatten(probas, labels, ignore):
    probas = torch.movedim(probas, 1, -1).reshape(-1, probas.size(1))
    labels = labels.reshape(-1)
    if ignore is None:
        return probas, labels
    valid = labels != ignore
    return probas[valid], labels[valid]


def _berman_lovasz_softmax(probas, labels, classes="present", per_image=False, ignore=None):
    zero = probas.sum() * 0.0  # Berman's empty mean is 0
    if per_image:
        out = [_lovasz_softmax_flat(*_flatten(p[None], lab[None], ignore), classes) for p, lab in zip(probas, labels)]
        return _mean(zero if v is None else v for v in out)
    out = _lovasz_softmax_flat(*_flatten(probas, labels, ignore), classes)
    return zero if out is None else out


def _lovasz_hinge_flat(logits, labels):
    if len(labels) == 0:
        return logits.sum() * 0.0
    signs = 2.0 * labels.to(logits.dtype) - 1.0
    errors = 1.0 - logits * signs
    errors_sorted, perm = torch.sort(errors, dim=0, descending=True, stable=True)
    return torch.dot(F.relu(errors_sorted), _lovasz_grad(labels[perm].to(logits.dtype)))


def _binary_flat(scores, labels, ignore):
    scores, labels = scores.reshape(-1), labels.reshape(-1)
    if ignore is None:
        return scores, labels
    valid = labels != ignore
    return scores[valid], labels[valid]


def _berman_lovasz_hinge(logits, labels, per_image=True, ignore=None):
    if per_image:
        return _mean(_lovasz_hinge_flat(*_binary_flat(lg[None], lab[None], ignore)) for lg, lab in zip(logits, labels))
    return _lovasz_hinge_flat(*_binary_flat(logits, labels, ignore))


# -- the comparison on every backend ----------------------------------------------------------------


def _assert_backends_match(loss, x, y, options, want_value, want_grad, reduction="mean", rtol=1e-10, with_jax=True):
    """losslab's value and analytic gradient on NumPy, torch (autograd bridge) and JAX (value_and_grad,
    and jax.grad of a function calling the loss, both under jit) against the reference's. JAX compiles
    each new function (about a second): the sweeps run it on a representative subset, to stay fast."""
    value, grad = loss.value_and_grad(x, y, reduction=reduction, **options)
    np.testing.assert_allclose(value, want_value, rtol=rtol, atol=1e-13)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-9, atol=1e-13)
    xt = torch.tensor(x, requires_grad=True)
    out = loss(xt, torch.tensor(y), reduction=reduction, **options)
    out.sum().backward()
    np.testing.assert_allclose(out.detach().numpy(), want_value, rtol=rtol, atol=1e-13)
    np.testing.assert_allclose(xt.grad.numpy(), want_grad, rtol=1e-9, atol=1e-13)
    if not with_jax:
        return
    yj = jnp.asarray(y)
    j_value, j_grad = jax.jit(lambda v: loss.value_and_grad(v, yj, reduction=reduction, **options))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(j_value), want_value, rtol=rtol, atol=1e-13)
    np.testing.assert_allclose(np.asarray(j_grad), want_grad, rtol=1e-9, atol=1e-13)
    j_auto = jax.jit(jax.grad(lambda v: jnp.sum(loss(v, yj, reduction=reduction, **options))))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(j_auto), want_grad, rtol=1e-9, atol=1e-13)


def _reference(fn, x, reduce):
    leaf = torch.tensor(x, requires_grad=True)
    per = fn(leaf)
    value = reduce(per)
    (grad,) = torch.autograd.grad(value.sum(), leaf)
    return value.detach().numpy(), grad.numpy()


def _data(mode, shape=(2, 3, 4, 5), absent=None, ignore=None, soft=False):
    n, c, *spatial = shape
    if mode == "multiclass":
        y = RNG.integers(0, c, size=(n, *spatial))
        if absent is not None:
            y[y == absent] = (absent + 1) % c
        if ignore is not None:
            y[RNG.random(y.shape) < 0.25] = ignore
    else:
        shape = (n, 1, *spatial) if mode == "binary" else shape
        y = (RNG.random(shape) < 0.4).astype(np.float64)
        if absent is not None and mode == "multilabel":
            y[:, absent] = 0.0
        if ignore is not None:
            y[RNG.random(y.shape) < 0.25] = ignore
    x = RNG.normal(size=shape if mode != "multiclass" else (n, c, *spatial)) * 2.0
    if soft:  # probabilities for from_logits=False
        x = torch.softmax(torch.tensor(x), 1).numpy() if mode == "multiclass" else 1.0 / (1.0 + np.exp(-x))
    return x, y


OVERLAP = {"dice": dice, "jaccard": jaccard, "tversky": tversky, "focal_tversky": focal_tversky}
OPTION_SETS = [
    {},
    {"smooth": 1.0},
    {"eps": 1e3},  # the clamp binds for every class: the denominator's derivative is 0
    {"weight": [0.5, 2.0, 1.0]},
    {"ignore_index": 255},
    {"from_logits": False, "smooth": 0.5},
    {"ignore_index": -1, "weight": [1.0, 0.0, 3.0], "smooth": 2.0},
]
EXTRA = {"dice": [{}], "jaccard": [{}], "tversky": [{}, {"alpha": 0.3, "beta": 0.7}, {"alpha": 1.0, "beta": 0.2}],
         "focal_tversky": [{"gamma": 1.0}, {"gamma": 2.0, "alpha": 0.3, "beta": 0.7}, {"gamma": 0.75}]}


_JAX_CASES = {("dice", "multiclass"): [(4, 0, "mean")], ("jaccard", "multiclass"): [(0, 0, "none")],
              ("focal_tversky", "multilabel"): [(4, 1, "mean")], ("tversky", "binary"): [(6, 1, "sum")]}


@pytest.mark.parametrize("mode", ["multiclass", "binary", "multilabel"])
@pytest.mark.parametrize("name", list(OVERLAP))
def test_overlap_losses_match_smp(name, mode):
    loss = OVERLAP[name]
    for i, options in enumerate(OPTION_SETS):
        for j, extra in enumerate(EXTRA[name]):
            opts = {**options, **extra}
            if mode == "binary" and "weight" in opts:
                opts["weight"] = opts["weight"][:1]
            x, y = _data(mode, absent=2 if "weight" in opts else None, ignore=opts.get("ignore_index"),
                         soft=opts.get("from_logits") is False)
            smp = {k: v for k, v in opts.items() if k != "weight"}
            w = None if "weight" not in opts else torch.tensor(opts["weight"], dtype=torch.float64)

            def per_class(v, smp=smp, w=w, y=y):
                out = _smp_per_class(name, v, torch.tensor(y), mode, **smp)
                return out if w is None else out * w

            divisor = float(w.sum()) if w is not None else (1 if mode == "binary" else 3)
            for reduction, reduce in [("mean", lambda p, d=divisor: p.sum() / d), ("sum", torch.sum),
                                      ("none", lambda p: p)]:
                want_value, want_grad = _reference(per_class, x, reduce)
                _assert_backends_match(loss, x, y, {"mode": mode, **opts}, want_value, want_grad, reduction,
                       with_jax=(i, j, reduction) in _JAX_CASES.get((name, mode), ()))


def test_unweighted_mean_is_smps_mean_over_classes():
    """Without weight the loss is SMP's loss.mean() over all C classes, absent ones counted as 0."""
    x, y = _data("multiclass", absent=1)
    per = _smp_per_class("dice", torch.tensor(x), torch.tensor(y), "multiclass")
    assert float(per[1]) == 0.0
    assert float(dice(x, y)) == pytest.approx(float(per.mean()), rel=1e-12)


def test_binary_targets_may_drop_the_channel_axis():
    x, y = _data("binary")
    assert float(dice(x, y[:, 0], mode="binary")) == pytest.approx(float(dice(x, y, mode="binary")), rel=1e-14)
    g = dice.grad(x, y[:, 0], mode="binary")
    assert g.shape == x.shape
    flat = dice(x[:, 0], y[:, 0], mode="binary")  # (N, ...) logits without a channel axis
    assert float(flat) == pytest.approx(float(dice(x, y, mode="binary")), rel=1e-14)


def test_focal_tversky_is_smps_tversky_with_gamma_for_one_class():
    """SMP's TverskyLoss(gamma) raises the mean over classes to gamma: for a single class (binary) it is
    the per-class power used here."""
    x, y = _data("binary")
    for gamma in (0.75, 2.0):
        per = _smp_per_class("tversky", torch.tensor(x), torch.tensor(y), "binary", alpha=0.3, beta=0.7)
        want = per.mean() ** gamma
        got = focal_tversky(x, y, mode="binary", alpha=0.3, beta=0.7, gamma=gamma)
        assert float(got) == pytest.approx(float(want), rel=1e-12)


@pytest.mark.parametrize("name", list(OVERLAP))
def test_overlap_finite_differences(name):
    loss = OVERLAP[name]
    x, y = _data("multiclass", shape=(2, 3, 3, 2), ignore=255)
    opts = {"ignore_index": 255, "smooth": 0.5, **({"gamma": 1.5} if name == "focal_tversky" else {})}
    g = loss.grad(x, y, **opts)
    h = 1e-6
    for idx in [(0, 0, 0, 0), (1, 2, 2, 1), (0, 1, 1, 0), (1, 0, 0, 1)]:
        e = np.zeros_like(x)
        e[idx] = h
        fd = (float(loss(x + e, y, **opts)) - float(loss(x - e, y, **opts))) / (2 * h)
        assert g[idx] == pytest.approx(fd, rel=1e-6, abs=1e-9)


# -- Lovasz ---------------------------------------------------------------------------------------


def _probs(shape=(2, 3, 4, 5)):
    return torch.softmax(torch.tensor(RNG.normal(size=shape) * 2.0), 1).numpy()


@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("classes", ["present", "all", [0, 2]])
@pytest.mark.parametrize("ignore", [None, 255])
def test_lovasz_softmax_matches_berman(classes, per_image, ignore):
    p = _probs()
    y = RNG.integers(0, 3, size=(2, 4, 5))
    y[0][y[0] == 1] = 2  # class 1 absent from image 0
    if ignore is not None:
        y[RNG.random(y.shape) < 0.3] = ignore
    opts = {"classes": classes, "per_image": per_image, "ignore": ignore}
    ref = _berman_lovasz_softmax
    want_value, want_grad = _reference(lambda v: ref(v, torch.tensor(y), classes, per_image, ignore), p, lambda v: v)
    _assert_backends_match(lovasz_softmax, p, y, opts, want_value, want_grad, with_jax=per_image and classes == "present" and ignore is not None)
    none = lovasz_softmax(p, y, reduction="none", **opts)
    assert none.shape == ((2,) if per_image else (3,))
    if not per_image:  # the per-class losses; the mean divides by the number of classes averaged
        k = {"all": 3, "present": len(set(y[y != (ignore or -1)].tolist()))}.get(classes, 2) if isinstance(classes, str) else 2
        assert float(np.sum(none)) / k == pytest.approx(float(want_value), rel=1e-12)
        for reduction in ("none", "sum"):
            v, g = lovasz_softmax.value_and_grad(p, y, reduction=reduction, **opts)
            want = _reference(lambda t: ref(t, torch.tensor(y), classes, per_image, ignore) * k, p, lambda t: t)
            assert float(np.sum(v)) == pytest.approx(float(want[0]), rel=1e-12)
            np.testing.assert_allclose(g, want[1], rtol=1e-9, atol=1e-13)


@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("ignore", [None, 255])
def test_lovasz_hinge_matches_berman(per_image, ignore):
    x = RNG.normal(size=(2, 4, 5)) * 2.0
    y = (RNG.random((2, 4, 5)) < 0.4).astype(np.int64)
    if ignore is not None:
        y[RNG.random(y.shape) < 0.3] = ignore
        y[1] = ignore  # an image with every pixel ignored: loss 0, counted in the mean
    want_value, want_grad = _reference(lambda v: _berman_lovasz_hinge(v, torch.tensor(y), per_image, ignore), x,
                                       lambda v: v)
    _assert_backends_match(lovasz_hinge, x, y, {"per_image": per_image, "ignore": ignore}, want_value, want_grad,
           with_jax=per_image and ignore is not None)
    none = lovasz_hinge(x, y, reduction="none", per_image=per_image, ignore=ignore)
    assert none.shape == ((2,) if per_image else (1,))
    if per_image and ignore is not None:
        assert float(none[1]) == 0.0


def test_lovasz_finite_differences():
    p = _probs((2, 3, 3, 3))
    y = RNG.integers(0, 3, size=(2, 3, 3))
    g = lovasz_softmax.grad(p, y, classes="all")
    x = RNG.normal(size=(2, 3, 3)) * 2
    yb = (RNG.random((2, 3, 3)) < 0.5).astype(np.int64)
    gh = lovasz_hinge.grad(x, yb)
    h = 1e-7
    for idx in [(0, 0, 0, 0), (1, 2, 1, 2), (0, 1, 2, 1)]:
        e = np.zeros_like(p)
        e[idx] = h
        fd = (float(lovasz_softmax(p + e, y, classes="all")) - float(lovasz_softmax(p - e, y, classes="all"))) / (2 * h)
        assert g[idx] == pytest.approx(fd, rel=1e-5, abs=1e-9)
    for idx in [(0, 0, 0), (1, 2, 1), (0, 1, 2)]:
        e = np.zeros_like(x)
        e[idx] = h
        fd = (float(lovasz_hinge(x + e, yb)) - float(lovasz_hinge(x - e, yb))) / (2 * h)
        assert gh[idx] == pytest.approx(fd, rel=1e-5, abs=1e-9)


def test_lovasz_ties_follow_the_stable_order_on_every_backend():
    """Tied errors: the subgradient of the stable descending order, identical on NumPy, torch and JAX, and
    equal to the reference's with a stable torch.sort."""
    x = np.round(RNG.normal(size=(2, 4, 5)))  # errors in {..., -1, 0, 1, 2, ...}: many ties
    y = (RNG.random((2, 4, 5)) < 0.5).astype(np.int64)
    want_value, want_grad = _reference(lambda v: _berman_lovasz_hinge(v, torch.tensor(y)), x, lambda v: v)
    _assert_backends_match(lovasz_hinge, x, y, {}, want_value, want_grad)
    p = torch.softmax(torch.tensor(np.round(RNG.normal(size=(2, 3, 4, 5)))), 1).numpy()  # repeated probability rows
    p[:, :, :2] = np.array([0.5, 0.25, 0.25])[None, :, None, None]
    lab = RNG.integers(0, 3, size=(2, 4, 5))
    want_value, want_grad = _reference(lambda v: _berman_lovasz_softmax(v, torch.tensor(lab), per_image=True), p,
                                       lambda v: v)
    _assert_backends_match(lovasz_softmax, p, lab, {"per_image": True}, want_value, want_grad, with_jax=False)


def test_jax_jit_grad_and_concrete_checks():
    """jax.grad of a jitted function calling the loss (the batch as one image, with ignored pixels: the
    path the Berman comparison above runs on NumPy and torch only); concrete JAX targets are checked."""
    p = _probs()
    lab = RNG.integers(0, 3, size=(2, 4, 5))
    lab[0, 0, :3] = 255
    gj = jax.jit(jax.grad(lambda v: lovasz_softmax(v, jnp.asarray(lab), ignore=255)))(jnp.asarray(p))
    want = _reference(lambda v: _berman_lovasz_softmax(v, torch.tensor(lab), ignore=255), p, lambda v: v)[1]
    np.testing.assert_allclose(np.asarray(gj), want, rtol=1e-10, atol=1e-14)
    with pytest.raises(ValueError, match="out of range"):
        dice(jnp.asarray(p), jnp.asarray(lab + 3))
    with pytest.raises(ValueError, match="0/1"):
        lovasz_hinge(jnp.asarray(p[:, 0]), jnp.asarray(lab))


# -- properties -------------------------------------------------------------------------------------

_shapes = st.tuples(st.integers(1, 3), st.integers(2, 4), st.integers(1, 4), st.integers(1, 4))


@settings(max_examples=30, deadline=None)
@given(_shapes, st.integers(0, 2**32 - 1), st.floats(0.1, 5.0))
def test_dice_and_jaccard_bounds_and_order(shape, seed, scale):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape) * scale
    y = rng.integers(0, shape[1], size=(shape[0], *shape[2:]))
    d, j = dice(x, y, reduction="none"), jaccard(x, y, reduction="none")
    assert np.all((d >= 0) & (d <= 1)) and np.all((j >= 0) & (j <= 1))
    assert np.all(j >= d - 1e-15)  # IoU = D / (2 - D) <= D, per class
    assert float(tversky(x, y)) == pytest.approx(float(dice(x, y)), rel=1e-12, abs=1e-15)  # alpha = beta = 1/2
    assert float(tversky(x, y, alpha=1.0, beta=1.0)) == pytest.approx(float(jaccard(x, y)), rel=1e-12, abs=1e-15)
    assert float(focal_tversky(x, y, gamma=1.0)) == float(tversky(x, y))
    ft = focal_tversky(x, y, gamma=2.0, reduction="none")
    np.testing.assert_allclose(ft, tversky(x, y, reduction="none") ** 2, rtol=1e-12, atol=1e-300)


@settings(max_examples=20, deadline=None)
@given(_shapes, st.integers(0, 2**32 - 1))
def test_overlap_losses_vanish_for_confident_correct_logits(shape, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, shape[1], size=(shape[0], *shape[2:]))
    onehot = np.moveaxis(np.eye(shape[1])[y], -1, 1)
    x = 40.0 * (2.0 * onehot - 1.0)
    for loss in (dice, jaccard, tversky, focal_tversky):
        value = float(loss(x, y))
        assert 0.0 <= value < 1e-15  # the (a FP + b FN) / d form keeps the tiny loss, not 1 - score = 0 by rounding
    assert float(dice(x, y)) > 0.0
    assert float(lovasz_softmax(onehot, y)) == 0.0
    assert float(lovasz_hinge(2.0 * (2.0 * onehot[:, 0] - 1.0), onehot[:, 0])) == 0.0


@settings(max_examples=30, deadline=None)
@given(_shapes, st.integers(0, 2**32 - 1), st.sampled_from(["present", "all"]))
def test_lovasz_softmax_of_hard_predictions_is_one_minus_iou(shape, seed, classes):
    """With one-hot (hard) predictions every error is 0 or 1, and the Lovasz extension equals the set
    function: 1 - IoU per class, averaged over the classes."""
    rng = np.random.default_rng(seed)
    n, c = shape[:2]
    y = rng.integers(0, c, size=(n, *shape[2:]))
    pred = rng.integers(0, c, size=y.shape)
    probs = np.moveaxis(np.eye(c)[pred], -1, 1)
    losses = []
    for k in range(c):
        union = np.sum((y == k) | (pred == k))
        if classes == "present" and not np.any(y == k):
            continue
        losses.append(1.0 - np.sum((y == k) & (pred == k)) / union if union else 0.0)
    assert float(lovasz_softmax(probs, y, classes=classes)) == pytest.approx(np.mean(losses), rel=1e-12, abs=1e-15)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 3), st.integers(1, 12), st.integers(0, 2**32 - 1))
def test_lovasz_hinge_is_nonnegative_and_its_gradient_bounded(n, p, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, p)) * 3
    y = rng.integers(0, 2, size=(n, p))
    value, grad = lovasz_hinge.value_and_grad(x, y)
    assert float(value) >= 0.0
    assert np.all(np.abs(grad) <= 1.0 + 1e-12)


# -- errors, NaN, bf16 --------------------------------------------------------------------------------


@pytest.mark.parametrize(("call", "error", "words"), [
    (lambda x, y: dice(x, y, mode="multi"), ValueError, "mode"),
    (lambda x, y: dice(x, y[:, :3]), ValueError, "targets must have shape"),
    (lambda x, y: dice(x, y + 3), ValueError, "out of range"),
    (lambda x, y: dice(x, y.astype(float)), TypeError, "integer class indices"),
    (lambda x, y: dice(x, (y > 0).astype(float), mode="binary"), ValueError, "mode='binary'"),
    (lambda x, y: jaccard(x, np.full(x.shape, 0.5), mode="multilabel"), ValueError, "0/1"),
    (lambda x, y: tversky(x, np.ones(x.shape[:1] + x.shape[2:]), mode="multilabel"), ValueError, "mode='multilabel'"),
    (lambda x, y: dice(x, y, weight=[1.0, 2.0]), ValueError, "weight"),
    (lambda x, y: dice(x, y, weight=[1.0, -2.0, 1.0]), ValueError, "weight"),
    (lambda x, y: dice(x, y, eps=0.0), ValueError, "eps"),
    (lambda x, y: dice(x, y, smooth=-1.0), ValueError, "smooth"),
    (lambda x, y: tversky(x, y, alpha=-0.1), ValueError, "alpha"),
    (lambda x, y: focal_tversky(x, y, gamma=0.0), ValueError, "gamma"),
    (lambda x, y: dice(x, y, from_logits="yes"), ValueError, "from_logits"),
    (lambda x, y: dice(x, y, from_logits=False), ValueError, "[0, 1]"),
    (lambda x, y: dice(x[0, 0, 0], y), ValueError, "logits"),
    (lambda x, y: dice(x.astype(int), y), TypeError, "floating-point"),
    (lambda x, y: lovasz_softmax(x, y), ValueError, "probs must lie in [0, 1]"),
    (lambda x, y: lovasz_softmax(np.abs(x) / 10, y, classes="some"), ValueError, "classes"),
    (lambda x, y: lovasz_softmax(np.abs(x) / 10, y, classes=[0, 5]), ValueError, "out of range"),
    (lambda x, y: lovasz_softmax(np.abs(x) / 10, y, classes=[0, 0]), ValueError, "twice"),
    (lambda x, y: lovasz_softmax(np.abs(x) / 10, y, classes=[0.5]), TypeError, "classes"),
    (lambda x, y: lovasz_softmax(np.abs(x) / 10, y, classes=[]), ValueError, "empty"),
    (lambda x, y: lovasz_softmax(np.abs(x) / 10, y, per_image=1), ValueError, "per_image"),
    (lambda x, y: lovasz_hinge(x[:, 0], y + 1), ValueError, "0/1"),
    (lambda x, y: lovasz_hinge(x[:, 0], y[:, :2]), ValueError, "same shape"),
    (lambda x, y: lovasz_hinge(x[:, 0], y, ignore=0.5), TypeError, "ignore"),
])
def test_errors_name_the_argument(call, error, words):
    x, y = _data("multiclass")
    with pytest.raises(error, match=words.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        call(x, y)


def test_nan_reaches_the_value_and_the_gradient():
    x, y = _data("multiclass")
    x[0, 1, 0, 0] = np.nan
    y[0, 0, 0] = 255  # the NaN pixel ignored: it still reaches the loss, as in SMP (p * mask)
    for loss in (dice, jaccard, tversky, focal_tversky):
        for opts in ({"ignore_index": 255}, {"ignore_index": 255, "mode": "multiclass", "smooth": 1.0},
                     {"gamma": 0.5, "ignore_index": 255} if loss is focal_tversky else {"ignore_index": 255}):
            value, grad = loss.value_and_grad(x, y, **opts)
            assert np.isnan(value) and np.isnan(grad).any()
    p = _probs()
    p[1, 0, 2, 2] = np.nan
    lab = RNG.integers(0, 3, size=(2, 4, 5))
    for opts in ({}, {"per_image": True}, {"ignore": 0}):
        value, grad = lovasz_softmax.value_and_grad(p, lab, **opts)
        assert np.isnan(value) and np.isnan(grad).any()
    xb = RNG.normal(size=(2, 4, 5))
    xb[0, 1, 1] = np.nan
    yb = (RNG.random((2, 4, 5)) < 0.5).astype(np.int64)
    value, grad = lovasz_hinge.value_and_grad(xb, yb)
    assert np.isnan(value) and np.isnan(grad).any()


def test_bf16_inputs_are_computed_in_fp32():
    x, y = _data("multiclass")
    xb = torch.tensor(x, dtype=torch.bfloat16, requires_grad=True)
    for loss in (dice, jaccard, tversky, focal_tversky):
        value = loss(xb, torch.tensor(y))
        assert value.dtype == torch.float32
        assert float(value.detach()) == pytest.approx(float(loss(xb.detach().double(), torch.tensor(y))), rel=1e-6)
        (g,) = torch.autograd.grad(value, xb)
        assert g.dtype == torch.bfloat16
        np.testing.assert_allclose(g.double().numpy(), loss.grad(xb.detach().double().numpy(), y), rtol=2e-2, atol=1e-4)
    p = torch.tensor(_probs(), dtype=torch.bfloat16)
    lab = torch.tensor(RNG.integers(0, 3, size=(2, 4, 5)))
    for loss, x, y, opts in [(lovasz_softmax, p, lab, {"per_image": False}), (lovasz_softmax, p, lab, {"per_image": True}),
                             (lovasz_hinge, torch.tensor(RNG.normal(size=(2, 4, 5)), dtype=torch.bfloat16),
                              torch.tensor((RNG.random((2, 4, 5)) < 0.5).astype(np.int64)), {})]:
        leaf = x.clone().requires_grad_(True)
        v = loss(leaf, y, **opts)
        assert v.dtype == torch.float32
        assert float(v.detach()) == pytest.approx(float(loss(x.double(), y, **opts)), rel=1e-6)
        (g,) = torch.autograd.grad(v, leaf)
        assert g.dtype == torch.bfloat16
        np.testing.assert_allclose(g.double().numpy(), loss.grad(x.double().numpy(), y.numpy(), **opts), rtol=1e-2,
                                   atol=1e-3)


def test_specs_are_complete():
    for loss in (dice, jaccard, tversky, focal_tversky, lovasz_softmax, lovasz_hinge):
        spec = loss.spec
        assert spec.family == "segmentation" and spec.lower_bound == 0.0
        assert spec.formula_text and spec.formula_latex and spec.gradient_text and spec.gradient_latex
        assert set(spec.peers) >= {"pytorch", "optax", "keras"}
        assert spec.torch_module.endswith("Loss")
        assert [o.name for o in spec.options] == [n for n in loss._keyword_defaults]
    assert dice.spec.tasks == ("segmentation", "multiclass", "binary", "multilabel")
    assert lovasz_softmax.spec.tasks == ("segmentation", "multiclass") and lovasz_hinge.spec.tasks == ("segmentation", "binary")
    assert not dice.spec.convex and not lovasz_hinge.spec.smooth and lovasz_hinge.spec.convex
