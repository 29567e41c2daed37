"""Fast NumPy paths for losses over rows of class scores (margins, multi-label, distillation):
fused, cache-blocked value and gradient passes that register themselves in ``_engines``
(imported by ``_fast``). Each is held to the reference path by ``tests/test_fast.py``.

As in ``_fast``: each path takes only plain float32/float64 NumPy scores of the shapes its loss
documents, options as Python numbers, targets in range and a finite total; anything else returns
``NotImplemented`` and goes through the reference path (which computes it or raises its error).
Work is cut into blocks of rows that stay in cache, the gradient written into its preallocated
output while the block is there; large inputs are split over threads (``_fast._blocks``)."""

from __future__ import annotations

import math

import numpy as np

from . import _engines, _numba_lanes
from ._fast import (
    BLOCK_BYTES,
    _bce_logits,
    _blocks,
    _class_weight,
    _coefficient,
    _finish,
    _float_array,
    _number,
    _real_array,
    _reduction_ok,
    _row_dot,
    _row_sums,
)
from ._ufuncs import log1p

_NO_POS_WEIGHT = {"pos_weight": None}

def _step(h, mask) -> None:
    """h = [h > 0] in place (mask: a bool buffer of h's shape): several times faster than np.sign."""
    np.greater(h, 0.0, out=mask)
    np.copyto(h, mask)


def _in_blocks(n: int, c: int, dt, with_grad: bool, tails, rows: int, elements: int, kernel, bool_tail=None):
    """kernel(lo, hi, g, bufs) over blocks of at most ``rows`` rows: g the block of the (n, c) gradient
    (allocated here and returned; None without it), bufs scratch arrays of shapes (hi - lo, *tail) for
    each tail of ``tails`` (and a bool one last, with ``bool_tail``), one set per thread.
    A single block, without threads, for small inputs."""
    grad = np.empty((n, c), dt) if with_grad else None

    def buffers(r):
        bufs = [np.empty((r, *tail), dt) for tail in tails]
        return bufs if bool_tail is None else [*bufs, np.empty((r, *bool_tail), bool)]

    def block(lo: int, hi: int, bufs) -> None:
        kernel(lo, hi, None if grad is None else grad[lo:hi], bufs)

    _blocks(n, rows, elements, block, buffers)
    return grad


