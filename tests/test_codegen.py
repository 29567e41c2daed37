"""The kernels generated from the elementwise definitions (losslab/definitions/codegen.py): current with
the definitions, and equal to them on every engine that runs them (Numba on the CPU; Triton on CUDA, or
in Triton's CPU interpreter here), NaN and infinities included."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import losslab as ll
from losslab import _numba, gpu
from losslab.definitions import codegen, pointwise

VARIANTS = codegen.VARIANTS
IDS = [v.name for v in VARIANTS]
OPTION_VALUES = {"delta": 0.7, "beta": 0.4, "q": 0.8, "margin": 1.0, "alpha": 0.3, "gamma": 1.5, "eps": 1e-8}


def test_generated_files_are_current():
    assert codegen.stale() == [], "a definition changed: run python -m losslab.definitions.codegen"
    assert codegen.main(["--check"]) == 0


def test_every_elementwise_definition_has_a_kernel():
    assert {v.definition for v in VARIANTS} == {d for d in pointwise.DEFINITIONS.values() if d.generated}
    assert [d.name for d in pointwise.DEFINITIONS.values() if not d.generated] == ["tweedie_deviance"]


def test_tracing_refuses_a_python_branch_on_an_array_value():
    graph = codegen.Graph()
    x = graph.node("input", "x")
    with pytest.raises(TypeError, match=r"ops\.where"):
        bool(x > 0)


def test_tracing_merges_and_folds():
    graph = codegen.trace(next(v for v in VARIANTS if v.name == "binary_cross_entropy_with_logits"))[0]
    exps = [n for n in graph.nodes if n.op == "exp"]
    assert len(exps) == 1  # softplus(x), softplus(-x), sigmoid(x), sigmoid(-x) share e^-|x|
    smooth = codegen.trace(next(v for v in VARIANTS if v.name == "smooth_l1"))[0]
    assert not [n for n in smooth.nodes if n.op == "where"]  # beta > 0 is declared: the L1 branch folds away


def _inputs(variant, n, rng, specials=True):
    """Predictions and targets in the loss's domain, with its edge values."""
    name = variant.definition.name
    x = rng.standard_normal(n) * 4
    if name == "binary_cross_entropy":
        x = rng.uniform(0, 1, n)
        edges = [0.0, 1.0, 1e-30, 1 - 1e-16, 0.5]
    else:
        edges = [0.0, 1e-30, -1e-30, 40.0, -40.0, 800.0, -800.0, 0.7, -0.7]  # kinks at the options' values
    rate = name == "poisson_nll" and variant.fixed["log_input"] is False  # rates, not log-rates
    if name in ("poisson_deviance", "gamma_deviance", "msle") or rate:  # a positive mean (> -1 for msle) and targets
        x = rng.uniform(0.01, 20.0, n)
        edges = [1e-3, 1e3, 0.7, 1.0] + [0.0] * rate
        t = rng.poisson(3.0, n).astype(float) if name in ("poisson_deviance", "poisson_nll") else rng.uniform(0.01, 20.0, n)
        if name == "msle":
            x[: n // 2] -= 0.999
        t[:5] = x[:5]
    elif name in ("hinge", "squared_hinge", "soft_margin", "hinge_embedding"):
        t = np.where(rng.standard_normal(n) > 0, 1.0, -1.0)
    elif name in ("binary_cross_entropy", "binary_cross_entropy_with_logits", "focal"):
        t = rng.uniform(0, 1, n)
        t[: n // 4] = np.round(t[: n // 4])
    elif name == "poisson_nll":  # counts, on the log-rate
        t = rng.poisson(3.0, n).astype(float)
    elif name == "kl_div":  # probabilities with zeros among them, or log-probabilities
        t = np.log(rng.uniform(1e-6, 1.0, n)) if variant.fixed["log_target"] else rng.uniform(0, 1, n)
        if not variant.fixed["log_target"]:
            t[: n // 8] = 0.0
    elif name not in ("poisson_deviance", "gamma_deviance", "msle"):
        t = rng.standard_normal(n) * 4
        t[:5] = x[:5]  # errors of exactly 0
        if name == "mape":
            t[5:9] = [0.0, 1e-20, -1e-20, 1e-300]  # below the eps floor
    if specials:
        x[5:5 + len(edges)] = edges
    return x, t


def _expected(variant, x, t, w=None):
    options = {**variant.fixed, **{p: OPTION_VALUES[p] for p in variant.params}}
    value, grad = variant.definition.value_and_grad(np, x, t, **options)
    if w is not None:
        value, grad = value * w, grad * w
    return value, grad, tuple(OPTION_VALUES[p] for p in variant.params)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_numpy_block_kernel_equals_definition(variant, dtype):
    from losslab import _numpy_kernels

    rng = np.random.default_rng(2)
    n = 3001
    x, t = (a.astype(dtype) for a in _inputs(variant, n, rng))
    with np.errstate(all="ignore"):
        value, grad, options = _expected(variant, x, t)
    kernel = _numpy_kernels.KERNELS[variant.name]
    o = dict(zip(variant.params, options))
    items, g, only = np.empty(n, dtype), np.empty(n, dtype), np.empty(n, dtype)
    kernel(x, t, items, g, o)
    kernel(x, t, only, None, o)  # the value alone: its own, shorter chain
    # float32: 2 ulp at 1 absolute, where a value cancels to near 0 (log_cosh: |e| + log1p(e^-2|e|) - log 2): float32
    # log1p, where NumPy's is a scalar loop, is a corrected log within 4 ulp (losslab._ufuncs; NumPy's within 1)
    tol = dict(rtol=1e-12, atol=1e-300) if dtype == np.float64 else dict(rtol=1e-6, atol=2.5e-7)
    np.testing.assert_allclose(items, value, **tol)
    np.testing.assert_allclose(g, grad, **tol)
    np.testing.assert_array_equal(only, items)
    x[7], t[9] = np.nan, np.nan
    kernel(x, t, items, g, o)
    assert np.isnan(items[[7, 9]]).all() and np.isnan(g[[7, 9]]).all()


needs_numba = pytest.mark.skipif(not _numba.AVAILABLE, reason="Numba not installed")


@needs_numba
@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_numba_kernel_equals_definition(variant):
    from losslab import _numba_kernels

    rng = np.random.default_rng(3)
    n = 4001
    x, t = _inputs(variant, n, rng)
    w = rng.uniform(0.5, 2.0, n)
    kernel = _numba_kernels.KERNELS[variant.name]
    for weight in (None, w):
        with np.errstate(all="ignore"):
            value, grad, options = _expected(variant, x, t, weight)
        items, g = np.empty(n), np.empty(n)
        total = kernel(x, t, weight if weight is not None else np.empty(0), 0.25, items, g, *options)
        # the deviances subtract terms of size ~1 to get ~0 near p = t: absolute agreement there
        atol = 1e-13 if variant.name in ("poisson_deviance", "gamma_deviance") else 1e-300
        np.testing.assert_allclose(items, value, rtol=1e-12, atol=atol)
        np.testing.assert_allclose(g, 0.25 * grad, rtol=1e-12, atol=atol)
        np.testing.assert_allclose(total, value.sum(), rtol=1e-9)
    # a NaN anywhere reaches the total and its own gradient (never a swallowed NaN)
    x[7], t[9] = np.nan, np.nan
    items, g = np.empty(n), np.empty(n)
    assert np.isnan(kernel(x, t, np.empty(0), 1.0, items, g, *options))
    assert np.isnan(items[7]) and np.isnan(items[9]) and np.isnan(g[7]) and np.isnan(g[9])


@needs_numba
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [4001, (1 << 18) + 3], ids=["serial", "parallel"])
@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_numba_plain_call_loops_equal_the_shared_loop(variant, n, dtype):
    """The plain call (no weight, no per-item losses; the gradient or the value alone) has loops of its own, on the
    calling thread and, from _SERIAL_BELOW up, on the pool: each gives the shared loop's gradient bit for bit (the
    shared loop is held to the definition above) and its total up to the order of the sum, and passes a NaN on."""
    from losslab import _numba_kernels

    rng = np.random.default_rng(4)
    x, t = (a.astype(dtype) for a in _inputs(variant, n, rng))
    options = tuple(dtype(OPTION_VALUES[p]) for p in variant.params)
    kernel, empty, u = _numba_kernels.KERNELS[variant.name], np.empty(0, dtype), dtype(0.25)
    items, shared_g, plain_g = np.empty(n, dtype), np.empty(n, dtype), np.empty(n, dtype)
    with np.errstate(all="ignore"):
        shared = kernel(x, t, empty, u, items, shared_g, *options)  # per-item losses wanted: the shared loop
        plain = kernel(x, t, empty, u, empty, plain_g, *options)
        value_only = kernel(x, t, empty, u, empty, empty, *options)
    np.testing.assert_array_equal(plain_g, shared_g)
    rtol = 1e-9 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose([plain, value_only], [shared, shared], rtol=rtol)
    x[n - 2] = np.nan
    assert np.isnan(kernel(x, t, empty, u, empty, plain_g, *options)) and np.isnan(plain_g[n - 2])
    assert np.isnan(kernel(x, t, empty, u, empty, empty, *options))


@needs_numba
def test_numba_kernels_are_cached_across_processes(tmp_path):
    code = ("import numpy as np; from losslab import _numba; k = _numba.kernel('huber'); "
            "k(np.ones(8), np.zeros(8), np.empty(0), 1.0, np.empty(0), np.empty(8), 0.5); "
            "print(sum(k.stats.cache_hits.values()), sum(k.stats.cache_misses.values()))")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.split()
            for _ in range(2)]
    assert runs[0] == ["0", "1"]  # the first process compiles ...
    assert runs[1] == ["1", "0"]  # ... and the next loads the machine code from disk


# -- Triton ------------------------------------------------------------------------------------------

torch = pytest.importorskip("torch")
CUDA = torch.cuda.is_available()
HAS_TRITON = gpu.triton_available() and (CUDA or os.environ.get("TRITON_INTERPRET") == "1")
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="needs Triton on a GPU or in its interpreter")
DEVICE = "cuda" if CUDA else "cpu"


