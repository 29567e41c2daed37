"""Reductions: none / mean / sum, the mean's divisor, and the explicit ``normalizer``.

A loss hands over its per-item terms L (already weighted) and the divisor PyTorch's "mean"
would use (the item count, or the sum of the selected weights). Gradients reuse the same
rule through :func:`coefficient`: d(reduced)/dL_i.
"""

from __future__ import annotations

from typing import Any


def _divisor(xp, like, divisor: Any, normalizer: Any):
    k = divisor if normalizer is None else normalizer
    if not hasattr(k, "shape"):
        return xp.asarray(k, dtype=like.dtype, device=_device(like))
    return xp.astype(k, like.dtype) if k.dtype != like.dtype else k


def _device(x):
    import array_api_compat

    return array_api_compat.device(x)


def _safe_reciprocal(xp, k):
    # a mean over no valid item is 0 (with a zero gradient), not PyTorch's NaN
    nonzero = k != 0
    return xp.where(nonzero, 1.0 / xp.where(nonzero, k, xp.ones_like(k)), xp.zeros_like(k))


def reduce(xp, terms, divisor: Any, reduction: str, normalizer: Any = None):
    if reduction == "none":
        return terms
    total = xp.sum(terms)
    if reduction == "sum":
        return total
    return total * _safe_reciprocal(xp, _divisor(xp, total, divisor, normalizer))


def coefficient(xp, terms, divisor: Any, reduction: str, normalizer: Any = None):
    """d(reduced value)/d(terms_i): a scalar array (mean, sum) or ones (none: gradient of the sum)."""
    if reduction in ("none", "sum"):
        return xp.ones((), dtype=terms.dtype, device=_device(terms))
    return _safe_reciprocal(xp, _divisor(xp, terms, divisor, normalizer))
