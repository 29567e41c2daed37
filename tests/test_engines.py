"""Every engine held to the reference on the whole case table, and the definitions' own contract.

The torch engine has two ways to compute a call: the NumPy engine on zero-copy views (CPU float32/64,
covered by every torch test of the suite) and the definitions in torch operations (CUDA, fp16/bf16).
Here the second is forced on CPU tensors so that it, too, meets every case.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

import losslab as ll  # noqa: E402
from cases import CASES, convert_case  # noqa: E402
from losslab import _fast  # noqa: E402
from losslab.definitions import pointwise  # noqa: E402


def _tuple(g):
    return g if isinstance(g, tuple) else (g,)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_torch_operations_engine_equals_the_reference(case, off_numpy_engine):
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
               "power": 1.5, "log_input": True, "full": True, "eps": 1e-8, "log_target": False}
    options = {k: options[k] for k in definition.options}
    if name == "kl_div":  # probabilities, zeros among them; the log-target formula on log-probabilities below
        t = np.where(np.arange(200) < 20, 0.0, rng.uniform(size=200))
        log_t = np.log(rng.uniform(1e-3, 1, size=200))
        assert _smooth_share_if_value_and_grad_equal_its_parts(definition, x, log_t, {"log_target": True}) > 0.95
    assert _smooth_share_if_value_and_grad_equal_its_parts(definition, x, t, options) > 0.95


def _smooth_share_if_value_and_grad_equal_its_parts(definition, x, t, options):
    value, grad = definition.value_and_grad(np, x, t, **options)
    np.testing.assert_array_equal(value, definition.value(np, x, t, **options))
    np.testing.assert_array_equal(grad, definition.grad(np, x, t, **options))
    h = 1e-6  # and the gradient is the derivative of the value (away from kinks: checked where smooth)
    numeric = (definition.value(np, x + h, t, **options) - definition.value(np, x - h, t, **options)) / (2 * h)
    smooth = np.abs(numeric - grad) < 1e-3 * (1 + np.abs(grad))
    return smooth.mean()


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


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_every_gradient_stays_in_the_graph_under_create_graph(case):
    """A Hessian-vector product runs for every loss, as for torch's own: a loss linear in its input (nll) or in each
    piece (multilabel_margin) has a gradient with no function of the input in it, tied back with a zero derivative."""
    args, options = convert_case(case, "torch")
    inputs = [x.clone().requires_grad_() for x in case.inputs_of(args)]
    grads = torch.autograd.grad(case.fn(*case.call_with(inputs, args), **options), inputs, create_graph=True)
    assert all(g.requires_grad for g in grads)
    hvps = torch.autograd.grad(sum((g * torch.ones_like(g)).sum() for g in grads), inputs, allow_unused=True)
    assert all(h is None or torch.isfinite(h).all() for h in hvps)
    if case.loss == "nll":  # linear: no curvature, as torch's nll_loss says
        assert all(torch.count_nonzero(h) == 0 for h in hvps)
    for g in grads:
        g.mul_(2.0)  # and the gradient is the caller's to change in place, as torch's own


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


# -- the compiled lane of plain elementwise calls (torch._function.lane) --------------------------------------------

needs_numba = pytest.mark.skipif(not _fast._numba.AVAILABLE, reason="needs Numba (pip install 'losslab[fast]')")
LANE = [("mse", {}), ("mae", {}), ("huber", {"delta": 0.7}), ("smooth_l1", {"beta": 0.5}), ("smooth_l1", {"beta": 0.0}),
        ("quantile", {"q": 0.3}), ("hinge", {}), ("squared_hinge", {"margin": 0.5}), ("hinge_embedding", {"margin": 0.5}),
        # kernels used by the lane at small sizes only (_fast.DIRECT_SMALL_ELEMENTS)
        ("binary_cross_entropy_with_logits", {}), ("binary_cross_entropy", {}), ("soft_margin", {}), ("log_cosh", {}),
        # (focal has no lane: its prepare reads a negative alpha as none, its generated kernel would not)
        ("poisson_nll", {}), ("poisson_nll", {"log_input": False, "eps": 1e-3}),
        ("poisson_nll", {"full": True}), ("poisson_deviance", {}), ("gamma_deviance", {}), ("msle", {}), ("mape", {}),
        ("kl_div", {}), ("kl_div", {"log_target": True})]
# the hand-written lanes of the class-index row losses (losslab._numba_lanes)
ROW_LANE = [("nll", {}), ("nll", {"ignore_index": 3}), ("cross_entropy", {}),
            ("cross_entropy", {"ignore_index": 3, "label_smoothing": 0.2}),
            ("cross_entropy", {"lse_square_scale": 1e-3, "softcap": 2.5}), ("multiclass_hinge", {}),
            ("multiclass_hinge", {"p": 2, "margin": 0.5}), ("multilabel_margin", {})]
ROW_LOSSES = {name for name, _ in ROW_LANE}


@pytest.fixture
def lane(monkeypatch):
    """Records what each compiled-lane call of a loss returned (NotImplemented: it declined)."""
    seen = []

    def spy(name):
        fast_lane = ll._engines.fast_path_of(name, "numpy").lane
        real = fast_lane.run

        def run(*args):
            out = real(*args)
            seen.append(out)
            return out

        monkeypatch.setattr(fast_lane, "run", run)
        return seen

    return spy


def _lane_inputs(name, shape, dtype, seed=0):
    if name in ROW_LOSSES:
        return _row_lane_inputs(name, *shape, dtype, seed)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=dtype) * 2
    t = torch.randn(shape, generator=g, dtype=dtype)
    if "hinge" in name or name == "soft_margin":
        t = torch.sign(t)
    elif name in ("binary_cross_entropy", "binary_cross_entropy_with_logits", "focal"):
        t = torch.rand(shape, generator=g, dtype=dtype)
        if name == "binary_cross_entropy":
            x = torch.sigmoid(x)
    elif name == "kl_div":  # log-probabilities and probabilities along the last axis
        x, t = torch.log_softmax(x, -1), torch.softmax(t, -1)
    elif name in ("poisson_nll", "poisson_deviance", "gamma_deviance", "msle"):
        t = torch.poisson(torch.full(shape, 3.0, dtype=dtype), generator=g) + (name == "gamma_deviance")
        if name != "poisson_nll":
            x = torch.rand(shape, generator=g, dtype=dtype) * 4 + 0.2
    return x.requires_grad_(), t


@needs_numba
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize(("name", "options"), LANE + ROW_LANE, ids=[f"{n}-{o}" for n, o in LANE + ROW_LANE])
def test_small_plain_calls_take_the_compiled_lane_and_equal_the_reference(name, options, reduction, dtype, lane):
    seen = lane(name)
    fn = getattr(ll, name)
    x, t = _lane_inputs(name, (13, 7), dtype)
    if name == "poisson_nll" and options.get("log_input") is False:
        x = x.detach().abs().requires_grad_()  # a rate
    loss = fn(x, t, reduction=reduction, **options)
    assert len(seen) == 1 and seen[0] is not NotImplemented
    assert type(loss.grad_fn).__name__ == "LosslabFusedFunctionBackward" and loss.dtype == dtype
    (loss * 1.5).backward()
    value, grad = fn.value_and_grad(x.detach(), t, reduction=reduction, **options)  # the lane too: no graph node
    assert len(seen) == 2 and seen[1] is not NotImplemented
    with ll.reference_path():
        want, want_grad = fn.value_and_grad(x.detach(), t, reduction=reduction, **options)
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-13}
    for got in (loss.detach(), value):
        torch.testing.assert_close(got, want, **tol)
    torch.testing.assert_close(x.grad, 1.5 * want_grad, **tol)
    torch.testing.assert_close(grad, want_grad, **tol)


@needs_numba
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_batchmean_takes_the_compiled_lane(log_target, lane):
    seen = lane("kl_div")
    x, t = _lane_inputs("kl_div", (6, 9), torch.float64)
    t = t.log() if log_target else t
    value = ll.kl_div(x, t, reduction="batchmean", log_target=log_target)
    assert len(seen) == 1 and seen[0] is not NotImplemented
    value.backward()
    x2 = x.detach().clone().requires_grad_()
    want = torch.nn.functional.kl_div(x2, t, reduction="batchmean", log_target=log_target)
    want.backward()
    torch.testing.assert_close(value, want)
    torch.testing.assert_close(x.grad, x2.grad)


@needs_numba
def test_the_compiled_lane_declines_what_it_does_not_compute(lane):
    seen = lane("huber")
    x, t = _lane_inputs("huber", (6, 8), torch.float32)
    calls = {
        "a strided view": lambda: ll.huber(x[:, ::2], t[:, ::2]),
        "targets of another dtype": lambda: ll.huber(x, t.double()),
        "a weight": lambda: ll.huber(x, t, weight=torch.rand(6, 8)),
        "a normalizer": lambda: ll.huber(x, t, normalizer=3.0),
        "a NaN": lambda: ll.huber(torch.where(t > 1, float("nan"), x), t),
        "broadcast targets": lambda: ll.huber(x, t[0]),
    }
    for what, call in calls.items():
        seen.clear()
        try:
            value = call()
        except ValueError:  # broadcast targets: refused as everywhere (no silent broadcasting)
            assert what == "broadcast targets"
            continue
        assert all(out is NotImplemented for out in seen), what
        assert type(value.grad_fn).__name__ == "LosslabFusedFunctionBackward", what
    assert torch.isnan(calls["a NaN"]()).item()  # the NaN reaches the value
    seen.clear()
    with _fast.numpy_only():  # the compiled kernels switched off
        ll.huber(x, t)
    assert seen == [NotImplemented]
    seen.clear()
    ll.huber(x, t, reduction="none")  # per-item values: the reference bridge, not the fused node
    assert seen == []


@needs_numba
def test_kernels_slower_than_the_numpy_blocks_at_large_sizes_take_the_lane_at_small_ones_only(lane):
    n = _fast.DIRECT_SMALL_ELEMENTS
    for name, outcome in (("log_cosh", False), ("mse", True)):  # mse's kernel: every size
        seen = lane(name)
        for size, taken in ((n, True), (n + 1, outcome)):
            seen.clear()
            x, t = _lane_inputs(name, (size,), torch.float32)
            getattr(ll, name)(x, t).backward()
            assert (seen[0] is not NotImplemented) == taken, (name, size)
    seen = lane("binary_cross_entropy")
    seen.clear()
    x, t = _lane_inputs("binary_cross_entropy", (10,), torch.float32)
    smoothed = ll.binary_cross_entropy(x, t, label_smoothing=0.2)  # smoothed targets: the kernel has none
    assert seen == []  # declined by its plan: the kernel never runs
    with ll.reference_path():
        torch.testing.assert_close(smoothed, ll.binary_cross_entropy(x, t, label_smoothing=0.2))


def _numpy_lane_inputs(name, options, dtype):
    x, t = (a.detach().numpy() for a in _lane_inputs(name, (13, 7), torch.float64))
    if name == "poisson_nll" and options.get("log_input") is False:
        x = np.abs(x)  # a rate
    return x.astype(dtype), t.astype(dtype) if t.dtype.kind == "f" else t


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("name", "options"), LANE + ROW_LANE, ids=[f"{n}-{o}" for n, o in LANE + ROW_LANE])
def test_small_plain_numpy_calls_take_the_compiled_lane_and_equal_the_usual_flow(name, options, dtype, lane,
                                                                              monkeypatch):
    seen = lane(name)
    fn = getattr(ll, name)
    x, t = _numpy_lane_inputs(name, options, dtype)
    reduction = "batchmean" if name == "kl_div" else "sum"
    value, grad = fn.value_and_grad(x, t, **options)
    plain = fn(x, t, reduction=reduction, **options)
    assert len(seen) == 2 and all(out is not NotImplemented for out in seen)
    monkeypatch.delitem(ll._engines._lanes, "numpy")  # the usual flow: binding, then the NumPy fast path
    want, want_grad = fn.value_and_grad(x, t, **options)
    want_plain = fn(x, t, reduction=reduction, **options)
    assert len(seen) == 2  # (the fast path did not run the lane either)
    assert type(value) is type(want) is type(plain) is type(want_plain) and np.dtype(type(value)) == dtype
    assert grad.dtype == want_grad.dtype and grad.shape == want_grad.shape == x.shape
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-13}
    np.testing.assert_allclose(value, want, **tol)
    np.testing.assert_allclose(plain, want_plain, **tol)
    np.testing.assert_allclose(grad, want_grad, **tol)


@needs_numba
def test_the_numpy_lane_declines_what_it_does_not_compute_and_the_usual_flow_answers(lane):
    seen = lane("huber")
    x, t = _numpy_lane_inputs("huber", {}, np.float32)
    big = np.ones(_fast.DIRECT_SMALL_ELEMENTS + 1, np.float32)
    calls = {
        "a strided view": lambda: ll.huber(x[:, ::2], t[:, ::2]),
        "targets of another dtype": lambda: ll.huber(x, t.astype(np.float64)),
        "a weight": lambda: ll.huber(x, t, weight=np.ones_like(x)),
        "a normalizer": lambda: ll.huber(x, t, normalizer=3.0),
        "per-item values": lambda: ll.huber(x, t, reduction="none"),
        "more than DIRECT_SMALL_ELEMENTS": lambda: ll.huber(big, big),
        "lists": lambda: ll.huber(x.tolist(), t.tolist()),
        "a NaN": lambda: ll.huber(np.where(t > 1, np.float32(np.nan), x), t),
    }
    for what, call in calls.items():
        seen.clear()
        value = call()
        assert all(out is NotImplemented for out in seen), what
        with ll.reference_path():
            np.testing.assert_allclose(value, call(), rtol=1e-6, err_msg=what)
    assert np.isnan(calls["a NaN"]())  # the NaN reaches the value
    for bad, error in (({"delta": -1.0}, ValueError), ({"delta": "1"}, TypeError)):
        with pytest.raises(error, match="delta"):  # an option outside its domain: the usual flow's error
            ll.huber(x, t, **bad)
    with pytest.raises(ValueError, match="targets"):  # hinge targets other than -1 and +1: the reference's error
        ll.hinge(x, np.full_like(x, 0.5))
    with pytest.raises(ValueError, match="never broadcasts"):
        ll.huber(x, t[0])
    seen.clear()
    with ll.reference_path():
        ll.huber(x, t)
    assert seen == []


@needs_numba
def test_the_compiled_lane_refuses_bad_targets_with_the_reference_error(lane):
    seen = lane("hinge")
    x, _ = _lane_inputs("hinge", (10,), torch.float32)
    with pytest.raises(ValueError, match="targets"):
        ll.hinge(x, torch.full((10,), 0.5))
    assert seen == [NotImplemented]


@needs_numba
def test_second_order_gradients_after_the_compiled_lane(lane):
    seen = lane("huber")
    x, t = _lane_inputs("huber", (50,), torch.float64)
    (g,) = torch.autograd.grad(ll.huber(x, t), x, create_graph=True)
    assert seen and seen[0] is not NotImplemented
    (hvp,) = torch.autograd.grad(g.sum(), x)
    torch.testing.assert_close(hvp, ((x - t).abs() <= 1.0).double() / 50)


@needs_numba
def test_the_compiled_lane_over_many_option_values(lane):
    seen = lane("huber")
    x, t = _lane_inputs("huber", (64,), torch.float64)
    for delta in np.linspace(0.05, 3.0, 3 * _fast._PLANS // 2):  # more values than the lane keeps plans for
        value = ll.huber(x, t, delta=float(delta))
        with ll.reference_path():
            torch.testing.assert_close(value.detach(), ll.huber(x.detach(), t, delta=float(delta)))
    assert len(seen) == 3 * _fast._PLANS // 2 and NotImplemented not in seen
    assert len(_fast._LANE_PLANS) <= _fast._PLANS and len(ll._engines.fast_path_of("huber", "numpy").lane.plans) <= _fast._PLANS


@needs_numba
def test_the_compiled_lane_checks_options_as_binding_does_on_every_call(lane):
    seen = lane("huber")
    x, t = _lane_inputs("huber", (12,), torch.float32)
    for _ in range(2):  # a refused value is never kept as a plan: the second call is refused again
        with pytest.raises(ValueError, match="delta"):
            ll.huber(x, t, delta=-1.0)
        with pytest.raises(TypeError, match="delta"):
            ll.huber(x, t, delta="1")
    seen = lane("poisson_nll")
    x, t = _lane_inputs("poisson_nll", (12,), torch.float32)
    ll.poisson_nll(x, t, log_input=True).backward()  # a plan for True ...
    assert len(seen) == 1 and seen[0] is not NotImplemented
    with pytest.raises(ValueError, match="log_input"):  # ... is not one for 1, which is not a bool (True == 1 as keys)
        ll.poisson_nll(x, t, log_input=1)
    with pytest.raises(TypeError, match="unexpected keyword"):  # an unknown option: binding's error
        ll.huber(x, t, delt=1.0)


@needs_numba
def test_the_compiled_lane_serves_value_and_grad_and_parameters_and_steps_aside_otherwise(lane):
    seen = lane("huber")
    x, t = _lane_inputs("huber", (6, 5), torch.float64)
    with ll.reference_path():
        want, want_grad = ll.huber.value_and_grad(x.detach(), t, delta=0.5)
    value, grad = ll.huber.value_and_grad(x, t, delta=0.5)  # value_and_grad: no graph node, the two tensors
    assert seen[-1] is not NotImplemented and value.grad_fn is None and not grad.requires_grad
    torch.testing.assert_close((value, grad), (want, want_grad))
    weights = torch.nn.Parameter(x.detach().clone())  # a module's parameter
    ll.huber(weights, t, delta=0.5).backward()
    assert seen[-1] is not NotImplemented
    torch.testing.assert_close(weights.grad, want_grad)
    seen.clear()
    # (a value only, by a plain call: the lane too, test_small_value_only_calls_take_the_compiled_lane)
    steps_aside = {
        "targets with gradients": lambda: ll.huber(x, t.clone().requires_grad_()),
        "arguments by name": lambda: ll.huber(predictions=x, targets=t),
        "a NumPy option value": lambda: ll.huber(x, t, delta=np.float64(1.0)),
    }
    for what, call in steps_aside.items():
        value = call()
        assert seen == [], what
        with ll.reference_path():
            torch.testing.assert_close(value.detach(), ll.huber(x.detach(), t.detach()), msg=what)


@needs_numba
def test_the_compiled_lane_with_array_options_and_divisions_by_zero(lane):
    import gc
    import weakref

    x, t = _lane_inputs("mse", (16,), torch.float32)
    for weight in ([0.5] * 16, np.full(16, 0.5), torch.full((16,), 0.5)):  # declined, not hashed
        with ll.reference_path():
            want = ll.mse(x.detach(), t, weight=weight)
        torch.testing.assert_close(ll.mse(x, t, weight=weight).detach(), want)
    w = torch.full((16,), 0.5)
    kept = weakref.ref(w)
    ll.mse(x, t, weight=w).backward()
    del w
    gc.collect()
    assert kept() is None  # no option array is kept by the lane
    # float32 divisions by zero inside a kernel (x * x underflows; beta rounds to 0): inf or NaN, then the usual path
    tiny = torch.full((4,), 1e-30, requires_grad=True)
    value = ll.gamma_deviance(tiny, torch.ones(4))
    with ll.reference_path():
        torch.testing.assert_close(value.detach(), ll.gamma_deviance(tiny.detach(), torch.ones(4)))
    y = torch.randn(4, generator=torch.Generator().manual_seed(2), requires_grad=True)
    value = ll.smooth_l1(y, torch.zeros(4), beta=1e-46)
    with ll.reference_path():
        torch.testing.assert_close(value.detach(), ll.smooth_l1(y.detach(), torch.zeros(4), beta=1e-46))


# -- the hand-written compiled lanes (losslab._numba_lanes): row losses, margin_ranking --------------------------



def _row_lane_inputs(name, n, c, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, generator=g, dtype=dtype) * 2
    if name == "nll":
        x = torch.log_softmax(x, -1)
    if name == "cross_entropy":
        x[0] *= 40  # a confident row: its small loss must not be lse - z_y rounded at the logits' scale
    if name == "multilabel_margin":  # up to 3 target classes a row (a repeat among them), -1, then leftovers
        t = torch.full((n, c), -1, dtype=torch.long)
        for i in range(n):
            k = i % 4
            t[i, :k] = torch.randperm(c, generator=g)[:k]
            if k == 3:
                t[i, 2] = t[i, 0]  # a target listed twice counts twice
            if k + 1 < c:
                t[i, k + 1:] = torch.randint(0, c, (c - k - 1,), generator=g)  # after the -1: ignored
    else:
        t = torch.randint(0, c, (n,), generator=g)
    return x.requires_grad_(), t


@needs_numba
def test_row_lanes_decline_what_they_do_not_compute(lane):
    for name in ("nll", "cross_entropy", "multiclass_hinge", "multilabel_margin"):
        seen = lane(name)
        fn = getattr(ll, name)
        x, t = _row_lane_inputs(name, 6, 5, torch.float32)
        bad = t.clone()
        bad.view(-1)[1] = 5  # a class index out of range: the usual flow's error
        with pytest.raises(ValueError, match="targets"):
            fn(x, bad)
        assert seen == [NotImplemented]
        seen.clear()
        nan = x.detach().clone()
        nan[2, 4 if name == "multilabel_margin" else t[2]] = float("nan")  # it reaches the value, by the usual flow
        assert torch.isnan(fn(nan.requires_grad_(), t)).item() and seen == [NotImplemented]
        seen.clear()
        big = _row_lane_inputs(name, _fast.DIRECT_SMALL_ELEMENTS // 8 + 1, 8, torch.float32)
        fn(*big).backward()  # above the lane's size: the NumPy blocks
        assert seen == [NotImplemented]
        seen.clear()
        if name != "multilabel_margin":
            fn(x, t, weight=torch.rand(5)).backward()  # a class weight: declined by the plan, never run
            assert seen == []
    for name in ("nll", "cross_entropy"):
        seen = lane(name)
        x, t = _row_lane_inputs(name, 4, 3, torch.float64)
        value = getattr(ll, name)(x, torch.full((4,), -100))  # every row ignored: a mean over nothing is 0, not NaN
        assert value.item() == 0.0 and seen[-1] is not NotImplemented
        value.backward()
        assert torch.count_nonzero(x.grad) == 0
    seen.clear()
    x, _ = _row_lane_inputs("cross_entropy", 4, 3, torch.float32)
    ll.cross_entropy(x, torch.softmax(torch.randn(4, 3), -1)).backward()  # probability targets: the usual flow
    assert seen and all(out is NotImplemented for out in seen)  # (each spy above records the one call)


@needs_numba
def test_cross_entropy_lane_leaves_overflow_and_vanishing_caps_to_the_reference(lane):
    """Where the reference's own float32 sums overflow (the shifted logits of a smoothed row) or a cap rounds to 0 in
    float32, the lane declines and the call gives the reference's result."""
    seen = lane("cross_entropy")
    calls = [(torch.tensor([[2e38, -2e38, 0.0]]), torch.tensor([1]), {"label_smoothing": 0.5}),
             (torch.tensor([[1e37] + [0.0] * 49]), torch.tensor([0]), {"label_smoothing": 0.1}),
             (torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([0]), {"softcap": 1e-46}),
             (torch.tensor([[3e38, 0.0]]), torch.tensor([0]), {"lse_square_scale": 1e-30})]
    for x, t, options in calls:
        seen.clear()
        got = ll.cross_entropy(x, t, **options)
        with ll.reference_path():
            want = ll.cross_entropy(x, t, **options)
        assert seen == [NotImplemented], options
        torch.testing.assert_close(got, want, equal_nan=True)


