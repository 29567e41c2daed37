"""float16/bfloat16 CPU tensors: the torch engine runs the NumPy engine on float32 copies
(``losslab.torch._function.CPU_HALF_IN_NUMPY``), a block of rows at a time where the call splits into rows, else
the whole call. Held here: every case equals the definitions in torch operations (the path of CUDA tensors) and the
reference path, gradients come back in the inputs' dtypes, the NumPy engine really ran, blocks keep the float32
copies a block's size, and bad input gets the error it gets on any other path."""

import tracemalloc

import pytest

torch = pytest.importorskip("torch")

import losslab as ll  # noqa: E402
from cases import CASES  # noqa: E402
from losslab import _engines  # noqa: E402
from losslab._xp import overriding  # noqa: E402
from losslab.torch import _function  # noqa: E402
from test_row_blocks import SPLITTING, _peak_bytes, _torch_args  # noqa: E402

HALF = ["bfloat16", "float16"]
TOL = {"bfloat16": dict(rtol=2e-2, atol=2e-3), "float16": dict(rtol=2e-3, atol=2e-4)}


@pytest.fixture
def numpy_calls(monkeypatch):
    """The calls that reached the NumPy engine from the torch engine."""
    real, calls = _function._numpy_compute, []

    def counted(*args):
        calls.append(args[0].name)
        return real(*args)

    monkeypatch.setattr(_function, "_numpy_compute", counted)
    return calls


def _in_torch_ops(fn, *args, **kwargs):
    with overriding(_function, "CPU_HALF_IN_NUMPY", False):
        return fn(*args, **kwargs)


def _as_tuple(grads):
    return grads if isinstance(grads, tuple) else (grads,)


def _assert_same(value, grads, ref_value, ref_grads, tol):
    assert value.dtype == ref_value.dtype and value.shape == ref_value.shape
    torch.testing.assert_close(value, ref_value, **tol)
    for g, r in zip(_as_tuple(grads), _as_tuple(ref_grads)):
        assert g.dtype == r.dtype and g.shape == r.shape
        torch.testing.assert_close(g.float(), r.float(), **tol)


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_case_equals_the_definitions_in_torch_operations(case, dtype, numpy_calls):
    args, options = _torch_args(case, dtype)
    fn = case.fn
    for reduction in [r for r in case.reductions if r != "none"][:2]:
        numpy_calls.clear()
        value, grads = fn.value_and_grad(*args, **options, reduction=reduction)
        assert numpy_calls, "the NumPy engine did not run"
        ref_value, ref_grads = _in_torch_ops(fn.value_and_grad, *args, **options, reduction=reduction)
        _assert_same(value, grads, ref_value, ref_grads, TOL[dtype])
        for k, g in zip(case.input_positions, _as_tuple(grads)):
            assert g.dtype == args[k].dtype  # the gradient in its input's dtype
    if "none" in case.reductions:  # per-item values, no gradient
        items = fn(*args, **options, reduction="none")
        torch.testing.assert_close(items, _in_torch_ops(fn, *args, **options, reduction="none"), **TOL[dtype])


@pytest.mark.parametrize("case", SPLITTING, ids=[c.id for c in SPLITTING])
def test_row_blocks_of_the_numpy_engine_equal_the_reference_path(case, two_row_blocks, numpy_calls):
    args, options = _torch_args(case, "bfloat16")
    fn = case.fn
    calls = [("mean", None), ("sum", None), ("mean", 3.5)] + [("batchmean", None)] * ("batchmean" in case.reductions)
    for reduction, normalizer in calls:
        two_row_blocks.clear()
        numpy_calls.clear()
        value, grads = fn.value_and_grad(*args, **options, reduction=reduction, normalizer=normalizer)
        assert two_row_blocks == [True] and numpy_calls, (reduction, two_row_blocks, numpy_calls)
        with ll.reference_path():
            ref_value, ref_grads = fn.value_and_grad(*args, **options, reduction=reduction, normalizer=normalizer)
        _assert_same(value, grads, ref_value, ref_grads, TOL["bfloat16"])

    # through autograd, with an upstream gradient other than 1
    leaves = [a.detach().requires_grad_() if k in case.input_positions else a for k, a in enumerate(args)]
    (fn(*leaves, **options) * 2.5).backward()
    with ll.reference_path():
        _, ref_grads = fn.value_and_grad(*args, **options)
    for k, r in zip(case.input_positions, _as_tuple(ref_grads)):
        assert leaves[k].grad.dtype == torch.bfloat16
        torch.testing.assert_close(leaves[k].grad, 2.5 * r, **TOL["bfloat16"])


