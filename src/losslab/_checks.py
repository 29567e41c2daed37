"""Validation with one policy: shape, dtype and option checks always run; value checks run only
on concrete host arrays (see ``_xp.is_concrete``). Every message names the argument, what was
seen, and the fix.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from ._xp import is_array, is_concrete, is_floating, is_integral, namespace, to_numpy

REDUCTIONS = ("none", "mean", "sum")


def _exact_text(v) -> str:
    """A value in ``:g``'s six digits where they read back exactly in its dtype (2 for 2.0, 1.5), else in full
    (1.000000000001, which ``:g`` shows as "1")."""
    if not isinstance(v, (float, np.floating)):
        return str(v)
    short = f"{v:g}"
    return short if float(short) == v or v != v else str(v)  # (str of a NumPy float: shortest in its dtype)


def _preview(values: np.ndarray, limit: int = 5) -> str:
    flat = np.unique(np.asarray(values).ravel())
    shown = ", ".join(_exact_text(v) for v in flat[:limit])
    return f"[{shown}{', ...' if flat.size > limit else ''}]"


def reduction(value: Any, normalizer: Any, allowed: tuple[str, ...] = REDUCTIONS) -> Any:
    """Check the reduction and the normalizer; return the normalizer to compute with (a concrete 0-d
    array becomes a Python number, so any backend's may go with any inputs)."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"reduction must be one of {allowed}, got {value!r}")
    if normalizer is not None and value != "mean":
        raise ValueError(
            f"normalizer= divides the weighted sum of a 'mean' reduction; it cannot be combined "
            f"with reduction={value!r}. Use reduction='mean' with normalizer=K, or drop normalizer"
        )
    if normalizer is not None:
        try:
            k, _ = _real_scalar(normalizer)
        except TypeError:
            raise TypeError(f"normalizer must be a number or a 0-d array (the global item count or weight sum), "
                            f"got {type(normalizer).__name__} {shown(normalizer)}") from None
        if k is not None and not (math.isfinite(_as_float(k)) and k >= 0):
            raise ValueError(
                f"normalizer must be a finite number >= 0 (the global item count or weight sum), got {shown(normalizer)}"
            )
        if k is not None and not getattr(normalizer, "requires_grad", False):
            return float(k)
    return normalizer


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


def shown(value: Any, limit: int = 60) -> str:
    """repr(value), cut to ``limit`` characters (a 400-digit int must not fill the message)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 20]}...({len(text)} characters)"


def _real_scalar(value: Any):
    """``value`` as a number an option or a normalizer may be: a Python int/float (not bool), a NumPy
    real scalar, or a 0-d real array of NumPy, torch or JAX. Returns (number, is_array); the number is
    None for a 0-d array whose value cannot be read now (traced). Raises TypeError for anything else."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError
    if isinstance(value, numbers.Real):  # Python int/float and NumPy real scalars
        return value, False
    if not is_array(value) or tuple(value.shape) != ():
        raise TypeError
    xp = namespace(value)
    if not (is_floating(xp, value) or is_integral(xp, value)):
        raise TypeError
    if not is_concrete(value):
        return None, True
    return to_numpy(value).item(), True


def _as_float(v) -> float:
    try:
        return float(v)
    except OverflowError:  # an int beyond float range
        return math.inf if v > 0 else -math.inf


def option_in(spec, value: Any) -> Any:
    """``value`` of option ``spec`` (an OptionSpec) lies in its declared domain: the one check of every
    option (``Loss._bind`` runs it for every call). Returns the value to compute with: a concrete 0-d
    array becomes a Python number unless it requires a gradient (JAX tracers and torch tensors that
    require grad are kept, so derivatives with respect to an option still work)."""
    from ._spec import Choices

    domain = spec.domain
    if domain is None or (value is None and spec.none_means) or (spec.callable_means and callable(value)):
        return value
    if isinstance(domain, Choices):
        # bools only match bools (True == 1 in Python)
        if not any(isinstance(value, bool) == isinstance(v, bool) and value == v for v in domain.values):
            raise (TypeError if isinstance(value, bool) or value is None else ValueError)(
                f"{spec.name} must be {domain.describe()}, got {shown(value)}")
        return value
    try:
        number, is_array = _real_scalar(value)
    except TypeError:
        raise TypeError(f"{spec.name} must be {spec.valid} (a Python number, a NumPy scalar or a 0-d array), "
                        f"got {type(value).__name__} {shown(value)}") from None
    if number is None:
        return value  # traced: checked where it is concrete
    if domain.integer and not isinstance(number, numbers.Integral):
        raise TypeError(f"{spec.name} must be {spec.valid}, got {shown(value)}")
    v = int(number) if domain.integer else _as_float(number)  # an int as it is: 2**63 - 1 as a float is 2**63
    if not (spec.negative_means and v < 0) and not domain.contains(v):
        raise ValueError(f"{spec.name} must be {spec.valid}, got {shown(value)}")
    if is_array and getattr(value, "requires_grad", False):
        return value  # a torch option to differentiate with respect to
    if is_array or isinstance(value, np.generic):
        return int(number) if domain.integer else float(number)
    return value


def options_in(spec, **values: Any) -> dict:
    """Each named option of loss spec ``spec`` (a LossSpec) against its declared domain, for code that
    takes a loss's options outside the loss itself (losslab.gpu, losslab.torch.distributed); returns
    the values to compute with (see ``option_in``)."""
    return {name: option_in(spec.option(name), value) for name, value in values.items()}


def values_between(name: str, x: Any, low: float, high: float, fix: str) -> None:
    if not is_concrete(x):
        return
    v = to_numpy(x)
    bad = ~((v >= low) & (v <= high))
    if bad.any():
        raise ValueError(f"{name} must lie in [{low:g}, {high:g}], got values {_preview(v[bad])}; {fix}")


def values_above(name: str, x: Any, low: float, fix: str, *, inclusive: bool = False) -> None:
    """Every value of ``x`` > low (>= low when ``inclusive``); NaN passes, to propagate to the output."""
    if not is_concrete(x):
        return
    v = to_numpy(x)
    bad = v < low if inclusive else v <= low
    if bad.any():
        raise ValueError(f"{name} must be {'>=' if inclusive else '>'} {low:g}, got values {_preview(v[bad])}; {fix}")


def values_below(name: str, x: Any, high: float, fix: str) -> None:
    """Every value of ``x`` < high; NaN passes, to propagate to the output."""
    if not is_concrete(x):
        return
    v = to_numpy(x)
    bad = v >= high
    if bad.any():
        raise ValueError(f"{name} must be < {high:g}, got values {_preview(v[bad])}; {fix}")


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
