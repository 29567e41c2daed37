"""Metric-learning losses (ArcFace, CosFace, NT-Xent, SupCon) against independent references: plain-PyTorch
transcriptions of each formula differentiated by autograd, Optax's own ``ntxent`` (value and ``jax.grad``),
finite differences, and the properties that tie the losses together."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import losslab as ll
from losslab.losses.metric_learning import LOSSES, arcface, cosface, ntxent, supcon

jax.config.update("jax_enable_x64", True)

RNG = np.random.default_rng(2024)
# JAX compiles every eager operation for every new shape (seconds on a small machine): the JAX legs run jitted
_OPTAX = jax.jit(jax.value_and_grad(optax.losses.ntxent))


def _optax(x, y, temperature=0.07):
    value, grad = _OPTAX(jnp.asarray(x), jnp.asarray(y), temperature)
    return float(value), np.asarray(grad)


# -- plain-torch transcriptions (per-item losses and the mean's divisor) ---------------------------


def _margin_logits(e, w, t, s, target_fn):
    cos = F.normalize(e, dim=1) @ F.normalize(w, dim=1).T
    hot = F.one_hot(t, w.shape[0]).bool()
    c = (cos * hot).sum(1)
    return s * torch.where(hot, target_fn(c)[:, None], cos)


def _arcface_torch(e, w, t, s=64.0, m=0.5, sin_fn=None):
    def target(c):
        sin = sin_fn(c) if sin_fn else torch.sqrt(torch.clamp(1 - c * c, min=0))
        return torch.where(c > math.cos(math.pi - m), c * math.cos(m) - sin * math.sin(m), c - m * math.sin(m))

    return F.cross_entropy(_margin_logits(e, w, t, s, target), t, reduction="none"), len(t)


def _clamped_sin(c):
    """sin = sqrt(1 - c^2) whose derivative is taken at c clamped into [-1 + 1e-7, 1 - 1e-7] (the convention)."""
    cc = torch.clamp(c, -1 + 1e-7, 1 - 1e-7)
    return torch.sqrt(torch.clamp(1 - c * c, min=0)).detach() + (c - c.detach()) * (-cc / torch.sqrt(1 - cc * cc)).detach()


def _cosface_torch(e, w, t, s=64.0, m=0.35):
    return F.cross_entropy(_margin_logits(e, w, t, s, lambda c: c - m), t, reduction="none"), len(t)


def _ntxent_torch(x, y, temperature=0.07):
    """Optax's definition: norms floored at sqrt(eps); per anchor, the sum over its positive pairs of
    -log(e^S_ip / (e^S_ip + sum over its negatives)); the mean divides by the number of positive pairs."""
    xh = x / torch.sqrt(torch.clamp((x * x).sum(1, keepdim=True), min=torch.finfo(x.dtype).eps))
    s = xh @ xh.T / temperature
    per, pairs = [], 0
    for i in range(len(y)):
        neg = s[i][y != y[i]]
        terms = [torch.logsumexp(torch.cat([s[i, p:p + 1], neg]), 0) - s[i, p]
                 for p in range(len(y)) if p != i and y[p] == y[i]]
        pairs += len(terms)
        per.append(torch.stack(terms).sum() if terms else s[i, i] * 0)
    return torch.stack(per), pairs


def _supcon_torch(x, y, temperature=0.1):
    """Khosla et al.'s L_out per anchor; anchors without positive give 0 and are not counted."""
    s = F.normalize(x, dim=1) @ F.normalize(x, dim=1).T / temperature
    per, anchors = [], 0
    for i in range(len(y)):
        others = torch.tensor([a != i for a in range(len(y))])
        pos = others & (y == y[i])
        if pos.any():
            anchors += 1
            per.append(-(s[i][pos] - torch.logsumexp(s[i][others], 0)).mean())
        else:
            per.append(s[i, i] * 0)
    return torch.stack(per), anchors


def _reduced(per, divisor, reduction):
    if reduction == "none":
        return per
    return per.sum() if reduction == "sum" else per.sum() / divisor


