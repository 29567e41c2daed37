"""The fast NumPy paths against the reference path: every option and reduction, float32 and
float64, threaded and single-threaded; and the fallbacks for what a fast path does not take."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading

import numpy as np
import pytest

import losslab as ll
from cases import CASES
from losslab import _engines, _fast, _numba_lanes, _ufuncs

FAST_CASES = [c for c in CASES if _engines.fast_path_of(c.fn.name, "numpy") is not None]


_ROW_BLOCKED = ("triplet_margin", "triplet_margin_with_distance", "cosine_embedding", "contrastive")


def _supported(case) -> bool:
    # one (D,) embedding item has no rows to block: the reference path takes it
    return not (case.loss in ("cross_entropy", "nll", *_ROW_BLOCKED) and case.args[0].ndim != 2)


def assert_same_results(fast, ref, dtype):
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == "float32" else {"rtol": 1e-11, "atol": 1e-13}
    for a, b in zip(fast, ref):
        assert np.asarray(a).dtype == np.asarray(b).dtype
        np.testing.assert_allclose(a, b, **tol)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", FAST_CASES, ids=[c.id for c in FAST_CASES])
def test_fast_path_equals_reference(case, reduction, dtype):
    args = tuple(a.astype(dtype) if a.dtype.kind == "f" else a for a in case.args)
    out = _engines.fast_path_of(case.fn.name, "numpy")(args, dict(case.options), reduction, None, True)
    if not _supported(case):
        assert out is NotImplemented
        return
    assert out is not NotImplemented, "the fast path declined an input it should take"
    with ll.reference_path():
        ref = case.fn.value_and_grad(*args, **case.options, reduction=reduction)
    assert_same_results(out, ref, dtype)
    assert type(case.fn(*args, **case.options, reduction=reduction)) is type(ref[0])
    np.testing.assert_allclose(_engines.fast_path_of(case.fn.name, "numpy")(args, dict(case.options), reduction, None, False), ref[0], rtol=1e-5)


@pytest.mark.parametrize("normalizer", [0, 3, 17.5])
def test_fast_normalizer(normalizer):
    case = next(c for c in CASES if c.loss == "cross_entropy" and "wTrue" in c.label)
    fast = case.fn.value_and_grad(*case.args, **case.options, normalizer=normalizer)
    with ll.reference_path():
        ref = case.fn.value_and_grad(*case.args, **case.options, normalizer=normalizer)
    assert_same_results(fast, ref, "float64")


@contextlib.contextmanager
def _thread_count_kept():
    """losslab's thread count as it was, after a test that sets it."""
    before = ll.get_num_threads()
    try:
        yield
    finally:
        ll.set_num_threads(before)


LARGE = [
    ("cross_entropy", {}),
    ("cross_entropy", {"label_smoothing": 0.1, "ignore_index": 3}),
    ("cross_entropy", {"label_smoothing": 0.2, "weight": "w"}),
    ("cross_entropy", {"probs": True, "label_smoothing": 0.1, "weight": "w"}),
    ("cross_entropy", {"probs": True}), ("cross_entropy", {"probs": True, "softcap": 5.0, "lse_square_scale": 1e-3}),
    ("nll", {}), ("nll", {"ignore_index": 3, "weight": "w"}),  # the gradient's zeros filled over threads
    ("mse", {}), ("mae", {"weight": "full"}), ("huber", {"delta": 0.5}), ("smooth_l1", {"beta": 0.2}),
    ("log_cosh", {}), ("quantile", {"q": 0.8}), ("mape", {}),
    ("binary_cross_entropy_with_logits", {"pos_weight": "w", "weight": "full"}), ("focal", {"gamma": 1.5}),
    ("info_nce", {"temperature": 0.1}), ("siglip", {}),
    # the kernels with exp, log or log1p (losslab._numba_math) that run at every size
    ("binary_cross_entropy_with_logits", {}), ("soft_margin", {}), ("poisson_nll", {}), ("gamma_deviance", {}),
    ("msle", {}), ("kl_div", {}), ("kl_div", {"log_target": True}),
]