def test_triplet_margin_gradient_does_not_depend_on_the_batch_size():
    """The small calls' compiled lane and the larger calls' paths compute the same distance ||a - p + eps||: a
    positive equal to its anchor at |a| = 100 gives -u (a - p + eps) / d = -1/2 per component either way (torch's)."""
    grads = []
    for n in (8, _fast.DIRECT_SMALL_ELEMENTS // 4 + 1):
        a = torch.full((n, 4), 100.0)
        p = a.clone().requires_grad_()
        ll.triplet_margin(a, p, a + 0.1, reduction="sum").backward()
        grads.append(p.grad[0])
        p2 = a.clone().requires_grad_()
        torch.nn.functional.triplet_margin_loss(a, p2, a + 0.1, reduction="sum").backward()
        torch.testing.assert_close(p.grad, p2.grad)
    torch.testing.assert_close(grads[0], grads[1])


@needs_numba
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), rows=st.integers(1, 12), classes=st.integers(1, 9),
       scale=st.sampled_from([0.1, 3.0, 60.0]), smoothing=st.sampled_from([0.0, 0.3, 1.0]),
       z_scale=st.sampled_from([0.0, 1e-2]), cap=st.sampled_from([None, 0.5, 8.0]), ignored=st.floats(0, 1),
       dtype=st.sampled_from([torch.float32, torch.float64]), reduction=st.sampled_from(["mean", "sum"]))
