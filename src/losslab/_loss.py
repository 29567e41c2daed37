"""The machinery every loss shares: argument binding, reductions, ``.grad``, ``.value_and_grad``,
``.hessian`` and the PyTorch autograd bridge.

A loss is a subclass of :class:`Loss` that implements four small methods, value and gradient
side by side (micrograd style):

- ``prepare(xp, *inputs, targets, **options) -> State``: validate and cast (fp16/bf16 -> fp32);
- ``terms(xp, st) -> (L, divisor)``: the weighted per-item losses (what ``reduction="none"``
  returns) and the divisor PyTorch's ``"mean"`` uses;
- ``grad_terms(xp, st, u)``: the gradient of ``sum_i u_i L_i`` with respect to each prediction
  input, ``u`` broadcasting against ``L``. With ``u`` = d(reduced)/dL this is ``.grad``; with
  ``u`` = upstream gradient x that, it is the PyTorch backward pass, for any upstream gradient;
- ``hessian_terms(xp, st, u)`` where the loss has a Hessian.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _checks as check
from . import _fast, _xp
from ._reduce import coefficient, reduce
from ._spec import LossSpec


class State:
    """Validated, compute-dtype arrays and options of one call (a plain class: torch.compile traces it)."""

    def __init__(self, **fields: Any) -> None:
        for name, value in fields.items():
            setattr(self, name, value)


class Loss:
    name: str = ""
    inputs: tuple[str, ...] = ("predictions",)  # the differentiable (prediction) arguments
    reductions: tuple[str, ...] = check.REDUCTIONS
    spec: LossSpec
    # optional second implementation for NumPy inputs (see _fast.py): returns NotImplemented for
    # anything it does not handle exactly like the reference path
    fast: Callable[..., Any] | None = None
    gpu: Callable[..., Any] | None = None  # the same for torch tensors on a GPU (losslab.gpu.dispatch)

    # -- to implement ---------------------------------------------------------------------------
    def prepare(self, xp, *args, **options) -> State:  # pragma: no cover - abstract
        raise NotImplementedError

    def terms(self, xp, st: State):  # pragma: no cover - abstract
        raise NotImplementedError

    def grad_terms(self, xp, st: State, u) -> tuple:  # pragma: no cover - abstract
        raise NotImplementedError

    def hessian_terms(self, xp, st: State, u):
        raise NotImplementedError(
            f"{self.name} has no Hessian: it is not twice differentiable in a single prediction "
            "per element (losses with a Hessian: see losslab.losses() where spec.has_hessian)"
        )

    # -- public API -----------------------------------------------------------------------------
    def __init__(self) -> None:
        params = list(inspect.signature(self.prepare).parameters.values())[1:]  # drop xp
        self._signature = inspect.Signature(params)
        extra = [
            inspect.Parameter("reduction", inspect.Parameter.KEYWORD_ONLY, default="mean"),
            inspect.Parameter("normalizer", inspect.Parameter.KEYWORD_ONLY, default=None),
        ]
        self.__signature__ = inspect.Signature(params + extra)
        self.__name__ = self.__qualname__ = self.name
        self.__doc__ = _docstring(self)

    def __repr__(self) -> str:
        return f"<losslab loss {self.name}{self.__signature__}>"

    def __call__(self, *args, reduction: str = "mean", normalizer: Any = None, **options):
        out = self._try_fast(args, options, reduction, normalizer, False)
        if out is not NotImplemented:
            return out
        xp, bound = self._bind(args, options, reduction, normalizer)
        if self._use_torch_autograd(bound):
            return _torch_apply(self, bound, reduction, normalizer)
        st = self.prepare(xp, **bound)
        value, _ = self._value(xp, st, reduction, normalizer)
        return value

    def value_and_grad(self, *args, reduction: str = "mean", normalizer: Any = None, **options):
        """``(value, gradient)`` in one pass; the gradient is shaped like the prediction input(s)."""
        out = self._try_fast(args, options, reduction, normalizer, True)
        if out is not NotImplemented:
            return out
        xp, bound = self._bind(args, options, reduction, normalizer)
        st = self.prepare(xp, **bound)
        value, u = self._value(xp, st, reduction, normalizer)
        return value, self._as_input_dtypes(st, self.grad_terms(xp, st, u))

    def grad(self, *args, reduction: str = "mean", normalizer: Any = None, **options):
        """Analytic gradient of the reduced loss (of the sum for ``reduction="none"``)."""
        return self.value_and_grad(*args, reduction=reduction, normalizer=normalizer, **options)[1]

    def hessian(self, *args, reduction: str = "mean", normalizer: Any = None, **options):
        """Analytic second derivative, scaled like the gradient (see the loss's docs for its shape)."""
        xp, bound = self._bind(args, options, reduction, normalizer)
        st = self.prepare(xp, **bound)
        _, u = self._value(xp, st, reduction, normalizer)
        h = self.hessian_terms(xp, st, u)
        return xp.astype(h, st.input_dtypes[0])

    # -- internals ------------------------------------------------------------------------------
    def _try_fast(self, args, options, reduction, normalizer, with_grad: bool):
        """A second implementation's result (the fast NumPy path, or a GPU kernel), or NotImplemented
        when none takes this call."""
        if not args or not _fast.enabled():
            return NotImplemented
        if type(args[0]) is np.ndarray:
            return NotImplemented if self.fast is None else self.fast(args, options, reduction, normalizer, with_grad)
        return NotImplemented if self.gpu is None else self.gpu(args, options, reduction, normalizer, with_grad)

    def _bind(self, args, options, reduction, normalizer):
        check.reduction(reduction, normalizer, self.reductions)
        try:
            bound = self._signature.bind(*args, **options)
        except TypeError as err:
            raise TypeError(f"{self.name}{self._signature}: {err}") from None
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        for name in self.inputs:
            value = arguments[name]
            if not _xp.is_array(value):  # lists and scalars become NumPy float64 arrays
                try:
                    arguments[name] = np.asarray(value, dtype=np.float64)
                except (TypeError, ValueError):
                    raise TypeError(f"{name} must be an array or a list of numbers, got {type(value).__name__}") from None
        xp = _xp.namespace(*(arguments[n] for n in self.inputs))
        return xp, arguments

    def _value(self, xp, st: State, reduction: str, normalizer: Any):
        terms, divisor = self.terms(xp, st)
        if reduction == "batchmean":
            divisor = st.batch_size
            reduction = "mean"
        if normalizer is not None and _xp.is_array(normalizer):
            normalizer = _xp.as_array(normalizer, xp, terms)
        value = reduce(xp, terms, divisor, reduction, normalizer)
        return value, coefficient(xp, terms, divisor, reduction, normalizer)

    def _as_input_dtypes(self, st: State, grads: tuple):
        grads = tuple(astype(g, dt) for g, dt in zip(grads, st.input_dtypes))
        return grads[0] if len(grads) == 1 else grads

    def _use_torch_autograd(self, bound: dict) -> bool:
        first = bound[self.inputs[0]]
        if _xp.backend_of(first) != "torch":
            return False
        import torch

        if not torch.is_grad_enabled():
            return False
        if not any(getattr(bound[n], "requires_grad", False) for n in self.inputs):
            return False
        # Targets or weights that need gradients: let autograd trace the forward instead.
        others = [v for k, v in bound.items() if k not in self.inputs]
        return not any(isinstance(v, torch.Tensor) and v.requires_grad for v in others)


def astype(x, dtype):
    xp = _xp.namespace(x)
    return x if x.dtype == dtype else xp.astype(x, dtype)


def floating_input(xp, name: str, x):
    """Check a prediction input is floating point; return it in the compute dtype and its dtype."""
    check.floating(xp, name, x)
    return xp.astype(x, _xp.compute_dtype(xp, x.dtype)), x.dtype


def option_array(xp, name: str, value, like, shape_hint: str):
    """An option array (``weight``, ``pos_weight``): any array kind or a list, in ``like``'s dtype."""
    if value is None:
        return None
    try:
        arr = _xp.as_array(value, xp, like)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be an array or a list of numbers ({shape_hint}): {err}") from None
    if not _xp.is_floating(xp, arr) and not _xp.is_integral(xp, arr):
        raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
    return xp.astype(arr, like.dtype)


# -- PyTorch autograd bridge ---------------------------------------------------------------------
# The backward pass is the analytic gradient (``grad_terms`` with the upstream gradient), so
# ``loss.backward()`` equals ``.grad``, stores no intermediate of the forward, and stays finite
# where autodiff of the forward would not (BCE at p = 0 or 1).


def _torch_apply(loss: Loss, bound: dict, reduction: str, normalizer: Any):
    import torch

    from .torch._function import LosslabFunction

    items = dict(bound)
    items["_normalizer"] = normalizer
    items["_reduction"] = reduction
    names = tuple(k for k, v in items.items() if isinstance(v, torch.Tensor))
    constants = {k: v for k, v in items.items() if k not in names}
    return LosslabFunction.apply(loss, names, constants, *(items[k] for k in names))


# -- docstrings from the spec (one source of truth for the formulas) ------------------------------


def _docstring(loss: Loss) -> str:
    spec = getattr(loss, "spec", None)
    own = inspect.cleandoc(type(loss).__doc__ or "")
    if spec is None:
        return own
    parts = [
        spec.summary,
        "",
        "Formula::",
        "",
        *("    " + line for line in spec.formula_text.splitlines()),
        "",
        "Gradient::",
        "",
        *("    " + line for line in spec.gradient_text.splitlines()),
    ]
    if spec.hessian_text:
        parts += ["", "Hessian::", "", *("    " + line for line in spec.hessian_text.splitlines())]
    parts += ["", own]
    if spec.conventions:
        parts += ["", "Conventions: " + spec.conventions]
    peers = ", ".join(f"{k}: {v}" for k, v in spec.peers.items())
    parts += [
        "",
        "Every loss also takes ``reduction`` ('none' | 'mean' | 'sum', default 'mean') and ``normalizer=K``",
        "(with 'mean', divide the weighted sum by K: the global count under gradient accumulation).",
        f"It has ``.grad``, ``.value_and_grad``{' and ``.hessian``' if spec.has_hessian else ''} with the same arguments.",
        "",
        f"Equivalents: {peers}.",
    ]
    return "\n".join(parts)
