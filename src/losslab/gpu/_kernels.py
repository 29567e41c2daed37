"""Triton kernels for softmax cross-entropy with integer targets. Imported only when used.

Per row i with target y (not ignored), logits z (after soft-capping z = c tanh(x / c)), C classes,
label smoothing e, class weights w (all 1 without weights, W = sum_k w_k), z-loss scale s and
row weight r = w_y:

    lse  = log sum_k exp(z_k)
    loss = (1 - e) r (lse - z_y) + (e / C) (W lse - sum_k w_k z_k) + s r lse^2
    dloss/dz_c = p_c [(1 - e) r + e W / C + 2 s r lse] - (1 - e) r [c = y] - (e / C) w_c,   p = softmax(z)

and d z / d x = 1 - (z / c)^2 under soft-capping. lse is carried as the row max m and log_s = log sum_k
exp(z_k - m), apart: lse - z_y = log_s + (m - z_y) and p_c = exp((z_c - m) - log_s), so a confident row's
small loss and 1 - p_y keep their digits (lse itself is rounded at m's scale: 8e-6 at 100 in float32). Everything is computed in float32 whatever the
logits' dtype. The gradient is written already multiplied by the reduction's scale (1 / divisor for
"mean"), so the backward pass is free when the upstream gradient is 1 (see ``scale_rows``).

Three kernels compute exactly this, with the same helpers (``_row_loss``, ``_grad``), and differ in
how rows meet programs (``_cross_entropy.LaunchConfig.variant`` picks one):

- ``cross_entropy_kernel`` ("row"): one program per row; the first loop over the row finds lse online
  (running max and rescaled sum), the second re-reads the row (from L2 when it is still there) and
  writes the gradient.
- ``cross_entropy_persistent_kernel`` ("persistent"): the same two loops, but a fixed number of
  programs each walks rows pid, pid + P, ...: at most P rows are in flight, so with P x row bytes
  under the L2 size the second read of a row comes from L2 rather than from memory.
- ``cross_entropy_rows_kernel`` ("rows"): ROWS rows per step held at once as a (ROWS, BLOCK) tile,
  BLOCK >= C: one read of the row from memory, max, sum, loss and gradient from registers, one write.
  Programs walk groups of rows pid, pid + P, ... (P = the number of groups: one group each).
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
def _row_loss(m, log_s, z_y, r, w_sum, wz, valid, n_cols, smoothing, z_scale, SMOOTH: tl.constexpr,
              ZLOSS: tl.constexpr):
    loss = (1.0 - smoothing) * r * (log_s + (m - z_y))
    if SMOOTH:
        loss += smoothing / n_cols * (w_sum * log_s + (w_sum * m - wz))
    if ZLOSS:
        loss += z_scale * r * (m + log_s) * (m + log_s)
    return tl.where(valid, loss, 0.0)


@triton.jit
def _grad(z, offs, mask, y, m, log_s, r, w_sum, scale, W, n_cols, smoothing, z_scale, softcap,
          HAS_WEIGHT: tl.constexpr, SMOOTH: tl.constexpr, ZLOSS: tl.constexpr, SOFTCAP: tl.constexpr):
    """The gradient at columns ``offs`` (capped logits z, finite where masked), scaled by the reduction."""
    a = (1.0 - smoothing) * r + smoothing * w_sum / n_cols
    if ZLOSS:
        a += 2.0 * z_scale * r * (m + log_s)
    hit = (1.0 - smoothing) * r
    grad = tl.exp((z - m) - log_s) * a - tl.where(offs == y, hit, 0.0)
    if SMOOTH:
        if HAS_WEIGHT:
            grad -= smoothing / n_cols * tl.load(W + offs, mask=mask, other=0.0).to(tl.float32)
        else:
            grad -= smoothing / n_cols
    grad = grad * scale
    if SOFTCAP:
        grad = grad * (1.0 - (z / softcap) * (z / softcap))
    return grad


@triton.jit
def _two_pass_row(
    row, X, stride_x, G, stride_g, T, W, WSUM, SCALE, LOSS, LSE,
    n_cols, ignore_index, smoothing, z_scale, softcap,
    HAS_WEIGHT: tl.constexpr, SMOOTH: tl.constexpr, ZLOSS: tl.constexpr, SOFTCAP: tl.constexpr,
    WITH_GRAD: tl.constexpr, BLOCK: tl.constexpr,
):
    """One row (an int64 index): pass 1 finds lse online, pass 2 re-reads the row and writes the gradient."""
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
    log_s = tl.log(s)

    z_y = _softcapped(tl.load(x_row + y, mask=in_range, other=0.0).to(tl.float32), softcap, SOFTCAP)
    r = 1.0
    if HAS_WEIGHT:
        r = tl.load(W + y, mask=in_range, other=0.0).to(tl.float32)
    w_sum = n_cols * 1.0
    if HAS_WEIGHT:
        w_sum = tl.load(WSUM).to(tl.float32)
    tl.store(LOSS + row, _row_loss(m, log_s, z_y, r, w_sum, wz, valid, n_cols, smoothing, z_scale, SMOOTH, ZLOSS))
    tl.store(LSE + row, m + log_s)

    if WITH_GRAD:
        # pass 2: the gradient, scaled by the reduction (zero for ignored rows)
        scale = tl.where(valid, tl.load(SCALE).to(tl.float32), 0.0)
        g_row = G + row * stride_g
        for start in range(0, n_cols, BLOCK):
            offs = start + cols
            mask = offs < n_cols
            z = _softcapped(tl.load(x_row + offs, mask=mask, other=0.0).to(tl.float32), softcap, SOFTCAP)
            grad = _grad(z, offs, mask, y, m, log_s, r, w_sum, scale, W, n_cols, smoothing, z_scale, softcap,
                         HAS_WEIGHT, SMOOTH, ZLOSS, SOFTCAP)
            tl.store(g_row + offs, grad.to(G.dtype.element_ty), mask=mask)


@triton.jit
def cross_entropy_kernel(
    X, stride_x, G, stride_g, T, W, WSUM, SCALE, LOSS, LSE,
    n_cols, ignore_index, smoothing, z_scale, softcap,
    HAS_WEIGHT: tl.constexpr, SMOOTH: tl.constexpr, ZLOSS: tl.constexpr, SOFTCAP: tl.constexpr,
    WITH_GRAD: tl.constexpr, BLOCK: tl.constexpr,
):
    """Variant "row": one program per row (grid = N)."""
    _two_pass_row(tl.program_id(0).to(tl.int64), X, stride_x, G, stride_g, T, W, WSUM, SCALE, LOSS, LSE,
                  n_cols, ignore_index, smoothing, z_scale, softcap, HAS_WEIGHT, SMOOTH, ZLOSS, SOFTCAP, WITH_GRAD, BLOCK)


@triton.jit
def cross_entropy_persistent_kernel(
    X, stride_x, G, stride_g, T, W, WSUM, SCALE, LOSS, LSE,
    n_rows, n_cols, ignore_index, smoothing, z_scale, softcap,
    HAS_WEIGHT: tl.constexpr, SMOOTH: tl.constexpr, ZLOSS: tl.constexpr, SOFTCAP: tl.constexpr,
    WITH_GRAD: tl.constexpr, BLOCK: tl.constexpr,
):
    """Variant "persistent": P programs (the grid), each walking rows pid, pid + P, ... (int64 indices)."""
    for row in range(tl.program_id(0).to(tl.int64), n_rows, tl.num_programs(0)):
        _two_pass_row(row, X, stride_x, G, stride_g, T, W, WSUM, SCALE, LOSS, LSE,
                      n_cols, ignore_index, smoothing, z_scale, softcap, HAS_WEIGHT, SMOOTH, ZLOSS, SOFTCAP, WITH_GRAD,
                      BLOCK)


@triton.jit
def cross_entropy_rows_kernel(
    X, stride_x, G, stride_g, T, W, WSUM, SCALE, LOSS, LSE,
    n_rows, n_cols, ignore_index, smoothing, z_scale, softcap,
    HAS_WEIGHT: tl.constexpr, SMOOTH: tl.constexpr, ZLOSS: tl.constexpr, SOFTCAP: tl.constexpr,
    WITH_GRAD: tl.constexpr, BLOCK: tl.constexpr, ROWS: tl.constexpr,
):
    """Variant "rows": ROWS whole rows (BLOCK >= n_cols) per step, read once; programs walk groups of rows."""
    cols = tl.arange(0, BLOCK)
    col_mask = cols < n_cols
    w_sum = n_cols * 1.0
    if HAS_WEIGHT:
        w_sum = tl.load(WSUM).to(tl.float32)
    reduction_scale = tl.load(SCALE).to(tl.float32)
    for group in range(tl.program_id(0).to(tl.int64), tl.cdiv(n_rows, ROWS), tl.num_programs(0)):
        rows = group * ROWS + tl.arange(0, ROWS)
        row_mask = rows < n_rows
        y = tl.load(T + rows, mask=row_mask, other=ignore_index).to(tl.int64)
        valid = y != ignore_index
        in_range = valid & (y >= 0) & (y < n_cols)
        mask = row_mask[:, None] & col_mask[None, :]
        z = _softcapped(tl.load(X + rows[:, None] * stride_x + cols[None, :], mask=mask, other=0.0).to(tl.float32),
                        softcap, SOFTCAP)  # rows past the end read as zeros: finite, never stored
        z_inf = tl.where(col_mask[None, :], z, float("-inf"))
        m = tl.max(z_inf, 1)
        log_s = tl.log(tl.sum(tl.exp(z_inf - m[:, None]), 1))
        z_y = tl.sum(tl.where((cols[None, :] == y[:, None]) & in_range[:, None], z, 0.0), 1)
        wz = tl.zeros((ROWS,), tl.float32)
        if SMOOTH:
            zk = tl.where(col_mask[None, :], z, 0.0)
            if HAS_WEIGHT:
                zk = zk * tl.load(W + cols, mask=col_mask, other=0.0).to(tl.float32)[None, :]
            wz = tl.sum(zk, 1)
        r = tl.full((ROWS,), 1.0, tl.float32)
        if HAS_WEIGHT:
            r = tl.load(W + y, mask=in_range & row_mask, other=0.0).to(tl.float32)
        tl.store(LOSS + rows, _row_loss(m, log_s, z_y, r, w_sum, wz, valid, n_cols, smoothing, z_scale, SMOOTH,
                                        ZLOSS), mask=row_mask)
        tl.store(LSE + rows, m + log_s, mask=row_mask)
        if WITH_GRAD:
            scale = tl.where(valid, reduction_scale, 0.0)
            grad = _grad(z, cols[None, :], col_mask[None, :], y[:, None], m[:, None], log_s[:, None], r[:, None], w_sum,
                         scale[:, None], W, n_cols, smoothing, z_scale, softcap, HAS_WEIGHT, SMOOTH, ZLOSS, SOFTCAP)
            tl.store(G + rows[:, None] * stride_g + cols[None, :], grad.to(G.dtype.element_ty), mask=mask)


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
