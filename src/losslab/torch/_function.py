"""The torch engine and the PyTorch autograd bridge, in one module.

Every ``ll.<loss>`` call on torch tensors comes here after it is bound and validated once (``run``):

- **fused** (the default, eager mode): value and gradient are computed together in the forward
  pass, from the loss's own definitions: the blocked NumPy engine on zero-copy views of large
  float32/float64 CPU tensors, else the definitions evaluated with torch operations (CPU and CUDA;
  fp16/bf16 computed in float32). The forward keeps the gradient (one buffer, the size of the
  input) and the backward pass only rescales it by the upstream gradient, in place; on the CPU
  nothing at all when the upstream gradient is 1, as it is for ``loss.backward()``. A backward that
  builds a graph (``create_graph=True``: Hessian-vector products) or a second backward through the
  same graph recomputes the gradient with differentiable operations instead, so it stays exact.
- **reference** (``LosslabFunction``): under ``torch.compile``, inside ``ll.reference_path()``, for
  ``reduction="none"``: the forward computes the value only and the backward is the analytic
  gradient for any upstream gradient, written with differentiable torch operations.

Either way ``loss.backward()`` equals ``.grad``, no intermediate of the forward but the gradient is
kept, and the gradient stays finite where autodiff of the forward would not (BCE at p = 0 or 1).
Targets or weights that require gradients are left to autograd tracing the reference forward.
Defined at import time (not lazily) so ``torch.compile(fullgraph=True)`` can trace it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .. import _engines, _fast, _xp
from .._loss import Loss, astype

# Below this many elements the torch operations beat a hand-over to NumPy (measured on 2 cores:
# the NumPy blocks pay ~20 us per call, torch ~3 us per operation).
NUMPY_MIN_ELEMENTS = 1 << 15
_NUMPY_DTYPES = (torch.float32, torch.float64)


def run(loss: Loss, xp, bound: dict, reduction: str, normalizer: Any, with_grad: bool):
    """The torch engine's entry (registered in losslab/__init__.py for torch tensors)."""
    grad_mode = torch.is_grad_enabled()
    tracks = grad_mode and any(getattr(bound[n], "requires_grad", False) for n in loss.inputs)
    others_track = grad_mode and any(
        isinstance(v, torch.Tensor) and v.requires_grad for k, v in bound.items() if k not in loss.inputs)
    if others_track and not with_grad:
        return NotImplemented  # targets or weights with gradients: autograd traces the reference forward
    fused = _fast.enabled() and not torch.compiler.is_compiling() and not _xp.is_traced(bound[loss.inputs[0]])
    if with_grad or not tracks:
        if not fused:
            return NotImplemented
        with torch.no_grad():
            if not with_grad:
                return _value_only(loss, xp, bound, reduction, normalizer)
            value, grads = _value_and_grads(loss, xp, bound, reduction, normalizer)
        return value, grads[0] if len(grads) == 1 else grads
    if not fused or reduction == "none":
        return _reference_apply(loss, bound, reduction, normalizer)
    return _apply(LosslabFusedFunction, loss, bound, reduction, normalizer)


# -- computing: value and gradient in one pass --------------------------------------------------------


def _numpy_view(v: Any):
    if isinstance(v, torch.Tensor):
        if v.device.type != "cpu" or v.is_conj() or v.is_neg() or v.dtype == torch.bfloat16:
            raise TypeError
        return v.detach().numpy()
    return v


def _numpy_engine(loss: Loss, bound: dict, reduction: str, normalizer: Any, with_grad: bool):
    """The blocked NumPy engine on zero-copy views, for large float32/float64 CPU tensors."""
    fast = _engines.fast_path_of(loss.name, "numpy")
    x = bound[loss.inputs[0]]
    if fast is None or x.device.type != "cpu" or x.dtype not in _NUMPY_DTYPES or x.numel() < NUMPY_MIN_ELEMENTS:
        return NotImplemented
    try:
        positional = tuple(_numpy_view(bound[n]) for n in loss._positional)
        options = {k: _numpy_view(bound[k]) for k in loss._keyword_defaults}
        k = _numpy_view(normalizer)
    except TypeError:
        return NotImplemented
    out = fast(positional, options, reduction, k, with_grad)
    if out is NotImplemented:
        return out
    value, grads = out if with_grad else (out, None)
    value = torch.from_numpy(value) if isinstance(value, np.ndarray) else torch.tensor(value)
    if grads is not None:
        grads = tuple(torch.from_numpy(g) for g in (grads if isinstance(grads, tuple) else (grads,)))
    return value, grads


