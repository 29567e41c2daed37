"""Softmax cross-entropy assembled from per-row pieces, for implementations that never hold a whole
row of logits at once: chunks of the vocabulary (``losslab.gpu.linear_cross_entropy``) or shards of
it across processes (``losslab.torch.distributed.vocab_parallel_cross_entropy``). The Triton kernel
in ``losslab.gpu._kernels`` computes the same formulas in one program per row.

The formulas are those of ``losslab.definitions.softmax_rows`` in their per-row-sums form: per row with
target y, log-sum-exp ``lse``, target logit ``z_y``, row weight ``r = w[y]``, class-weight sum ``W`` and
``wz = sum_c w_c z_c``, C classes, smoothing e and z-loss scale s, the target distribution has
Q = (1 - e) r + e W / C and sum_c q_c z_c = (1 - e) r z_y + (e / C) wz, so

    loss = Q lse - (1 - e) r z_y - (e / C) wz + s r lse^2
    d loss / d z_c = a p_c - (1 - e) r [c = y] - (e / C) w_c,   a = Q + 2 s r lse

evaluated with lse = m + log_total (m the row max) kept apart: the loss as Q log_total - (1 - e) r (z_y - m)
- (e / C) (wz - W m), and p_c = exp((z_c - m) - log_total), so a confident row's small loss and 1 - p_y
are not differences of two numbers of m's size.
"""

from __future__ import annotations

import torch

from .. import _stable, _xp
from .._reduce import coefficient
from ..definitions import softmax_rows


def accumulate_in(dtype: torch.dtype) -> torch.dtype:
    """float64 for float64 inputs, else float32 (half-precision inputs are summed in float32)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _q_total(r, w_sum, n_classes, smoothing: float):
    return (1 - smoothing) * r + smoothing * w_sum / n_classes


def max_and_log_total(z):
    """(m, log sum_c exp(z_c - m)) per row of a whole-row block: lse = m + log_total, the two kept apart.
    m is the definitions' shift (``_stable._shift``: 0 on a row without a finite maximum)."""
    m = _stable._shift(_xp.namespace(z), z, 1)
    return m[:, 0], torch.exp(z - m).sum(1).log_()


def row_losses(m, log_total, z_y, wz, r, w_sum, n_classes, smoothing: float, z_scale: float):
    qd = (1 - smoothing) * r * (z_y - m)
    if smoothing:
        qd = qd + (smoothing / n_classes) * (wz - w_sum * m)
    return softmax_rows.loss_from_sums(log_total, _q_total(r, w_sum, n_classes, smoothing), qd, m + log_total, r,
                                       z_scale)


def target_logit(z, local_targets):
    """z[i, local_targets[i]] where that column is in this block, else 0; and the mask. gather + where:
    no data-dependent shapes, no host sync."""
    inside = (local_targets >= 0) & (local_targets < z.shape[1])
    picked = z.gather(1, local_targets.clamp(0, z.shape[1] - 1)[:, None])[:, 0]
    return torch.where(inside, picked, 0.0), inside


def logits_grad(z, m, log_total, local_targets, r, w_sum, n_classes, smoothing: float, z_scale: float, row_scale,
                class_weight=None):
    """d loss / d z for one block of columns, each row multiplied by ``row_scale`` (zero for ignored rows)."""
    a = softmax_rows.grad_scale(_q_total(r, w_sum, n_classes, smoothing), m + log_total, r, z_scale) * row_scale
    g = torch.sub(z, m[:, None]).sub_(log_total[:, None]).exp_().mul_(a[:, None])
    _, inside = target_logit(z, local_targets)
    hit = torch.where(inside, -(1 - smoothing) * r * row_scale, 0.0)
    g.scatter_add_(1, local_targets.clamp(0, z.shape[1] - 1)[:, None], hit[:, None])
    if smoothing:
        w = torch.ones(z.shape[1], dtype=z.dtype, device=z.device) if class_weight is None else class_weight
        g -= (smoothing / n_classes) * row_scale[:, None] * w
    return g


def mean_scale(targets, weight, ignore_index, reduction, normalizer, device, dtype=torch.float32) -> torch.Tensor:
    """The factor of the per-row losses in the result (a 0-d device tensor: no sync), by the one
    reduction rule of ``losslab._reduce`` (1/K for the mean, 0 when K = 0)."""
    like = torch.empty((), dtype=dtype, device=device)
    divisor = None
    if reduction == "mean" and normalizer is None:
        valid = targets != ignore_index
        if weight is None:
            divisor = valid.sum(dtype=dtype)
        else:
            divisor = (weight[torch.where(valid, targets, 0)] * valid).sum(dtype=dtype)
    elif isinstance(normalizer, torch.Tensor):
        normalizer = normalizer.to(device=device, dtype=dtype)
    return coefficient(_xp.namespace(like), like, divisor, reduction, normalizer)