def _peak_of_both(step) -> int:
    """The peak bytes of torch's new tensors plus the peak of NumPy's buffers, each over one run of ``step``
    (tracemalloc sees NumPy's, not torch's; and it runs without the torch mode, whose own Python objects it would
    count): at least the true peak of the two together, at most twice it."""
    torch_peak = _peak_bytes(step)
    tracemalloc.start()
    try:
        step()
        return torch_peak + tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("name", ["cross_entropy", "multilabel_soft_margin", "mse"])
def test_the_float32_copies_are_a_block_s(name, monkeypatch):
    n, c = 512, 1000
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, generator=g, dtype=torch.bfloat16, requires_grad=True)
    other = {"cross_entropy": torch.softmax(torch.randn(n, c, generator=g), 1),
             "multilabel_soft_margin": (torch.rand(n, c, generator=g) > 0.5).float(),
             "mse": torch.randn(n, c, generator=g)}[name].to(torch.bfloat16)

    def ours():
        x.grad = None
        getattr(ll, name)(x, other).backward()

    ours()  # first-call work (imports, caches) is not the call's memory
    monkeypatch.setitem(_function.ROW_BLOCK_ELEMENTS, "cpu", n * c)  # one block: the whole call in float32
    one_pass = _peak_of_both(ours)
    monkeypatch.setitem(_function.ROW_BLOCK_ELEMENTS, "cpu", n * c // 16)
    blocked = _peak_of_both(ours)
    grad_bytes = n * c * 2
    # measured 6.0-7.5 and 1.6-1.9 bfloat16 gradients' worth (torch's F.cross_entropy: 3.0)
    assert one_pass >= 4 * grad_bytes, (one_pass, grad_bytes)  # the batch's float32 copies and float32 gradient
    assert blocked <= 2.25 * grad_bytes, (blocked, grad_bytes)  # the gradient, and one block's copies and work
    with ll.reference_path():
        _, ref = getattr(ll, name).value_and_grad(x.detach(), other)
    torch.testing.assert_close(x.grad.float(), ref.float(), **TOL["bfloat16"])


@pytest.mark.parametrize("blocks", [False, True])
def test_bad_input_gets_the_error_of_the_definitions_in_torch_operations(blocks, monkeypatch):
    if blocks:
        monkeypatch.setitem(_function.ROW_BLOCK_ELEMENTS, "cpu", 10)  # two rows a block
    x = torch.randn(6, 5, dtype=torch.bfloat16)
    calls = [("targets", lambda: ll.multiclass_hinge.value_and_grad(x, torch.tensor([0, 1, 2, 3, 4, 7]))),
             (r"\(6, 5\)", lambda: ll.kl_div.value_and_grad(x.log_softmax(1), torch.rand(6, 4, dtype=torch.bfloat16))),
             ("targets", lambda: ll.binary_cross_entropy.value_and_grad(x.sigmoid(), torch.full((6, 5), 2.0,
                                                                                               dtype=torch.bfloat16)))]
    for names, call in calls:
        with pytest.raises(ValueError, match=names) as ours:
            call()
        with pytest.raises(ValueError, match=names) as theirs:
            _in_torch_ops(call)
        assert str(ours.value) == str(theirs.value)


def test_a_nan_reaches_the_value_and_its_row_s_gradient(monkeypatch):
    monkeypatch.setitem(_function.ROW_BLOCK_ELEMENTS, "cpu", 10)
    x = torch.randn(6, 5, dtype=torch.bfloat16)
    x[4, 2] = float("nan")
    value, grad = ll.multiclass_hinge.value_and_grad(x, torch.tensor([0, 1, 2, 3, 4, 0]))
    assert torch.isnan(value) and torch.isnan(grad[4]).any() and torch.isfinite(grad[:4]).all()
    assert grad.dtype == torch.bfloat16


def test_large_calls_of_a_loss_without_a_numpy_fast_path_stay_in_torch_operations(numpy_calls):
    # the NumPy reference path runs on one thread, torch's operations on all: measured 1.5x slower at 4M elements
    n = 1 << 19
    g = torch.Generator().manual_seed(5)
    x, t = torch.randn(n, generator=g, dtype=torch.bfloat16), torch.randn(n, generator=g, dtype=torch.bfloat16)
    var = torch.rand(n, generator=g, dtype=torch.bfloat16) + 0.5
    assert _engines.fast_path_of("gaussian_nll", "numpy") is None
    ll.gaussian_nll.value_and_grad(x, t, var)
    assert numpy_calls == []
    ll.gaussian_nll.value_and_grad(x[:1024], t[:1024], var[:1024])  # small: the NumPy engine, whatever the path
    ll.mse.value_and_grad(x, t)  # a fast path: the NumPy engine at any size
    assert numpy_calls == ["gaussian_nll", "mse"]