@needs_triton
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("variant", VARIANTS, ids=IDS)
def test_triton_kernel_equals_definition(variant, dtype):
    from losslab.gpu import pointwise as gpu_pointwise

    rng = np.random.default_rng(4)
    n = 3001  # not a multiple of the block: a masked tail
    x, t = _inputs(variant, n, rng)
    w = rng.uniform(0.5, 2.0, n)
    torch_dtype = getattr(torch, dtype)
    xt, tt = (torch.tensor(a, device=DEVICE).to(torch_dtype) for a in (x, t))
    x, t = (a.double().cpu().numpy() for a in (xt, tt))  # what the kernel reads, rounded to its dtype
    scale = torch.full((1,), 0.25, device=DEVICE)
    tol = dict(rtol=2e-5, atol=2e-6)  # float32 arithmetic (also for bfloat16 inputs)
    for weight in (None, w):
        wt = None if weight is None else torch.tensor(weight, device=DEVICE, dtype=torch.float32)
        with np.errstate(all="ignore"):
            value, grad, options = _expected(variant, x, t, weight)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the interpreter evaluates both sides of a where
            total, items, g = gpu_pointwise.launch(variant.name, xt, tt, wt, options, scale, with_grad=True, keep=True,
                                                   grad_dtype=torch.float32)
        items, g = items.double().cpu().numpy(), g.double().cpu().numpy()
        scale_of = np.maximum(np.abs(value), 1.0)
        np.testing.assert_allclose(items / scale_of, value / scale_of, **tol) if dtype == "float32" else None
        np.testing.assert_allclose(g / np.maximum(np.abs(grad), 1.0), 0.25 * grad / np.maximum(np.abs(grad), 1.0), **tol)
        np.testing.assert_allclose(float(total), value.sum(), rtol=1e-4, atol=1e-4)
    xt[7], tt[9] = float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        total, items, g = gpu_pointwise.launch(variant.name, xt, tt, None, options, scale, with_grad=True, keep=True)
    assert torch.isnan(total) and torch.isnan(items[[7, 9]]).all() and torch.isnan(g[[7, 9]]).all()


