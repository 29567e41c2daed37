"""Nothing silent, nothing bare: the careless or hostile calls of the trust issue, each with the answer a
user can rely on (the right value, NaN where a NaN went in, or a clear TypeError/ValueError naming the
argument)."""

from __future__ import annotations

import warnings

import jax.numpy as jnp
import numpy as np
import pytest
import torch

import losslab as ll

INF, NAN = float("inf"), float("nan")
MASKED = [[2.0, 1.0, -INF, 0.5], [0.3, -INF, -INF, 1.0]]


def _on(backend, a, dtype=None):
    if backend == "torch":
        return torch.tensor(a, dtype=dtype)
    if backend == "jax":
        return jnp.asarray(a)
    return np.asarray(a)


@pytest.mark.parametrize("reference", [False, True])
@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_masked_logits_match_pytorch(backend, reference):
    """-inf logits that are not the target's (invalid actions, constrained vocabularies): PyTorch's value
    and gradient on every engine, the reference path included."""
    z, y = torch.tensor(MASKED, dtype=torch.float64, requires_grad=True), torch.tensor([0, 3])
    expected = torch.nn.functional.cross_entropy(z, y)
    expected.backward()
    with ll.reference_path() if reference else warnings.catch_warnings():
        value, grad = ll.cross_entropy.value_and_grad(_on(backend, MASKED), _on(backend, [0, 3]))
        plain = ll.cross_entropy(_on(backend, MASKED), _on(backend, [0, 3]))
    np.testing.assert_allclose(float(value), expected.item(), rtol=1e-6)
    np.testing.assert_allclose(float(plain), expected.item(), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(grad), z.grad.numpy(), rtol=1e-5, atol=1e-7)
    # nll on log-probabilities with a -inf that is not the target's
    lp = [[-0.5, -1.0, -INF], [-0.2, -INF, -2.0]]
    np.testing.assert_allclose(float(ll.nll(_on(backend, lp), _on(backend, [0, 2]))), 1.25)


def test_nan_reaches_value_and_gradient_of_the_margin_losses():
    h = ll.hinge([NAN, 0.5], [1.0, -1.0], reduction="none")
    assert np.isnan(h[0]) and h[1] == 1.5
    assert np.isnan(ll.hinge.grad([NAN, 0.5], [1.0, -1.0])[0])
    assert np.isnan(ll.squared_hinge([NAN, 0.5], [1.0, -1.0], reduction="none")[0])
    scores = np.array([[NAN, 1.0, 0.0], [0.0, 1.0, 2.0]])
    per_row = ll.multiclass_hinge(scores, np.array([1, 0]), reduction="none")
    assert np.isnan(per_row[0]) and np.isfinite(per_row[1])  # PyTorch skips the NaN term: a documented difference
    g = ll.multiclass_hinge.grad(scores, np.array([1, 0]))
    assert np.isnan(g[0, :2]).all() and g[0, 2] == 0.0  # the NaN score's and the target's; h_2 holds no NaN
    assert ll.multiclass_hinge(np.array([[INF, 1.0, 0.0]]), np.array([1])) == INF  # the right limit
    a, p, n = np.array([[NAN, 0.0]]), np.array([[1.0, 0.0]]), np.array([[2.0, 0.0]])
    assert np.isnan(ll.triplet_margin(a, p, n))
    assert all(np.isnan(g).all() for g in ll.triplet_margin.grad(a, p, n))


@pytest.mark.parametrize("same", [np.array(["1", "0"]), np.array([1 + 1j, 0])])
def test_contrastive_refuses_labels_that_are_not_numbers(same):
    with pytest.raises(TypeError, match="same must "):
        ll.contrastive(np.ones((2, 2)), np.zeros((2, 2)), same)


def test_finite_huge_inputs_give_the_finite_answer():
    # d = 2e154, d^2 overflows; a dissimilar pair that far apart costs exactly 0
    assert ll.contrastive(np.array([[1e154, 0.0]]), np.array([[-1e154, 0.0]]), np.array([0.0])) == 0.0
    g = ll.contrastive.grad(np.array([[1e154, 0.0]]), np.array([[-1e154, 0.0]]), np.array([0.0]))
    assert all(np.isfinite(v).all() for v in g)


def test_list_targets_keep_float64_predictions_precision():
    out = ll.mse(torch.tensor([0.1], dtype=torch.float64), [0.1000000001], reduction="none")
    np.testing.assert_allclose(out.item(), 1e-20, rtol=1e-6)


BAD_OPTIONS = [
    (ll.mse, {"normalizer": "4"}, TypeError, "normalizer must be a number"),
    (ll.mse, {"normalizer": [4.0]}, TypeError, "normalizer must be a number"),
    (ll.mse, {"normalizer": np.array([4.0, 1.0])}, TypeError, "normalizer must be a number"),
    (ll.huber, {"delta": 10**400}, ValueError, r"delta must be a finite number in \(0, inf\), got 1000"),
    (ll.huber, {"delta": "1"}, TypeError, "delta must be a finite number"),
    (ll.huber, {"delta": 1 + 2j}, TypeError, "delta must be a finite number"),
    (ll.huber, {"delta": np.array([0.5])}, TypeError, "0-d array"),
    (ll.quantile, {"q": True}, TypeError, "q must be"),
]


