"""The softmax cross-entropy row algebra, written once.

One row: logits x (C classes), soft-capped to z = c tanh(x / c) when a cap c is given; the target
distribution q (class weights, smoothing and the target folded in: for class index y, weights w
(all 1 without weights), smoothing e, q_k = (1 - e) w_y [k = y] + (e / C) w_k, and q = 0 on an
ignored row); the row weight r of the z-loss (w_y for a class index, 0 on an ignored row, 1 for
probability targets) and its scale s:

    lse  = log sum_k exp(z_k),  p = softmax(z)
    loss = sum_k q_k (lse - z_k) + s r lse^2
         = Q lse - sum_k q_k z_k + s r lse^2,      Q = sum_k q_k
    dloss/dz_k = (Q + 2 s r lse) p_k - q_k
    dloss/dx_k = dloss/dz_k (1 - (z_k / c)^2)      (soft-capping; 1 without a cap)

The first form of the loss is used where the whole row is at hand, each -log p_k = (hi - z_k) + lo with
lse = hi + lo exactly (``_stable.lse_parts``), or, summed over a row, (hi - m) + lo + (m - z_k) with m the
row max: a confident row's small loss is never the difference of two numbers of the logits' size, at
whose scale lse itself is rounded; the second where only per-row
sums are, a row split over vocabulary chunks or processes (``losslab.torch._softmax_ce``, the Triton kernel in ``losslab.gpu._kernels``, which the
tests hold to this definition), with the same shift: Q lse - sum_k q_k z_k = Q log_total - sum_k q_k d_k,
d = z - m, log_total = lse - m.
"""

from __future__ import annotations

from .. import _stable, _xp


def softcapped(ops, x, cap):
    """z = cap tanh(x / cap): finite for every x, exact at +-inf."""
    return cap * ops.tanh(x / cap)


def softcap_slope(z, cap):
    """dz/dx = 1 - tanh(x / cap)^2, from the capped logits z."""
    u = z / cap
    return 1.0 - u * u


def softcap_curvature(z, cap):
    """d2z/dx2 = -2 (z / cap) (1 - (z / cap)^2) / cap."""
    u = z / cap
    return -2.0 * u * (1.0 - u * u) / cap


class DenseTargets:
    """q given as an array (probability targets, smoothed and weighted), class axis last."""

    def __init__(self, q):
        self.q = q

    def total(self, ops):
        return ops.sum(self.q, axis=-1)

    def dot(self, ops, v):
        return ops.sum(self.q * v, axis=-1)

    def cross_entropy(self, ops, z, hi, lo):
        return -self.dot(ops, _stable.log_softmax_from(z, hi, lo))

    def subtracted_from(self, ops, g):
        return g - self.q


class IndexTargets:
    """q for class indices y, never materialised: q_k = (1 - e) w_y [k = y] + (e / C) valid w_k, with
    w_y = 0 on ignored items (``y`` holds any valid class there). Only the target's entry is gathered,
    so the loss reads one logit per item, not a one-hot row."""

    def __init__(self, ops, y, valid, w_y, w, smoothing, n_classes):
        self.y, self.valid, self.w_y, self.w = y, valid, w_y, w
        self.hit = (1.0 - smoothing) * w_y  # q's extra mass on the target class
        self.spread = smoothing / n_classes  # q = hit [k = y] + spread valid w
        self.w_sum = n_classes if w is None else ops.sum(w)

    def _picked(self, ops, v):
        return ops.take_along_axis(v, self.y[..., None], axis=-1)[..., 0]

    def total(self, ops):
        out = self.hit
        return out if not self.spread else out + self.spread * self.w_sum * self.valid

    def dot(self, ops, v):
        out = self.hit * self._picked(ops, v)
        if self.spread:
            wv = ops.sum(v, axis=-1) if self.w is None else ops.sum(v * self.w, axis=-1)
            out = out + self.spread * self.valid * wv
        return out

    def cross_entropy(self, ops, z, hi, lo):
        out = self.hit * ((hi[..., 0] - self._picked(ops, z)) + lo[..., 0])  # one logit per row
        if self.spread:
            # sum_k w_k (-log p_k) = W ((hi - m) + lo) + sum_k w_k (m - z_k), m the row max (W = sum_k w_k):
            # terms >= 0 as in sum_k w_k ((hi - z_k) + lo), but the dense sum needs m alone, not lse, so XLA
            # folds it into the pass that sums exp(z - m) (1.4x the time of Optax at 32 x 10 without that)
            m = _stable._shift(ops, z, -1)
            below = m - z
            w_below = ops.sum(below, axis=-1) if self.w is None else ops.sum(below * self.w, axis=-1)
            out = out + self.spread * self.valid * (self.w_sum * ((hi - m)[..., 0] + lo[..., 0]) + w_below)
        return out

    def subtracted_from(self, ops, g):
        classes = ops.arange(g.shape[-1], device=_xp.device(g))
        out = ops.where(classes == self.y[..., None], g - self.hit[..., None], g)
        if self.spread:
            w = 1.0 if self.w is None else self.w
            out = out - (self.spread * self.valid)[..., None] * w
        return out


def loss(ops, z, hi, lo, q, r, z_scale):
    """sum_k q_k (lse - z_k) + s r lse^2 along the last axis, lse = hi + lo (``_stable.lse_parts``, the
    axis kept) and each lse - z_k = (hi - z_k) + lo; ``q`` a DenseTargets or IndexTargets."""
    rows = q.cross_entropy(ops, z, hi, lo)
    if z_scale is None:
        return rows
    lse = hi[..., 0]
    return rows + z_scale * r * lse * lse


def loss_from_sums(log_total, q_total, qd, lse, r, z_scale):
    """The same from per-row sums of the shifted logits d = z - m: Q log_total - sum_k q_k d_k + s r lse^2,
    with log_total = log sum_k exp(d_k) and ``qd`` = sum_k q_k d_k (<= 0)."""
    return q_total * log_total - qd + z_scale * r * lse * lse


def grad_scale(q_total, lse, r, z_scale):
    """The factor a of p in dloss/dz = a p - q: Q + 2 s r lse."""
    return q_total if z_scale is None else q_total + 2.0 * z_scale * r * lse


def grad(ops, p, q, lse, r, z_scale):
    """dloss/dz = (Q + 2 s r lse) p - q along the last axis."""
    return q.subtracted_from(ops, grad_scale(q.total(ops), lse, r, z_scale)[..., None] * p)
