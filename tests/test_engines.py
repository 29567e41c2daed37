"""Every engine held to the reference on the whole case table, and the definitions' own contract.

The torch engine has two ways to compute a call: the NumPy engine on zero-copy views (CPU float32/64,
covered by every torch test of the suite) and the definitions in torch operations (CUDA, fp16/bf16).
Here the second is forced on CPU tensors so that it, too, meets every case.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import losslab as ll  # noqa: E402
from cases import CASES, convert_case  # noqa: E402
from losslab.definitions import pointwise  # noqa: E402
from losslab.torch import _function  # noqa: E402


def _tuple(g):
    return g if isinstance(g, tuple) else (g,)


@pytest.fixture
def torch_operations(monkeypatch):
    """The torch engine without the NumPy views: the definitions evaluated in torch operations."""
    monkeypatch.setattr(_function, "_numpy_views", lambda *args: None)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_torch_operations_engine_equals_the_reference(case, torch_operations):
    args, options = convert_case(case, "torch")
    for reduction in case.reductions:
        value, grads = case.fn.value_and_grad(*args, **options, reduction=reduction)
        with ll.reference_path():
            ref_value, ref_grads = case.fn.value_and_grad(*args, **options, reduction=reduction)
        np.testing.assert_allclose(value.numpy(), ref_value.numpy(), rtol=1e-12, atol=1e-13)
        for g, r in zip(_tuple(grads), _tuple(ref_grads)):
            np.testing.assert_allclose(g.numpy(), r.numpy(), rtol=1e-12, atol=1e-13)
    # through autograd: the fused function, a random upstream gradient
    inputs = [a.clone().requires_grad_(True) for a in case.inputs_of(args)]
    value = case.fn(*case.call_with(inputs, args), **options)
    assert type(value.grad_fn).__name__ == "LosslabFusedFunctionBackward"
    (value * 1.7).backward()
    for x, r in zip(inputs, _tuple(case.fn.grad(*args, **options))):
        np.testing.assert_allclose(x.grad.numpy(), 1.7 * r.numpy(), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("name", sorted(pointwise.DEFINITIONS))
def test_each_definitions_value_and_grad_equals_its_parts(name):
    definition = pointwise.DEFINITIONS[name]
    rng = np.random.default_rng(3)
    x = rng.normal(size=200) * 3
    t = {"binary_cross_entropy": rng.uniform(size=200), "binary_cross_entropy_with_logits": rng.uniform(size=200),
         "focal": rng.uniform(size=200), "hinge": np.sign(rng.normal(size=200)),
         "squared_hinge": np.sign(rng.normal(size=200))}.get(name, rng.normal(size=200))
    if name == "binary_cross_entropy":
        x = rng.uniform(0.01, 0.99, size=200)
    if name in ("poisson_deviance", "gamma_deviance", "tweedie_deviance", "msle"):  # positive means and targets
        x, t = rng.uniform(0.2, 5.0, size=200), rng.uniform(0.2, 5.0, size=200)
    options = {"delta": 0.7, "beta": 0.5, "q": 0.3, "margin": 1.0, "pos_weight": None, "alpha": 0.25, "gamma": 2.0,
               "power": 1.5, "log_input": True, "full": True, "eps": 1e-8}
    options = {k: options[k] for k in definition.options}
    value, grad = definition.value_and_grad(np, x, t, **options)
    np.testing.assert_array_equal(value, definition.value(np, x, t, **options))
    np.testing.assert_array_equal(grad, definition.grad(np, x, t, **options))
    h = 1e-6  # and the gradient is the derivative of the value (away from kinks: checked where smooth)
    numeric = (definition.value(np, x + h, t, **options) - definition.value(np, x - h, t, **options)) / (2 * h)
    smooth = np.abs(numeric - grad) < 1e-3 * (1 + np.abs(grad))
    assert smooth.mean() > 0.95


def test_a_second_backward_and_create_graph_recompute_the_gradient():
    x = torch.randn(50, dtype=torch.float64, requires_grad=True)
    t = torch.randn(50, dtype=torch.float64)
    loss = ll.log_cosh(x, t)
    (g1,) = torch.autograd.grad(loss, x, retain_graph=True)
    (g2,) = torch.autograd.grad(loss, x, retain_graph=True)  # the kept gradient is gone: recomputed, same
    torch.testing.assert_close(g1, g2)
    (g,) = torch.autograd.grad(ll.log_cosh(x, t), x, create_graph=True)
    (hvp,) = torch.autograd.grad(g.sum(), x)  # d/dx sum(tanh(x - t) / N) = (1 - tanh^2) / N
    torch.testing.assert_close(hvp, (1 - torch.tanh(x - t) ** 2) / 50)


def test_cpu_tensors_are_computed_on_zero_copy_views():
    x = torch.randn(4096, requires_grad=True)
    t = torch.randn(4096)
    loss = ll.mse(x, t)
    assert type(loss.grad_fn).__name__ == "LosslabFusedFunctionBackward"
    loss.backward()
    torch.testing.assert_close(x.grad, 2 * (x.detach() - t) / 4096)
    value, grad = ll.mse.value_and_grad(x.detach(), t)
    assert isinstance(grad, torch.Tensor) and grad.dtype == torch.float32 and value.dtype == torch.float32


def test_a_tensor_normalizer_on_the_fused_path_and_in_a_second_backward():
    x = torch.randn(6, dtype=torch.float64, requires_grad=True)
    t = torch.randn(6, dtype=torch.float64)
    k = torch.tensor(4.0, dtype=torch.float64, requires_grad=True)  # a count that stays a tensor
    loss = ll.huber(x, t, normalizer=k)
    assert type(loss.grad_fn).__name__ == "LosslabFusedFunctionBackward"
    (g,) = torch.autograd.grad(loss, x, create_graph=True)  # the second-order path rebuilds the call
    with ll.reference_path():
        want = ll.huber.grad(x.detach(), t, normalizer=4.0)
    torch.testing.assert_close(g, want)
    (hvp,) = torch.autograd.grad(g.sum(), x)
    torch.testing.assert_close(hvp, ((x - t).abs() <= 1.0).double() / 4.0)


def test_the_graph_keeps_no_input_after_backward():
    import gc
    import weakref

    x = torch.randn(100, requires_grad=True)
    t = torch.randn(100)
    kept = weakref.ref(t)
    loss = ll.mse(x, t)
    loss.backward()
    del t
    gc.collect()
    assert kept() is None  # loss (and its grad_fn) alive, the targets freed
