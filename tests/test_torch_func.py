"""torch.func transforms (grad, vmap, jacrev, hessian) of ll.<loss> on torch tensors: inside a transform the torch
engine steps aside and the reference path runs in torch operations, which the transform differentiates and batches
(value checks are skipped there, as under jax.jit: a batched tensor has no single value to check)."""

import pytest

torch = pytest.importorskip("torch")

import losslab as ll  # noqa: E402
from cases import CASES, convert  # noqa: E402


def _torch_case(case):
    args = [convert(a, "torch", "float64") for a in case.args]
    options = {k: convert(v, "torch", "float64") for k, v in case.options.items()}
    return args, options


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_func_grad_is_the_analytic_gradient(case):
    args, options = _torch_case(case)
    fn, positions = case.fn, case.input_positions

    def loss_of(*inputs):
        call = list(args)
        for k, x in zip(positions, inputs):
            call[k] = x
        return fn(*call, **options)

    grads = torch.func.grad(loss_of, argnums=tuple(range(len(positions))))(*(args[k] for k in positions))
    expected = fn.grad(*args, **options)
    expected = expected if isinstance(expected, tuple) else (expected,)
    for g, e in zip(grads, expected):
        torch.testing.assert_close(g, e, rtol=1e-7, atol=1e-9)


def test_vmap_batches_calls_and_their_gradients():
    g = torch.Generator().manual_seed(0)
    x, t = torch.randn(3, 7, generator=g, dtype=torch.float64), torch.randn(3, 7, generator=g, dtype=torch.float64)
    signs = torch.where(torch.randn(3, 7, generator=g) > 0, 1.0, -1.0).double()
    per_row = torch.func.vmap(lambda a, b: ll.huber(a, b, delta=0.5))(x, t)
    torch.testing.assert_close(per_row, ll.huber(x, t, delta=0.5, reduction="none").mean(-1))
    # a loss with a value check (targets in {-1, +1}) still runs: the check is skipped inside the transform
    torch.testing.assert_close(torch.func.vmap(ll.hinge)(x, signs), ll.hinge(x, signs, reduction="none").mean(-1))
    grads = torch.func.vmap(torch.func.grad(ll.mse))(x, t)
    torch.testing.assert_close(grads, 2 * (x - t) / 7)


def test_hessian_and_jacrev():
    g = torch.Generator().manual_seed(1)
    logits, y = torch.randn(4, 5, generator=g, dtype=torch.float64), torch.tensor([0, 4, 2, 1])
    torch.testing.assert_close(torch.func.jacrev(lambda z: ll.cross_entropy(z, y))(logits), ll.cross_entropy.grad(logits, y))
    x, t = torch.randn(6, generator=g, dtype=torch.float64), torch.randn(6, generator=g, dtype=torch.float64)
    torch.testing.assert_close(torch.func.hessian(lambda a: ll.mse(a, t))(x), torch.eye(6, dtype=torch.float64) * 2 / 6)


def test_outside_a_transform_the_fused_engine_runs_again():
    x, t = torch.randn(5, requires_grad=True), torch.randn(5)
    torch.func.grad(ll.mse)(x.detach(), t)
    assert type(ll.mse(x, t).grad_fn).__name__ == "LosslabFusedFunctionBackward"
