"""Linear + cross-entropy without the N x V logits: ``loss = CE(hidden @ weight.T + bias, targets)``.

The vocabulary is cut into chunks of columns. The forward pass computes one chunk of logits at a
time and folds it into a running row max, sum of exponentials, target logit and (for label
smoothing) weighted logit sum: it keeps only the per-row log-sum-exp. The backward pass recomputes
each chunk, turns it into the gradient with respect to the logits (the formula of ``_kernels``), and
multiplies it out at once: ``grad_weight[chunk] = G.T @ hidden`` (complete, written once, no
accumulation across chunks) and ``grad_hidden += G @ weight[chunk]`` (accumulated in float32).

Cost: 4 matrix products of N x H x V (the logits twice, then the two gradients) instead of 3, the
price of never storing the logits. Extra memory: the float32 ``grad_hidden`` accumulator (4 N H bytes)
and a few float32 chunks of N x chunk_size. Plain PyTorch operations: runs on any device.
"""

from __future__ import annotations

import torch

from .. import _checks as check
from ..registry import get
from ..torch._softmax_ce import accumulate_in, logits_grad, mean_scale, row_losses, target_logit

CHUNK_BYTES = 32 << 20  # float32 bytes of one logits chunk


def _check(hidden, weight, targets, bias, class_weight, label_smoothing, reduction, normalizer, lse_square_scale, softcap):
    for name, x in (("hidden", hidden), ("weight", weight), ("targets", targets)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch tensor, got {type(x).__name__}")
    if hidden.ndim != 2 or weight.ndim != 2 or hidden.shape[1] != weight.shape[1]:
        raise ValueError(f"hidden must be (N, H) and weight (V, H) with the same H, got {tuple(hidden.shape)} and "
                         f"{tuple(weight.shape)} (the classifier's weight is (V, H), as nn.Linear(H, V).weight)")
    if not hidden.dtype.is_floating_point or weight.dtype != hidden.dtype:
        raise TypeError(f"hidden and weight must share one floating dtype, got {hidden.dtype} and {weight.dtype}")
    if targets.shape != hidden.shape[:1] or targets.dtype.is_floating_point or targets.dtype == torch.bool:
        raise ValueError(f"targets must be integer class indices of shape ({hidden.shape[0]},), got "
                         f"{targets.dtype} {tuple(targets.shape)}")
    for name, x in (("bias", bias), ("class_weight", class_weight)):
        if x is not None and (not isinstance(x, torch.Tensor) or x.shape != weight.shape[:1]):
            raise ValueError(f"{name} must be a tensor of shape ({weight.shape[0]},), got {getattr(x, 'shape', type(x).__name__)}")
    devices = {x.device for x in (hidden, weight, targets, bias) if x is not None}
    if len(devices) > 1:
        raise ValueError(f"hidden, weight, targets and bias must be on one device, got {sorted(map(str, devices))}")
    check.options_in(get("cross_entropy"), label_smoothing=label_smoothing, lse_square_scale=lse_square_scale,
                     softcap=softcap)
    check.reduction(reduction, normalizer, ("none", "mean", "sum"))


def _chunks(n_rows: int, n_cols: int, chunk_size: int | None):
    size = chunk_size or max(128, min(n_cols, (CHUNK_BYTES // (4 * max(n_rows, 1))) // 128 * 128))
    return [(v0, min(v0 + size, n_cols)) for v0 in range(0, n_cols, size)]


def _logits(hidden, weight, bias, v0, v1, softcap):
    """One chunk of (capped) logits in float32 (float64 for float64 inputs), and the capping's derivative factor."""
    z = hidden @ weight[v0:v1].T
    if bias is not None:
        z += bias[v0:v1]
    z = z.to(accumulate_in(hidden.dtype))
    if softcap is None:
        return z, None
    z = torch.tanh(z / softcap)
    return z.mul(softcap), 1 - z * z


class LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, class_weight, scale, opts):
        n, v = hidden.shape[0], weight.shape[0]
        acc = accumulate_in(hidden.dtype)
        m = torch.full((n,), float("-inf"), dtype=acc, device=hidden.device)
        s = torch.zeros(n, dtype=acc, device=hidden.device)
        z_y, wz = torch.zeros_like(s), torch.zeros_like(s)
        for v0, v1 in _chunks(n, v, opts["chunk_size"]):
            z, _ = _logits(hidden, weight, bias, v0, v1, opts["softcap"])
            m_new = torch.maximum(m, z.amax(1))
            s = s * torch.exp(m - m_new) + torch.exp(z - m_new[:, None]).sum(1)
            m = m_new
            z_y += target_logit(z, targets - v0)[0]
            if opts["label_smoothing"]:
                wz += z.sum(1) if class_weight is None else z @ class_weight[v0:v1]
        lse = m + torch.log(s)
        valid = targets != opts["ignore_index"]
        r = torch.ones_like(s) if class_weight is None else class_weight[torch.where(valid, targets, 0)]
        w_sum = v if class_weight is None else class_weight.sum()
        rows = row_losses(lse, z_y, wz, r, w_sum, v, opts["label_smoothing"], opts["lse_square_scale"])
        rows = torch.where(valid, rows, 0.0)
        ctx.save_for_backward(hidden, weight, bias, targets, class_weight, scale, lse, r)
        ctx.opts = opts
        ctx.mark_non_differentiable(lse)
        return (rows if opts["reduction"] == "none" else rows.sum() * scale), lse

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, upstream, _lse_upstream):
        hidden, weight, bias, targets, class_weight, scale, lse, r = ctx.saved_tensors
        o = ctx.opts
        n, v = hidden.shape[0], weight.shape[0]
        e, valid = o["label_smoothing"], targets != o["ignore_index"]
        w_sum = v if class_weight is None else class_weight.sum()
        acc = accumulate_in(hidden.dtype)
        row_scale = torch.where(valid, (upstream if upstream.ndim else upstream * scale).to(acc), 0.0)
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        grad_h = torch.zeros(hidden.shape, dtype=acc, device=hidden.device) if need_h else None
        grad_w = torch.empty_like(weight) if need_w else None
        grad_b = torch.empty_like(bias) if need_b else None
        for v0, v1 in _chunks(n, v, o["chunk_size"]):
            z, cap = _logits(hidden, weight, bias, v0, v1, o["softcap"])
            g = logits_grad(z, lse, targets - v0, r, w_sum, v, e, o["lse_square_scale"], row_scale,
                            None if class_weight is None else class_weight[v0:v1])
            if cap is not None:
                g *= cap
            g_low = g.to(hidden.dtype)
            if need_w:
                grad_w[v0:v1] = g_low.T @ hidden
            if need_h:
                grad_h += (g_low @ weight[v0:v1]).to(acc)
            if need_b:
                grad_b[v0:v1] = g.sum(0).to(bias.dtype)
        grad_h = grad_h.to(hidden.dtype) if need_h else None
        return grad_h, grad_w, grad_b, None, None, None, None


def linear_cross_entropy(hidden, weight, targets, bias=None, *, class_weight=None, ignore_index: int = -100,
                         label_smoothing: float = 0.0, reduction: str = "mean", normalizer=None,
                         lse_square_scale: float = 0.0, softcap: float | None = None, return_lse: bool = False,
                         chunk_size: int | None = None):
    """Cross-entropy of the logits ``hidden @ weight.T + bias`` without storing them (see module docs).

    ``weight`` is the classifier's (V, H) matrix (``nn.Linear(H, V).weight``); ``class_weight`` the
    per-class weights of ``cross_entropy``'s ``weight``. Every other option means what it means for
    ``losslab.gpu.cross_entropy``. ``chunk_size``: vocabulary columns per chunk (default: 32 MiB of
    float32 logits per chunk).
    """
    _check(hidden, weight, targets, bias, class_weight, label_smoothing, reduction, normalizer, lse_square_scale, softcap)
    check.class_indices("targets", targets, weight.shape[0], ignore_index)
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int (vocabulary columns per chunk), got {chunk_size!r}")
    if class_weight is not None:
        class_weight = class_weight.detach().to(device=hidden.device, dtype=accumulate_in(hidden.dtype))
    scale = mean_scale(targets, class_weight, ignore_index, reduction, normalizer, hidden.device, accumulate_in(hidden.dtype))
    opts = dict(ignore_index=int(ignore_index), label_smoothing=float(label_smoothing), reduction=reduction,
                lse_square_scale=float(lse_square_scale), softcap=None if softcap is None else float(softcap),
                chunk_size=chunk_size)
    loss, lse = LinearCrossEntropy.apply(hidden, weight, bias, targets, class_weight, scale, opts)
    return (loss, lse) if return_lse else loss