def _assert_matches(loss, reference, inputs, constants, options, reduction, rtol=1e-9, with_jax=False):
    """losslab's value and analytic gradient on NumPy, through torch's autograd bridge and (``with_jax``) under
    a jitted jax.grad, against autograd of the reference."""
    leaves = [torch.tensor(x, requires_grad=True) for x in inputs]
    per, divisor = reference(*leaves, *[torch.tensor(c) for c in constants])
    want = _reduced(per, divisor, reduction)
    grads = torch.autograd.grad(want.sum(), leaves)
    value, got = loss.value_and_grad(*inputs, *constants, reduction=reduction, **options)
    got = got if isinstance(got, tuple) else (got,)
    np.testing.assert_allclose(value, want.detach().numpy(), rtol=1e-10, atol=1e-12)
    for g, w in zip(got, grads):
        np.testing.assert_allclose(g, w.numpy(), rtol=rtol, atol=1e-11)
    t_leaves = [torch.tensor(x, requires_grad=True) for x in inputs]
    t_value = loss(*t_leaves, *[torch.tensor(c) for c in constants], reduction=reduction, **options)
    np.testing.assert_allclose(t_value.detach().numpy(), want.detach().numpy(), rtol=1e-10, atol=1e-12)
    for g, w in zip(torch.autograd.grad(t_value.sum(), t_leaves), grads):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=rtol, atol=1e-11)
    if not with_jax:
        return
    j_value, j_grads = jax.jit(jax.value_and_grad(
        lambda *xs: jnp.sum(loss(*xs, *map(jnp.asarray, constants), reduction=reduction, **options)),
        argnums=tuple(range(len(inputs)))))(*map(jnp.asarray, inputs))
    np.testing.assert_allclose(float(j_value), float(want.detach().sum()), rtol=1e-10)
    for g, w in zip(j_grads, grads):
        np.testing.assert_allclose(np.asarray(g), w.numpy(), rtol=rtol, atol=1e-11)


def _margin_batch(n=7, c=5, d=4, seed=0):
    rng = np.random.default_rng(seed)
    e, w = rng.normal(size=(n, d)) * rng.uniform(0.5, 3, size=(n, 1)), rng.normal(size=(c, d))
    return e, w, rng.integers(0, c, size=n)


LABELS = {
    "pairs": np.array([0, 0, 1, 1, 2, 2, 3, 3]),
    "groups": np.array([0, 0, 0, 1, 1, 2, 2, 2]),  # several positives per anchor
    "singletons": np.array([0, 0, 1, 2, 3, 3, 3, 4]),  # anchors without positive
    "one_group": np.array([5, 5, 5, 5, 5, 5, 5, 5]),  # no negatives at all
    "one_negative": np.array([0, 0, 0, 0, 0, 0, 0, 9]),
}


# -- values and gradients against the references ----------------------------------------------------


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize(("scale", "margin"), [(64.0, 0.5), (10.0, 0.2), (30.0, 1.2), (5.0, 0.0), (2.0, 3.0)])
def test_arcface_matches_torch_transcription(scale, margin, reduction):
    e, w, t = _margin_batch(seed=int(10 * margin))
    _assert_matches(arcface, lambda a, b, y: _arcface_torch(a, b, y, scale, margin), [e, w], [t],
                    {"scale": scale, "margin": margin}, reduction, with_jax=scale == 64.0 and reduction != "sum")


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize(("scale", "margin"), [(64.0, 0.35), (8.0, 0.0), (16.0, 1.5)])
def test_cosface_matches_torch_transcription(scale, margin, reduction):
    e, w, t = _margin_batch(seed=3)
    _assert_matches(cosface, lambda a, b, y: _cosface_torch(a, b, y, scale, margin), [e, w], [t],
                    {"scale": scale, "margin": margin}, reduction, with_jax=scale == 64.0 and reduction == "mean")


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("labels", sorted(LABELS))
def test_ntxent_matches_torch_transcription(labels, reduction):
    x = RNG.normal(size=(8, 6))
    _assert_matches(ntxent, lambda a, y: _ntxent_torch(a, y, 0.2), [x], [LABELS[labels]], {"temperature": 0.2}, reduction,
                    with_jax=labels == "groups" and reduction != "sum")