def test_cross_entropy_lane_equals_the_reference(seed, rows, classes, scale, smoothing, z_scale, cap, ignored, dtype,
                                                 reduction):
    """The hand-written loop of cross_entropy's lane against the definition on random rows: any batch and class count,
    confident rows (scale 60), every smoothing, z-loss and cap it takes, some rows ignored (all of them, sometimes)."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(rows, classes, generator=g, dtype=dtype) * scale).requires_grad_()
    t = torch.randint(0, classes, (rows,), generator=g)
    t[torch.rand(rows, generator=g) < ignored] = -100
    options = {"label_smoothing": smoothing, "lse_square_scale": z_scale, "softcap": cap}
    fast_lane = ll._engines.fast_path_of("cross_entropy", "numpy").lane
    plan = fast_lane.plan({"weight": None, "ignore_index": -100, **options})
    out = fast_lane.run(plan, [x.detach().numpy(), t.numpy()], reduction)
    assert out is not NotImplemented
    value, (grad,) = out
    with ll.reference_path():
        want, want_grad = ll.cross_entropy.value_and_grad(x.detach(), t, reduction=reduction, **options)
    tol = {"rtol": 2e-5, "atol": 2e-6} if dtype == torch.float32 else {"rtol": 1e-11, "atol": 1e-12}
    torch.testing.assert_close(torch.tensor(float(value), dtype=dtype), want, **tol)
    torch.testing.assert_close(torch.from_numpy(grad), want_grad, **tol)


@needs_numba
@pytest.mark.parametrize(("name", "options"), [("mse", {}), ("huber", {"delta": 0.5}), ("cross_entropy", {}),
                                               ("multiclass_hinge", {}), ("triplet_margin", {})])
def test_small_value_only_calls_take_the_compiled_lane(name, options, lane):
    """Evaluation (no input requires a gradient, or torch.no_grad): the lane's value, its gradients dropped, no graph;
    a large value-only call declines (the usual flow's value pass writes no gradient)."""
    seen = lane(name)
    fn = getattr(ll, name)
    if name == "triplet_margin":
        g = torch.Generator().manual_seed(2)
        args = [torch.randn(6, 5, generator=g, dtype=torch.float64) for _ in range(3)]
        big = [torch.randn(_fast.DIRECT_SMALL_ELEMENTS // 8 + 1, 8, generator=g) for _ in range(3)]
    else:
        args = [a.detach() for a in _lane_inputs(name, (6, 5), torch.float64)]
        big = [a.detach() for a in _lane_inputs(name, (_fast.DIRECT_SMALL_ELEMENTS // 8 + 1, 8), torch.float32)]
    with ll.reference_path():
        want = fn(*args, **options)
    value = fn(*args, **options)
    tracked = args[0].clone().requires_grad_()
    with torch.no_grad():
        no_grad_value = fn(tracked, *args[1:], **options)
    assert len(seen) == 2 and all(out is not NotImplemented for out in seen)  # both calls: the lane's value
    for got in (value, no_grad_value):
        assert got.grad_fn is None and not got.requires_grad
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-13)
    seen.clear()
    fn(*big, **options)
    assert seen == []  # declined before the loop runs


@needs_numba
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("options", [{}, {"margin": 0.3}])
def test_margin_ranking_takes_its_compiled_lane_with_three_arguments(options, dtype, lane):
    seen = lane("margin_ranking")
    g = torch.Generator().manual_seed(5)
    a, b = (torch.randn(40, generator=g, dtype=dtype).requires_grad_() for _ in range(2))
    t = torch.sign(torch.randn(40, generator=g, dtype=dtype))
    t[0], b.data[1] = 1.0, a.data[1] + options.get("margin", 0.0)  # z = 0 exactly: the gradient passes
    for reduction in ("mean", "sum"):
        a.grad = b.grad = None
        loss = ll.margin_ranking(a, b, t, reduction=reduction, **options)
        assert seen[-1] is not NotImplemented and type(loss.grad_fn).__name__ == "LosslabFusedFunctionBackward"
        (loss * 1.5).backward()
        with ll.reference_path():
            want, (want_a, want_b) = ll.margin_ranking.value_and_grad(a.detach(), b.detach(), t, reduction=reduction,
                                                                       **options)
        torch.testing.assert_close(loss.detach(), want)
        torch.testing.assert_close((a.grad, b.grad), (1.5 * want_a, 1.5 * want_b))
    seen.clear()
    only_a = ll.margin_ranking(a, b.detach(), t, **options)  # one input tracked: its gradient alone
    assert seen[-1] is not NotImplemented
    a.grad = b.grad = None
    only_a.backward()
    with ll.reference_path():
        mean_a = ll.margin_ranking.value_and_grad(a.detach(), b.detach(), t, **options)[1][0]
    torch.testing.assert_close(a.grad, mean_a)
    assert b.grad is None  # (its detached copy went in)
    with pytest.raises(ValueError, match="target"):  # a target other than -1 or +1: the usual flow's error
        ll.margin_ranking(a, b, torch.full((40,), 0.5, dtype=dtype))
    assert seen[-1] is NotImplemented
    seen.clear()
    ll.margin_ranking(a, b, t.clone().requires_grad_())  # targets with gradients: autograd traces the reference
    assert seen == []


@needs_numba
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("options", [{}, {"margin": 0.5, "eps": 0.0}, {"p": 2.0, "margin": 3.0}])
def test_triplet_margin_takes_its_compiled_lane(options, dtype, lane):
    seen = lane("triplet_margin")
    g = torch.Generator().manual_seed(6)
    a, p, n = (torch.randn(17, 9, generator=g, dtype=dtype).requires_grad_() for _ in range(3))
    p.data[0] = a.data[0]  # a zero distance (eps 0: the safe norm's floor)
    for reduction in ("mean", "sum"):
        for e in (a, p, n):
            e.grad = None
        loss = ll.triplet_margin(a, p, n, reduction=reduction, **options)
        assert seen[-1] is not NotImplemented and type(loss.grad_fn).__name__ == "LosslabFusedFunctionBackward"
        (loss * 1.5).backward()
        with ll.reference_path():
            want, want_grads = ll.triplet_margin.value_and_grad(a.detach(), p.detach(), n.detach(),
                                                                reduction=reduction, **options)
        tol = {"rtol": 2e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-13}
        torch.testing.assert_close(loss.detach(), want, **tol)
        torch.testing.assert_close((a.grad, p.grad, n.grad), tuple(1.5 * w for w in want_grads), **tol)
    seen.clear()
    for declined in ({"p": 1}, {"swap": True}):  # other norms and the distance swap: the usual flow
        ll.triplet_margin(a, p, n, **declined).backward()
        assert seen == [], declined
    nan = n.detach().clone()
    nan[3, 2] = float("nan")
    # declined by the torch lane, then by the NumPy fast path's use of the same loop: the reference's NaN
    assert torch.isnan(ll.triplet_margin(a, p, nan)).item() and seen and all(out is NotImplemented for out in seen)


def _embedding_lane_matches_reference(fn, seen, embeddings, others, reduction, options, tol):
    """One call of an embedding loss's lane on tracked torch tensors and one on NumPy arrays (through the NumPy fast
    path), each the lane's (``seen``) and equal to the reference; the torch call's gradients."""
    with ll.reference_path():
        want, want_grads = fn.value_and_grad(*embeddings, *others, reduction=reduction, **options)
    tracked = [e.clone().requires_grad_() for e in embeddings]
    seen.clear()
    loss = fn(*tracked, *others, reduction=reduction, **options)
    assert len(seen) == 1 and seen[0] is not NotImplemented
    loss.backward()
    torch.testing.assert_close(loss.detach(), want, **tol)
    torch.testing.assert_close(tuple(e.grad for e in tracked), want_grads, **tol)
    seen.clear()
    value, grads = fn.value_and_grad(*(e.numpy() for e in (*embeddings, *others)), reduction=reduction, **options)
    assert len(seen) == 1 and seen[0] is not NotImplemented
    torch.testing.assert_close(torch.tensor(float(value), dtype=want.dtype), want, **tol)
    torch.testing.assert_close(tuple(torch.from_numpy(g) for g in grads), want_grads, **tol)
    seen.clear()
    return [e.grad for e in tracked]


@needs_numba
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_triplet_margin_large_calls_take_the_parallel_loop(dtype, lane):
    """Above DIRECT_SMALL_ELEMENTS the lane runs its loop over the thread pool, on torch tensors and (through the
    NumPy fast path) on NumPy arrays: the reference's value and gradients, inactive and zero-distance rows included; a
    NaN declines (the reference's NaN), and value-only calls keep the NumPy blocks (no gradient written)."""
    seen = lane("triplet_margin")
    g = torch.Generator().manual_seed(8)
    rows, width = _fast.DIRECT_SMALL_ELEMENTS // 16 + 3, 48
    a, p, n = (torch.randn(rows, width, generator=g, dtype=dtype) for _ in range(3))
    p[0] = a[0]  # a zero distance
    n[1] = a[1] + 5.0  # an inactive row: its gradient 0
    tol = {"rtol": 2e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-13}
    for reduction, options in (("mean", {}), ("sum", {"margin": 0.2, "eps": 0.0})):
        grads = _embedding_lane_matches_reference(ll.triplet_margin, seen, (a, p, n), (), reduction, options, tol)
        assert torch.count_nonzero(grads[0][1]) == 0
    ll.triplet_margin(a.numpy(), p.numpy(), n.numpy())
    assert seen == []
    nan = n.clone()
    nan[-1, 3] = float("nan")
    assert torch.isnan(ll.triplet_margin(a.clone().requires_grad_(), p, nan)).item()
    assert seen and all(out is NotImplemented for out in seen)


@needs_numba
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("rows", [9, _fast.DIRECT_SMALL_ELEMENTS // 16 + 3])
def test_cosine_embedding_takes_its_compiled_lane(rows, dtype, lane):
    """cosine_embedding's loop over the thread pool, small and large calls, on torch tensors and NumPy arrays: the
    reference's value and gradients for either target dtype and margin, with a pair at the hinge (x1 = x2 and margin 1:
    cos = 1 = margin), a zero embedding (cos 0) and inactive dissimilar pairs; a target
    other than +-1 gives the usual flow's error, a NaN the reference's NaN."""
    seen = lane("cosine_embedding")
    g = torch.Generator().manual_seed(9)
    a, b = (torch.randn(rows, 48, generator=g, dtype=dtype) for _ in range(2))
    b[0], a[1] = a[0], 0.0
    t = torch.sign(torch.randn(rows, generator=g))
    t[0], t[1], t[2] = -1.0, -1.0, 1.0
    tol = {"rtol": 2e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-12, "atol": 1e-13}
    for targets, reduction, options in ((t, "mean", {}), (t.long(), "sum", {"margin": 1.0}),
                                        (t.to(dtype), "mean", {"margin": -0.2})):
        _embedding_lane_matches_reference(ll.cosine_embedding, seen, (a, b), (targets,), reduction, options, tol)
    bad = t.clone()
    bad[-1] = 0.5
    with pytest.raises(ValueError, match="targets"):
        ll.cosine_embedding(a.clone().requires_grad_(), b, bad)
    nan = b.clone()
    nan[-1, 3] = float("nan")
    assert torch.isnan(ll.cosine_embedding(a.clone().requires_grad_(), nan, t)).item()
    assert seen and all(out is NotImplemented for out in seen)


@needs_numba
def test_hand_written_lanes_agree_with_the_usual_flow_at_their_edges(lane):
    """The reviewer's cases: float32 distances computed in float32 (a row at the hinge stays inactive), float32 sums
    that overflow (inf, as the reference's), uint64 targets beyond 2^53 (refused, not matched to ignore_index)."""
    seen = lane("triplet_margin")
    a = torch.zeros(1, 2, requires_grad=True)
    p, n = torch.tensor([[1.0, 2.0**-12]]), torch.tensor([[1.0, 0.0]])
    value = ll.triplet_margin(a, p, n, margin=0.0, eps=0.0)
    assert seen[-1] is not NotImplemented
    with ll.reference_path():
        want = ll.triplet_margin(a.detach(), p, n, margin=0.0, eps=0.0)
    assert value.item() == want.item() == 0.0
    value.backward()
    assert torch.count_nonzero(a.grad) == 0
    seen = lane("multiclass_hinge")
    s = torch.full((5, 4), 1e38)
    s[:, 0] = -1e38
    value = ll.multiclass_hinge(s.requires_grad_(), torch.zeros(5, dtype=torch.long))
    assert seen[-1] is NotImplemented and value.item() == float("inf")  # the reference's float32 sum
    seen = lane("mse")
    big = torch.full((8,), 1e19, requires_grad=True)
    value = ll.mse(big, torch.zeros(8), reduction="sum")
    assert seen[-1] is NotImplemented and value.item() == float("inf")
    log_probs = torch.log_softmax(torch.randn(4, 3), -1).requires_grad_()
    with pytest.raises(ValueError, match="targets"):
        ll.nll(log_probs, torch.tensor([0, 1, 2, 2**53 + 1], dtype=torch.uint64), ignore_index=2**53)


@needs_numba
def test_hand_written_loops_are_published_at_once():
    import threading

    from losslab import _numba_lanes

    saved = dict(_numba_lanes._KERNELS)
    errors = []
    try:
        for _ in range(5):
            _numba_lanes._KERNELS.clear()
            start = threading.Barrier(6)

            def take(name, start=start):
                start.wait()
                try:
                    _numba_lanes._kernel(name)
                except KeyError as err:
                    errors.append(err)

            names = ["_nll_rows", "_margin_ranking_pairs", "_triplet_margin_rows"] * 2
            threads = [threading.Thread(target=take, args=(name,)) for name in names]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
    finally:
        _numba_lanes._KERNELS.clear()
        _numba_lanes._KERNELS.update(saved)
    assert errors == []
