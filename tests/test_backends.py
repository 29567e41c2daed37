"""Backends and transforms: torch autograd == .grad (for any upstream gradient), jax.grad /
jit / vmap / hessian, torch.compile, fp16/bf16 -> fp32, and CUDA when present."""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import losslab as ll
from cases import CASES, convert_case
from conftest import to_numpy

FIRST_CASE = {}
for _c in CASES:
    FIRST_CASE.setdefault(_c.loss, _c)
ONE_PER_LOSS = list(FIRST_CASE.values())
# Losses with a test module of their own that checks each option set against its reference (JAX included, but for
# the PyTorch ones, whose analytic gradient is the same code on every backend): the JAX-heavy tests here take one
# case each, since JAX compiles every new shape and program (1-4 s a case) and the suite has a time budget
OWN_JAX_TESTS = {"soft_margin", "hinge_embedding", "margin_ranking", "cosine_embedding", "multilabel_soft_margin",
                 "multilabel_margin", "poisson_nll", "gaussian_nll", "triplet_margin_with_distance",  # test_torch_rest.py
                 "dpo", "simpo", "orpo", "distill_kl", "jsd",  # tests/test_post_training.py
                 "ctc",  # tests/test_ctc.py
                 "dice", "jaccard", "tversky", "focal_tversky", "lovasz_softmax", "lovasz_hinge",  # test_segmentation.py
                 "arcface", "cosface", "ntxent", "supcon"}  # tests/test_metric_learning.py
JAX_CASES = [c for c in CASES if c.loss not in OWN_JAX_TESTS or c is FIRST_CASE[c.loss]]


def _tuple(g):
    return g if isinstance(g, tuple) else (g,)


@pytest.mark.parametrize("case", JAX_CASES, ids=[c.id for c in JAX_CASES])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_torch_backward_equals_grad_and_jax_vjp(case, reduction):
    """backward() with a random upstream gradient equals JAX's autodiff of the same forward."""
    args, options = convert_case(case, "torch")
    inputs = [a.clone().requires_grad_(True) for a in case.inputs_of(args)]
    value = case.fn(*case.call_with(inputs, args), **options, reduction=reduction)
    assert value.grad_fn is not None and "Losslab" in type(value.grad_fn).__name__
    upstream = torch.rand(value.shape, dtype=value.dtype, generator=torch.Generator().manual_seed(1)) + 0.5
    value.backward(upstream)
    jargs, joptions = convert_case(case, "jax")
    f = lambda *xs: case.fn(*case.call_with(xs, jargs), **joptions, reduction=reduction)  # noqa: E731
    with ll.reference_path():  # JAX differentiates the formula itself (not losslab's JAX engine)
        _, vjp = jax.vjp(f, *case.inputs_of(jargs))
        expected = vjp(jnp.asarray(upstream.numpy()))
    for x, e in zip(inputs, expected):
        np.testing.assert_allclose(x.grad.numpy(), np.asarray(e), rtol=1e-9, atol=1e-12)
    if reduction == "mean":
        for x, g in zip(inputs, _tuple(case.fn.grad(*args, **options))):
            np.testing.assert_allclose(x.grad.numpy() / 1.0, to_numpy(g) * float(upstream), rtol=1e-9, atol=1e-12)


ENGINE_CASES = [("autodiff", c) for c in JAX_CASES] + [("jax-engine", c) for c in ONE_PER_LOSS]


@pytest.mark.parametrize(("engine", "case"), ENGINE_CASES, ids=[f"{e}-{c.id}" for e, c in ENGINE_CASES])
def test_jax_grad_and_jit_match_analytic(case, engine):
    """autodiff: jax.grad differentiates the formula (ll.reference_path()); jax-engine: jax.grad takes
    losslab's analytic gradient through its custom_jvp rule (losslab/_jax.py)."""
    args, options = convert_case(case, "jax")
    f = lambda *xs: case.fn(*case.call_with(xs, args), **options)  # noqa: E731
    with ll.reference_path() if engine == "autodiff" else contextlib.nullcontext():
        auto = jax.grad(f, argnums=tuple(range(case.n_inputs)))(*case.inputs_of(args))
        jaxpr = str(jax.make_jaxpr(f)(*case.inputs_of(args)))
    assert ("custom_jvp_call" in jaxpr) == (engine == "jax-engine")
    for a, b in zip(auto, _tuple(case.fn.grad(*args, **options))):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(jax.jit(f)(*case.inputs_of(args)), f(*case.inputs_of(args)), rtol=1e-12)


@pytest.mark.parametrize("case", ONE_PER_LOSS, ids=[c.id for c in ONE_PER_LOSS])
def test_jax_vmap_over_a_stack_of_problems(case):
    args, options = convert_case(case, "jax")
    n = len(args)
    shifted = [a * 0.9 if jnp.issubdtype(a.dtype, jnp.floating) and k in case.input_positions else a for k, a in enumerate(args)]
    stacked = [jnp.stack([a, b]) for a, b in zip(args, shifted)]
    out = jax.vmap(lambda *xs: case.fn(*xs, **options), in_axes=(0,) * n)(*stacked)
    np.testing.assert_allclose(out, [case.fn(*args, **options), case.fn(*shifted, **options)], rtol=1e-10)


