"""Numerically stable building blocks, written once.

Every function takes the namespace ``xp`` first and uses only Array API calls. They are also
safe under autodiff (JAX, torch double-backward): no branch of a ``where`` ever holds an inf
or NaN that a zero cotangent would turn into NaN.
"""

from __future__ import annotations

import math

from . import _xp


def softplus(xp, x):
    # log(1 + e^x) = max(x, 0) + log1p(e^-|x|): never overflows
    return xp.maximum(x, xp.zeros_like(x)) + xp.log1p(xp.exp(-xp.abs(x)))


def log_sigmoid(xp, x):
    # log(sigmoid(x)) = -softplus(-x);  log(1 - sigmoid(x)) = log_sigmoid(-x)
    return -softplus(xp, -x)


def logaddexp(xp, a, b):
    # log(e^a + e^b) = max(a, b) + log1p(e^-|a - b|), in plain operations (jnp.logaddexp is a custom_jvp)
    return xp.maximum(a, b) + xp.log1p(xp.exp(-xp.abs(a - b)))


def keep_nan(xp, z, value):
    """``value``, and NaN where ``z`` is NaN: a ``where`` on a comparison with NaN would pick a number
    (a NaN input must reach the loss and its gradient, never turn into 0)."""
    return xp.where(xp.isnan(z), z, value)


def sigmoid(xp, x):
    # both branches use e^-|x| <= 1, so neither overflows
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _constant(m):
    """``m`` with no gradient (JAX's stop_gradient, torch's detach); other arrays as they are."""
    kind = _xp.kind(m)
    if kind == "torch":
        return m.detach()
    if kind in ("jax", "jaxlib"):
        import jax

        return jax.lax.stop_gradient(m)
    return m


def _shift(xp, x, axis: int):
    """The row maximum (keepdims) that keeps exp(x - m) <= 1, as a constant for autodiff; 0 for a row of
    -inf only (it must not give inf - inf). The shift cancels in value and in every derivative, so autodiff
    need not trace it (as jax.nn.logsumexp): without that, jax.grad also differentiates the max, a second
    dense pass."""
    m = _constant(xp.max(x, axis=axis, keepdims=True))
    return xp.where(xp.isfinite(m), m, xp.zeros_like(m))


def _two_sum(xp, m, log_total):
    """lse = m + log_total as (hi, lo): hi the rounded sum, lo its rounding error (Knuth's two-sum, exact
    in IEEE arithmetic; 0 where hi is not finite)."""
    hi = m + log_total
    back = hi - m
    lo = (m - (hi - back)) + (log_total - back)
    return hi, xp.where(xp.isfinite(hi), lo, xp.zeros_like(lo))


def lse_parts(xp, x, axis: int = -1):
    """lse = hi + lo exactly (``_two_sum``), the axis kept. -log p_k = (hi - x_k) + lo, never lse - x_k:
    lse is rounded at the scale of the row max (float32's spacing is 8e-6 at 100), so a confident row's
    small -log p_y would carry that error whole. torch's log_softmax keeps the digits with
    (x - m) - log sum exp(x - m); that form makes XLA store x - m for its second use (1.5x the time of a
    cross-entropy under jit, measured on the CPU), this one reads x again."""
    m = _shift(xp, x, axis)
    return _two_sum(xp, m, xp.log(xp.sum(xp.exp(x - m), axis=axis, keepdims=True)))


def log_softmax_from(x, hi, lo):
    """log p = (x - hi) - lo from ``lse_parts``: the one grouping that keeps a confident row's digits."""
    return (x - hi) - lo


def log_softmax(xp, x, axis: int = -1):
    return log_softmax_from(x, *lse_parts(xp, x, axis=axis))


def softmax_parts(xp, x, axis: int = -1):
    """(hi, lo, p), the axis kept, lse = hi + lo as in ``lse_parts``; e = exp(x - m) once, for the sum and
    for p = e / sum(e). Computing p as exp(log p) instead would evaluate exp twice per element (measured
    under XLA on the CPU: 2x the time of a cross-entropy's value and gradient)."""
    m = _shift(xp, x, axis)
    e = xp.exp(x - m)
    total = xp.sum(e, axis=axis, keepdims=True)
    hi, lo = _two_sum(xp, m, xp.log(total))
    return hi, lo, e / total


def softmax(xp, x, axis: int = -1):
    return xp.exp(log_softmax(xp, x, axis=axis))


def log_cosh(xp, x):
    # log(cosh x) = |x| + log(1 + e^-2|x|) - log 2: softplus(-2|x|) with its max(., 0) = 0 left out, and 2|x| as
    # |x| + |x| (exact), so the compiled kernels' exp and log1p stay in the input's float32 (2.0 |x| is float64 there)
    a = xp.abs(x)
    return a + xp.log1p(xp.exp(-(a + a))) - math.log(2.0)


def clamped_log(xp, x, floor: float = -100.0):
    """log(x) clamped below at ``floor`` (PyTorch's BCE convention), finite at x = 0."""
    tiny = math.exp(floor)
    safe = xp.where(x > tiny, x, xp.ones_like(x))
    return xp.where(x > tiny, xp.log(safe), keep_nan(xp, x, xp.full_like(x, floor)))


def safe_norm(xp, v, axis: int = -1, floor: float = 0.0):
    """Euclidean norm along ``axis``, max(||v||, floor), with a finite gradient at v = 0."""
    sq = xp.vecdot(v, v, axis=axis)  # one pass, no v * v temporary (4x faster than sum(v * v) in NumPy)
    tiny = max(floor * floor, 1e-30) if floor > 0 else 1e-30
    return xp.sqrt(xp.maximum(sq, xp.full_like(sq, tiny)))