@pytest.mark.parametrize("labels", sorted(LABELS))
@pytest.mark.parametrize("temperature", [0.07, 0.01])
def test_ntxent_is_optax_ntxent_value_and_gradient(labels, temperature):
    x, y = RNG.normal(size=(8, 6)) * 2, LABELS[labels]
    want, want_grad = _optax(x, y, temperature)
    value, grad = ntxent.value_and_grad(x, y, temperature=temperature)
    np.testing.assert_allclose(value, want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-9, atol=1e-11)
    # reduction="none": per anchor, the sum over its positive pairs; their total over the pair count is Optax's
    per = ntxent(x, y, temperature=temperature, reduction="none")
    pairs = sum(int(np.sum(y == y[i])) - 1 for i in range(len(y)))
    assert per.shape == (8,)
    np.testing.assert_allclose(per.sum() / pairs, want, rtol=1e-10, atol=1e-12)
    if (labels, temperature) != ("groups", 0.07):
        return
    # under jit and jax.grad of a function that calls the loss
    j_grad = jax.jit(jax.grad(lambda z: ntxent(z, jnp.asarray(y), temperature=temperature)))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(j_grad), want_grad, rtol=1e-9, atol=1e-11)


def test_ntxent_optax_float32_and_tiny_norm_rows():
    """Optax floors the norm at sqrt(finfo(dtype).eps): in float32, rows of norm 1e-5 are clamped alike."""
    x, y = RNG.normal(size=(8, 6)), LABELS["pairs"]
    x[1] *= 1e-5
    x32 = x.astype(np.float32)
    want = jax.jit(optax.losses.ntxent)(jnp.asarray(x32), jnp.asarray(y), 0.3)
    assert float(ntxent(x32, y, temperature=0.3)) == pytest.approx(float(want), rel=1e-5)
    x[1] *= 1e-5  # norm 1e-10 < sqrt(eps of float64): clamped in float64 too
    want64 = _optax(x, y, 0.3)
    value, grad = ntxent.value_and_grad(x, y, temperature=0.3)
    np.testing.assert_allclose(value, want64[0], rtol=1e-10)
    np.testing.assert_allclose(grad, want64[1], rtol=1e-8, atol=1e-12)


def test_ntxent_without_positive_pairs_is_zero_not_nan():
    x, y = RNG.normal(size=(8, 6)), np.arange(8)
    assert np.isnan(_optax(x, y)[0])  # Optax: 0 / 0
    value, grad = ntxent.value_and_grad(x, y)
    assert value == 0.0 and np.all(grad == 0.0)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("labels", sorted(LABELS))
@pytest.mark.parametrize("temperature", [0.1, 0.7])
def test_supcon_matches_torch_transcription(labels, temperature, reduction):
    x = RNG.normal(size=(8, 6)) * RNG.uniform(0.2, 4, size=(8, 1))
    _assert_matches(supcon, lambda a, y: _supcon_torch(a, y, temperature), [x], [LABELS[labels]],
                    {"temperature": temperature}, reduction,
                    with_jax=temperature == 0.1 and labels == "singletons" and reduction != "sum")


@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_supcon_equals_the_reference_recipe_with_views(temperature):
    """HobbitLong/SupContrast's SupConLoss (contrast_mode='all', labels, temperature = base_temperature) on
    [bsz, n_views, D] normalised features, views stacked view-major with repeated labels: equal but for its
    1e-9 inside the log, which is added after the shift by the row maximum (the self-similarity 1 / T), so
    it weighs exp((1 - cos) / T) more than it seems (1e-6 relative at T = 0.07)."""
    bsz, views = 5, 2
    f = F.normalize(torch.tensor(RNG.normal(size=(bsz, views, 8))), dim=2)
    labels = torch.tensor([0, 1, 0, 2, 1])
    flat = torch.cat(torch.unbind(f, dim=1), dim=0)
    logits = flat @ flat.T / temperature
    logits = logits - logits.max(1, keepdim=True).values
    mask = (labels[:, None] == labels[None, :]).double().repeat(views, views)
    not_self = 1 - torch.eye(bsz * views, dtype=torch.float64)
    mask = mask * not_self
    got = float(supcon(flat.numpy(), labels.repeat(views).numpy(), temperature=temperature))
    for tiny, rel in ((1e-9, 1e-5), (0.0, 1e-12)):
        log_prob = logits - torch.log((torch.exp(logits) * not_self).sum(1, keepdim=True) + tiny)
        want = -((mask * log_prob).sum(1) / mask.sum(1)).mean()
        assert got == pytest.approx(float(want), rel=rel)