HESSIAN_CASES = [c for c in ONE_PER_LOSS if c.fn.spec.has_hessian and c.loss not in ("cross_entropy", "nll")]


@pytest.mark.parametrize("case", HESSIAN_CASES, ids=[c.id for c in HESSIAN_CASES])
def test_jax_hessian_equals_analytic_hessian(case):
    args, options = convert_case(case, "jax")
    f = lambda x: case.fn(x, *args[1:], **options, reduction="sum")  # noqa: E731
    full = jax.hessian(f)(args[0]).reshape(args[0].size, args[0].size)
    np.testing.assert_allclose(np.diag(full).reshape(args[0].shape), case.fn.hessian(*args, **options, reduction="sum"), rtol=1e-8, atol=1e-12)
    assert np.allclose(full - np.diag(np.diag(full)), 0)  # elementwise: the Hessian is diagonal


def test_jax_engine_differentiates_targets_and_options_by_autodiff():
    """Tangents for anything but the loss's inputs fall back to JAX's autodiff of the formula."""
    x, t = jnp.array([0.5, -1.0, 2.0]), jnp.array([0.0, 1.0, 1.5])
    np.testing.assert_allclose(jax.grad(lambda v: ll.mse(x, v))(t), -2.0 * (x - t) / 3, rtol=1e-12)
    both = jax.grad(lambda a, b: ll.huber(a, b, delta=0.5), argnums=(0, 1))(x, t)
    np.testing.assert_allclose(both[0], -both[1], rtol=1e-12)
    with ll.reference_path():
        expected = jax.grad(lambda d: ll.huber(x, t, delta=d))(0.5)
    np.testing.assert_allclose(jax.grad(lambda d: ll.huber(x, t, delta=d))(0.5), expected, rtol=1e-12)
    w = jnp.array([1.0, 2.0, 0.5])
    with ll.reference_path():
        expected_w = jax.grad(lambda v: ll.mse(x, t, weight=v))(w)
    np.testing.assert_allclose(jax.grad(lambda v: ll.mse(x, t, weight=v))(w), expected_w, rtol=1e-12)


def test_cross_entropy_hessian_equals_jax_hessian():
    z = jnp.asarray(np.random.default_rng(0).normal(size=(3, 4)))
    y = jnp.asarray([0, 3, 1])
    full = jax.hessian(lambda v: ll.cross_entropy(v, y, label_smoothing=0.1))(z)
    blocks = ll.cross_entropy.hessian(z, y, label_smoothing=0.1)
    for n in range(3):
        np.testing.assert_allclose(full[n, :, n, :], blocks[n], rtol=1e-9, atol=1e-12)


def test_jax_jacfwd_of_per_item_losses():
    x, t = jnp.array([0.5, -1.0, 2.0]), jnp.array([0.0, 0.0, 1.0])
    jac = jax.jacfwd(lambda v: ll.log_cosh(v, t, reduction="none"))(x)
    np.testing.assert_allclose(jac, np.diag(np.tanh(np.asarray(x - t))), rtol=1e-12)
    z, y = jnp.asarray(np.random.default_rng(2).normal(size=(3, 4))), jnp.array([1, 0, 3])
    jac_ce = jax.jacfwd(lambda v: ll.cross_entropy(v, y, reduction="none"))(z)  # (3, 3, 4): item n depends on row n only
    for n in range(3):
        np.testing.assert_allclose(jac_ce[n, n], ll.cross_entropy.grad(z, y, reduction="none")[n], rtol=1e-10)
        assert np.allclose(np.delete(np.asarray(jac_ce[n]), n, axis=0), 0)


def test_jax_traced_options_under_jit():
    p, t = jnp.array([0.5, 3.0]), jnp.array([0.0, 0.0])
    f = jax.jit(lambda d: ll.huber(p, t, delta=d))
    assert float(f(1.0)) == pytest.approx(float(ll.huber(p, t, delta=1.0)))
    f_beta = jax.jit(lambda b: ll.smooth_l1(p, t, beta=b))
    assert float(f_beta(0.0)) == pytest.approx(1.75)  # beta = 0 is L1, even when traced
    assert np.isfinite(jax.grad(lambda b: ll.smooth_l1(p, t, beta=b))(0.0))
    g = jax.grad(lambda gamma: ll.focal(jnp.array([0.3]), jnp.array([1.0]), gamma=gamma))(2.0)
    assert np.isfinite(g)


def test_torch_double_backward_gives_hessian():
    x = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    h = torch.autograd.functional.hessian(lambda v: ll.binary_cross_entropy_with_logits(v, t, reduction="sum"), x)
    np.testing.assert_allclose(torch.diagonal(h).numpy(), ll.binary_cross_entropy_with_logits.hessian(x.detach(), t, reduction="sum").numpy(), rtol=1e-10)


def test_targets_requiring_grad_fall_back_to_autodiff():
    p = torch.randn(5, dtype=torch.float64, requires_grad=True)
    t = torch.randn(5, dtype=torch.float64, requires_grad=True)
    ll.mse(p, t).backward()
    np.testing.assert_allclose(t.grad.numpy(), -p.grad.numpy())


