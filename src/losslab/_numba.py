"""Optional compiled kernels (Numba) for the algebraic elementwise losses on large NumPy inputs.

NumPy evaluates a loss as a chain of ufuncs, one pass each; PyTorch's CPU kernels fuse the
whole loss into one pass. These kernels do the same: one parallel loop computes the value, the
gradient, the weight and the mean's 1/K for each element while it is in registers. Used by
``_fast`` for inputs of at least ``_fast.PARALLEL_MIN_ELEMENTS`` elements when Numba is
installed (``pip install 'losslab[fast]'``) and not disabled (``LOSSLAB_NUMBA=0``); otherwise
the NumPy blocked path runs. Both are held to the reference path by the tests. Numba is
imported, and the kernels compiled, on first use, so ``import losslab`` stays light.

Each kernel: kernel(x, t, w, p, u, l, g) -> sum of the (weighted) losses, for 1-D contiguous x, t;
w, l, g are empty arrays when absent (no weight, per-item losses or gradient not wanted).

Not here: BCE with logits, log-cosh and focal need exp/log1p, which Numba calls as scalar libm
functions (no SVML); NumPy's vectorised ufuncs were faster (benchmarks/README.md).
"""

from __future__ import annotations

import importlib.util
import os

AVAILABLE = importlib.util.find_spec("numba") is not None and os.environ.get("LOSSLAB_NUMBA", "1") not in ("0", "false", "False")
NAMES = ("mse", "mae", "huber", "smooth_l1", "quantile")
# reassociation lets LLVM vectorise the sum; contraction allows FMA. No NaN/inf assumptions:
# non-finite inputs still give a non-finite total, and _fast then hands the call to the reference path.
_FASTMATH = {"reassoc", "contract"}
_kernels: dict = {}
_threads = {"n": 1}


def _build() -> None:
    import numba
    from numba import njit, prange

    def make(element):
        @njit(parallel=True, nogil=True, fastmath=_FASTMATH)
        def kernel(x, t, w, p, u, l, g):  # pragma: no cover - compiled
            n = x.shape[0]
            has_w, want_l, want_g = w.shape[0] == n, l.shape[0] == n, g.shape[0] == n
            total = 0.0  # float64 accumulator
            for i in prange(n):
                li, gi = element(x[i], t[i], p)
                if has_w:
                    li *= w[i]
                    gi *= w[i]
                total += li
                if want_l:
                    l[i] = li
                if want_g:
                    g[i] = gi * u
            return total

        return kernel

    @njit(inline="always")
    def mse(x, t, p):  # pragma: no cover - compiled
        e = x - t
        return e * e, 2.0 * e

    @njit(inline="always")
    def mae(x, t, p):  # pragma: no cover - compiled
        e = x - t
        return abs(e), (1.0 if e > 0 else (-1.0 if e < 0 else 0.0))

    @njit(inline="always")
    def huber(x, t, p):  # pragma: no cover - compiled
        e = x - t
        a = abs(e)
        m = min(a, p)
        return m * (a - 0.5 * m), min(max(e, -p), p)

    @njit(inline="always")
    def smooth_l1(x, t, p):  # pragma: no cover - compiled (beta = p > 0; beta = 0 runs as mae)
        e = x - t
        a = abs(e)
        m = min(a, p)
        return m * (a - 0.5 * m) / p, min(max(e / p, -1.0), 1.0)

    @njit(inline="always")
    def quantile(x, t, p):  # pragma: no cover - compiled
        r = t - x
        return max(p * r, (p - 1.0) * r), (-p if r > 0 else ((1.0 - p) if r < 0 else 0.0))

    _kernels.update({name: make(fn) for name, fn in zip(NAMES, (mse, mae, huber, smooth_l1, quantile))})
    numba.set_num_threads(max(1, min(_threads["n"], numba.config.NUMBA_NUM_THREADS)))


def kernel(name: str):
    """The compiled kernel for a loss, or None (no kernel for it, or Numba not installed)."""
    if not AVAILABLE or name not in NAMES:
        return None
    if not _kernels:
        _build()
    return _kernels[name]


def set_threads(n: int) -> None:
    _threads["n"] = n
    if _kernels:
        import numba

        numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