@pytest.mark.parametrize("method", ["__call__", "grad", "value_and_grad"])
@pytest.mark.parametrize(("fn", "options", "error", "match"), BAD_OPTIONS, ids=[str(o) for _, o, _, _ in BAD_OPTIONS])
def test_options_of_the_wrong_kind_are_refused_by_every_method(fn, options, error, match, method):
    call = fn if method == "__call__" else getattr(fn, method)
    with pytest.raises(error, match=match):
        call([1.0, 2.0], [0.0, 0.5], **options)


def test_a_400_digit_option_is_shown_short():
    with pytest.raises(ValueError, match="delta must be") as err:
        ll.huber([1.0], [0.0], delta=10**400)
    assert len(str(err.value)) < 200


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_ignore_index_beyond_int64_is_refused_on_every_backend(backend):
    with pytest.raises(ValueError, match=r"ignore_index must be an int in \[-9223372036854775808"):
        ll.cross_entropy(_on(backend, np.zeros((2, 3))), _on(backend, [0, 1]), ignore_index=10**30)


@pytest.mark.parametrize("option", [np.float32(0.5), np.array(0.5), torch.tensor(0.5), jnp.asarray(0.5)],
                         ids=["numpy-scalar", "numpy-0d", "torch-0d", "jax-0d"])
@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_scalars_and_0d_arrays_of_any_backend_are_options(option, backend):
    x, t = _on(backend, [1.0, 2.0]), _on(backend, [0.0, 0.0])
    np.testing.assert_allclose(float(ll.huber(x, t, delta=option)), 0.625)
    np.testing.assert_allclose(np.asarray(ll.huber.grad(x, t, delta=option)), [0.25, 0.25])
    np.testing.assert_allclose(float(ll.mse(x, t, normalizer=option)), 10.0)


def test_a_torch_option_that_requires_grad_is_differentiated():
    delta = torch.tensor(0.5, requires_grad=True)
    ll.huber(torch.tensor([1.0, 2.0]), torch.zeros(2), delta=delta).backward()
    np.testing.assert_allclose(delta.grad.item(), 1.0)  # d/d delta of delta (|e| - delta / 2), averaged


def test_mixed_float_precisions_are_promoted_on_torch():
    out = ll.info_nce(torch.randn(3, 2), torch.randn(3, 2, dtype=torch.float64))
    assert out.dtype == torch.float64


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_empty_inputs_get_a_clear_error_or_the_empty_answer(backend):
    with pytest.raises(ValueError, match="no pairs"):
        ll.info_nce(_on(backend, np.zeros((0, 2))), _on(backend, np.zeros((0, 2))))
    with pytest.raises(ValueError, match="no pairs"):
        ll.siglip(_on(backend, np.zeros((0, 2))), _on(backend, np.zeros((0, 2))))
    for loss, targets in [(ll.multiclass_hinge, [0, 0]), (ll.cross_entropy, [0, -100]), (ll.nll, [-100, -100]),
                          (ll.cross_entropy, np.zeros((2, 0))), (ll.multilabel_soft_margin, np.zeros((2, 0))),
                          (ll.multilabel_margin, np.zeros((2, 0), int))]:  # (a 0/0 or an index into nothing before)
        for call in (loss, loss.value_and_grad):
            with pytest.raises(ValueError, match=r"of shape \(2, 0\) have no classes \(C = 0"):
                call(_on(backend, np.zeros((2, 0))), _on(backend, targets))
    assert float(ll.mse(_on(backend, np.zeros(0)), _on(backend, np.zeros(0)))) == 0.0  # a mean over nothing is 0


def test_ragged_and_misshapen_targets_are_named():
    with pytest.raises(TypeError, match="targets"):
        ll.mse([1.0, 2.0], [[0.0], [0.0, 1.0]])
    with pytest.raises(TypeError, match="predictions"):
        ll.mse([[1.0], [2.0, 3.0]], [0.0, 1.0])
    with pytest.raises(TypeError, match=r"probability targets must have the shape of logits, \(2, 3\)"):
        ll.cross_entropy(np.zeros((2, 3)), np.zeros(2))


def test_valid_unusual_calls_keep_working():
    x = np.arange(12.0).reshape(3, 4)[:, ::2]  # non-contiguous
    x.flags.writeable = False
    assert np.isfinite(ll.mse(x, np.zeros_like(x)))
    z = torch.randn(4, 3, dtype=torch.bfloat16)
    assert torch.isfinite(ll.cross_entropy(z, torch.tensor([0, 1, 2, 0], dtype=torch.uint8)))
    assert np.isfinite(ll.cross_entropy(np.random.randn(3, 4), np.array([0, -100, 2])))