def test_supcon_anchors_without_positives():
    x, y = RNG.normal(size=(6, 4)), np.array([0, 0, 0, 1, 2, 3])  # anchors 3, 4, 5 have no positive
    per = supcon(x, y, reduction="none")
    assert np.all(per[3:] == 0.0) and np.all(per[:3] > 0)
    assert supcon(x, y) == pytest.approx(per[:3].mean(), rel=1e-12)  # divisor: the 3 anchors with positives
    assert supcon(x, y, reduction="sum") == pytest.approx(per.sum(), rel=1e-12)
    # the rows of anchors without positive still get a gradient: they are in the others' denominators
    assert np.all(np.abs(supcon.grad(x, y)).sum(axis=1) > 0)
    value, grad = supcon.value_and_grad(x, np.arange(6))  # no positive anywhere: 0, zero gradient
    assert value == 0.0 and np.all(grad == 0.0)
    assert supcon(x[:1], y[:1]) == 0.0  # a batch of one


# -- ArcFace's branches and its documented derivative ------------------------------------------------


def _arc_rows(cos_targets, seed=0):
    """Embeddings whose cosine to center 0 (= e1) is each of ``cos_targets``, and 5 centers in 4 dimensions."""
    rng = np.random.default_rng(seed)
    w = np.vstack([np.eye(4)[0], rng.normal(size=(4, 4))])
    c = np.asarray(cos_targets, dtype=np.float64)
    e = np.stack([c, np.sqrt(1 - c * c), np.zeros_like(c), np.zeros_like(c)], axis=1) * 2.5
    return e, w, np.zeros(len(c), dtype=np.int64)


def test_arcface_fallback_branch_is_insightfaces():
    m, s = 0.5, 16.0
    threshold = math.cos(math.pi - m)  # -0.8776: below it theta + m > pi
    e, w, t = _arc_rows([-0.999, -0.95, -0.9, threshold + 0.01, 0.3, 0.99, -0.5])
    cos = (e / np.linalg.norm(e, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=1, keepdims=True)).T
    c = cos[:, 0]
    theta = np.arccos(c)
    phi = np.where(theta + m > math.pi, c - m * math.sin(m), np.cos(theta + m))
    assert (theta + m > math.pi).sum() == 3  # the fallback really is exercised
    logits = s * np.concatenate([phi[:, None], cos[:, 1:]], axis=1)
    shifted = logits - logits.max(1, keepdims=True)  # -log p_0, grouped so the confident row 5 keeps its digits
    want = np.log(np.exp(shifted).sum(1)) - shifted[:, 0]
    np.testing.assert_allclose(arcface(e, w, t, scale=s, margin=m, reduction="none"), want, rtol=1e-12)
    for reduction in ("none", "mean"):
        _assert_matches(arcface, lambda a, b, y: _arcface_torch(a, b, y, s, m), [e, w], [t],
                        {"scale": s, "margin": m}, reduction, rtol=1e-8)
    j = jax.jit(jax.grad(lambda a: arcface(a, jnp.asarray(w), jnp.asarray(t), scale=s, margin=m)))(jnp.asarray(e))
    np.testing.assert_allclose(np.asarray(j), arcface.grad(e, w, t, scale=s, margin=m)[0], rtol=1e-10, atol=1e-13)


def test_arcface_jumps_at_the_fallback_boundary():
    """Not continuous (smooth=False): across theta + m = pi the target's cosine after the margin drops from
    cos(pi) = -1 to cos(pi - m) - m sin m = -(cos m + m sin m); and its slope jumps from 0 to 1."""
    m, s = 0.5, 4.0
    threshold = math.cos(math.pi - m)

    def by_hand(phi, e, w):
        cos = (e / np.linalg.norm(e, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=1, keepdims=True)).T
        z = s * np.concatenate([[phi], cos[0, 1:]])
        return np.log(np.exp(z).sum()) - z[0]

    above, below = _arc_rows([threshold + 1e-12]), _arc_rows([threshold - 1e-12])
    assert arcface(*above, scale=s, margin=m) == pytest.approx(by_hand(-1.0, *above[:2]), rel=1e-9)
    assert arcface(*below, scale=s, margin=m) == pytest.approx(by_hand(-(math.cos(m) + m * math.sin(m)), *below[:2]), rel=1e-9)
    assert arcface(*below, scale=s, margin=m) - arcface(*above, scale=s, margin=m) > 0.1
    g_above = arcface.grad(*_arc_rows([threshold + 1e-6]), scale=s, margin=m)[0]
    g_below = arcface.grad(*_arc_rows([threshold - 1e-6]), scale=s, margin=m)[0]
    assert np.abs(g_above - g_below).max() > 0.1


