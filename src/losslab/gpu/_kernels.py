"""Triton kernels for softmax cross-entropy with integer targets. Imported only when used.

Per row i with target y (not ignored), logits z (after soft-capping z = c tanh(x / c)), C classes,
label smoothing e, class weights w (all 1 without weights, W = sum_k w_k), z-loss scale s and
row weight r = w_y:

    lse  = log sum_k exp(z_k)
    loss = (1 - e) r (lse - z_y) + (e / C) (W lse - sum_k w_k z_k) + s r lse^2
    dloss/dz_c = p_c [(1 - e) r + e W / C + 2 s r lse] - (1 - e) r [c = y] - (e / C) w_c,   p = softmax(z)

and d z / d x = 1 - (z / c)^2 under soft-capping. Everything is computed in float32 whatever the
logits' dtype. One program per row: the first loop over the row finds lse online (running max and
rescaled sum), the second re-reads the row (from L2 when it is still there) and writes the gradient,
already multiplied by the reduction's scale (1 / divisor for "mean"), so the backward pass is free
when the upstream gradient is 1 (see ``scale_rows``).
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _softcapped(x, softcap, SOFTCAP: tl.constexpr):
    if SOFTCAP:
        # c tanh(x / c) with tanh(u) = 1 - 2 / (exp(2u) + 1): finite for every x, exact at +-inf
        x = softcap * (1.0 - 2.0 / (tl.exp(2.0 * x / softcap) + 1.0))
    return x


@triton.jit
def cross_entropy_kernel(
    X, stride_x, G, stride_g, T, W, WSUM, SCALE, LOSS, LSE,
    n_cols, ignore_index, smoothing, z_scale, softcap,
    HAS_WEIGHT: tl.constexpr, SMOOTH: tl.constexpr, ZLOSS: tl.constexpr, SOFTCAP: tl.constexpr,
    WITH_GRAD: tl.constexpr, BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    x_row = X + row * stride_x
    cols = tl.arange(0, BLOCK)
    y = tl.load(T + row).to(tl.int64)
    valid = y != ignore_index
    in_range = valid & (y >= 0) & (y < n_cols)  # out-of-range targets never read out of bounds

    # pass 1: running max m and sum s of exp(z - m), and sum_k w_k z_k for label smoothing
    m = float("-inf")
    s = 0.0
    wz = 0.0
    for start in range(0, n_cols, BLOCK):
        offs = start + cols
        mask = offs < n_cols
        z = _softcapped(tl.load(x_row + offs, mask=mask, other=0.0).to(tl.float32), softcap, SOFTCAP)
        z = tl.where(mask, z, float("-inf"))
        m_new = tl.maximum(m, tl.max(z, 0))
        s = s * tl.exp(m - m_new) + tl.sum(tl.exp(z - m_new), 0)
        m = m_new
        if SMOOTH:
            zk = tl.where(mask, z, 0.0)
            if HAS_WEIGHT:
                zk = zk * tl.load(W + offs, mask=mask, other=0.0).to(tl.float32)
            wz += tl.sum(zk, 0)
    lse = m + tl.log(s)

    z_y = _softcapped(tl.load(x_row + y, mask=in_range, other=0.0).to(tl.float32), softcap, SOFTCAP)
    r = 1.0
    if HAS_WEIGHT:
        r = tl.load(W + y, mask=in_range, other=0.0).to(tl.float32)
    w_sum = n_cols * 1.0
    if HAS_WEIGHT:
        w_sum = tl.load(WSUM).to(tl.float32)
    loss = (1.0 - smoothing) * r * (lse - z_y)
    if SMOOTH:
        loss += smoothing / n_cols * (w_sum * lse - wz)
    if ZLOSS:
        loss += z_scale * r * lse * lse
    tl.store(LOSS + row, tl.where(valid, loss, 0.0))
    tl.store(LSE + row, lse)

    if WITH_GRAD:
        # pass 2: the gradient, scaled by the reduction (zero for ignored rows)
        scale = tl.where(valid, tl.load(SCALE).to(tl.float32), 0.0)
        a = (1.0 - smoothing) * r + smoothing * w_sum / n_cols
        if ZLOSS:
            a += 2.0 * z_scale * r * lse
        hit = (1.0 - smoothing) * r
        g_row = G + row * stride_g
        for start in range(0, n_cols, BLOCK):
            offs = start + cols
            mask = offs < n_cols
            z = _softcapped(tl.load(x_row + offs, mask=mask, other=0.0).to(tl.float32), softcap, SOFTCAP)
            grad = tl.exp(z - lse) * a - tl.where(offs == y, hit, 0.0)
            if SMOOTH:
                if HAS_WEIGHT:
                    grad -= smoothing / n_cols * tl.load(W + offs, mask=mask, other=0.0).to(tl.float32)
                else:
                    grad -= smoothing / n_cols
            grad = grad * scale
            if SOFTCAP:
                grad = grad * (1.0 - (z / softcap) * (z / softcap))
            tl.store(g_row + offs, grad.to(G.dtype.element_ty), mask=mask)


@triton.jit
def scale_rows_kernel(G, stride_g, GOUT, n_cols, PER_ROW: tl.constexpr, BLOCK: tl.constexpr):
    """G[i] *= g (g = GOUT[0], or GOUT[i] per row), skipped when g == 1: the usual loss.backward()
    costs no pass over the gradient, and no host synchronisation is needed to know it."""
    row = tl.program_id(0).to(tl.int64)
    if PER_ROW:
        g = tl.load(GOUT + row).to(tl.float32)
    else:
        g = tl.load(GOUT).to(tl.float32)
    if g != 1.0:
        g_row = G + row * stride_g
        for start in range(0, n_cols, BLOCK):
            offs = start + tl.arange(0, BLOCK)
            mask = offs < n_cols
            v = tl.load(g_row + offs, mask=mask, other=0.0).to(tl.float32)
            tl.store(g_row + offs, (v * g).to(G.dtype.element_ty), mask=mask)


def block_size(n_cols: int, max_block: int) -> int:
    return min(max_block, triton.next_power_of_2(max(n_cols, 16)))
