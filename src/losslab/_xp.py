"""Array namespaces, the dtype rule and the "is this value concrete?" question, in one place.

Every loss gets its namespace ``xp`` here once, then calls only standard Array API functions,
so one implementation serves NumPy, PyTorch (CPU and CUDA) and JAX.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

import array_api_compat
import numpy as np


class _State(threading.local):
    strict: bool | None = None  # set by strict_checks(); None: follow LOSSLAB_STRICT_CHECKS


_state = _State()


@contextlib.contextmanager
def overriding(settings: Any, name: str, value: Any) -> Iterator[None]:
    """Set ``settings.name`` to ``value`` inside the block, then restore it (for thread-local switches)."""
    previous = getattr(settings, name)
    setattr(settings, name, value)
    try:
        yield
    finally:
        setattr(settings, name, previous)


def strict_checks_enabled() -> bool:
    """Whether value checks also run where they cost a device sync (CUDA tensors)."""
    override = _state.strict
    if override is not None:
        return override
    return os.environ.get("LOSSLAB_STRICT_CHECKS", "") not in ("", "0", "false", "False")


@contextlib.contextmanager
def strict_checks(enabled: bool = True) -> Iterator[None]:
    """Turn value checks on (or off) for arrays where they need a device sync.

    By default, value checks (class indices in range, probabilities in [0, 1], hinge targets in
    {-1, +1}) run only on concrete host arrays: NumPy, CPU torch tensors in eager mode and
    concrete JAX arrays. Inside ``with losslab.strict_checks():`` (or with the environment
    variable ``LOSSLAB_STRICT_CHECKS=1``) they also run on CUDA tensors, at the cost of a sync.
    Traced values (``jax.jit``, ``torch.compile``) can never be checked.
    """
    with overriding(_state, "strict", enabled):
        yield


def is_array(x: Any) -> bool:
    return array_api_compat.is_array_api_obj(x) and not isinstance(x, (int, float, bool))


def kind(x: Any) -> str:
    """The top-level module of ``x``'s type ("numpy", "torch", "jax", "jaxlib", "builtins", ...): a
    framework's arrays told apart without importing any framework."""
    return type(x).__module__.partition(".")[0]


def backend_of(x: Any) -> str:
    root = kind(x)
    if root in ("torch", "numpy"):  # the common cases, answered from the type alone
        return root
    if array_api_compat.is_torch_array(x):
        return "torch"
    if array_api_compat.is_jax_array(x):
        return "jax"
    if array_api_compat.is_numpy_array(x):
        return "numpy"
    return type(x).__module__.split(".")[0]


_NAMESPACES: dict[str, Any] = {}  # array-api-compat's namespace per kind, looked up once


def namespace(*arrays: Any, names: tuple[str, ...] = ()):
    """The Array API namespace shared by ``arrays`` (all must be of one kind; ``names``, the arrays'
    argument names, go into the error when they are not)."""
    kinds = [backend_of(a) for a in arrays]
    if len(set(kinds)) > 1:
        if names:
            seen = ", ".join(f"{n} is a {k} array" for n, k in zip(names, kinds))
            raise TypeError(f"{seen}: pass {', '.join(names)} as one kind of array "
                            "(e.g. convert with torch.as_tensor or jax.numpy.asarray)")
        raise TypeError(
            f"inputs mix array kinds {sorted(set(kinds))}; pass all prediction inputs as one kind "
            "(e.g. convert with torch.as_tensor or jax.numpy.asarray)"
        )
    kind = kinds[0]
    if kind in ("torch", "numpy"):
        xp = _NAMESPACES.get(kind)
        if xp is None:
            xp = _NAMESPACES[kind] = array_api_compat.array_namespace(*arrays)
        return xp
    return array_api_compat.array_namespace(*arrays)


TRACED_TORCH_TYPES = ("FakeTensor", "FunctionalTensor")  # torch.compile's stand-ins for tensors


def is_traced(x: Any) -> bool:
    """True for values whose content is not known now (jax tracers, torch.compile fakes, tensors inside a
    torch.func transform: vmap's batched tensors have no single value to check)."""
    if array_api_compat.is_jax_array(x):
        import jax

        return isinstance(x, jax.core.Tracer)
    if array_api_compat.is_torch_array(x):
        import torch

        if torch.compiler.is_compiling() or functorch_active():
            return True
        return type(x).__name__ in TRACED_TORCH_TYPES
    return False


def functorch_active() -> bool:
    """Whether a torch.func transform (grad, vmap, jacrev, ...) is running (False where torch does not say)."""
    import torch

    active = getattr(torch._C, "_are_functorch_transforms_active", None)
    return bool(active is not None and active())


def is_concrete(x: Any) -> bool:
    """Whether a value check on ``x`` is possible now without breaking tracing or syncing a GPU."""
    if isinstance(x, (int, float, bool)):
        return True  # Python numbers are compile-time constants: always checkable
    if is_traced(x):
        return False
    if isinstance(x, (np.ndarray, np.generic)):
        return True
    if array_api_compat.is_torch_array(x):
        return x.device.type == "cpu" or strict_checks_enabled()
    if array_api_compat.is_jax_array(x):
        return True
    return True