def _value_and_grads(loss: Loss, xp, bound: dict, reduction: str, normalizer: Any):
    out = _numpy_engine(loss, bound, reduction, normalizer, True)
    if out is not NotImplemented:
        return out
    st = loss.prepare(xp, **bound)
    value, grads = loss.value_and_grads(xp, st, reduction, normalizer, ops=torch)
    return value, tuple(astype(g, dt) for g, dt in zip(grads, st.input_dtypes))


def _value_only(loss: Loss, xp, bound: dict, reduction: str, normalizer: Any):
    out = _numpy_engine(loss, bound, reduction, normalizer, False)
    if out is not NotImplemented:
        return out[0]
    st = loss.prepare(xp, **bound)
    return loss._value(xp, st, reduction, normalizer)[0]


# -- autograd -----------------------------------------------------------------------------------------


def _apply(function, loss: Loss, bound: dict, reduction: str, normalizer: Any):
    items = dict(bound)
    items["_normalizer"] = normalizer
    items["_reduction"] = reduction
    names = tuple(k for k, v in items.items() if isinstance(v, torch.Tensor))
    constants = {k: v for k, v in items.items() if k not in names}
    return function.apply(loss, names, constants, *(items[k] for k in names))


def _reference_apply(loss: Loss, bound: dict, reduction: str, normalizer: Any):
    return _apply(LosslabFunction, loss, bound, reduction, normalizer)


def _unpack(names, constants, tensors):
    kwargs = {**constants, **dict(zip(names, tensors))}
    return kwargs, kwargs.pop("_normalizer"), kwargs.pop("_reduction")


def _differentiable_backward(loss: Loss, names, constants, tensors, upstream, u=None):
    """The analytic gradient for any upstream gradient, written with differentiable torch operations."""
    kwargs, normalizer, reduction = _unpack(names, constants, tensors)
    xp = _xp.namespace(*(kwargs[n] for n in loss.inputs))
    st = loss.prepare(xp, **kwargs)  # re-checks values on host tensors: cheap, and no sync
    if u is None:
        u = loss._value(xp, st, reduction, normalizer)[1]
    grads = loss.grad_terms(xp, st, xp.astype(upstream, u.dtype) * u)
    by_name = dict(zip(loss.inputs, (astype(g, dt) for g, dt in zip(grads, st.input_dtypes))))
    return (None, None, None, *(by_name.get(n) for n in names))


class LosslabFunction(torch.autograd.Function):
    """The reference bridge: value in the forward, the analytic gradient in the backward."""

    @staticmethod
    def forward(ctx, loss, names, constants, *tensors):
        kwargs, normalizer, reduction = _unpack(names, constants, tensors)
        xp = _xp.namespace(*(kwargs[n] for n in loss.inputs))
        st = loss.prepare(xp, **kwargs)
        value, u = loss._value(xp, st, reduction, normalizer)
        ctx.save_for_backward(u, *tensors)
        ctx.meta = (loss, names, constants)
        return value

    @staticmethod
    def backward(ctx, upstream):
        u, *tensors = ctx.saved_tensors
        loss, names, constants = ctx.meta
        return _differentiable_backward(loss, names, constants, tensors, upstream, u)


class LosslabFusedFunction(torch.autograd.Function):
    """The fused engine: value and gradient in the forward; the backward rescales the gradient."""

    @staticmethod
    def forward(ctx, loss, names, constants, *tensors):
        kwargs, normalizer, reduction = _unpack(names, constants, tensors)
        xp = _xp.namespace(*(kwargs[n] for n in loss.inputs))
        value, grads = _value_and_grads(loss, xp, kwargs, reduction, normalizer)
        ctx.grads = dict(zip(loss.inputs, grads))
        ctx.save_for_backward(*tensors)
        ctx.meta = (loss, names, constants)
        return value

    @staticmethod
    def backward(ctx, upstream):
        grads, ctx.grads = ctx.grads, None
        loss, names, constants = ctx.meta
        if grads is None or torch.is_grad_enabled():  # a second backward, or create_graph=True
            return _differentiable_backward(loss, names, constants, ctx.saved_tensors, upstream)
        # the gradient is ours alone: scale it in place (the reduction is mean or sum, so upstream is 0-d)
        unit = upstream.device.type == "cpu" and upstream.item() == 1.0  # no sync on the CPU
        if not unit:
            for g in grads.values():
                g.mul_(upstream.to(g.dtype) if g.dtype != upstream.dtype and g.is_floating_point() else upstream)
        return (None, None, None, *(grads.get(n) if ctx.needs_input_grad[3 + i] else None for i, n in enumerate(names)))