def test_arcface_slope_near_cos_one_is_the_documented_clamp():
    """Within 1e-7 of cos_y = 1 (an angle below ~4.5e-4 rad) d sin/d cos is taken at 1 - 1e-7: the gradient is
    autograd's with that clamp, finite and smaller than the exact (near-infinite) one; outside the band, exact."""
    m, s = 0.5, 2.0
    w = np.array([[1.0, 0.0], [0.0, 1.0]])
    for angle, clamped in ((1e-4, True), (1e-2, False)):
        e = np.array([[math.cos(angle), math.sin(angle)]])
        t = np.array([0])
        g = arcface.grad(e, w, t, scale=s, margin=m)
        leaves = [torch.tensor(e, requires_grad=True), torch.tensor(w, requires_grad=True)]
        conv = torch.autograd.grad(_arcface_torch(*leaves, torch.tensor(t), s, m, sin_fn=_clamped_sin)[0].sum(), leaves)
        leaves = [torch.tensor(e, requires_grad=True), torch.tensor(w, requires_grad=True)]
        exact = torch.autograd.grad(_arcface_torch(*leaves, torch.tensor(t), s, m)[0].sum(), leaves)
        for got, want, plain in zip(g, conv, exact):
            np.testing.assert_allclose(got, want.numpy(), rtol=1e-7, atol=1e-10)
            if clamped:
                assert np.abs(plain.numpy() - got).max() > 0.05  # autograd's exact slope is 4.5x the clamped one
            else:
                np.testing.assert_allclose(got, plain.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("margin", [0.5, 0.0])
def test_arcface_gradient_at_cos_plus_minus_one_is_finite_and_the_clamped_derivative(margin):
    """At cos_y = +-1 exactly, autograd of sqrt(1 - c^2) is infinite (NaN after the projection); losslab's is
    finite and equals autograd of the documented convention, also in JAX's autodiff of reduction="none"."""
    e, w, t = _arc_rows([1.0, -1.0, 0.2, 0.5, -0.3, 0.9, 0.0])
    e[0], e[1] = 3 * w[0], -2 * w[0]  # cos exactly +1 and -1
    value, (g_e, g_w) = arcface.value_and_grad(e, w, t, scale=8.0, margin=margin)
    assert np.isfinite(value) and np.all(np.isfinite(g_e)) and np.all(np.isfinite(g_w))
    leaves = [torch.tensor(e, requires_grad=True), torch.tensor(w, requires_grad=True)]
    per, n = _arcface_torch(*leaves, torch.tensor(t), 8.0, margin, sin_fn=_clamped_sin)
    want = torch.autograd.grad(per.sum() / n, leaves)
    np.testing.assert_allclose(value, float(per.sum().detach() / n), rtol=1e-12)
    np.testing.assert_allclose(g_e, want[0].numpy(), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(g_w, want[1].numpy(), rtol=1e-8, atol=1e-10)
    if margin > 0:  # plain autograd is not finite there
        leaves = [torch.tensor(e, requires_grad=True), torch.tensor(w, requires_grad=True)]
        plain = torch.autograd.grad(_arcface_torch(*leaves, torch.tensor(t), 8.0, margin)[0].sum(), leaves)
        assert not torch.isfinite(plain[1]).all()
    j = jax.jit(jax.grad(lambda a, b: jnp.sum(arcface(a, b, jnp.asarray(t), scale=8.0, margin=margin, reduction="none")),
                         argnums=(0, 1)))(jnp.asarray(e), jnp.asarray(w))
    np.testing.assert_allclose(np.asarray(j[0]), 7 * g_e, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(np.asarray(j[1]), 7 * g_w, rtol=1e-8, atol=1e-10)


# -- backends, finite differences, half precision -----------------------------------------------------


def _cases():
    e, w, t = _margin_batch(seed=9)
    x, y = RNG.normal(size=(8, 6)), np.array([0, 0, 1, 1, 1, 2, 3, 4])
    return [(arcface, (e, w, t), {"scale": 10.0, "margin": 0.4}), (cosface, (e, w, t), {"scale": 12.0}),
            (ntxent, (x, y), {"temperature": 0.3}), (supcon, (x, y), {"temperature": 0.25})]


@pytest.mark.parametrize("index", range(4), ids=[loss.name for loss in LOSSES])
def test_numpy_torch_jax_agree(index):
    loss, args, options = _cases()[index]
    k = len(loss.inputs)
    want_v, want_g = loss.value_and_grad(*args, **options)
    want_g = want_g if isinstance(want_g, tuple) else (want_g,)
    jitted = jax.jit(lambda *xs: loss.value_and_grad(*xs, **options))  # value_and_grad on JAX arrays
    for run in (lambda: loss.value_and_grad(*map(torch.tensor, args), **options), lambda: jitted(*map(jnp.asarray, args))):
        v, g = run()
        g = g if isinstance(g, tuple) else (g,)
        np.testing.assert_allclose(np.asarray(v), want_v, rtol=1e-12)
        for a, b in zip(g, want_g):
            np.testing.assert_allclose(np.asarray(a), b, rtol=1e-10, atol=1e-13)
    consts = tuple(jnp.asarray(a) for a in args[k:])
    j = jax.jit(jax.grad(lambda *xs: loss(*xs, *consts, **options), argnums=tuple(range(k))))(*map(jnp.asarray, args[:k]))
    for a, b in zip(j, want_g):
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("index", range(4), ids=[loss.name for loss in LOSSES])
def test_gradient_matches_finite_differences(index):
    loss, args, options = _cases()[index]
    k = len(loss.inputs)
    grads = loss.grad(*args, **options, reduction="sum")
    grads = grads if isinstance(grads, tuple) else (grads,)
    h = 1e-6
    for which in range(k):
        for idx in [(0, 0), (1, 2), (args[which].shape[0] - 1, 1)]:
            plus, minus = [a.copy() for a in args[:k]], [a.copy() for a in args[:k]]
            plus[which][idx] += h
            minus[which][idx] -= h
            fd = (loss(*plus, *args[k:], **options, reduction="sum") - loss(*minus, *args[k:], **options, reduction="sum")) / (2 * h)
            assert grads[which][idx] == pytest.approx(fd, rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("index", range(4), ids=[loss.name for loss in LOSSES])
def test_bf16_inputs_are_computed_in_float32(index):
    loss, args, options = _cases()[index]
    k = len(loss.inputs)
    half = [torch.tensor(a, dtype=torch.bfloat16) for a in args[:k]]
    value, grads = loss.value_and_grad(*half, *map(torch.tensor, args[k:]), **options)
    grads = grads if isinstance(grads, tuple) else (grads,)
    assert value.dtype == torch.float32 and all(g.dtype == torch.bfloat16 for g in grads)
    exact = loss(*[h.double().numpy() for h in half], *args[k:], **options)  # the rounded inputs, in float64
    assert float(value) == pytest.approx(float(exact), rel=2e-5, abs=1e-6)
    leaves = [h.clone().requires_grad_() for h in half]
    loss(*leaves, *map(torch.tensor, args[k:]), **options).backward()
    assert all(x.grad.dtype == torch.bfloat16 and torch.isfinite(x.grad.float()).all() for x in leaves)


@pytest.mark.parametrize("index", range(4), ids=[loss.name for loss in LOSSES])
def test_nan_input_reaches_value_and_gradient(index):
    loss, args, options = _cases()[index]
    k = len(loss.inputs)
    for which in range(k):
        bad = [a.copy() for a in args[:k]]
        bad[which][1, 1] = np.nan
        value, grads = loss.value_and_grad(*bad, *args[k:], **options)
        grads = grads if isinstance(grads, tuple) else (grads,)
        assert np.isnan(value) and np.isnan(grads[which]).any()
        assert torch.isnan(loss(*map(torch.tensor, bad), *map(torch.tensor, args[k:]), **options))


def test_supcon_nan_in_an_anchor_without_positive_still_reaches_the_output():
    x, y = RNG.normal(size=(5, 3)), np.array([0, 0, 1, 2, 3])
    x[4, 0] = np.nan
    assert np.isnan(supcon(x, y)) and np.isnan(ntxent(x, y))


# -- properties ---------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 9), st.floats(0.05, 2.0), st.floats(1.0, 64.0), st.floats(0.0, 3.1))
def test_losses_are_nonnegative_and_invariant_to_rescaling_rows(seed, n, temperature, scale, margin):
    rng = np.random.default_rng(seed)
    e, w = rng.normal(size=(n, 3)), rng.normal(size=(4, 3))
    t, y = rng.integers(0, 4, size=n), rng.integers(0, 3, size=n)
    k_e, k_w = np.exp(rng.uniform(-6, 6, size=(n, 1))), np.exp(rng.uniform(-6, 6, size=(4, 1)))
    calls = [(arcface, (e, w, t), (k_e, k_w), {"scale": scale, "margin": margin}),
             (cosface, (e, w, t), (k_e, k_w), {"scale": scale, "margin": margin}),
             (ntxent, (e, y), (k_e,), {"temperature": temperature}),
             (supcon, (e, y), (k_e,), {"temperature": temperature})]
    for loss, args, factors, options in calls:
        k = len(loss.inputs)
        per = loss(*args, **options, reduction="none")
        assert np.all(per >= 0)
        value, grads = loss.value_and_grad(*args, **options)
        scaled = [a * f for a, f in zip(args[:k], factors)]
        v2, g2 = loss.value_and_grad(*scaled, *args[k:], **options)
        assert v2 == pytest.approx(value, rel=1e-9, abs=1e-12)
        # the gradient of a row scaled by f is the original one divided by f
        for g, h, f in zip(grads if k > 1 else (grads,), g2 if k > 1 else (g2,), factors):
            np.testing.assert_allclose(h * f, g, rtol=1e-7, atol=1e-9 * (1 + np.abs(g).max()))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 8), st.integers(1, 6), st.floats(0.5, 64.0))
def test_zero_margin_arcface_is_cosface_is_scaled_cosine_cross_entropy(seed, n, c, scale):
    rng = np.random.default_rng(seed)
    e, w, t = rng.normal(size=(n, 4)), rng.normal(size=(c, 4)), rng.integers(0, c, size=n)
    a = arcface.value_and_grad(e, w, t, scale=scale, margin=0.0)
    b = cosface.value_and_grad(e, w, t, scale=scale, margin=0.0)
    cos = (e / np.linalg.norm(e, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=1, keepdims=True)).T
    want = ll.cross_entropy(scale * cos, t)
    assert a[0] == pytest.approx(b[0], rel=1e-12) and a[0] == pytest.approx(want, rel=1e-12, abs=1e-14)
    for x, y in zip(a[1], b[1]):
        np.testing.assert_allclose(x, y, rtol=1e-10, atol=1e-14)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.floats(0.02, 2.0))
def test_ntxent_equals_optax_on_random_label_sets(seed, groups, temperature):
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(8, 6)) * rng.uniform(0.1, 10), rng.integers(0, groups, size=8)
    if not any(np.sum(y == v) > 1 for v in y):
        y[1] = y[0]
    want, want_grad = _optax(x, y, temperature)
    value, grad = ntxent.value_and_grad(x, y, temperature=temperature)
    assert value == pytest.approx(want, rel=1e-10, abs=1e-13)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-8, atol=1e-11)


