"""Validation with one policy: shape, dtype and option checks always run; value checks run only
on concrete host arrays (see ``_xp.is_concrete``). Every message names the argument, what was
seen, and the fix.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from ._xp import is_concrete, is_floating, to_numpy

REDUCTIONS = ("none", "mean", "sum")


def _preview(values: np.ndarray, limit: int = 5) -> str:
    flat = np.unique(np.asarray(values).ravel())
    shown = ", ".join(f"{v:g}" if isinstance(v, (float, np.floating)) else str(v) for v in flat[:limit])
    return f"[{shown}{', ...' if flat.size > limit else ''}]"


def reduction(value: Any, normalizer: Any, allowed: tuple[str, ...] = REDUCTIONS) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"reduction must be one of {allowed}, got {value!r}")
    if normalizer is not None and value != "mean":
        raise ValueError(
            f"normalizer= divides the weighted sum of a 'mean' reduction; it cannot be combined "
            f"with reduction={value!r}. Use reduction='mean' with normalizer=K, or drop normalizer"
        )
    if normalizer is not None and is_concrete(normalizer):
        k = float(to_numpy(normalizer)) if not isinstance(normalizer, (int, float)) else normalizer
        if isinstance(normalizer, bool) or not math.isfinite(k) or k < 0:
            raise ValueError(
                f"normalizer must be a finite number >= 0 (the global item count or weight sum), got {normalizer!r}"
            )


def floating(xp, name: str, x: Any) -> None:
    if not is_floating(xp, x):
        raise TypeError(
            f"{name} must be a floating-point array, got dtype {x.dtype}; convert it first "
            f"(NumPy: x.astype(np.float32), torch: x.float(), JAX: x.astype(jnp.float32))"
        )


def ndim_at_least(name: str, x: Any, n: int, meaning: str) -> None:
    if x.ndim < n:
        raise ValueError(f"{name} must have at least {n} dimension(s) ({meaning}), got shape {tuple(x.shape)}")


def same_shape(a_name: str, a: Any, b_name: str, b: Any) -> None:
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(
            f"{a_name} and {b_name} must have the same shape (losslab never broadcasts them silently), "
            f"got {a_name} {tuple(a.shape)} and {b_name} {tuple(b.shape)}; reshape one of them "
            f"(e.g. {b_name}.reshape({tuple(a.shape)}) if they hold the same items)"
        )


def broadcastable_to(name: str, w: Any, shape: tuple[int, ...], target_name: str) -> None:
    ws = tuple(w.shape)
    ok = len(ws) <= len(shape) and all(d in (1, s) for d, s in zip(ws[::-1], shape[::-1]))
    if not ok:
        raise ValueError(
            f"{name} of shape {ws} does not broadcast to {target_name} of shape {tuple(shape)}; "
            f"give one {name} per element (shape {tuple(shape)}) or a shape that broadcasts to it"
        )


def option_in(spec, value: Any) -> None:
    """``value`` of option ``spec`` (an OptionSpec) lies in its declared domain: the one check of every
    option (``Loss._bind`` runs it for every call). Values are checked when concrete."""
    from ._spec import Choices

    domain = spec.domain
    if domain is None or (value is None and spec.none_means):
        return
    if isinstance(domain, Choices):
        # bools only match bools (True == 1 in Python)
        if not any(isinstance(value, bool) == isinstance(v, bool) and value == v for v in domain.values):
            raise (TypeError if isinstance(value, bool) or value is None else ValueError)(
                f"{spec.name} must be {domain.describe()}, got {value!r}")
        return
    if isinstance(value, bool) or value is None or (domain.integer and not isinstance(value, numbers.Integral)):
        raise TypeError(f"{spec.name} must be {spec.valid}, got {value!r}")
    if not is_concrete(value):
        return
    try:
        v = float(to_numpy(value)) if not isinstance(value, (int, float)) else float(value)
    except (TypeError, ValueError, OverflowError):
        raise TypeError(f"{spec.name} must be {spec.valid}, got {value!r}") from None
    if spec.negative_means and v < 0:
        return
    if not domain.contains(v):
        raise ValueError(f"{spec.name} must be {spec.valid}, got {value!r}")


def options_in(spec, **values: Any) -> None:
    """Each named option of loss spec ``spec`` (a LossSpec) against its declared domain, for code that
    takes a loss's options outside the loss itself (losslab.gpu, losslab.torch.distributed)."""
    for name, value in values.items():
        option_in(spec.option(name), value)


def values_between(name: str, x: Any, low: float, high: float, fix: str) -> None:
    if not is_concrete(x):
        return
    v = to_numpy(x)
    bad = ~((v >= low) & (v <= high))
    if bad.any():
        raise ValueError(f"{name} must lie in [{low:g}, {high:g}], got values {_preview(v[bad])}; {fix}")


def values_in(name: str, x: Any, allowed: tuple[float, ...], fix: str) -> None:
    if not is_concrete(x):
        return
    v = to_numpy(x)
    bad = ~np.isin(v, allowed)
    if bad.any():
        raise ValueError(f"{name} must only contain {allowed}, got values {_preview(v[bad])}; {fix}")


def class_indices(name: str, targets: Any, num_classes: int, ignore_index: int | None = None) -> bool:
    """Raise if a (non-ignored) class index is out of range; True when checked, False when the values
    cannot be read now (traced, or on a GPU without strict checks)."""
    if not is_concrete(targets):
        return False
    v = to_numpy(targets)
    valid = v != ignore_index if ignore_index is not None else np.ones(v.shape, bool)
    bad = valid & ((v < 0) | (v >= num_classes))
    if bad.any():
        ignored = f" (other than ignore_index={ignore_index})" if ignore_index is not None else ""
        raise ValueError(
            f"{name} holds class indices out of range [0, {num_classes - 1}]{ignored}: "
            f"{_preview(v[bad])}; the class axis of the input has size {num_classes}"
        )
    return True
