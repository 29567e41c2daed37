"""Elementwise losses on CUDA tensors: one Triton kernel per loss, generated from its definition.

The torch engine (``losslab/torch/_function.py``) hands a prepared call here (inputs checked and
converted by the loss's ``prepare``, options bound). One kernel reads predictions, targets and
weights once, computes value and gradient in float32, writes the gradient already multiplied by
the reduction's scale (1/K for "mean") and one partial sum per block; so the forward pass of
``loss.backward()`` costs one read of the inputs and one write of the gradient, and the backward
pass is a rescale (nothing on a unit upstream gradient). The kernels are written by
``losslab/definitions/codegen.py`` into ``_pointwise_kernels.py`` and held to the definitions
under Triton's interpreter in the tests.

Declined (NotImplemented: the definitions then run as torch operations, same results): float64,
BCE with logits with ``pos_weight``, options given as tensors, Triton missing or switched off
(``LOSSLAB_TRITON=0``), tensors not on a CUDA device (CPU tensors only under the interpreter, on
request: see ``dispatch._kernel_device``).
"""

from __future__ import annotations

from typing import Any

import torch

from .. import _reduce
from .._loss import without_batchmean
from ..definitions import codegen
from .dispatch import _kernel_device, kernels_enabled

BLOCK = 1024  # elements per program (4 warps: 8 float32 per thread); not tuned on a GPU yet
_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


def launch(variant: str, x, t, w, options: tuple, scale, *, with_grad: bool, keep: bool, grad_dtype=None):
    """Run one generated kernel on same-shaped tensors: (sum of the weighted losses as a float32 0-d
    tensor, per-item losses or None, gradient times ``scale`` or None). ``scale``: a float32 tensor
    of one element on the device (no host sync, whatever computed it)."""
    import triton

    from . import _pointwise_kernels

    n = x.numel()
    x, t = x.contiguous(), t.contiguous()
    w = w.contiguous() if w is not None else None
    blocks = max(1, triton.cdiv(n, BLOCK))
    partial = torch.empty(blocks, dtype=torch.float32, device=x.device)
    grad = torch.empty(x.shape, dtype=grad_dtype or x.dtype, device=x.device) if with_grad else None
    items = torch.empty(x.shape, dtype=x.dtype, device=x.device) if keep else None
    if n:
        _pointwise_kernels.KERNELS[variant][(blocks,)](
            x, t, w if w is not None else x, grad if with_grad else x, items if keep else x, partial, scale, n,
            *options, HAS_WEIGHT=w is not None, WITH_GRAD=with_grad, KEEP=keep, BLOCK=BLOCK, num_warps=4)
    else:
        partial.zero_()
    return partial.sum(), items, grad


def run(loss, xp, st, reduction: str, normalizer: Any, with_grad: bool):
    """The prepared call ``st`` of an elementwise loss: (value, (gradient,)) or value; NotImplemented
    when a kernel does not apply (see the module docstring)."""
    x = st.x
    if (x.dtype not in _DTYPES or not _kernel_device(x) or not kernels_enabled() or st.t.dtype != x.dtype
            or (st.w is not None and not isinstance(st.w, torch.Tensor))):
        return NotImplemented
    options = loss.definition_options(st)
    variant = codegen.variant_for(loss.definition.name, options)
    if variant is None:
        return NotImplemented  # e.g. BCE with logits with pos_weight
    params = tuple(options[p] for p in variant.params)
    if not all(isinstance(p, (int, float)) and not isinstance(p, bool) for p in params):
        return NotImplemented  # a 0-d tensor option: the torch operations take it as it is
    reduction, divisor = without_batchmean(reduction, loss.divisor(xp, st), st)
    u = _reduce.number_coefficient(reduction, divisor, normalizer)
    if u is None:  # a weight sum or a normalizer on the device: the scale stays there
        ones = torch.ones((), dtype=torch.float32, device=x.device)
        scale = _reduce.coefficient(xp, ones, divisor, reduction, normalizer).to(torch.float32).reshape(1)
    else:
        scale = torch.full((1,), u, dtype=torch.float32, device=x.device)
    total, items, grad = launch(variant.name, x, st.t, st.w, tuple(float(p) for p in params), scale,
                                with_grad=with_grad, keep=reduction == "none", grad_dtype=st.input_dtypes[0])
    if reduction == "none":
        value = items
    elif reduction == "sum":
        value = total.to(x.dtype)
    else:
        value = (total * scale[0]).to(x.dtype)
    return (value, (grad,)) if with_grad else value