@pytest.mark.slow
@pytest.mark.parametrize("case", ONE_PER_LOSS, ids=[c.id for c in ONE_PER_LOSS])
def test_torch_compile_fullgraph(case):
    torch._dynamo.reset()
    args, options = convert_case(case, "torch", "float32")
    inputs = [a.clone().requires_grad_(True) for a in case.inputs_of(args)]
    compiled = torch.compile(lambda *xs: case.fn(*xs, **options), backend="aot_eager", fullgraph=True)
    value = compiled(*case.call_with(inputs, args))
    value.backward()
    np.testing.assert_allclose(value.detach().numpy(), to_numpy(case.fn(*args, **options)), rtol=1e-5)
    for x, g in zip(inputs, _tuple(case.fn.grad(*args, **options))):
        np.testing.assert_allclose(x.grad.numpy(), to_numpy(g), rtol=1e-4, atol=1e-6)


_FIRST_CALL_COMPILED = """
import losslab as ll  # before torch: the torch engine is not loaded yet
import torch

x, t = torch.randn(8, 5, requires_grad=True), torch.randint(0, 5, (8,))
for loss in (ll.cross_entropy, lambda z, y: ll.mse(z, torch.nn.functional.one_hot(y, 5).float())):
    compiled = torch.compile(loss, backend="aot_eager", fullgraph=True)
    value = compiled(x, t)  # the first torch call of the process, inside the trace
    (grad,) = torch.autograd.grad(value, x)
    (eager,) = torch.autograd.grad(loss(x, t), x)
    torch.testing.assert_close(value, loss(x, t))
    torch.testing.assert_close(grad, eager)
print("ok")
"""


@pytest.mark.slow
def test_a_first_call_inside_torch_compile_when_losslab_came_before_torch():
    """The engines load on the first call of their array kind, with import statements, which torch.compile's
    tracer runs (importlib it refuses: fullgraph=True failed when losslab was imported before torch)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-W", "ignore", "-c", _FIRST_CALL_COMPILED], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


@pytest.mark.slow
def test_torch_compile_inductor_trains_a_model():
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    step = torch.compile(lambda: ll.cross_entropy(model(x), y, label_smoothing=0.1) + ll.mse(model(x), torch.zeros(16, 3)))
    step().backward()
    compiled_grad = model.weight.grad.clone()
    model.zero_grad()
    (torch.nn.functional.cross_entropy(model(x), y, label_smoothing=0.1) + torch.nn.functional.mse_loss(model(x), torch.zeros(16, 3))).backward()
    torch.testing.assert_close(compiled_grad, model.weight.grad, rtol=1e-4, atol=1e-6)


HALF = [("torch", "float16"), ("torch", "bfloat16"), ("jax", "float16"), ("jax", "bfloat16"), ("numpy", "float16")]


@pytest.mark.parametrize(("backend", "dtype"), HALF)
@pytest.mark.parametrize("case", ONE_PER_LOSS, ids=[c.id for c in ONE_PER_LOSS])
def test_half_precision_computes_in_float32(case, backend, dtype):
    args, options = convert_case(case, backend, dtype)
    value, grads = case.fn.value_and_grad(*args, **options)
    assert "float32" in str(value.dtype)
    for g, x in zip(_tuple(grads), args):
        assert g.dtype == x.dtype
    # the same rounded inputs in float64 give the same loss up to float32 rounding
    exact = case.fn(*[to_numpy(a).astype(np.float64) if to_numpy(a).dtype.kind == "f" else to_numpy(a) for a in args],
                    **{k: (to_numpy(v).astype(np.float64) if hasattr(v, "dtype") else v) for k, v in options.items()})
    np.testing.assert_allclose(float(to_numpy(value)), float(exact), rtol=2e-5, atol=1e-6)


def test_torch_half_backward_returns_half_gradients():
    x = torch.randn(8, 5, dtype=torch.bfloat16, requires_grad=True)
    y = torch.randint(0, 5, (8,))
    loss = ll.cross_entropy(x, y)
    assert loss.dtype == torch.float32
    loss.backward()
    assert x.grad.dtype == torch.bfloat16


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_tensors_stay_on_device_and_skip_value_checks():
    x = torch.randn(6, 5, device="cuda", requires_grad=True)
    y = torch.randint(0, 5, (6,), device="cuda")
    loss = ll.cross_entropy(x, y, weight=[1.0, 2.0, 1.0, 1.0, 0.5])
    loss.backward()
    ref = torch.nn.functional.cross_entropy(x, y, weight=torch.tensor([1.0, 2.0, 1.0, 1.0, 0.5], device="cuda"))
    assert loss.device.type == "cuda"
    torch.testing.assert_close(loss, ref)
    bad = torch.tensor([0, 9, 1, 2, 3, 4], device="cuda")
    ll.cross_entropy(x.detach(), torch.where(bad < 5, bad, 0))  # unchecked path runs without a sync
    with ll.strict_checks(), pytest.raises(ValueError, match="out of range"):
        ll.cross_entropy(x.detach(), bad)
