"""The PyTorch autograd bridge: one ``autograd.Function`` serves every loss.

Its backward pass is the loss's analytic gradient (``grad_terms`` with the upstream gradient),
so ``loss.backward()`` equals ``.grad``, keeps no intermediate of the forward alive, and stays
finite where autodiff of the forward would not (BCE at p = 0 or 1). The backward is written
with differentiable torch operations, so double backward (Hessian-vector products) works.
Defined at import time (not lazily) so ``torch.compile(fullgraph=True)`` can trace it.
"""

from __future__ import annotations

import torch

from .. import _xp
from .._loss import astype


class LosslabFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, loss, names, constants, *tensors):
        kwargs = {**constants, **dict(zip(names, tensors))}
        normalizer, reduction = kwargs.pop("_normalizer"), kwargs.pop("_reduction")
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
        kwargs = {**constants, **dict(zip(names, tensors))}
        kwargs.pop("_normalizer"), kwargs.pop("_reduction")
        xp = _xp.namespace(*(kwargs[n] for n in loss.inputs))
        st = loss.prepare(xp, **kwargs)  # re-checks values on host tensors: cheap, and no sync
        grads = loss.grad_terms(xp, st, xp.astype(upstream, u.dtype) * u)
        by_name = dict(zip(loss.inputs, (astype(g, dt) for g, dt in zip(grads, st.input_dtypes))))
        return (None, None, None, *(by_name.get(n) for n in names))
