"""Reductions: none / mean / sum, the mean's divisor, and the explicit ``normalizer``.

A loss hands over its per-item terms L (already weighted) and the divisor PyTorch's "mean"
would use (the item count, or the sum of the selected weights). Gradients reuse the same
rule through :func:`coefficient`: d(reduced)/dL_i.

A divisor that is a Python number stays one: turning it into a device array would be a
host-to-device copy, which synchronises a GPU.
"""

from __future__ import annotations

from typing import Any

import array_api_compat


def number_coefficient(reduction: str, divisor: Any, normalizer: Any) -> float | None:
    """d(reduced value)/d(term) as a Python number: 1 for none/sum, 1/K for mean and 0 when K = 0
    (a mean over no valid item is 0, not PyTorch's NaN); None when K is an array."""
    if reduction in ("none", "sum"):
        return 1.0
    k = divisor if normalizer is None else normalizer
    if isinstance(k, (int, float)) and not isinstance(k, bool):
        return 1.0 / k if k != 0 else 0.0
    return None


def _reciprocal(xp, like, divisor: Any, normalizer: Any):
    """1 / K for the mean, and 0 when K = 0 (see number_coefficient), as a number or an array."""
    r = number_coefficient("mean", divisor, normalizer)
    if r is not None:
        return r
    k = divisor if normalizer is None else normalizer
    k = xp.astype(k, like.dtype) if k.dtype != like.dtype else k
    nonzero = k != 0
    return xp.where(nonzero, 1.0 / xp.where(nonzero, k, xp.ones_like(k)), xp.zeros_like(k))


def reduce(xp, terms, divisor: Any, reduction: str, normalizer: Any = None):
    if reduction == "none":
        return terms
    total = xp.sum(terms)
    if reduction == "sum":
        return total
    return total * _reciprocal(xp, total, divisor, normalizer)


def coefficient(xp, terms, divisor: Any, reduction: str, normalizer: Any = None):
    """d(reduced value)/d(terms_i) as a 0-d array: 1 (none: gradient of the sum; sum) or 1/K (mean)."""
    r = 1.0 if reduction in ("none", "sum") else _reciprocal(xp, terms, divisor, normalizer)
    if isinstance(r, float):  # a fill on the device, not a copy from the host
        return xp.full((), r, dtype=terms.dtype, device=array_api_compat.device(terms))
    return r