def _rows_of(n: int, c: int, dt, buffers: int) -> int:
    """Rows per block: ``buffers`` (rows, c) arrays of dt in about BLOCK_BYTES together."""
    return max(1, BLOCK_BYTES // (buffers * c * dt.itemsize))


def _result(per_item, items_shape, reduction: str, u: float, dt, grad, grad_shape):
    """The reduced value (and the gradient, unless None) from the per-item terms, or NotImplemented
    when their sum is not finite (NaN or infinite scores: the reference path defines the result).
    Items of shape () are a NumPy scalar, as the reference's row sums give (multiclass_hinge's
    items_shape None: a 0-d array of shape ())."""
    total = per_item.sum()
    if not math.isfinite(total):
        return NotImplemented
    items = None
    if reduction == "none":
        items = per_item.reshape(items_shape or ())
        if items_shape == ():
            items = items[()]
    value = _finish(total, items, reduction, u, dt)
    return value if grad is None else (value, grad.reshape(grad_shape))


# -- multiclass hinge (torch's multi_margin_loss) -----------------------------------------------------


_HINGE_OPTIONS = frozenset({"p", "margin", "weight"})


def multiclass_hinge(args, options, reduction, normalizer, with_grad):
    """scores (N, C) with targets (N,), (C,) with () or (1,), () with (); p 1 or 2, margin, weight (C,).

    h_j = margin - s_y + s_j (the target column 0), l = w_y / C sum_j max(h_j, 0)^p; the gradient
    u w_y / C p h_j^(p-1) [h_j > 0] off the target and minus the row's sum on it."""
    if len(args) != 2 or not _reduction_ok(reduction, normalizer) or not _HINGE_OPTIONS.issuperset(options):
        return NotImplemented
    x, t = args
    p, margin = options.get("p", 1), options.get("margin", 1.0)
    if (not _float_array(x) or x.ndim > 2 or type(t) is not np.ndarray or t.dtype.kind not in "iu"
            or type(p) not in (int, float) or not _number(margin)):  # p's choices: checked by Loss._bind
        return NotImplemented
    allowed = [(x.shape[0],)] if x.ndim == 2 else [(), (1,)] if x.ndim == 1 else [()]
    c = x.shape[-1] if x.ndim else 1
    if t.shape not in allowed or c == 0 or t.size == 0:
        return NotImplemented
    x2, y = x.reshape(-1, c), t.reshape(-1)
    if y.view(f"u{y.itemsize}").max() >= c:  # negative indices wrap to large unsigned ones
        return NotImplemented  # the reference path names the bad index
    dt = x.dtype
    weight = _class_weight(options.get("weight"), c, dt)
    if weight is NotImplemented:
        return NotImplemented
    n = x2.shape[0]
    w_y = weight[y] if weight is not None else None
    u = _coefficient(reduction, n, normalizer)
    a = u / c if w_y is None else (u / c) * w_y  # d value / d h_j^p, per row
    if p == 2:
        a = 2.0 * a
    per_item = np.empty(n, dt)
    rows = _rows_of(n, c, dt, 1)

    def kernel(lo, hi, g, bufs):
        h = g if g is not None else bufs[0]
        xb, yb = x2[lo:hi], y[lo:hi]
        r = np.arange(hi - lo)
        np.add(xb, margin - xb[r, yb][:, None], out=h)  # (margin - s_y) + s_j, as the reference
        h[r, yb] = 0.0
        np.maximum(h, 0.0, out=h)
        li = per_item[lo:hi]
        if p == 1:
            _row_sums(h, out=li)
        else:
            _row_dot(h, h, out=li)
        li /= c
        if w_y is not None:
            li *= w_y[lo:hi]
        if g is None:
            return
        if p == 1:
            _step(g, bufs[-1])
        g *= a if w_y is None else a[lo:hi, None]
        g[r, yb] = -_row_sums(g)  # s_y enters every h_j with sign -1

    grad = _in_blocks(n, c, dt, with_grad, [] if with_grad else [(c,)], rows, x.size, kernel,
                      (c,) if with_grad and p == 1 else None)
    return _result(per_item, t.shape or None, reduction, u, dt, grad, x.shape)


# -- multi-label losses: (N, C) or (C,) scores with same-shape targets -----------------------------


def _label_rows(args, reduction, normalizer, kinds: str):
    """(scores as (N, C), targets as (N, C), N, C) for the multi-label losses, or None."""
    if len(args) != 2 or not _reduction_ok(reduction, normalizer):
        return None
    x, t = args
    if (not _float_array(x) or x.ndim not in (1, 2) or type(t) is not np.ndarray or t.shape != x.shape
            or t.dtype.kind not in kinds or x.size == 0):
        return None
    c = x.shape[-1]
    return x.reshape(-1, c), t.reshape(-1, c), x.size // c, c


def _label_weight(weight, x, n: int, c: int):
    """A weight broadcastable to the scores as (N, C) rows or a (C,) / (1,) / () vector, with whether it is
    per row; NotImplemented for what does not broadcast (the reference path names it)."""
    w = _real_array(weight)
    if w is None or w.ndim > x.ndim:
        return NotImplemented, False
    try:
        if np.broadcast_shapes(w.shape, x.shape) != x.shape:
            return NotImplemented, False
    except ValueError:
        return NotImplemented, False
    w = w.astype(x.dtype, copy=False)
    if w.ndim == 2 and w.shape[0] == n and n > 1:
        return w, True
    return w.reshape(w.shape[-1:]) if w.ndim else w, False


def multilabel_soft_margin(args, options, reduction, normalizer, with_grad):
    """scores (N, C) or (C,), targets in [0, 1] of the same shape, weight broadcastable to the scores:
    each row's BCE with logits (``_fast._bce_logits``), weighted, averaged over its C classes."""
    parsed = _label_rows(args, reduction, normalizer, "fiub")
    if parsed is None or not {"weight"}.issuperset(options):
        return NotImplemented
    x2, t2, n, c = parsed
    x, dt = args[0], args[0].dtype
    t2 = t2.astype(dt, copy=False)
    if not (t2.min() >= 0 and t2.max() <= 1):
        return NotImplemented
    w, w_rows = None, False
    if options.get("weight") is not None:
        w, w_rows = _label_weight(options["weight"], x, n, c)
        if w is NotImplemented:
            return NotImplemented
    u = _coefficient(reduction, n, normalizer)
    scale = u / c if w is None or w_rows else w * (u / c)  # dl/dx = w (sigmoid(x) - t) u / C
    per_item = np.empty(n, dt)
    rows = _rows_of(n, c, dt, 2)

    def kernel(lo, hi, g, bufs):
        (l,) = bufs
        _bce_logits(x2[lo:hi], t2[lo:hi], l, g, _NO_POS_WEIGHT)
        if w is not None:
            wb = w[lo:hi] if w_rows else w
            l *= wb
            if g is not None and w_rows:
                g *= wb
        _row_sums(l, out=per_item[lo:hi])
        if g is not None:
            g *= scale

    grad = _in_blocks(n, c, dt, with_grad, [(c,)], rows, x.size, kernel)
    per_item /= c
    return _result(per_item, x.shape[:-1], reduction, u, dt, grad, x.shape)


def multilabel_margin(args, options, reduction, normalizer, with_grad):
    """scores (N, C) or (C,), integer targets of the same shape: each row's target classes, ended by -1.

    With Y the targets before the first -1 (a class listed twice counts twice), l = (1/C) sum over
    target slots j and non-targets i of max(0, 1 - (x_j - x_i)), a pair at the kink adding nothing. The
    hinge is an (N, K, C) block computation, K the most target slots of any row: non-target scores
    x_i against 1 - x_j for each slot, with -inf at targets and on the slots after the -1."""
    parsed = _label_rows(args, reduction, normalizer, "iu")
    if parsed is None or options:
        return NotImplemented
    x2, t2, n, c = parsed
    x, dt = args[0], args[0].dtype
    if t2.min() < -1 or t2.max() >= c or not math.isfinite(x2.sum()):
        return NotImplemented  # bad indices, or non-finite scores (the reference keeps their NaN and inf)
    ended = np.empty((n, c + 1), bool)
    np.equal(t2, -1, out=ended[:, :c])
    ended[:, c] = True
    first = ended.argmax(axis=1)  # each row's number of target slots (before its first -1)
    k = int(first.max())
    u = _coefficient(reduction, n, normalizer)
    per_item = np.zeros(n, dt)
    grad = (np.empty if k else np.zeros)((n, c), dt) if with_grad else None
    if k:
        row = np.arange(n)[:, None]
        slot = np.where(np.arange(k) < first[:, None], t2[:, :k], c)  # ended slots point at an extra column
        xe = np.empty((n, c + 1), dt)
        xe[:, :c] = x2
        xe[:, c] = np.inf
        b = 1.0 - xe[row, slot]  # 1 - x_j; -inf on ended slots
        xe[row, slot] = -np.inf  # targets take no part as non-targets
        xi = xe[:, None, :c]
        counts = np.empty((n, k), dt) if with_grad else None

        def kernel(lo, hi, _, bufs):
            m = bufs[0]
            np.add(xi[lo:hi], b[lo:hi, :, None], out=m)  # (1 - x_j) + x_i, as the reference
            np.maximum(m, 0.0, out=m)
            _row_sums(m.reshape(hi - lo, -1), out=per_item[lo:hi])
            if grad is None:
                return
            _step(m, bufs[-1])  # the violated pairs
            np.sum(m, axis=1, out=grad[lo:hi])  # per non-target: the target slots it violates
            _row_sums(m, out=counts[lo:hi])  # per target slot: the non-targets violating it

        _in_blocks(n, c, dt, False, [(k, c)], _rows_of(n, k * c, dt, 1), n * k * c, kernel,
                   (k, c) if with_grad else None)
        if with_grad:  # each slot's count off its target class (a duplicate twice)
            flat = (row * (c + 1) + slot).reshape(-1)
            grad -= np.bincount(flat, weights=counts.reshape(-1), minlength=n * (c + 1)).reshape(n, c + 1)[:, :c]
            grad *= u / c
    per_item /= c
    return _result(per_item, x.shape[:-1], reduction, u, dt, grad, x.shape)


# -- distillation: softmax rows of a student's and a teacher's logits over the last axis ---------------


def _logit_rows(args, options, known, reduction, normalizer):
    """(student as (R, C), teacher as (R, C) in its dtype, temperature) for distill_kl and jsd, or None."""
    if len(args) != 2 or not _reduction_ok(reduction, normalizer) or not known.issuperset(options):
        return None
    s, t = args
    temperature = options.get("temperature", 1.0)
    if (not _float_array(s) or s.ndim == 0 or type(t) is not np.ndarray or t.shape != s.shape
            or t.dtype.kind not in "fiu" or s.size == 0 or not _number(temperature)):
        return None
    c = s.shape[-1]
    return s.reshape(-1, c), t.astype(s.dtype, copy=False).reshape(-1, c), temperature


def _shifted(z, inv_t: float, out) -> None:
    """out = (z - max z) / T per row: the log-softmax of z / T up to each row's log-sum-exp."""
    np.subtract(z, z.max(axis=1)[:, None], out=out)
    if inv_t != 1.0:
        out *= inv_t


def _divergence(args, options, known, reduction, normalizer, with_grad, kind: str, beta: float,
                value_scale: float, grad_scale: float):
    """A divergence between q = softmax(s / T) (the student's) and p = softmax(t / T) per row, in blocks.

    With A, B the shifted student and teacher rows (log q = A - log S_q, log p = B - log S_p, S the
    sums of exp) and D = B - A:
    - "forward": KL(p || q) = <p, D> + log(S_q / S_p), gradient q - p;
    - "reverse": KL(q || p) = log(S_p / S_q) - <q, D>, gradient q (<q, D> - D);
    - "mixture" (jsd): beta KL(p || m) + (1 - beta) KL(q || m), m = beta p + (1 - beta) q. With
      E = log p - log q + log beta and F = log m - log q = logaddexp(E, log(1 - beta)) (as a softplus:
      np.logaddexp is several times slower), it is beta (<p, E - F> - log beta) - (1 - beta) <q, F>,
      gradient (1 - beta) q (<q, F> - F).
    Terms times value_scale, gradients times grad_scale u (the student's only: the teacher's logits
    are constants)."""
    parsed = _logit_rows(args, options, known, reduction, normalizer)
    if parsed is None:
        return NotImplemented
    s2, t2, temperature = parsed
    s, dt = args[0], args[0].dtype
    n, c = s2.shape
    inv_t = 1.0 / temperature
    u = _coefficient(reduction, n, normalizer)
    g_scale = grad_scale * u
    per_item = np.empty(n, dt)
    mixture = kind == "mixture"
    if mixture:
        log_beta, log_rest = math.log(beta), math.log1p(-beta)

    def kernel(lo, hi, g, bufs):
        a = g if g is not None else bufs[-1]
        b, d = bufs[0], bufs[1]
        _shifted(s2[lo:hi], inv_t, a)
        _shifted(t2[lo:hi], inv_t, b)
        np.subtract(b, a, out=d)
        np.exp(b, out=b)
        sum_p = _row_sums(b)
        np.exp(a, out=a)
        sum_q = _row_sums(a)
        li = per_item[lo:hi]
        if kind == "forward":
            _row_dot(b, d, out=li)
            li /= sum_p
            li += np.log(sum_q / sum_p)
            if g is not None:  # (q - p) g_scale
                a *= (g_scale / sum_q)[:, None]
                b *= (g_scale / sum_p)[:, None]
                a -= b
        elif kind == "reverse":
            q_d = _row_dot(a, d)
            q_d /= sum_q
            np.subtract(np.log(sum_p / sum_q), q_d, out=li)
            if g is not None:  # q (<q, D> - D) g_scale
                np.subtract(q_d[:, None], d, out=d)
                a *= d
                a *= (g_scale / sum_q)[:, None]
        else:  # with G = E - log(1 - beta) and L = log1p(exp(-|G|)): F = log(1 - beta) + max(G, 0) + L and
            # E - F = min(G, 0) - L, neither a difference of large terms
            f, fp = bufs[2], bufs[3]
            d += (np.log(sum_q / sum_p) + (log_beta - log_rest))[:, None]  # G
            np.abs(d, out=f)
            np.negative(f, out=f)
            np.exp(f, out=f)
            log1p(f, out=f)  # L
            np.maximum(d, 0.0, out=fp)
            d -= fp
            d -= f  # E - F = log p - log m + log beta
            fp += f  # F - log(1 - beta) = log m - log q - log(1 - beta)
            q_f = _row_dot(a, fp)
            q_f /= sum_q
            _row_dot(b, d, out=li)
            li /= sum_p
            li -= log_beta
            li *= beta
            li -= (1.0 - beta) * (q_f + log_rest)
            if g is not None:  # (1 - beta) q (<q, F> - F) g_scale: log(1 - beta) cancels
                np.subtract(q_f[:, None], fp, out=fp)
                a *= fp
                a *= (g_scale * (1.0 - beta) / sum_q)[:, None]
        if value_scale != 1.0:
            li *= value_scale

    buffers = (4 if mixture else 2) + (not with_grad)
    tails = [(c,)] * buffers
    grad = _in_blocks(n, c, dt, with_grad, tails, _rows_of(n, c, dt, buffers + with_grad), s.size, kernel)
    return _result(per_item, s.shape[:-1], reduction, u, dt, grad, s.shape)


_DISTILL_OPTIONS = frozenset({"temperature", "reverse"})
_JSD_OPTIONS = frozenset({"beta", "temperature"})


def distill_kl(args, options, reduction, normalizer, with_grad):
    """student and teacher logits (..., C), classes last; temperature, reverse: T^2 KL per row, the
    gradient T u (q - p) (reverse: T u q (log q - log p - KL)) for the student only."""
    reverse, temperature = options.get("reverse", False), options.get("temperature", 1.0)
    if type(reverse) is not bool or not _number(temperature):
        return NotImplemented
    return _divergence(args, options, _DISTILL_OPTIONS, reduction, normalizer, with_grad,
                       "reverse" if reverse else "forward", 0.0, temperature * temperature, temperature)


def jsd(args, options, reduction, normalizer, with_grad):
    """student and teacher logits (..., C), classes last; beta in [0, 1] (0: KL(p || q), 1: KL(q || p), as
    TRL), temperature; no T^2 factor, the gradient u / T times that of the divergence."""
    beta, temperature = options.get("beta", 0.5), options.get("temperature", 1.0)
    if not (_number(beta) and _number(temperature)):  # their ranges: checked by Loss._bind
        return NotImplemented
    beta = float(beta)
    kind = "forward" if beta == 0.0 else "reverse" if beta == 1.0 else "mixture"
    return _divergence(args, options, _JSD_OPTIONS, reduction, normalizer, with_grad, kind, beta, 1.0,
                       1.0 / temperature)


# the compiled lanes of small calls (torch CPU tensors)
multiclass_hinge.lane, multilabel_margin.lane = _numba_lanes.MULTICLASS_HINGE, _numba_lanes.MULTILABEL_MARGIN
for _name, _path in {"multiclass_hinge": multiclass_hinge, "multilabel_soft_margin": multilabel_soft_margin,
                     "multilabel_margin": multilabel_margin, "distill_kl": distill_kl, "jsd": jsd}.items():
    _engines.register_fast_path(_name, "numpy", _path)
