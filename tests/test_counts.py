"""The regression losses for counts and positive targets against scikit-learn, their independent
reference: mean_poisson_deviance, mean_gamma_deviance, mean_tweedie_deviance (every power family),
mean_squared_log_error and mean_absolute_percentage_error, with and without sample weights, on every
backend; their domains refused as scikit-learn refuses them; gradients by finite differences."""

from __future__ import annotations

import numpy as np
import pytest

import losslab as ll

sklearn_metrics = pytest.importorskip("sklearn.metrics")

RNG = np.random.default_rng(11)
N = 64
MEAN = RNG.uniform(0.05, 9.0, N)  # predicted means, > 0
COUNTS = RNG.poisson(2.5, N).astype(float)  # zeros included
POSITIVE = RNG.gamma(2.0, 2.0, N)
REAL = RNG.normal(0.0, 3.0, N)
WEIGHT = RNG.uniform(0.1, 3.0, N)

CASES = [  # (loss, options, predictions, targets, scikit-learn's function and its keyword arguments)
    ("poisson_deviance", {}, MEAN, COUNTS, "mean_poisson_deviance", {}),
    ("gamma_deviance", {}, MEAN, POSITIVE, "mean_gamma_deviance", {}),
    *[("tweedie_deviance", {"power": p}, MEAN, t, "mean_tweedie_deviance", {"power": p})
      for p, t in ((-1.5, REAL), (0.0, REAL), (1.0, COUNTS), (1.2, COUNTS), (1.5, COUNTS), (1.9, COUNTS), (2.0, POSITIVE),
                   (2.5, POSITIVE), (3.0, POSITIVE))],
    ("msle", {}, MEAN - 0.9, COUNTS, "mean_squared_log_error", {}),
    ("mape", {}, REAL, np.r_[REAL[:-3] + 1.0, 0.0, 1e-20, -4.0], "mean_absolute_percentage_error", {}),
]
IDS = [f"{c[0]}{c[1].get('power', '')}" for c in CASES]


@pytest.mark.parametrize(("name", "options", "x", "t", "reference", "kw"), CASES, ids=IDS)
@pytest.mark.parametrize("weighted", [False, True])
def test_equals_scikit_learn(name, options, x, t, reference, kw, weighted):
    weight = WEIGHT if weighted else None
    expected = getattr(sklearn_metrics, reference)(t, x, sample_weight=weight, **kw)
    for backend in ("numpy", "torch", "jax"):
        args = _to(backend, x, t) + ((_to(backend, weight)[0],) if weighted else ())
        value = ll.get_loss(name)(*args[:2], **options, **({"weight": args[2]} if weighted else {}))
        assert float(value) == pytest.approx(expected, rel=1e-12), backend


def _to(backend, *arrays):
    if backend == "torch":
        import torch

        return tuple(torch.tensor(a) for a in arrays)
    if backend == "jax":
        import jax.numpy as jnp

        return tuple(jnp.asarray(a) for a in arrays)
    return arrays


@pytest.mark.parametrize(("name", "options", "x", "t", "reference", "kw"), CASES, ids=IDS)
def test_gradient_and_hessian_are_the_derivatives(name, options, x, t, reference, kw):
    fn = ll.get_loss(name)
    keep = np.abs(x - t) > 1e-3  # away from MAPE's kink at p = t
    x, t = x[keep], t[keep]
    h = 1e-6 * np.maximum(1.0, np.abs(x))
    numeric = (fn(x + h, t, **options, reduction="none") - fn(x - h, t, **options, reduction="none")) / (2 * h)
    grad = fn.grad(x, t, **options, reduction="none")
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-6 * np.abs(grad).max())
    second = (fn.grad(x + h, t, **options, reduction="none") - fn.grad(x - h, t, **options, reduction="none")) / (2 * h)
    np.testing.assert_allclose(fn.hessian(x, t, **options, reduction="none"), second, rtol=1e-4,
                               atol=1e-5 * max(1.0, np.abs(second).max()))


@pytest.mark.parametrize(("call", "message"), [
    (lambda: ll.poisson_deviance([0.0, 1.0], [1.0, 1.0]), r"predictions must be > 0, got values \[0\]"),
    (lambda: ll.poisson_deviance([1.0, 1.0], [-1.0, 1.0]), r"targets must be >= 0, got values \[-1\]"),
    (lambda: ll.gamma_deviance([1.0, 1.0], [0.0, 1.0]), r"targets must be > 0, got values \[0\]"),
    (lambda: ll.tweedie_deviance([1.0], [1.0], power=0.5), r"power must be a finite number in \(-inf, 0\] or in \[1, inf\)"),
    (lambda: ll.tweedie_deviance([-1.0], [1.0], power=-1.0), r"predictions must be > 0"),
    (lambda: ll.tweedie_deviance([1.0], [-1.0], power=1.5), r"power 1.5 needs targets >= 0"),
    (lambda: ll.tweedie_deviance([1.0], [0.0], power=3.0), r"power 3 needs positive targets"),
    (lambda: ll.msle([-1.0, 0.0], [0.0, 0.0]), r"predictions must be > -1, got values \[-1\]"),
    (lambda: ll.msle([0.0], [-2.0]), r"targets must be > -1"),
])
def test_domains_are_refused_with_the_reason(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_tweedie_power_zero_accepts_any_real_and_equals_mse():
    x, t = np.array([-2.0, 0.5, 3.0]), np.array([1.0, -1.0, 3.5])
    assert float(ll.tweedie_deviance(x, t, power=0)) == pytest.approx(float(ll.mse(x, t)))


def test_a_nan_reaches_the_loss_and_gradient():
    x, t = np.array([1.0, np.nan, 2.0]), np.array([np.nan, 1.0, 2.0])
    for fn in (ll.poisson_deviance, ll.gamma_deviance, ll.tweedie_deviance, ll.msle, ll.mape):
        value, grad = fn.value_and_grad(x, t, reduction="none")
        assert np.isnan(value[:2]).all() and np.isnan(grad[:2]).all() and np.isfinite(value[2]), fn.name
