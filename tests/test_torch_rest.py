"""The rest of PyTorch's losses: values and gradients against torch.nn.functional (PyTorch's own
autograd, a random upstream gradient), over options, reductions and shapes, in float32 and float64;
plus the binary cross-entropies' Keras label smoothing, and the checks PyTorch lacks."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import losslab as ll
import losslab.torch as llt
from test_torch_parity import DTYPES, REDUCTIONS, _gen, assert_parity


def _signs(shape, g, dtype):
    return torch.where(torch.rand(shape, generator=g) < 0.5, -1.0, 1.0).to(dtype)


@pytest.mark.parametrize(("reduction", "dtype"), list(itertools.product(REDUCTIONS, DTYPES)))
def test_soft_margin(reduction, dtype):
    g = _gen(1)
    x, y = torch.randn(6, 4, generator=g, dtype=dtype) * 3, _signs((6, 4), g, dtype)
    assert_parity(lambda v: ll.soft_margin(v, y, reduction=reduction), lambda v: F.soft_margin_loss(v, y, reduction=reduction),
                  [x], dtype)


@pytest.mark.parametrize(("margin", "reduction", "dtype"), list(itertools.product([1.0, 0.3, 2.5], REDUCTIONS, DTYPES)))
def test_hinge_embedding(margin, reduction, dtype):
    g = _gen(2)
    d, y = torch.rand(5, 3, generator=g, dtype=dtype) * 3, _signs((5, 3), g, dtype)
    assert_parity(lambda v: ll.hinge_embedding(v, y, margin=margin, reduction=reduction),
                  lambda v: F.hinge_embedding_loss(v, y, margin=margin, reduction=reduction), [d], dtype)


def test_hinge_embedding_and_margin_ranking_pass_the_gradient_on_their_boundary_as_torch():
    d, y = torch.tensor([1.0, 0.5], dtype=torch.float64), torch.tensor([-1.0, -1.0], dtype=torch.float64)
    assert_parity(lambda v: ll.hinge_embedding(v, y, reduction="sum"),
                  lambda v: F.hinge_embedding_loss(v, y, reduction="sum"), [d], torch.float64)
    a, b, t = (torch.tensor([2.0, 0.0], dtype=torch.float64), torch.tensor([1.0, 0.0], dtype=torch.float64),
               torch.tensor([-1.0, 1.0], dtype=torch.float64))
    grads = assert_parity(lambda u, v: ll.margin_ranking(u, v, t, margin=1.0, reduction="sum"),
                          lambda u, v: F.margin_ranking_loss(u, v, t, margin=1.0, reduction="sum"), [a, b], torch.float64)
    assert grads[0].grad[0] > 0  # exactly on the margin: passed on, not 0


@pytest.mark.parametrize(("margin", "reduction", "dtype"), list(itertools.product([0.0, 0.5], REDUCTIONS, DTYPES)))
def test_margin_ranking(margin, reduction, dtype):
    g = _gen(3)
    a, b, t = torch.randn(9, generator=g, dtype=dtype), torch.randn(9, generator=g, dtype=dtype), _signs((9,), g, dtype)
    assert_parity(lambda u, v: ll.margin_ranking(u, v, t, margin=margin, reduction=reduction),
                  lambda u, v: F.margin_ranking_loss(u, v, t, margin=margin, reduction=reduction), [a, b], dtype)


@pytest.mark.parametrize(("margin", "reduction", "dtype", "batched"),
                         list(itertools.product([0.0, 0.4, -0.5], REDUCTIONS, DTYPES, [True, False])))
def test_cosine_embedding(margin, reduction, dtype, batched):
    g = _gen(4)
    shape = (7, 5) if batched else (5,)
    a, b = torch.randn(shape, generator=g, dtype=dtype), torch.randn(shape, generator=g, dtype=dtype)
    t = _signs(shape[:-1], g, dtype)
    assert_parity(lambda u, v: ll.cosine_embedding(u, v, t, margin=margin, reduction=reduction),
                  lambda u, v: F.cosine_embedding_loss(u, v, t, margin=margin, reduction=reduction), [a, b], dtype)


def test_cosine_embedding_of_a_zero_embedding_is_finite():
    a, b = torch.zeros(2, 3, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    t = torch.tensor([1.0, -1.0], dtype=torch.float64)
    grads = assert_parity(lambda u, v: ll.cosine_embedding(u, v, t), lambda u, v: F.cosine_embedding_loss(u, v, t), [a, b],
                          torch.float64, grad_rtol=1e-8)  # gradients near 1e6 for the zero vector: rounding differs
    assert torch.isfinite(grads[0].grad).all()


@pytest.mark.parametrize(("weighted", "reduction", "dtype", "batched"),
                         list(itertools.product([False, True], REDUCTIONS, DTYPES, [True, False])))
def test_multilabel_soft_margin(weighted, reduction, dtype, batched):
    g = _gen(5)
    shape = (6, 4) if batched else (4,)
    x, y = torch.randn(shape, generator=g, dtype=dtype) * 3, (torch.rand(shape, generator=g) < 0.4).to(dtype)
    w = torch.rand(4, generator=g, dtype=dtype) + 0.3 if weighted else None
    assert_parity(lambda v: ll.multilabel_soft_margin(v, y, weight=w, reduction=reduction),
                  lambda v: F.multilabel_soft_margin_loss(v, y, weight=w, reduction=reduction), [x], dtype)


@pytest.mark.parametrize(("reduction", "dtype"), list(itertools.product(REDUCTIONS, DTYPES)))
def test_multilabel_margin(reduction, dtype):
    g = _gen(6)
    x = torch.randn(5, 6, generator=g, dtype=dtype) * 2
    targets = torch.tensor([[3, 0, -1, 1, 2, 5], [1, -1, -1, -1, -1, -1], [0, 1, 2, 3, 4, 5], [-1, 2, 0, 0, 0, 0],
                            [5, 5, 2, -1, 0, 0]])  # none, all, duplicates, entries after the -1
    assert_parity(lambda v: ll.multilabel_margin(v, targets, reduction=reduction),
                  lambda v: F.multilabel_margin_loss(v, targets, reduction=reduction), [x], dtype)
    assert_parity(lambda v: ll.multilabel_margin(v, targets[0], reduction=reduction),
                  lambda v: F.multilabel_margin_loss(v, targets[0], reduction=reduction), [x[0]], dtype)


@pytest.mark.parametrize(("log_input", "full", "reduction", "dtype"),
                         list(itertools.product([True, False], [False, True], REDUCTIONS, DTYPES)))
def test_poisson_nll(log_input, full, reduction, dtype):
    g = _gen(7)
    x = torch.randn(4, 5, generator=g, dtype=dtype)
    x = x if log_input else x.abs() + 0.05
    t = torch.poisson(torch.full((4, 5), 3.0, dtype=dtype), generator=g)
    t[0, :3] = torch.tensor([0.0, 1.0, 1.5], dtype=dtype)  # the Stirling term starts above 1
    assert_parity(lambda v: ll.poisson_nll(v, t, log_input=log_input, full=full, reduction=reduction),
                  lambda v: F.poisson_nll_loss(v, t, log_input=log_input, full=full, reduction=reduction), [x], dtype)


def test_poisson_nll_eps_and_the_hessian():
    x, t = np.array([0.0, 0.5, 2.0]), np.array([1.0, 0.0, 4.0])
    want = F.poisson_nll_loss(torch.tensor(x), torch.tensor(t), log_input=False, eps=0.1, reduction="sum")
    assert float(ll.poisson_nll(x, t, log_input=False, eps=0.1, reduction="sum")) == pytest.approx(float(want), rel=1e-12)
    np.testing.assert_allclose(ll.poisson_nll.hessian(x, t, reduction="sum"), np.exp(x))
    np.testing.assert_allclose(ll.poisson_nll.hessian(x, t, log_input=False, reduction="sum"), t / (x + 1e-8) ** 2)


VAR_SHAPES = {"same": (4, 3), "one short": (4,), "size-1 last": (4, 1), "size-1 first": (1, 3)}


@pytest.mark.parametrize(("var_shape", "full", "reduction", "dtype"),
                         list(itertools.product(VAR_SHAPES, [False, True], REDUCTIONS, DTYPES)))
def test_gaussian_nll(var_shape, full, reduction, dtype):
    g = _gen(8)
    x, t = torch.randn(4, 3, generator=g, dtype=dtype), torch.randn(4, 3, generator=g, dtype=dtype)
    var = torch.rand(VAR_SHAPES[var_shape], generator=g, dtype=dtype) + 0.1
    assert_parity(lambda m, v: ll.gaussian_nll(m, t, v, full=full, reduction=reduction),
                  lambda m, v: F.gaussian_nll_loss(m, t, v, full=full, reduction=reduction), [x, var], dtype)


def test_gaussian_nll_clamps_the_variance_with_pytorchs_gradient():
    """Below eps the variance is clamped, and the gradient is the one at eps passed straight through."""
    x, t = torch.tensor([0.5, 0.0, 1.0], dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    var = torch.tensor([1e-9, 0.0, 2.0], dtype=torch.float64)
    assert_parity(lambda m, v: ll.gaussian_nll(m, t, v, eps=1e-3), lambda m, v: F.gaussian_nll_loss(m, t, v, eps=1e-3),
                  [x, var], torch.float64)
    g_var = ll.gaussian_nll.grad(x.numpy(), t.numpy(), var.numpy(), eps=1e-3)[1]
    assert g_var[0] == pytest.approx(0.5 * (1 / 1e-3 - 0.25 / 1e-6) / 3)  # at eps, not 0
    value = ll.gaussian_nll(np.array([1.0, 2.0]), np.array([0.0, 0.0]), 2.0)  # a number as the variance
    assert value == pytest.approx(float(F.gaussian_nll_loss(torch.tensor([1.0, 2.0]), torch.zeros(2), 2.0)), rel=1e-6)
    with pytest.raises(ValueError, match="var must be >= 0"):
        ll.gaussian_nll(np.ones(2), np.ones(2), np.array([1.0, -0.1]))
    with pytest.raises(ValueError, match=r"var must have the predictions' shape \(4, 3\)"):
        ll.gaussian_nll(np.ones((4, 3)), np.ones((4, 3)), np.ones((2, 3)))


DISTANCES = {"pairwise p=2": ({"distance_function": "pairwise"}, None),
             "pairwise p=1": ({"distance_function": "pairwise", "p": 1}, lambda x, y: F.pairwise_distance(x, y, p=1)),
             "cosine": ({"distance_function": "cosine"}, lambda x, y: 1.0 - F.cosine_similarity(x, y, dim=-1))}


@pytest.mark.parametrize(("distance", "swap", "reduction", "dtype"),
                         list(itertools.product(DISTANCES, [False, True], REDUCTIONS, DTYPES)))
def test_triplet_margin_with_distance(distance, swap, reduction, dtype):
    g = _gen(9)
    a, p, n = (torch.randn(8, 5, generator=g, dtype=dtype) for _ in range(3))
    options, fn = DISTANCES[distance]
    assert_parity(lambda *v: ll.triplet_margin_with_distance(*v, **options, swap=swap, margin=0.7, reduction=reduction),
                  lambda *v: F.triplet_margin_with_distance_loss(*v, distance_function=fn, swap=swap, margin=0.7,
                                                                 reduction=reduction), [a, p, n], dtype)


def test_triplet_margin_with_a_callable_distance_on_torch_and_a_clear_error_elsewhere():
    def manhattan(x, y):
        return (x - y).abs().sum(-1)

    g = _gen(10)
    a, p, n = (torch.randn(6, 4, generator=g, dtype=torch.float64) for _ in range(3))
    assert_parity(lambda *v: ll.triplet_margin_with_distance(*v, distance_function=manhattan, swap=True),
                  lambda *v: F.triplet_margin_with_distance_loss(*v, distance_function=manhattan, swap=True), [a, p, n],
                  torch.float64)
    value, grads = ll.triplet_margin_with_distance.value_and_grad(a, p, n, distance_function=manhattan)
    module = llt.TripletMarginWithDistanceLoss(distance_function=manhattan)
    assert float(module(a, p, n)) == pytest.approx(float(value)) and len(grads) == 3
    with pytest.raises(TypeError, match="callable is accepted for torch tensors only"):
        ll.triplet_margin_with_distance(a.numpy(), p.numpy(), n.numpy(), distance_function=manhattan)
    with pytest.raises(ValueError, match="one distance per triplet"):
        ll.triplet_margin_with_distance(a, p, n, distance_function=lambda x, y: (x - y).abs())
    with pytest.raises(ValueError, match="distance_function must be 'pairwise' or 'cosine'"):
        ll.triplet_margin_with_distance(a, p, n, distance_function="manhattan")


@pytest.mark.parametrize(("name", "smoothing", "dtype"),
                         list(itertools.product(["binary_cross_entropy", "binary_cross_entropy_with_logits"], [0.0, 0.1, 1.0], DTYPES)))
def test_binary_label_smoothing_is_kerass(name, smoothing, dtype):
    """Keras: targets become t (1 - ls) + ls / 2, then the loss; PyTorch on those targets is the reference."""
    g = _gen(11)
    logits = torch.randn(5, 4, generator=g, dtype=dtype) * 3
    t = (torch.rand(5, 4, generator=g) < 0.5).to(dtype)
    smoothed = t * (1 - smoothing) + 0.5 * smoothing
    x = torch.sigmoid(logits) if name == "binary_cross_entropy" else logits
    peer = getattr(F, name)
    for reduction in REDUCTIONS:
        assert_parity(lambda v, r=reduction: getattr(ll, name)(v, t, label_smoothing=smoothing, reduction=r),
                      lambda v, r=reduction: peer(v, smoothed, reduction=r), [x], dtype)
    numpy_value = getattr(ll, name)(x.detach().numpy(), t.numpy(), label_smoothing=smoothing)  # the NumPy fast path
    assert float(numpy_value) == pytest.approx(float(peer(x.detach(), smoothed)), rel=1e-5)


def test_binary_label_smoothing_matches_keras_formula_with_pos_weight():
    x, t = np.array([2.0, -1.0, 0.5]), np.array([1.0, 0.0, 1.0])
    ls, w = 0.2, np.array([3.0])
    s = t * (1 - ls) + ls / 2
    want = np.mean(w * s * np.log1p(np.exp(-x)) + (1 - s) * np.log1p(np.exp(x)))
    assert ll.binary_cross_entropy_with_logits(x, t, label_smoothing=ls, pos_weight=w) == pytest.approx(want, rel=1e-12)
    with pytest.raises(ValueError, match=r"label_smoothing must be a finite number in \[0, 1\]"):
        ll.binary_cross_entropy(np.array([0.5]), np.array([1.0]), label_smoothing=1.5)


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="targets must only contain"):
        ll.soft_margin(np.zeros(3), np.array([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="targets must be >= 0"):
        ll.poisson_nll(np.zeros(2), np.array([1.0, -1.0]))
    with pytest.raises(ValueError, match="predictions must be >"):
        ll.poisson_nll(np.array([-0.5, 1.0]), np.ones(2), log_input=False)
    with pytest.raises(TypeError, match="targets must be integer class indices"):
        ll.multilabel_margin(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"targets must lie in \[-1, 2\]"):
        ll.multilabel_margin(np.zeros((2, 3)), np.array([[0, 3, -1], [1, -1, 0]]))
    with pytest.raises(ValueError, match="targets must have shape"):
        ll.cosine_embedding(np.zeros((3, 2)), np.ones((3, 2)), np.ones(2))
    with pytest.raises(ValueError, match=r"margin must be a finite number in \[-1, 1\]"):
        ll.cosine_embedding(np.zeros((3, 2)), np.ones((3, 2)), np.ones(3), margin=2.0)
    assert math.isnan(float(ll.margin_ranking(np.array([np.nan]), np.array([0.0]), np.array([1.0]))))