def test_margins_make_the_loss_larger_and_penalise_the_target():
    e, w, t = _margin_batch(seed=4)
    base = cosface(e, w, t, margin=0.0, scale=10.0)
    assert cosface(e, w, t, margin=0.3, scale=10.0) > base
    assert arcface(e, w, t, margin=0.3, scale=10.0) > base


def test_claims_non_convex_and_bounded_gradient():
    """convex=False: each loss curves down along some line; robust_to_outliers: pushing the embeddings
    further out (any scale) never grows the gradient."""
    rng = np.random.default_rng(5)
    for loss, args, options in _cases():
        k = len(loss.inputs)
        found = False
        for _ in range(40):
            d = [rng.normal(size=a.shape) for a in args[:k]]
            v = [loss(*[a + s * di for a, di in zip(args[:k], d)], *args[k:], **options) for s in np.linspace(-2, 2, 41)]
            if np.min(np.diff(v, 2)) < -1e-6:
                found = True
                break
        assert found, loss.name
        norms = []
        for f in (1.0, 1e3, 1e6):
            g = loss.grad(*[a * f for a in args[:k]], *args[k:], **options)
            norms.append(max(np.abs(x).max() for x in (g if k > 1 else (g,))))
        assert norms[0] >= norms[1] >= norms[2] and np.isfinite(norms).all()