CASES = [("mse", {}), ("huber", {"delta": 0.5}), ("smooth_l1", {"beta": 0.0}), ("smooth_l1", {"beta": 2.0}),
         ("quantile", {"q": 0.2}), ("log_cosh", {}), ("binary_cross_entropy_with_logits", {}),
         ("focal", {"alpha": -1.0, "gamma": 2.0}), ("hinge", {"margin": 0.5}), ("poisson_nll", {}),
         ("poisson_nll", {"log_input": False, "full": True}), ("poisson_deviance", {}), ("gamma_deviance", {}),
         ("msle", {}), ("mape", {}), ("soft_margin", {}), ("hinge_embedding", {"margin": 0.5}), ("kl_div", {}),
         ("kl_div", {"log_target": True})]
DOMAIN_INPUTS = {"poisson_nll", "poisson_deviance", "gamma_deviance", "msle", "mape", "soft_margin", "hinge_embedding"}


def test_every_loss_with_a_generated_kernel_has_it_registered_for_torch_tensors():
    from losslab import _engines

    # (mae's kernel runs in the case smooth_l1 with beta 0)
    assert {v.definition.name for v in VARIANTS} == {name for name, _ in CASES} | {"binary_cross_entropy",
                                                                                  "squared_hinge", "mae"}
    assert all(_engines.kernel_of(v.definition.name, "torch") is not None for v in VARIANTS)


