"""Fused cross-entropy on the GPU: argument checks -> launcher -> autograd.Function.

The forward kernel writes the gradient while the row is at hand, so forward + backward read the
logits about once from memory and write the gradient once; the backward pass only rescales when the
upstream gradient is not 1, and finds that out on the device (no host synchronisation).
"""

from __future__ import annotations

import os
from typing import Any

import torch

from .. import _checks as check
from ..registry import get
from ..torch._softmax_ce import mean_scale

MAX_BLOCK = 8192  # columns per step of the row loop (a power of 2)
HALF_AND_SINGLE = (torch.float16, torch.bfloat16, torch.float32)


def interpreting() -> bool:
    """Triton's CPU interpreter (TRITON_INTERPRET=1) runs the kernels on CPU tensors, for tests."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _on_kernel_device(name: str, x: torch.Tensor) -> None:
    if x.device.type != "cuda" and not interpreting():
        raise ValueError(f"{name} is on {x.device}; losslab.gpu kernels need CUDA tensors (or TRITON_INTERPRET=1 "
                         "to run them on the CPU for testing). ll.cross_entropy works on any device")


def check_arguments(logits, targets, weight, label_smoothing, reduction, normalizer, lse_square_scale, softcap):
    """Shape, dtype and option checks (always); class-index values only when checkable without a sync."""
    if not isinstance(logits, torch.Tensor) or not isinstance(targets, torch.Tensor):
        raise TypeError(f"logits and targets must be torch tensors, got {type(logits).__name__} and {type(targets).__name__}")
    if logits.dtype not in HALF_AND_SINGLE:
        raise TypeError(f"logits must be float16, bfloat16 or float32, got {logits.dtype}; the kernel computes in float32 "
                        "(use ll.cross_entropy for float64)")
    if logits.ndim != 2:
        raise ValueError(f"logits must be (N, C), got shape {tuple(logits.shape)}; flatten the leading axes "
                         "(logits.view(-1, C), targets.view(-1))")
    if targets.shape != logits.shape[:1]:
        raise ValueError(f"targets must have shape ({logits.shape[0]},) for logits {tuple(logits.shape)}, got {tuple(targets.shape)}")
    if targets.dtype.is_floating_point or targets.dtype == torch.bool:
        raise TypeError(f"targets must be integer class indices, got {targets.dtype} (probability targets: ll.cross_entropy)")
    _on_kernel_device("logits", logits)
    if targets.device != logits.device:
        raise ValueError(f"targets are on {targets.device} but logits on {logits.device}; move them to the logits' device")
    if weight is not None:
        if not isinstance(weight, torch.Tensor) or weight.shape != logits.shape[1:]:
            raise ValueError(f"weight must be a tensor of shape ({logits.shape[1]},), one weight per class, "
                             f"got {getattr(weight, 'shape', type(weight).__name__)}")
    check.options_in(get("cross_entropy"), label_smoothing=label_smoothing, lse_square_scale=lse_square_scale,
                     softcap=softcap)
    check.reduction(reduction, normalizer, ("none", "mean", "sum"))
    if logits.shape[1] == 0:
        raise ValueError("logits have no classes (shape (N, 0))")


def _launch_config(n_cols: int, block: int | None) -> tuple[int, int]:
    """Columns per step of the row loop (a power of 2, ``block`` if given) and warps per program."""
    from . import _kernels

    block = block or _kernels.block_size(n_cols, MAX_BLOCK)
    return block, 8 if block >= 4096 else 4


def launch(logits, targets, weight, scale, *, ignore_index, label_smoothing, lse_square_scale, softcap,
           with_grad: bool, inplace: bool, block: int | None = None):
    """Run the forward kernel: per-row losses, per-row log-sum-exp and (optionally) the gradient."""
    from . import _kernels

    if logits.stride(1) != 1:
        if inplace:
            raise ValueError("inplace=True needs logits whose class axis is contiguous (stride 1)")
        logits = logits.contiguous()
    n, c = logits.shape
    # inplace: a detached alias of the logits, so autograd can take it as .grad without a copy
    grad = (logits.detach() if inplace else torch.empty_like(logits)) if with_grad else None
    rows = torch.empty(n, dtype=torch.float32, device=logits.device)
    lse = torch.empty(n, dtype=torch.float32, device=logits.device)
    w = weight.to(device=logits.device, dtype=torch.float32).contiguous() if weight is not None else rows
    w_sum = w.sum() if weight is not None else rows
    block, warps = _launch_config(c, block)
    if n:
        _kernels.cross_entropy_kernel[(n,)](
            logits, logits.stride(0), grad if with_grad else logits, grad.stride(0) if with_grad else 0,
            targets.contiguous(), w, w_sum, scale, rows, lse,
            c, ignore_index, float(label_smoothing), float(lse_square_scale), float(softcap or 1.0),
            HAS_WEIGHT=weight is not None, SMOOTH=label_smoothing > 0, ZLOSS=lse_square_scale > 0,
            SOFTCAP=softcap is not None, WITH_GRAD=with_grad, BLOCK=block, num_warps=warps,
        )
    if inplace:
        # the kernel wrote behind autograd's back: bump the version counter, so that a backward which
        # saved these logits (e.g. tanh's, which keeps its output) raises instead of using the gradient
        torch.autograd.graph.increment_version(logits)
    return rows, lse, grad


def scale_rows(grad: torch.Tensor, upstream: torch.Tensor, block: int | None = None) -> torch.Tensor:
    from . import _kernels

    n, c = grad.shape
    upstream = upstream.to(torch.float32).contiguous()
    block, warps = _launch_config(c, block)
    if n:
        _kernels.scale_rows_kernel[(n,)](grad, grad.stride(0), upstream, c, PER_ROW=upstream.ndim == 1, BLOCK=block,
                                         num_warps=warps)
    return grad


def _reduce(rows: torch.Tensor, scale: torch.Tensor, reduction: str) -> torch.Tensor:
    return rows if reduction == "none" else rows.sum() * scale


class FusedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, targets, weight, scale, reduction, options: dict[str, Any]):
        with_grad = ctx.needs_input_grad[0]
        rows, lse, grad = launch(logits, targets, weight, scale, with_grad=with_grad, **options)
        ctx.grad, ctx.block = grad, options.get("block")
        ctx.mark_non_differentiable(lse)
        return _reduce(rows, scale, reduction), lse

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, upstream, _lse_upstream):
        if ctx.grad is None:
            raise RuntimeError("losslab.gpu.cross_entropy: backward ran twice through one forward (retain_graph=True); "
                               "the fused kernel keeps one gradient buffer: recompute the loss instead")
        grad, ctx.grad = ctx.grad, None
        return scale_rows(grad, upstream, ctx.block), None, None, None, None, None


def cross_entropy(logits, targets, *, weight=None, ignore_index: int = -100, label_smoothing: float = 0.0,
                  reduction: str = "mean", normalizer=None, lse_square_scale: float = 0.0, softcap: float | None = None,
                  return_lse: bool = False, inplace: bool = False, _block: int | None = None):
    r"""Softmax cross-entropy of (N, C) logits and integer targets, forward and backward in one Triton kernel.

    With z = softcap tanh(x / softcap) (or z = x), p = softmax(z), lse = log sum_c exp(z_c), class
    weights w (W = sum w), r = w[y], smoothing e and z-loss scale s, per row::

        loss = (1 - e) r (lse - z_y) + (e / C) (W lse - sum_c w_c z_c) + s r lse^2
        dloss/dz_c = p_c [(1 - e) r + e W / C + 2 s r lse] - (1 - e) r [c = y] - (e / C) w_c

    and dz/dx = 1 - (z / softcap)^2. ``reduction="mean"`` divides by sum of r over rows not ignored
    (or by ``normalizer``); 0 when there is none. The gradient is written during the forward pass (into
    the logits with ``inplace=True``); ``return_lse=True`` also returns the per-row lse (float32, no
    gradient). See docs/gpu.md.
    """
    weight, scale = _prepare(logits, targets, weight, ignore_index, label_smoothing, reduction, normalizer,
                             lse_square_scale, softcap)
    if inplace and not logits.requires_grad:
        raise ValueError("inplace=True writes the gradient into the logits, so it needs logits that require grad")
    options = dict(ignore_index=int(ignore_index), label_smoothing=float(label_smoothing),
                   lse_square_scale=float(lse_square_scale), softcap=None if softcap is None else float(softcap),
                   inplace=inplace, block=_block)
    if torch.is_grad_enabled() and logits.requires_grad:
        loss, lse = FusedCrossEntropy.apply(logits, targets, weight, scale, reduction, options)
    else:
        rows, lse, _ = launch(logits, targets, weight, scale, with_grad=False, **{**options, "inplace": False})
        loss = _reduce(rows, scale, reduction)
    return (loss, lse) if return_lse else loss


def value_and_grad(logits, targets, *, weight=None, ignore_index: int = -100, label_smoothing: float = 0.0,
                   reduction: str = "mean", normalizer=None, lse_square_scale: float = 0.0, softcap: float | None = None):
    """(loss, gradient) without autograd: one kernel launch, the gradient of the reduced loss."""
    weight, scale = _prepare(logits, targets, weight, ignore_index, label_smoothing, reduction, normalizer,
                             lse_square_scale, softcap)
    rows, _, grad = launch(logits.detach(), targets, weight, scale, ignore_index=int(ignore_index),
                           label_smoothing=float(label_smoothing), lse_square_scale=float(lse_square_scale),
                           softcap=None if softcap is None else float(softcap), with_grad=True, inplace=False)
    return _reduce(rows, scale, reduction), grad


def _prepare(logits, targets, weight, ignore_index, label_smoothing, reduction, normalizer, lse_square_scale, softcap):
    """Every check, then the class weights on the logits' device and the reduction's scale."""
    check_arguments(logits, targets, weight, label_smoothing, reduction, normalizer, lse_square_scale, softcap)
    check.class_indices("targets", targets, logits.shape[1], ignore_index)  # concrete (CPU/strict) only
    weight = weight.detach().to(device=logits.device, dtype=torch.float32) if weight is not None else None
    return weight, mean_scale(targets, weight, ignore_index, reduction, normalizer, logits.device)
