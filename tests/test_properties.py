"""Hypothesis properties: finite outputs, lower bounds, zero at a perfect prediction, how weights
and normalizer scale, and NumPy / PyTorch / JAX agreement."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import losslab as ll
from cases import CASES, convert_case
from conftest import to_numpy

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
prob = st.floats(0.0, 1.0)
SETTINGS = settings(max_examples=60, deadline=None)


def vec(elements):
    return st.integers(1, 12).flatmap(lambda k: arrays(np.float64, (k,), elements=elements))


def pair(elements_a, elements_b):
    return st.integers(1, 12).flatmap(
        lambda k: st.tuples(arrays(np.float64, (k,), elements=elements_a), arrays(np.float64, (k,), elements=elements_b)))


REGRESSION = [ll.mse, ll.mae, ll.huber, ll.smooth_l1, ll.log_cosh, ll.quantile]


@pytest.mark.parametrize("loss", REGRESSION, ids=lambda f: f.name)
@SETTINGS
@given(pt=pair(finite, finite))
def test_regression_finite_nonnegative_and_zero_at_target(loss, pt):
    p, t = pt
    value, grad = loss.value_and_grad(p, t)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    assert value >= loss.spec.lower_bound
    v0, g0 = loss.value_and_grad(t, t)
    assert v0 == 0 and not np.any(g0)


@pytest.mark.parametrize("loss", [ll.binary_cross_entropy_with_logits, ll.focal], ids=lambda f: f.name)
@SETTINGS
@given(xt=pair(finite, prob))
def test_binary_logit_losses_finite_and_bounded(loss, xt):
    x, t = xt
    value, grad = loss.value_and_grad(x, t)
    assert np.isfinite(value) and np.all(np.isfinite(grad)) and value >= 0
    assert np.all(np.isfinite(loss.hessian(x, t)))


@SETTINGS
@given(pt=pair(prob, prob))
def test_bce_on_probabilities_finite_and_zero_when_certain_and_right(pt):
    p, t = pt
    value, grad = ll.binary_cross_entropy.value_and_grad(p, t)
    assert np.isfinite(value) and np.all(np.isfinite(grad)) and value >= 0
    hard = np.round(t)
    v0, g0 = ll.binary_cross_entropy.value_and_grad(hard, hard)
    assert v0 == 0 and not np.any(g0)


@SETTINGS
@given(data=st.data(), n=st.integers(1, 6), c=st.integers(1, 6), smoothing=st.floats(0, 1))
def test_cross_entropy_finite_nonnegative_grad_rows_sum_to_zero(data, n, c, smoothing):
    z = data.draw(arrays(np.float64, (n, c), elements=finite))
    y = data.draw(arrays(np.int64, (n,), elements=st.integers(0, c - 1)))
    value, grad = ll.cross_entropy.value_and_grad(z, y, label_smoothing=smoothing)
    assert np.isfinite(value) and value >= 0 and np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad.sum(axis=1), 0, atol=1e-9)  # softmax shift invariance


@pytest.mark.parametrize("loss", [ll.hinge, ll.squared_hinge], ids=lambda f: f.name)
@SETTINGS
@given(data=st.data(), margin=st.floats(-3, 3))
def test_hinge_zero_beyond_the_margin(loss, data, margin):
    s = data.draw(vec(st.floats(0, 1e6)))
    y = data.draw(arrays(np.float64, s.shape, elements=st.sampled_from([-1.0, 1.0])))
    scores = y * (abs(margin) + s)  # t * s >= margin everywhere
    value, grad = loss.value_and_grad(scores, y, margin=margin)
    assert value == 0 and not np.any(grad)


@pytest.mark.parametrize("loss", REGRESSION[:2], ids=lambda f: f.name)
@SETTINGS
@given(pt=pair(st.floats(-100, 100), st.floats(-100, 100)), c=st.floats(0.01, 100), data=st.data())
def test_weights_and_normalizer_scale_as_documented(loss, pt, c, data):
    p, t = pt
    w = data.draw(arrays(np.float64, p.shape, elements=st.floats(0.1, 10)))
    unweighted = loss(p, t, reduction="sum")
    np.testing.assert_allclose(loss(p, t, weight=np.full(p.shape, c), reduction="sum"), c * unweighted, rtol=1e-9, atol=1e-9)
    # a sample-weighted mean does not change when every weight is scaled
    np.testing.assert_allclose(loss(p, t, weight=c * w), loss(p, t, weight=w), rtol=1e-9, atol=1e-12)
    # normalizer=K divides the (weighted) sum by K, value and gradient
    k = data.draw(st.floats(0.5, 50))
    np.testing.assert_allclose(loss(p, t, weight=w, normalizer=k), loss(p, t, weight=w, reduction="sum") / k, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(loss.grad(p, t, normalizer=k), loss.grad(p, t, reduction="sum") / k, rtol=1e-9, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), case_index=st.integers(0, len(CASES) - 1), reduction=st.sampled_from(["mean", "sum", "none"]))
def test_numpy_torch_and_jax_agree(seed, case_index, reduction):
    case = CASES[case_index]
    rng = np.random.default_rng(seed)
    jitter = [a * rng.uniform(0.8, 1.0) if a.dtype.kind == "f" and k in case.input_positions else a for k, a in enumerate(case.args)]
    case = type(case)(case.loss, tuple(jitter), case.options)
    results = []
    for backend in ("numpy", "torch", "jax"):
        args, options = convert_case(case, backend)
        value, grad = case.fn.value_and_grad(*args, **options, reduction=reduction)
        results.append((to_numpy(value), [to_numpy(g) for g in (grad if isinstance(grad, tuple) else (grad,))]))
    for value, grads in results[1:]:
        np.testing.assert_allclose(value, results[0][0], rtol=1e-10, atol=1e-12)
        for g, g0 in zip(grads, results[0][1]):
            np.testing.assert_allclose(g, g0, rtol=1e-10, atol=1e-12)