ENGINES = ["numpy", "numba"] if _fast._numba.AVAILABLE else ["numpy"]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(("name", "spec"), LARGE, ids=[f"{n}-{'-'.join(s)}" for n, s in LARGE])
def test_threaded_blocks_equal_single_thread_and_reference(name, spec, engine):
    rng = np.random.default_rng(5)
    n, c = 700, 1000  # 700k elements: above the threading threshold, many blocks, odd split
    x = rng.standard_normal((n, c)).astype(np.float32) * 3
    opts = {k: v for k, v in spec.items() if k != "probs"}
    if "weight" in opts:
        opts["weight"] = rng.uniform(0.5, 2, size=(n, c) if opts["weight"] == "full" else c).astype(np.float32)
    if "pos_weight" in opts:
        opts["pos_weight"] = rng.uniform(0.5, 2, size=c).astype(np.float32)
    if name in ("cross_entropy", "nll"):
        t = rng.dirichlet(np.ones(c), size=n).astype(np.float32) if spec.get("probs") else rng.integers(0, c, n)
    else:
        t = rng.uniform(0, 1, size=(n, c)).astype(np.float32)
    if name == "soft_margin":
        t = np.where(t > 0.5, 1.0, -1.0).astype(np.float32)
    elif name in ("gamma_deviance", "msle"):  # positive predictions (and, for gamma, targets)
        x, t = np.abs(x) + np.float32(0.1), t + np.float32(0.1)
    fn = ll.get_loss(name)
    engine_ctx = _fast.numpy_only() if engine == "numpy" else contextlib.nullcontext()
    with _thread_count_kept(), engine_ctx:
        ll.set_num_threads(1)
        single = fn.value_and_grad(x, t, **opts)
        ll.set_num_threads(3)
        threaded = fn.value_and_grad(x, t, **opts)
        items = fn(x, t, **opts, reduction="none")
    np.testing.assert_allclose(threaded[0], single[0], rtol=1e-5)
    np.testing.assert_array_equal(threaded[1], single[1])  # each element is the same work, whoever runs it
    with ll.reference_path():
        ref = fn.value_and_grad(x, t, **opts)
        ref_items = fn(x, t, **opts, reduction="none")
    assert_same_results(threaded, ref, "float32")
    assert_same_results((items,), (ref_items,), "float32")


def test_fast_paths_decline_what_they_do_not_handle():
    z, y = np.zeros((4, 3)), np.array([0, 1, 2, 0])
    assert _fast.cross_entropy((z, y), {"weight": [1.0, 2.0]}, "mean", None, True) is NotImplemented  # bad weight
    assert _fast.cross_entropy((z, np.array([0, 1, 2, 9])), {}, "mean", None, True) is NotImplemented  # out of range
    assert _fast.cross_entropy((z.astype(np.float16), y), {}, "mean", None, True) is NotImplemented
    assert _fast.cross_entropy((z, y), {}, "avg", None, True) is NotImplemented
    assert _fast.mse((z, np.zeros(3)), {}, "mean", None, True) is NotImplemented  # shape mismatch
    assert _fast.mse((z, z), {"weight": np.ones(4)}, "mean", None, True) is NotImplemented  # needs a broadcast copy
    # ... and the public call then gives the reference path's result or its documented error; option
    # ranges are checked once, against the spec's domains, before any fast path runs
    with pytest.raises(ValueError, match=r"label_smoothing must be a finite number in \[0, 1\]"):
        ll.cross_entropy(z, y, label_smoothing=2.0)
    with pytest.raises(ValueError, match=r"delta must be a finite number in \(0, inf\)"):
        ll.huber(z, z, delta=-1.0)
    with pytest.raises(ValueError, match="out of range"):
        ll.cross_entropy(z, np.array([0, 1, 2, 9]))
    np.testing.assert_allclose(ll.mse(z, z + 1, weight=np.ones((4, 1))), 1.0)
    x = np.array([np.inf, -np.inf]), np.array([1.0, 0.0])
    assert ll.binary_cross_entropy_with_logits(*x) == 0.0  # inf logits: the reference path's answer


@pytest.mark.skipif(not _fast._numba.AVAILABLE, reason="needs Numba")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("values", [[0.0, 0.5, 1.0], [-0.0, 1.0], [0.5, np.nan], [1.0, np.nextafter(1.0, 2.0)],
                                    [-1e-30, 0.5], [np.inf], [-np.inf, 0.0], [0.25] * 5000])
