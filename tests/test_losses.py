"""Every loss and option set against its naive oracle (values, all reductions, all backends), and
its analytic gradient and Hessian against central finite differences in float64."""

from __future__ import annotations

import numpy as np
import pytest

from cases import CASES, convert_case
from conftest import to_numpy
from reference import oracle

CASE_REDUCTIONS = [(c, r) for c in CASES for r in c.reductions]


def expected_value(case, reduction):
    per_item, divisor = oracle(case)
    if reduction == "none":
        return per_item
    if reduction == "sum":
        return per_item.sum()
    if reduction == "batchmean":
        return per_item.sum() / (case.args[0].shape[0] if case.args[0].ndim else 1)
    return per_item.sum() / divisor if divisor != 0 else 0.0


@pytest.mark.parametrize(("case", "reduction"), CASE_REDUCTIONS, ids=[f"{c.id}-{r}" for c, r in CASE_REDUCTIONS])
def test_value_matches_naive_oracle(case, reduction, backend):
    args, options = convert_case(case, backend)
    value = case.fn(*args, **options, reduction=reduction)
    assert type(value).__module__.split(".")[0] == type(args[0]).__module__.split(".")[0] or backend == "numpy"
    np.testing.assert_allclose(to_numpy(value), expected_value(case, reduction), rtol=1e-10, atol=1e-12)


def _numeric_grads(case, reduction, h=1e-6):
    options = dict(case.options)

    def total(*inputs):
        v = case.fn(*case.call_with(inputs, case.args), **options, reduction=reduction)
        return float(np.sum(v))

    inputs = [np.array(a, dtype=np.float64) for a in case.inputs_of(case.args)]
    grads = []
    for k, x in enumerate(inputs):
        g = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            plus, minus = [a.copy() for a in inputs], [a.copy() for a in inputs]
            plus[k][idx] += h
            minus[k][idx] -= h
            g[idx] = (total(*plus) - total(*minus)) / (2 * h)
        grads.append(g)
    return grads


def _as_tuple(g):
    return g if isinstance(g, tuple) else (g,)


@pytest.mark.parametrize(("case", "reduction"), CASE_REDUCTIONS, ids=[f"{c.id}-{r}" for c, r in CASE_REDUCTIONS])
def test_grad_matches_finite_differences(case, reduction):
    analytic = _as_tuple(case.fn.grad(*case.args, **case.options, reduction=reduction))
    numeric = _numeric_grads(case, reduction)
    assert len(analytic) == case.n_inputs
    for a, n, x in zip(analytic, numeric, case.inputs_of(case.args)):
        assert a.shape == x.shape
        np.testing.assert_allclose(a, n, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_value_and_grad_is_value_plus_grad(case):
    value, grad = case.fn.value_and_grad(*case.args, **case.options)
    np.testing.assert_allclose(value, case.fn(*case.args, **case.options))
    for a, b in zip(_as_tuple(grad), _as_tuple(case.fn.grad(*case.args, **case.options))):
        np.testing.assert_allclose(a, b)


HESSIAN_CASES = [c for c in CASES if c.fn.spec.has_hessian]


@pytest.mark.parametrize("case", HESSIAN_CASES, ids=[c.id for c in HESSIAN_CASES])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_hessian_matches_finite_differences_of_grad(case, reduction):
    h = 1e-6
    x, rest = case.args[0], case.args[1:]
    hess = case.fn.hessian(x, *rest, **case.options, reduction=reduction)
    grad = lambda v: case.fn.grad(v, *rest, **case.options, reduction=reduction)  # noqa: E731
    if case.loss in ("cross_entropy", "nll"):
        # per-item C x C blocks: the class axis is 1 (0 unbatched); H[n, c, k, ...] = d g[n, c] / d x[n, k]
        numeric = np.zeros_like(hess)
        axis = 0 if x.ndim == 1 else 1
        for idx in np.ndindex(x.shape):
            step = np.zeros_like(x)
            step[idx] = h
            column = (grad(x + step) - grad(x - step)) / (2 * h)
            k = idx[axis]
            if x.ndim == 1:
                numeric[:, k] = column
            else:
                item = (idx[0], slice(None), k, *idx[2:])
                numeric[item] = column[(idx[0], slice(None), *idx[2:])]
    else:
        numeric = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            step = np.zeros_like(x)
            step[idx] = h
            numeric[idx] = ((grad(x + step) - grad(x - step)) / (2 * h))[idx]
    np.testing.assert_allclose(hess, numeric, rtol=1e-5, atol=1e-6)


def test_every_loss_has_cases():
    import losslab as ll

    assert {c.loss for c in CASES} == {s.name for s in ll.losses()}