@needs_triton
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(("name", "options"), CASES, ids=[f"{n}-{o}" for n, o in CASES])
def test_torch_engine_runs_the_generated_kernel(name, options, reduction, monkeypatch):
    """bf16 CPU tensors under the interpreter (and any CUDA tensor) reach the kernel through ll.<loss>."""
    from losslab.gpu import pointwise as gpu_pointwise
    from losslab.torch import _function

    monkeypatch.setenv("LOSSLAB_TRITON", "1")
    monkeypatch.setattr(_function, "CPU_HALF_IN_NUMPY", False)  # bf16 CPU tensors take the path of CUDA ones
    launched = []
    real = gpu_pointwise.launch
    monkeypatch.setattr(gpu_pointwise, "launch", lambda *a, **k: launched.append(a[0]) or real(*a, **k))
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(37, 11, generator=g) * 2).to(DEVICE, torch.bfloat16)
    t = torch.rand(37, 11, generator=g).to(DEVICE)
    if name == "hinge":
        t = torch.where(t > 0.5, 1.0, -1.0)
    if name in DOMAIN_INPUTS:  # predictions and targets in the loss's domain, as its kernel test draws them
        fixed = {"log_input": True, "full": False, **options} if name == "poisson_nll" else {}
        fixed = {k: v for k, v in fixed.items() if k in ("log_input", "full")}
        variant = next(v for v in VARIANTS if v.definition.name == name and all(v.fixed.get(k) is b for k, b in fixed.items()))
        x, t = (torch.tensor(a.reshape(37, 11), dtype=torch.float32) for a in _inputs(variant, 37 * 11, np.random.default_rng(1),
                                                                                     specials=False))
        x, t = x.to(DEVICE, torch.bfloat16), t.to(DEVICE)
    weight = torch.rand(37, 1, generator=g).to(DEVICE) + 0.5
    fn = ll.get_loss(name)
    options = {**options, **({"weight": weight} if "weight" in fn._keyword_defaults else {})}
    xg = x.clone().requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        value = fn(xg, t, reduction=reduction, **options)
        value.sum().backward() if reduction == "none" else (value * 3).backward()
        v_and_g = fn.value_and_grad(x, t, reduction=reduction, **options)
    assert launched, "the generated kernel did not run"
    with ll.reference_path():
        ref = fn.value_and_grad(x, t, reduction=reduction, **options)
    tol = dict(rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(v_and_g[0].float(), ref[0].float(), **tol)
    torch.testing.assert_close(v_and_g[1].float(), ref[1].float(), rtol=1e-2, atol=1e-3)  # bf16 gradient
    torch.testing.assert_close(value.float(), ref[0].float(), **tol)
    upstream = 1.0 if reduction == "none" else 3.0
    torch.testing.assert_close(xg.grad.float(), upstream * ref[1].float(), rtol=2e-2, atol=2e-3)


@needs_triton
def test_kernel_declines_what_it_does_not_take(monkeypatch):
    from losslab.gpu import pointwise as gpu_pointwise
    from losslab.torch import _function

    monkeypatch.setenv("LOSSLAB_TRITON", "1")
    monkeypatch.setattr(_function, "CPU_HALF_IN_NUMPY", False)  # bf16 CPU tensors take the path of CUDA ones
    launched = []
    real = gpu_pointwise.launch
    monkeypatch.setattr(gpu_pointwise, "launch", lambda *a, **k: launched.append(a[0]) or real(*a, **k))
    x = torch.randn(8, dtype=torch.bfloat16, device=DEVICE)
    t = torch.rand(8, device=DEVICE)
    ll.binary_cross_entropy_with_logits(x, t, pos_weight=torch.full((8,), 2.0, device=DEVICE))  # pos_weight
    ll.huber(x, t, delta=torch.tensor(0.5, requires_grad=True))  # an option to differentiate: autograd's
    ll.mse(x.double(), t)  # float64
    assert launched == []
    monkeypatch.setenv("LOSSLAB_TRITON", "0")
    ll.mse(x, t)
    assert launched == []


REFUSE_NAN_TARGETS = {"binary_cross_entropy", "binary_cross_entropy_with_logits", "focal", "hinge", "squared_hinge",
                      "soft_margin", "hinge_embedding", "kl_div"}


@pytest.mark.parametrize("where", ["predictions", "targets"])
@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
@pytest.mark.parametrize("name", sorted(pointwise.DEFINITIONS))
def test_a_nan_input_reaches_the_loss_and_gradient(name, backend, where):
    """Every engine: a NaN prediction or target gives NaN in its element's loss and gradient (losses with
    label targets refuse a NaN target instead, and BCE a NaN probability, with their ValueError; under
    jax.jit, where values are not checked, the definitions give NaN there too)."""
    x = np.array([0.3, 0.9, 0.6, 0.2]) if name == "binary_cross_entropy" else np.array([0.3, 4.0, -2.0, 1.5])
    signs = "hinge" in name or name == "soft_margin"
    t = np.array([1.0, 1.0, -1.0 if signs else 0.0, -1.0 if signs else 0.0])
    if name in ("poisson_deviance", "gamma_deviance", "tweedie_deviance", "msle"):  # positive means and targets
        x, t = np.abs(x) + 0.1, np.abs(t) + 0.5
    (x if where == "predictions" else t)[[1, 2]] = np.nan
    if backend == "torch":
        x, t = torch.tensor(x), torch.tensor(t)
    elif backend == "jax":
        import jax.numpy as jnp

        x, t = jnp.asarray(x), jnp.asarray(t)
    fn = ll.get_loss(name)
    if (where == "targets" and name in REFUSE_NAN_TARGETS) or name == "binary_cross_entropy":  # as PyTorch
        with pytest.raises(ValueError, match=r"targets|probs"):
            fn(x, t, reduction="none")
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        items = np.asarray(fn(x, t, reduction="none"))
        grad = np.asarray(fn.grad(x, t, reduction="none"))
    assert np.isnan(items[[1, 2]]).all() and np.isnan(grad[[1, 2]]).all(), (items, grad)
    assert np.isfinite(items[[0, 3]]).all() and np.isfinite(grad[[0, 3]]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_numpy_kernels_select_is_np_where_bit_for_bit(dtype):
    from losslab import _numpy_kernels

    rng = np.random.default_rng(4)
    a, b = rng.standard_normal(999).astype(dtype), rng.standard_normal(999).astype(dtype)
    a[:4], b[4:8] = [np.nan, np.inf, -np.inf, -0.0], [np.nan, -np.inf, -0.0, 0.0]
    c = rng.random(999) < 0.5
    bits = np.uint32 if dtype == np.float32 else np.uint64
    for case in ("fresh", "into a", "into b", "scalar b", "scalar a", "a twice, into a"):
        x, y = a.copy(), b.copy()
        first, second, out = {"fresh": (x, y, np.empty(999, dtype)), "into a": (x, y, x), "into b": (x, y, y),
                              "scalar b": (x, 0.0, np.empty(999, dtype)), "scalar a": (-1.5, y, np.empty(999, dtype)),
                              "a twice, into a": (x, x, x)}[case]
        want = np.where(c, np.asarray(first, dtype), np.asarray(second, dtype))
        _numpy_kernels._select(c, first, second, out)
        np.testing.assert_array_equal(out.view(bits), want.view(bits), err_msg=case)



@needs_numba
@pytest.mark.parametrize("name", ["exp", "log", "log1p", "tanh"])
def test_numba_float32_exp_log_log1p_tanh_round_to_within_051_ulp_and_keep_the_edge_values(name):
    """losslab._numba_math: the float32 exp, log, log1p and tanh of the generated kernels (LLVM instructions written into
    the loop, compiled here with the kernels' fastmath flags) against float64 libm, on float32's whole range; a
    float64 argument is libm's own."""
    from numba import njit

    from losslab import _numba_math

    function = getattr(_numba_math, name)

    @njit(fastmath={"reassoc", "contract"}, error_model="numpy")
    def loop(x, out):
        for i in range(x.shape[0]):
            out[i] = function(x[i])

    rng = np.random.default_rng(5)
    n = 300_000
    sign = rng.choice([-1.0, 1.0], n)
    if name == "exp":
        x = np.concatenate([rng.uniform(-110, 92, n), rng.standard_normal(n), sign * 10 ** rng.uniform(-45, 1, n)])
    elif name == "log":
        x = 10 ** rng.uniform(-45, 38.5, 3 * n)
    elif name == "tanh":
        x = np.concatenate([rng.uniform(-25, 25, n), rng.standard_normal(n) * 0.1, sign * 10 ** rng.uniform(-45, 38, n)])
    else:
        x = np.concatenate([rng.uniform(-1, 0, n), np.exp(-np.abs(rng.standard_normal(n)) * 20),
                            sign * 10 ** rng.uniform(-45, 38, n)])
    edges = [0.05, -0.05, np.nextafter(np.float32(0.05), 0), 9.01, 20.0, 0.0, -0.0, 1e-45, -1e-45, 1.0, -1.0, -2.0, np.inf, -np.inf, np.nan, 88.7, 88.8, -87.4, -103.9, -104.5, 3e38]
    x = np.concatenate([x, edges]).astype(np.float32)
    out = np.empty_like(x)
    loop(x, out)
    with np.errstate(all="ignore"):
        exact = getattr(np, name)(x.astype(np.float64))
    rounded = exact.astype(np.float32)
    same = (out == rounded) | (np.isnan(out) & np.isnan(rounded))
    ordinary = np.isfinite(rounded) & (rounded != 0)
    assert same[~ordinary].all(), (x[~ordinary & ~same], out[~ordinary & ~same])  # 0, inf, NaN exactly
    zero = rounded == 0
    assert (np.signbit(out[zero]) == np.signbit(rounded[zero])).all()  # -0.0 too
    ulps = np.abs(out[ordinary] - exact[ordinary]) / np.spacing(np.abs(rounded[ordinary])).astype(np.float64)
    assert ulps.max() <= 0.51
    wide = np.array([0.3, 2.5, 1e-300], np.float64)
    out64 = np.empty_like(wide)
    loop(wide, out64)
    assert out64.tolist() == [getattr(math, name)(v) for v in wide.tolist()]