def test_the_compiled_unit_interval_check_agrees_with_numpy(values, dtype):
    a = np.array(values, dtype)
    _fast._numba.imported()  # (a NumPy call does not import Numba for this check; the torch lane has)
    numpy_says = bool(a.min() >= 0 and a.max() <= 1)
    assert _fast._in_unit(a) is numpy_says
    if a.size <= _fast.DIRECT_SMALL_ELEMENTS:  # (larger arrays take NumPy's min and max)
        assert _numba_lanes.in_unit_interval(a) is numpy_says
        with _fast.numpy_only():
            assert _numba_lanes.in_unit_interval(a) is None


@pytest.mark.skipif(not _fast._numba.AVAILABLE, reason="needs Numba")
@pytest.mark.parametrize("svml", [False, True])
def test_msle_runs_its_loop_at_every_size_unless_numpys_log1p_is_svmls(svml, monkeypatch):
    monkeypatch.setattr(_ufuncs, "SVML_LOG1P", svml)  # as on a CPU with (True) or without AVX512_SKX
    assert _fast._numba.at_every_size("msle") is not svml
    assert _fast._numba.at_every_size("mse") and not _fast._numba.at_every_size("log_cosh")
    assert (_fast._kernel_for("msle", {}) is None) is svml  # a large call: the blocks where NumPy has SVML
    kernel, _, any_size = _fast._kernel_for("msle", {}, small=True)  # small calls take the loop either way
    assert kernel is not None and any_size is not svml
    rng = np.random.default_rng(8)
    x, t = (rng.uniform(0.1, 5.0, 600_000).astype(np.float32) for _ in range(2))
    fast = ll.msle.value_and_grad(x, t)
    with ll.reference_path():
        ref = ll.msle.value_and_grad(x, t)
    assert_same_results(fast, ref, "float32")


_CONCURRENT_LAUNCHES = """
import threading, numpy as np, losslab as ll, numba
x = np.random.default_rng(0).standard_normal((700, 1000)).astype(np.float32)
t = np.random.default_rng(1).integers(0, 1000, 700)
def work():
    for _ in range(20):
        ll.nll.value_and_grad(x, t)
        ll.mse.value_and_grad(x, x)
threads = [threading.Thread(target=work) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(numba.threading_layer())
"""


@pytest.mark.skipif(not _fast._numba.AVAILABLE, reason="needs Numba")
def test_parallel_loops_launched_from_several_threads_under_numbas_workqueue_layer():
    """The workqueue layer (where neither OpenMP nor TBB loads) aborts the process on concurrent launches: losslab
    serialises them there."""
    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue", "NUMBA_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", _CONCURRENT_LAUNCHES], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "workqueue"


ROW_LOOP_CASES = {  # cross_entropy's large calls, each through another mix of compiled row loops and NumPy steps
    "float64 logits": (np.float64, np.float64, "C", "C", {}),
    "float64 targets of float32 logits": (np.float32, np.float64, "C", "C", {}),  # not fused: q cast, then u (a p - q)
    "Fortran-order targets": (np.float32, np.float32, "C", "F", {}),  # the per-row scale loop, then NumPy's - u q
    "Fortran-order logits": (np.float32, np.float32, "F", "C", {}),  # no row loops at all
    "class indices, softcap": (np.float32, None, "C", "C", {"softcap": 4.0}),
    "class indices, smoothing, ignored rows": (np.float64, None, "C", "C", {"label_smoothing": 0.1, "ignore_index": 2}),
}