def test_specs_are_complete():
    for loss in LOSSES:
        spec = loss.spec
        assert spec.family == "ranking" and spec.lower_bound == 0.0 and not spec.convex and spec.robust_to_outliers
        assert {"pytorch", "optax", "keras"} == set(spec.peers) and spec.peers["keras"] == "none"
        assert list(spec.inputs) == list(loss.__signature__.parameters)[:len(spec.inputs)]
        assert spec.formula_text.splitlines()[0] in loss.__doc__ and spec.conventions
        for option in spec.options:
            assert option.low is not None and option.high is not None
            assert option.domain.contains(option.low) and option.low < option.high
            assert option.domain.contains(option.high)
    assert arcface.spec.tasks == ("multiclass", "ranking") and ntxent.spec.tasks == ("ranking",)
    assert ntxent.spec.pairwise_batch and supcon.spec.pairwise_batch and not arcface.spec.pairwise_batch
    assert ntxent.spec.peers["optax"] == "optax.losses.ntxent"
    assert [s.spec.torch_module for s in LOSSES] == ["ArcFaceLoss", "CosFaceLoss", "NTXentLoss", "SupConLoss"]
    assert not arcface.spec.smooth and cosface.spec.smooth


# -- errors -------------------------------------------------------------------------------------------


E, W, T = _margin_batch(n=4, c=3, d=2)
X, Y = RNG.normal(size=(4, 3)), np.array([0, 0, 1, 1])


