"""NumPy ufuncs that NumPy computes slowly on some CPUs, in forms that stay fast there.

``log1p``: NumPy's float32 log1p is a SIMD loop only where it can call Intel's SVML (x86 with AVX-512, the
``AVX512_SKX`` feature set); on every other x86 CPU with AVX2 (AMD EPYC and Ryzen, Intel without AVX-512) it is a
scalar libm loop, while its float32 log stays SIMD. Measured on an AMD EPYC (AVX2, 1M float32 elements, one
thread): np.log1p 8.2 ms, np.log 2.0 ms, the corrected form below 2.9 ms (torch.log1p 1.7 ms). That put
binary_cross_entropy_with_logits at 1.9x torch and soft_margin at 1.4x on such machines, and every softplus,
log-sigmoid and log_cosh of the NumPy and torch CPU engines went the same way. float64 keeps np.log1p (NumPy's
float64 log is no SIMD loop on AVX2: the corrected form measured 13 ms against 7.6).
"""

from __future__ import annotations

import numpy as np

try:
    from numpy._core._multiarray_umath import __cpu_features__ as _CPU
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core._multiarray_umath import __cpu_features__ as _CPU


def _log1p_is_scalar_here() -> bool:
    """NumPy's float32 log1p is a scalar loop and its float32 log a SIMD one (x86, AVX2 and FMA3, no AVX512_SKX).
    Elsewhere (ARM included, where NumPy's log is no SIMD loop either) np.log1p stays."""
    return bool(_CPU.get("AVX2") and _CPU.get("FMA3") and not _CPU.get("AVX512_SKX"))


# Whether float32 log1p takes the corrected log below (the tests switch it on and off to check both on any CPU).
CORRECTED_LOG1P = _log1p_is_scalar_here()
# Whether NumPy's float32 log1p is an SVML SIMD routine here (x86 with the AVX512_SKX feature set): then it beats
# the compiled loops' log1p intrinsic too (_numba.at_every_size).
SVML_LOG1P = bool(_CPU.get("AVX512_SKX"))


def log1p(u: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """log(1 + u), as ``np.log1p(u, out=out)`` (``out`` may be ``u``); in float32 where NumPy's log1p is slow
    (``CORRECTED_LOG1P``) as the logarithm of w = 1 + u corrected by the rounding of w (Goldberg / Kahan):

        log1p(u) = log(w) + (u - (w - 1)) / w

    u - (w - 1) is the rounding error of 1 + u, exactly (for u in [-1/2, 1], and to within half an ulp of w
    above): the first-order term of log(w + error) restores what the rounding lost, so tiny u give u (w = 1).
    Measured against float64 on 1M points of each range, u = e^-|x| in (0, 1], (-1, 0), (1, 1e38) and tiny u:
    within 4 ulp (mean 0.06-0.5 ulp; NumPy's log1p within 1). The correction
    is NaN only where the answer is log(w) alone (u = -1, u = inf, a NaN u), and np.fmin(NaN, 1) then makes it
    a finite 1 that log(w) (-inf, inf, NaN) absorbs. One difference: log1p(-0.0) is +0.0 here."""
    if u.dtype != np.float32 or not CORRECTED_LOG1P or u.ndim == 0:
        return np.log1p(u, out=out)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.add(u, 1.0)
        error = np.subtract(w, 1.0)
        np.subtract(u, error, out=error)  # (u is no longer read: out may be u)
        np.divide(error, w, out=error)
        np.fmin(error, 1.0, out=error)  # NaN -> 1 (the normal |error / w| is at most an ulp)
        np.log(w, out=w)
        return np.add(w, error, out=out)