@pytest.mark.parametrize("case", ROW_LOOP_CASES)
def test_cross_entropy_row_loops_equal_the_reference_on_any_thread_count(case):
    """Every mix of cross_entropy's compiled row loops (where Numba runs) and NumPy steps gives the reference path's
    value and gradient, the same on 1 and 3 threads."""
    z_dtype, q_dtype, z_order, q_order, options = ROW_LOOP_CASES[case]
    rng = np.random.default_rng(6)
    n, c = 700, 1000  # above PARALLEL_MIN_ELEMENTS: many blocks over threads
    z = np.asarray(rng.standard_normal((n, c)) * 3, dtype=z_dtype, order=z_order)
    if q_dtype is None:
        t = rng.integers(0, c, n)
        t[::7] = options.get("ignore_index", -100)
    else:
        t = np.asarray(rng.dirichlet(np.ones(c), n), dtype=q_dtype, order=q_order)
    with _thread_count_kept():
        ll.set_num_threads(1)
        single = ll.cross_entropy.value_and_grad(z, t, **options)
        ll.set_num_threads(3)
        threaded = ll.cross_entropy.value_and_grad(z, t, **options)
    np.testing.assert_allclose(threaded[0], single[0], rtol=1e-6)
    np.testing.assert_array_equal(threaded[1], single[1])
    with ll.reference_path():
        ref = ll.cross_entropy.value_and_grad(z, t, **options)
    rtol = 1e-5 if z_dtype == np.float32 else 1e-11  # (the gradient's entries are ~1/N: an atol relative to them)
    np.testing.assert_allclose(threaded[0], ref[0], rtol=rtol)
    np.testing.assert_allclose(threaded[1], ref[1], rtol=rtol, atol=rtol * np.abs(ref[1]).max())
    assert threaded[1].dtype == ref[1].dtype
    if q_dtype is not None:  # a target out of [0, 1] on this path: the reference's error
        t = t.copy(order="K")
        t[n - 1, c - 1] = 1.5
        with pytest.raises(ValueError, match=r"targets must lie in \[0, 1\]"):
            ll.cross_entropy.value_and_grad(z, t, label_smoothing=0.1, **options)


@pytest.mark.parametrize("bad", [1.5, -1e-30, np.nan])
def test_probability_targets_out_of_range_in_any_block_get_the_references_error(bad):
    """The fast path checks each block's targets on the threads (not the whole array first): a bad value in the last
    block still gives the reference path's error, with the gradient or without."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((700, 1000)).astype(np.float32)  # many blocks, over threads
    q = rng.dirichlet(np.ones(1000), 700).astype(np.float32)
    q[699, 999] = bad
    with _thread_count_kept():
        ll.set_num_threads(2)
        for call in (ll.cross_entropy, ll.cross_entropy.value_and_grad):
            with pytest.raises(ValueError, match=r"targets must lie in \[0, 1\]"):
                call(z, q)


_FORK_WHILE_LOCKED = """
import os, signal, numpy as np, losslab as ll
from losslab import _numba
x = np.random.default_rng(0).standard_normal(1 << 19).astype(np.float32)  # above the kernels' serial size
ll.mse.value_and_grad(x, x)
_numba._launches["threadsafe"] = False
_numba._launches["lock"].acquire()  # as if another thread were inside a launch when the process forks
pid = os.fork()
if pid == 0:
    signal.alarm(60)  # a child that inherited the held lock would wait forever
    ll.mse.value_and_grad(x, x)
    os._exit(0)