@pytest.mark.parametrize(("call", "error", "words"), [
    (lambda: arcface(E[0], W, T), ValueError, "embeddings must be embeddings of shape (N, D)"),
    (lambda: arcface(E, W[:, :1], T), ValueError, "embeddings and centers must have the same embedding size"),
    (lambda: cosface(E, W[0], T), ValueError, "centers must be class centers"),
    (lambda: arcface(E, W, np.array([0, 1, 3, 0])), ValueError, "targets holds class indices out of range [0, 2]"),
    (lambda: cosface(E, W, np.array([0, -1, 2, 0])), ValueError, "targets holds class indices out of range"),
    (lambda: arcface(E, W, T.astype(float)), TypeError, "targets must be integer class indices"),
    (lambda: arcface(E, W, T[:3]), ValueError, "targets must have shape (4,)"),
    (lambda: arcface(E, W, T, scale=0.0), ValueError, "scale must be a finite number in (0, inf)"),
    (lambda: arcface(E, W, T, margin=math.pi), ValueError, "margin must be a finite number in [0, 3.14159)"),
    (lambda: cosface(E, W, T, margin=-0.1), ValueError, "margin must be a finite number in [0, inf)"),
    (lambda: arcface(E.astype(int), W, T), TypeError, "embeddings must be a floating-point array"),
    (lambda: arcface(E, np.zeros((0, 2)), T), ValueError, "centers holds no class"),
    (lambda: ntxent(X, Y[:3]), ValueError, "labels must have shape (4,)"),
    (lambda: supcon(X, Y[:, None]), ValueError, "labels must have shape (4,)"),
    (lambda: ntxent(X, Y.astype(float)), TypeError, "labels must be integer group labels"),
    (lambda: supcon(X[0], Y), ValueError, "embeddings must be embeddings of shape (N, D)"),
    (lambda: ntxent(X, Y, temperature=0.0), ValueError, "temperature must be a finite number in (0, inf)"),
    (lambda: supcon(X, Y, temperature=-1.0), ValueError, "temperature must be"),
    (lambda: supcon(np.zeros((0, 3)), np.zeros(0, dtype=int)), ValueError, "embeddings holds no rows"),
    (lambda: ntxent(X, ["a", "b", "c", "d"]), TypeError, "labels must be"),
    (lambda: cosface(jnp.asarray(E), jnp.asarray(W), jnp.asarray([0, 1, 5, 0])), ValueError, "targets holds class indices"),
    (lambda: supcon(torch.tensor(X), torch.tensor(Y[:2])), ValueError, "labels must have shape (4,)"),
])
def test_errors_name_the_argument(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)