def to_numpy(x: Any) -> np.ndarray:
    """Host copy of a concrete array, for value checks and error messages only."""
    if array_api_compat.is_torch_array(x):
        x = x.detach()
        if "float16" in str(x.dtype):  # NumPy has no bf16: widen halves first
            x = x.float()
        return x.cpu().numpy()
    return np.asarray(x)


def host_numbers(name: str, x: Any, needed_by: str) -> np.ndarray:
    """A concrete array or list of numbers as a NumPy array, for host-side tools (metrics, advisor)."""
    if is_traced(x):
        raise TypeError(f"{name} is a traced value (inside jax.jit or torch.compile); {needed_by} needs concrete arrays")
    try:
        arr = to_numpy(x) if is_array(x) else np.asarray(x)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an array or a list of numbers, got {type(x).__name__}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
    return arr


def is_floating(xp, x) -> bool:
    if type(x) is np.ndarray:  # NumPy's and torch's dtypes answer directly (isdtype costs microseconds)
        return x.dtype.kind == "f"
    if type(x.dtype).__module__ == "torch":
        return x.dtype.is_floating_point
    return xp.isdtype(x.dtype, "real floating")


def is_integral(xp, x) -> bool:
    if type(x) is np.ndarray:
        return x.dtype.kind in "iu"
    if type(x.dtype).__module__ == "torch":
        return not x.dtype.is_floating_point and not x.dtype.is_complex and x.dtype != xp.bool
    return xp.isdtype(x.dtype, "integral")


def is_half(xp, dtype) -> bool:
    """fp16 or bf16 (bf16 is not in the Array API standard, so it is detected by name)."""
    return dtype == xp.float16 or "bfloat16" in str(dtype)


def compute_dtype(xp, dtype):
    """The dtype a loss is computed in: float32 for fp16/bf16 (sums never overflow), else unchanged."""
    return xp.float32 if is_half(xp, dtype) else dtype


def ragged(err: Exception) -> str:
    """For NumPy's error on a nested list whose rows differ in length, the words an error message uses
    for it; "" for any other error."""
    return "a ragged nested list (rows of different lengths)" if "inhomogeneous" in str(err) else ""


def as_array(value: Any, xp, like, dtype=None, name: str = "targets", hint: str = "an array or a list of numbers"):
    """``value`` (a list, a scalar, a NumPy array or an array of ``like``'s kind) as an array of ``like``'s kind.

    Targets and option arrays (``weight``, ``pos_weight``) given as lists or NumPy arrays are moved to
    the prediction's namespace and device. Anything that is not real numbers (strings, complex, ragged
    lists, another framework's array, values beyond the dtype's range) is a TypeError naming ``name``."""
    try:
        out = _converted(value, xp, like, dtype)
    except (TypeError, ValueError, OverflowError) as err:
        text = str(err)
        what = ragged(err) or f"{type(value).__name__}: {text if len(text) <= 120 else text[:100] + '...'}"
        raise TypeError(f"{name} must be {hint}, got {what}") from None
    if not (is_floating(xp, out) or is_integral(xp, out) or out.dtype == xp.bool):
        raise TypeError(f"{name} must hold real numbers, got {_beyond_int64(out) or f'dtype {out.dtype}'}")
    return out


def _beyond_int64(value: Any) -> str | None:
    """NumPy keeps Python ints beyond int64 as objects: say so, rather than 'dtype object'."""
    if isinstance(value, np.ndarray) and value.dtype == object and value.size and all(
            isinstance(v, int) for v in value.flat):
        widest = max(value.flat, key=abs)
        return f"an integer beyond int64's range ({str(widest)[:12]}..., {len(str(abs(widest)))} digits)"
    return None


def _converted(value: Any, xp, like, dtype):
    if type(value) is type(like) and kind(like) == "torch" and value.device == like.device and dtype is None:
        return value  # the common case: a tensor beside tensors, on their device
    like_kind = backend_of(like)
    if is_array(value):
        value_kind = backend_of(value)
        if value_kind != like_kind and value_kind != "numpy":
            raise TypeError(
                f"a {value_kind} array alongside {like_kind} predictions; pass it as a {like_kind} "
                "array, a NumPy array or a list"
            )
        if value_kind == like_kind:
            if array_api_compat.device(value) != array_api_compat.device(like):  # e.g. CPU weight, CUDA logits
                value = array_api_compat.to_device(value, array_api_compat.device(like))
            return value if dtype is None else xp.astype(value, dtype)
        value = np.asarray(value)
    elif not isinstance(value, (list, tuple, int, float, bool, np.generic)):
        raise TypeError("not an array, a list or a number")
    else:
        value = np.asarray(value)
    if value.dtype.kind not in "biuf":
        raise TypeError(_beyond_int64(value) or f"dtype {value.dtype}")
    return xp.asarray(value, dtype=dtype, device=array_api_compat.device(like))


def device(x: Any):
    return x.device if kind(x) == "torch" else array_api_compat.device(x)