_, status = os.waitpid(pid, 0)
print("child ok" if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 else "child hung or failed")
"""


@pytest.mark.skipif(not _fast._numba.AVAILABLE or not hasattr(os, "fork"), reason="needs Numba and fork")
def test_a_child_forked_while_a_launch_holds_the_lock_launches_freely():
    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue", "NUMBA_NUM_THREADS": "2"}  # (fork-safe, unlike GNU OMP)
    out = subprocess.run([sys.executable, "-c", _FORK_WHILE_LOCKED], capture_output=True, text=True, env=env,
                         timeout=300)
    assert out.stdout.strip() == "child ok", out.stderr[-2000:]


@pytest.mark.skipif(not _fast._numba.AVAILABLE, reason="needs Numba")
def test_parallel_loops_run_on_losslabs_thread_count_from_any_thread():
    numba = _fast._numba.imported()
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 Numba threads")
    x = np.log(np.random.default_rng(0).dirichlet(np.ones(1000), 700)).astype(np.float32)
    t = np.random.default_rng(1).integers(0, 1000, 700)
    seen = {}

    def work():
        ll.nll.value_and_grad(x, t)  # (a parallel loop: nll's gradient)
        seen["threads"] = numba.get_num_threads()

    with _thread_count_kept():
        ll.set_num_threads(1)
        worker = threading.Thread(target=work)
        worker.start()
        worker.join()
    assert seen["threads"] == 1  # (Numba's count is per thread: set_num_threads set only the main thread's)


@pytest.mark.parametrize("dtype", [">i8", np.int32, np.uint16, "readonly", "strided"])
def test_nll_large_gradient_takes_any_integer_targets(dtype):
    rng = np.random.default_rng(0)
    x = np.log(rng.dirichlet(np.ones(1000), 700)).astype(np.float32)  # large and C-contiguous: the parallel loop
    t = rng.integers(0, 1000, 700)
    if dtype == "readonly":
        t.flags.writeable = False
    elif dtype == "strided":
        t = np.repeat(t, 2)[::2]
    else:
        t = t.astype(dtype)
    value, grad = ll.nll.value_and_grad(x, t)
    with ll.reference_path():
        want = ll.nll.value_and_grad(x, t.astype(np.int64))
    np.testing.assert_allclose(value, want[0], rtol=1e-6)
    np.testing.assert_array_equal(grad, want[1])


ELEMENTWISE_BAD_LAST_VALUE = [  # (loss, predictions, targets, the bad value put last, into which argument)
    ("binary_cross_entropy_with_logits", "normal", "unit", 1.5, 1),
    ("binary_cross_entropy", "unit", "unit", 1.2, 0),
    ("focal", "normal", "unit", -0.1, 1),
    ("hinge", "normal", "signs", 0.5, 1),
    ("kl_div", "normal", "unit", -0.1, 1),
    ("poisson_deviance", "positive", "positive", -1.0, 1),
    ("mse", "normal", "normal", np.nan, 1),  # (no check: a NaN reaches the output)
]


@pytest.mark.parametrize(("name", "xs", "ts", "bad", "where"), ELEMENTWISE_BAD_LAST_VALUE,
                         ids=[c[0] for c in ELEMENTWISE_BAD_LAST_VALUE])
def test_a_large_elementwise_call_checks_every_block(name, xs, ts, bad, where):
    """Large calls check their values block by block on the threads: a bad value in the last block still gives the
    reference path's answer (its error, or its NaN), with the gradient or without."""
    rng = np.random.default_rng(0)
    make = {"normal": lambda: rng.standard_normal((700, 1000)), "unit": lambda: rng.uniform(0.01, 0.99, (700, 1000)),
            "signs": lambda: rng.choice([-1.0, 1.0], (700, 1000)), "positive": lambda: rng.uniform(0.5, 2, (700, 1000))}
    args = [make[xs]().astype(np.float32), make[ts]().astype(np.float32)]
    args[where][699, 999] = bad
    fn = ll.get_loss(name)
    with _thread_count_kept():
        ll.set_num_threads(2)
        for call in (fn, fn.value_and_grad):
            try:
                with ll.reference_path():
                    want = call(*args)
            except ValueError as err:
                with pytest.raises(ValueError, match=re.escape(str(err))):
                    call(*args)
            else:
                got = call(*args)
                assert np.isnan(got[0] if isinstance(got, tuple) else got) and np.isnan(
                    want[0] if isinstance(want, tuple) else want)


def test_switches():
    with pytest.raises(ValueError, match="positive int"):
        ll.set_num_threads(0)
    assert _fast.enabled()
    with ll.reference_path():
        assert not _fast.enabled()
    assert _fast.enabled()


