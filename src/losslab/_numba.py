"""Optional compiled kernels (Numba) for elementwise losses on large NumPy inputs.

NumPy evaluates a loss as a chain of ufuncs, one pass each; PyTorch's CPU kernels fuse the
whole loss into one pass. These kernels do the same: one parallel loop computes the value, the
gradient, the weight and the mean's 1/K for each element while it is in registers. They are
generated from the loss's definition (``losslab/definitions/codegen.py`` writes
``_numba_kernels.py``; a test fails when it is stale) and cached on disk by Numba, so only the
first process on a machine compiles them. Used by ``_fast`` for inputs of at least
``_fast.PARALLEL_MIN_ELEMENTS`` elements when Numba is installed (``pip install 'losslab[fast]'``)
and not disabled (``LOSSLAB_NUMBA=0``); otherwise the NumPy blocked path runs. Both are held to
the reference path by the tests. Numba is imported on first use, so ``import losslab`` stays light.

Each kernel: kernel(x, t, w, u, l, g, *options) (``codegen.Variant.params`` in order) -> sum of the (weighted) losses, for 1-D contiguous
x, t; w, l, g are empty arrays when absent (no weight, per-item losses or gradient not wanted).

Which losses use them (``NAMES``) is measured (benchmarks/README.md). Numba's own exp, log and log1p are scalar libm
calls (no SVML), which NumPy's vectorised ufuncs beat, so in float32 the kernels call ``_numba_math``'s, which LLVM
vectorises (float64 keeps libm).
Every generated kernel serves the torch engine's compiled lane for small calls (``_fast.DIRECT_SMALL_ELEMENTS``).
"""

from __future__ import annotations

import importlib.util
import os
import threading

from . import _ufuncs

AVAILABLE = importlib.util.find_spec("numba") is not None and os.environ.get("LOSSLAB_NUMBA", "1") not in ("0", "false", "False")
# (mape since the plain call's own loops: 0.13-0.4x the NumPy blocks from 1M to 16M elements. BCE with logits,
# soft_margin, poisson_nll, gamma_deviance and msle since _numba_math's float32 exp, log and log1p, which LLVM
# vectorises: 0.46-0.67x at 4M on an AMD EPYC (AVX2), where they took 1.2-5.6x with libm's. focal 1.03x,
# binary_cross_entropy 0.90x, poisson_deviance 1.45x, kl_div 1.8x and log_cosh (libm's tanh) 4.1x stayed with the
# blocks. binary_cross_entropy and poisson_deviance since a transcendental's argument is cast to the inputs' float
# type (codegen: a float64 constant in 1 - x or a select with 1.0 had sent their log to libm): 0.35x and 0.53x at 4M on
# an AMD EPYC with AVX-512, from 1.33x and 1.90x. kl_div and kl_div with log targets since then too: 0.51-0.59x and 0.51-0.57x
# the blocks' hand chain at 4M float32 there (value and gradient). log_cosh (1.29-1.47x against
# NumPy's SVML exp, log1p and tanh) and focal (1.0x) stay with the blocks)
NAMES = ("mse", "mae", "huber", "smooth_l1", "quantile", "hinge", "squared_hinge", "hinge_embedding", "mape",
         "binary_cross_entropy_with_logits", "soft_margin", "poisson_nll", "gamma_deviance", "msle", "binary_cross_entropy",
         "poisson_deviance", "kl_div", "kl_div_log_target")
# On x86 with AVX-512 NumPy's float32 log1p is an SVML SIMD routine (_ufuncs.SVML_LOG1P), and msle's blocks (two log1p
# an element) beat its loop there: 1.09-1.23x the blocks' time at 4M float32 in four runs on an AMD EPYC with AVX-512
# (benchmarks/results/generated_kernels-2026-12-02-amd-epyc-avx512-*.md), where it took 0.60x on AVX2; its loop still
# serves the compiled lane's small calls
BLOCKS_WITH_SVML_LOG1P = ("msle",)
_threads = {"n": 1}
_loaded: dict = {}


def imported():
    """Numba, imported on first use, its thread count set to losslab's (``set_threads``)."""
    numba = _loaded.get("numba")
    if numba is None:
        import numba

        _give_threads(numba)
        _loaded["numba"] = numba
    return numba


def _give_threads(numba) -> None:
    """Numba's thread count for the calling thread (Numba keeps one per thread) set to losslab's, within Numba's pool."""
    numba.set_num_threads(max(1, min(_threads["n"], numba.config.NUMBA_NUM_THREADS)))
    _this_thread.threads = _threads["n"]


# Numba's workqueue threading layer, its fallback where neither OpenMP (libgomp: absent from slim containers) nor TBB
# loads, aborts the process when two Python threads launch parallel loops at once (a threaded server, a data loader):
# losslab's launches are serialised until the first one shows a threadsafe layer (omp, tbb), then run freely. A child
# forked while another thread held the lock gets a fresh one (the holder does not exist in the child).
_launches = {"lock": threading.Lock(), "threadsafe": False}
_THREADSAFE_LAYERS = ("omp", "tbb")
_this_thread = threading.local()  # the thread count this thread last gave Numba
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _launches.update(lock=threading.Lock()))


def launch(kernel, *args):
    """``kernel(*args)`` for a kernel that may run a parallel loop (parallel=True), safe from several threads, on
    losslab's thread count (Numba's count is per calling thread: ``set_threads`` sets only its caller's)."""
    numba = _loaded["numba"]
    if getattr(_this_thread, "threads", None) != _threads["n"]:  # (a thread-local read: 10x cheaper than Numba's get)
        _give_threads(numba)
    if _launches["threadsafe"]:
        return kernel(*args)
    with _launches["lock"]:
        out = kernel(*args)
        try:
            layer = numba.threading_layer()
        except ValueError:  # no parallel loop has run yet (the call was below its serial size)
            layer = None
        _launches["threadsafe"] = layer in _THREADSAFE_LAYERS
    return out


def loaded():
    """Numba if it is imported (by ``imported``), else None."""
    return _loaded.get("numba")


def _module():
    module = _loaded.get("module")
    if module is None:
        imported()
        from . import _numba_kernels

        module = _loaded["module"] = _numba_kernels
    return module


def kernel(name: str, small: bool = False):
    """The compiled kernel of a generated variant, or None (no kernel for it, or Numba not installed or switched
    off): one that ``at_every_size`` names, used at every size, or with ``small`` any generated kernel (for the small calls of
    ``_fast``'s compiled lane, up to ``_fast.DIRECT_SMALL_ELEMENTS``)."""
    if not AVAILABLE or not (small or at_every_size(name)):
        return None
    return _module().KERNELS.get(name)


def at_every_size(name: str) -> bool:
    """Whether the generated loop of variant ``name`` serves its calls of every size on this CPU: one of ``NAMES``
    (which also get their thread-pool form), less ``BLOCKS_WITH_SVML_LOG1P`` where NumPy's log1p is SVML's."""
    return name in NAMES and not (_ufuncs.SVML_LOG1P and name in BLOCKS_WITH_SVML_LOG1P)


def set_threads(n: int) -> None:
    _threads["n"] = n
    numba = _loaded.get("numba")
    if numba is not None:
        _give_threads(numba)