@pytest.mark.parametrize("case", [c for c in CASES if c.loss == "kl_div"], ids=lambda c: c.id)
def test_kl_div_batchmean_fast_path_equals_reference(case):
    fast = _engines.fast_path_of("kl_div", "numpy")
    out = fast(case.args, dict(case.options), "batchmean", None, True)
    assert out is not NotImplemented
    with ll.reference_path():
        ref = ll.kl_div.value_and_grad(*case.args, **case.options, reduction="batchmean")
    np.testing.assert_allclose(out[0], ref[0], rtol=1e-12)
    np.testing.assert_allclose(out[1], ref[1], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_hand_kernel_equals_its_definition(log_target, dtype):
    """kl_div's NumPy kernel is written by hand (fewer passes than its generated one): held to the definition on
    random blocks with its edge values (zero targets, -inf and NaN predictions where the targets are 0 or not); a NaN
    prediction's value is NaN (the call then takes the reference path, which gives its gradient)."""
    from losslab.definitions.pointwise import KLDivergence

    rng = np.random.default_rng(7)
    for nan in (False, True):
        x = np.log(rng.uniform(1e-4, 1.0, 4000)).astype(dtype)
        t = rng.uniform(0, 1, 4000).astype(dtype)
        t[:400] = 0.0
        x[:3], x[400:403] = -np.inf, [-50.0, 3.0, 0.0]
        if log_target:
            t, x[:3] = np.log(rng.uniform(1e-4, 1.0, 4000)).astype(dtype), -3.0  # (-inf with e^t (t - x): inf)
        if nan:
            x[[5, 410, 3999]] = np.nan
        l, g = np.empty_like(x), np.empty_like(x)
        _fast._kl_div(x, t, l, g, {"log_target": log_target})
        with np.errstate(all="ignore"):
            want_l, want_g = KLDivergence.value_and_grad(np, x, t, log_target)
        rtol = 1e-6 if dtype == np.float32 else 1e-14
        np.testing.assert_allclose(l, want_l, rtol=rtol, atol=0)  # NaN where NaN, 0 where 0
        assert np.isnan(l).sum() == (3 if nan else 0)
        np.testing.assert_allclose(g[~np.isnan(x)], want_g[~np.isnan(x)], rtol=rtol, atol=0)
    x, t = np.array([0.5, np.nan, -1.0], dtype), np.array([0.5, 0.0, 0.5], dtype)
    value, grad = ll.kl_div.value_and_grad(x, t, reduction="sum")  # the whole call: NaN in value and gradient
    assert np.isnan(value) and np.isnan(grad[1]) and np.isfinite(grad[[0, 2]]).all()


PAIRS = [
    ("dpo", {"beta": 0.2, "loss_type": "sigmoid", "label_smoothing": 0.1}),
    ("dpo", {"beta": 0.05, "loss_type": "hinge"}),
    ("dpo", {"beta": 0.5, "loss_type": "ipo"}),
    ("dpo", {"beta": 0.3, "loss_type": "robust", "label_smoothing": 0.2}),
    ("simpo", {"beta": 1.5, "gamma": 0.8}),
    ("orpo", {"lam": 0.5}),
    ("margin_ranking", {"margin": 0.3}),
]


@pytest.mark.parametrize(("name", "options"), PAIRS, ids=[f"{n}-{'-'.join(map(str, o.values()))}" for n, o in PAIRS])
def test_pair_paths_threaded_blocks_equal_single_thread_and_reference(name, options):
    rng = np.random.default_rng(11)
    shape = (700, 1000)  # 700k elements: above the threading threshold, many blocks, odd split
    if name == "dpo":
        args = tuple(-rng.uniform(5, 40, shape).astype(np.float32) for _ in range(4))
    elif name == "margin_ranking":
        t = np.where(rng.uniform(size=shape) < 0.5, -1.0, 1.0).astype(np.float32)
        args = (*rng.normal(size=(2, *shape)).astype(np.float32), t)
    else:
        args = tuple(-rng.uniform(0.01, 3.0, shape).astype(np.float32) for _ in range(2))
    fn, fast = ll.get_loss(name), _engines.fast_path_of(name, "numpy")
    with _thread_count_kept():
        ll.set_num_threads(1)
        single = fast(args, options, "sum", None, True)
        ll.set_num_threads(3)
        threaded = fast(args, options, "sum", None, True)  # sum: gradients of order 1, not 1/N
        items = fn(*args, **options, reduction="none")
        mean = fn(*args, **options)
    np.testing.assert_array_equal(threaded[0], single[0])  # the same blocks summed in the same order
    for a, b in zip(threaded[1], single[1]):
        np.testing.assert_array_equal(a, b)  # each element is the same work, whoever runs it
    with ll.reference_path():
        ref = fn.value_and_grad(*args, **options, reduction="sum")
        ref_items = fn(*args, **options, reduction="none")
        ref_mean = fn(*args, **options)
    assert_same_results(threaded, ref, "float32")
    assert_same_results((items, mean), (ref_items, ref_mean), "float32")


def test_pair_paths_decline_what_the_reference_must_answer():
    x = -np.linspace(0.1, 2.0, 10)
    path = {name: _engines.fast_path_of(name, "numpy") for name in ("dpo", "orpo", "margin_ranking")}
    assert path["orpo"]((x, np.where(x < -1, x, 0.0)), {}, "mean", None, True) is NotImplemented  # log-probability 0
    assert path["margin_ranking"]((x, x, np.full(10, 0.5)), {}, "mean", None, True) is NotImplemented
    assert path["dpo"]((x, x, x, x.astype(np.float32)), {}, "mean", None, True) is NotImplemented
    with pytest.raises(ValueError, match="rejected_avg_logps"):
        ll.orpo(x, np.where(x < -1, x, 0.0))
    nan = np.where(x < -1, x, np.nan)
    for loss_type in ("sigmoid", "hinge", "ipo", "robust"):  # NaN: the reference path's answer
        value, (chosen, _) = ll.dpo.value_and_grad(nan, x, x, x, loss_type=loss_type)
        with ll.reference_path():
            np.testing.assert_array_equal(value, ll.dpo(nan, x, x, x, loss_type=loss_type))
        assert np.isnan(chosen[0]) and not np.isnan(chosen[-1])


ROW_BLOCKED = [
    ("triplet_margin", 3, {"margin": 0.5, "swap": True}),
    ("triplet_margin", 3, {"p": 1.5}),
    ("triplet_margin_with_distance", 3, {"distance_function": "cosine", "margin": 0.2}),
    ("cosine_embedding", 2, {"margin": 0.1}),
    ("contrastive", 2, {"margin": 40.0}),
]


@pytest.mark.parametrize(("name", "n_embeddings", "options"), ROW_BLOCKED,
                         ids=[f"{n}-{'-'.join(map(str, o.values()))}" for n, _, o in ROW_BLOCKED])
def test_row_blocked_paths_equal_the_reference_on_many_threaded_blocks(name, n_embeddings, options):
    rng = np.random.default_rng(3)
    n, d = 1500, 700  # above the threading threshold, many blocks of rows, an odd split
    args = [rng.standard_normal((n, d)).astype(np.float32) for _ in range(n_embeddings)]
    if name == "cosine_embedding":
        args.append(np.where(rng.uniform(size=n) < 0.5, -1.0, 1.0).astype(np.float32))
    elif name == "contrastive":
        args.append((rng.uniform(size=n) < 0.5).astype(np.float32))
    fn, fast = ll.get_loss(name), _engines.fast_path_of(name, "numpy")
    with _thread_count_kept():
        for reduction in ("mean", "sum", "none"):
            ll.set_num_threads(1)
            single = fast(tuple(args), options, reduction, None, True)
            ll.set_num_threads(3)
            out = fast(tuple(args), options, reduction, None, True)
            assert out is not NotImplemented
            np.testing.assert_array_equal(out[0], single[0])  # the same blocks, summed in the same order
            for a, b in zip(out[1], single[1]):
                np.testing.assert_array_equal(a, b)
            with ll.reference_path():
                ref = fn.value_and_grad(*args, **options, reduction=reduction)
            np.testing.assert_allclose(out[0], ref[0], rtol=2e-5, atol=1e-6)
            for a, b in zip(out[1], ref[1]):
                assert a.dtype == b.dtype == np.float32
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
        assert fast(tuple(args), options, "mean", 7.0, False) == pytest.approx(fn(*args, **options, normalizer=7.0), rel=1e-5)


def test_row_blocked_paths_leave_bad_values_and_nan_to_the_reference():
    x = np.ones((4, 3))
    cosine = _engines.fast_path_of("cosine_embedding", "numpy")
    assert cosine((x, x, np.array([1.0, 0.0, 1.0, -1.0])), {}, "mean", None, True) is NotImplemented
    with pytest.raises(ValueError, match="targets must only contain"):
        ll.cosine_embedding(x, x, np.array([1.0, 0.0, 1.0, -1.0]))
    nan = x.copy()
    nan[2, 1] = np.nan
    triplet = _engines.fast_path_of("triplet_margin", "numpy")
    assert triplet((nan, x, 2 * x), {}, "mean", None, True) is NotImplemented
    assert np.isnan(ll.triplet_margin(nan, x, 2 * x))
    # a NumPy scalar option reaches a fast path as the Python number Loss._bind made of it
    assert triplet((x, x, x), {"margin": np.float32(1.0)}, "mean", None, True) is NotImplemented
    x32 = np.ones((4, 3), np.float32)
    value, grads = ll.triplet_margin.value_and_grad(x32, x32, 2 * x32, margin=np.float64(2.0))
    assert value.dtype == np.float32 and grads[0].dtype == np.float32
    assert value == ll.triplet_margin(x32, x32, 2 * x32, margin=2.0)
    assert _engines.fast_path_of("triplet_margin_with_distance", "numpy")(
        (x, x, x), {"distance_function": lambda a, b: a}, "mean", None, True) is NotImplemented


CLASS_ROWS = [
    ("multiclass_hinge", {"p": 2, "margin": 0.7, "weight": "w"}),
    ("multiclass_hinge", {"p": 1, "margin": 1.5}),
    ("multilabel_soft_margin", {"weight": "w"}),
    ("multilabel_margin", {}),
    ("distill_kl", {"temperature": 2.0, "reverse": True}),
    ("distill_kl", {"temperature": 0.7}),
    ("jsd", {"beta": 0.3, "temperature": 1.5}),
    ("jsd", {"beta": 1.0, "temperature": 2.0}),
]


@pytest.mark.parametrize(("name", "options"), CLASS_ROWS, ids=[f"{n}-{'-'.join(map(str, o.values()))}" for n, o in CLASS_ROWS])
def test_class_row_paths_equal_the_reference_on_many_threaded_blocks(name, options):
    rng = np.random.default_rng(4)
    n, c = (4000, 64) if name == "multilabel_margin" else (2000, 600)  # above the threading threshold, many blocks
    x = (rng.standard_normal((n, c)) * 2).astype(np.float32)
    opts = {k: rng.uniform(0.5, 2, c).astype(np.float32) if v == "w" else v for k, v in options.items()}
    if name == "multiclass_hinge":
        t = rng.integers(0, c, n)
    elif name == "multilabel_soft_margin":
        t = (rng.uniform(size=(n, c)) < 0.2).astype(np.float32)
    elif name == "multilabel_margin":  # up to 6 targets per row (duplicates too), then -1 and ignored entries
        t = rng.integers(0, c, (n, c))
        t[np.arange(c) >= rng.integers(0, 7, n)[:, None]] = -1
        t[:, 8:] = rng.integers(-1, c, (n, c - 8))
    else:
        t = (rng.standard_normal((n, c)) * 2).astype(np.float32)
    fn, fast = ll.get_loss(name), _engines.fast_path_of(name, "numpy")
    with _thread_count_kept():
        ll.set_num_threads(1)
        single = fast((x, t), opts, "mean", None, True)
        ll.set_num_threads(3)
        for reduction in ("mean", "sum", "none"):
            out = fast((x, t), opts, reduction, None, True)
            assert out is not NotImplemented
            with ll.reference_path():
                ref = fn.value_and_grad(x, t, **opts, reduction=reduction)
            assert_same_results(out, ref, "float32")
            np.testing.assert_allclose(fast((x, t), opts, reduction, None, False), ref[0], rtol=1e-5, atol=1e-6)
            if reduction == "mean":
                np.testing.assert_array_equal(out[1], single[1])  # each row is the same work, whoever runs it


def test_a_nan_embedding_reaches_the_contrastive_loss_of_a_dissimilar_pair():
    # max(0, margin - d) once turned a NaN distance into a loss of 0 (with a NaN gradient)
    x = np.ones((3, 2))
    y = np.zeros((3, 2))
    y[1, 0] = np.nan
    value, grads = ll.contrastive.value_and_grad(x, y, np.array([1.0, 0.0, 0.0]))
    assert np.isnan(value) and np.isnan(grads[0][1]).all() and np.isfinite(grads[0][0]).all()


@pytest.mark.parametrize("case", [c for c in FAST_CASES if _supported(c)], ids=lambda c: c.id)
def test_fast_path_with_the_other_float32_log1p_equals_reference(case, monkeypatch):
    """The form of float32 log1p this CPU does not use (losslab._ufuncs: NumPy's, or the corrected log where
    NumPy's is a scalar loop), so both are held to the reference on any machine."""
    from losslab import _ufuncs

    monkeypatch.setattr(_ufuncs, "CORRECTED_LOG1P", not _ufuncs.CORRECTED_LOG1P)
    args = tuple(a.astype("float32") if a.dtype.kind == "f" else a for a in case.args)
    out = _engines.fast_path_of(case.fn.name, "numpy")(args, dict(case.options), "mean", None, True)
    with ll.reference_path():
        ref = case.fn.value_and_grad(*args, **case.options, reduction="mean")
    assert_same_results(out, ref, "float32")
