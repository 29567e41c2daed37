"""Fast NumPy paths: a second implementation of the heavy losses for NumPy inputs.

The reference (Array API) path is written for clarity and for every backend; it materialises
each intermediate as a full-size array. Here the work is cut into cache-sized blocks of rows:
each block goes through max, exp, sum and the gradient while it sits in cache, written straight
into the preallocated gradient (or a block-sized scratch buffer for the value alone), so memory
traffic is close to one read of the inputs and one write of the gradient. float32 stays float32.
Large inputs are split over threads (NumPy's ufuncs release the GIL).

A fast path runs after the call is bound and every option checked against its declared domain
(``Loss._bind``), and only *accepts* inputs it handles exactly like the reference path: plain NumPy
float32 or float64 arrays of the usual shapes, options as Python numbers, array values in range. Anything else
(including bad input) returns ``NotImplemented`` and the call goes through the reference path,
which computes it or raises its documented error. Tests hold every fast path to the reference
for every option (``tests/test_fast.py``).

Switches: ``with losslab.reference_path():`` or ``LOSSLAB_FAST=0`` turns the fast paths off;
``losslab.set_num_threads(n)`` (or ``LOSSLAB_NUM_THREADS``) sets the thread count (default: the
CPU count, at most 8).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import array_api_compat.numpy
import numpy as np

from . import _engines, _numba, _numpy_kernels
from ._reduce import number_coefficient
from ._ufuncs import log1p
from ._xp import overriding
from .definitions import softmax_rows
from .definitions.pointwise import smoothed_binary_targets

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_REDUCTIONS = ("none", "mean", "sum")
# 1 MiB of logits per block: stays in L2 through its several passes (tuned on 2 cores). 2 MiB was measured too (Intel
# Xeon, 2 cores, cross_entropy value and gradient): 17 % faster at 4096 x 1024 and 1024 x 1024 but 3-6 % slower at
# 16384 x 1024, 512 x 32768, 2048 x 32768, 8192 x 8192, 4096 x 32000 and 65536 x 256, so it stays.
BLOCK_BYTES = 1 << 20
PARALLEL_MIN_ELEMENTS = 1 << 18  # below this, threads cost more than they save


class _Settings(threading.local):
    enabled: bool = os.environ.get("LOSSLAB_FAST", "1") not in ("0", "false", "False")
    compiled: bool = True  # use the Numba kernels where installed (see _numba.py)


_settings = _Settings()
_threads = {"n": max(1, min(8, int(os.environ.get("LOSSLAB_NUM_THREADS", 0) or (os.cpu_count() or 1))))}
_pool: dict[int, ThreadPoolExecutor] = {}
_numba.set_threads(_threads["n"])


def enabled() -> bool:
    return _settings.enabled


@contextlib.contextmanager
def reference_path() -> Iterator[None]:
    """Compute with the reference (Array API) implementation inside this block, not the fast paths."""
    with overriding(_settings, "enabled", False):
        yield


@contextlib.contextmanager
def numpy_only() -> Iterator[None]:
    """Inside this block the fast paths use NumPy alone, not the optional Numba kernels."""
    with overriding(_settings, "compiled", False):
        yield


def set_num_threads(n: int) -> None:
    """Threads the fast NumPy paths may use for large inputs (1 turns threading off)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    _threads["n"] = n
    _numba.set_threads(n)


def get_num_threads() -> int:
    return _threads["n"]


def _run_blocks(n_rows: int, rows_per_block: int, elements: int, work: Callable[[int, int], None]) -> None:
    """Call work(lo, hi) over the blocks of rows [k rows_per_block, (k + 1) rows_per_block), split into
    contiguous runs of whole blocks over the thread pool: the blocks, and so any per-block partial sums,
    are the same whatever the thread count."""
    n_blocks = -(-n_rows // rows_per_block)
    threads = _threads["n"] if elements >= PARALLEL_MIN_ELEMENTS else 1
    threads = max(1, min(threads, n_blocks))

    def chunk(c: int) -> None:
        for block in range(n_blocks * c // threads, n_blocks * (c + 1) // threads):
            lo = block * rows_per_block
            work(lo, min(lo + rows_per_block, n_rows))

    if threads == 1:
        chunk(0)
        return
    pool = _pool.get(threads)
    if pool is None:
        pool = _pool[threads] = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="losslab")
    for future in [pool.submit(chunk, c) for c in range(threads)]:
        future.result()


def _blocks(n_rows: int, rows_per_block: int, elements: int, block: Callable, scratch: Callable | None = None) -> list:
    """The blocked driver of the NumPy fast paths (_fast, _fast_pairs, _fast_rows): ``block(lo, hi, bufs)``
    over the blocks of ``_run_blocks``, its results in block order (sum them in that order and a reduced value
    is the same on any thread count).
    ``scratch(rows)`` makes a block's scratch arrays, once per thread (sliced to each block's rows); with a
    single block (small inputs) there are no threads and the scratch is made for exactly its rows."""
    if n_rows <= rows_per_block:
        return [block(0, n_rows, scratch(n_rows) if scratch is not None else ())]
    results = {}
    local = threading.local()

    def work(lo: int, hi: int) -> None:
        bufs = ()
        if scratch is not None:
            own = getattr(local, "bufs", None)
            if own is None:
                own = local.bufs = scratch(rows_per_block)
            bufs = [b[: hi - lo] for b in own]
        results[lo] = block(lo, hi, bufs)

    _run_blocks(n_rows, rows_per_block, elements, work)
    return [results[lo] for lo in sorted(results)]


# A big zero buffer (nll's gradient, where Numba is missing: _numba_lanes.nll_grad writes it in one parallel pass,
# twice as fast) is filled as bytes in blocks of this size over the thread pool: the first touch of its pages is its
# cost. 4096 x 1024 float32: 0.53 ms on two threads, torch.zeros's 0.41-0.57 (as float32 in 512 KiB blocks:
# 0.75-0.90 ms).
_ZERO_BLOCK_BYTES = 1 << 21

# The torch engine's compiled lane (an elementwise fast path's ``direct``) takes every generated Numba kernel up to
# this many elements, where Python and NumPy's per-operation cost are the call's; above it only the kernels that
# beat the NumPy blocks at every size (``_numba.NAMES``). Measured on 2 cores, value and gradient, float32
# (NumPy blocks / Numba kernel), when the kernels still called libm's scalar exp and log1p (before _numba_math):
# BCE with logits 33.8 / 26.7 us at 1,024 elements but 97.5 / 378 us at 16,384, soft_margin 37.8 / 19.1 and 118 / 277.
DIRECT_SMALL_ELEMENTS = 4096
_PLANS = 64


# NumPy 2's vecdot: a BLAS dot product per row, accurate as a pairwise sum (einsum keeps one running sum) and,
# unlike np.dot's matrix kernel, the same whichever block a row falls in: results do not depend on the threads
if hasattr(np, "vecdot"):
    _row_dot = np.vecdot
else:  # pragma: no cover - NumPy 1.x
    def _row_dot(a, b, out=None):
        """The dot product of a and b over their last axis."""
        return np.einsum("...i,...i->...", a, b, out=out)


def _row_sums(e, out=None):
    """The sum of e over its last axis: a dot product with ones, several times faster than np.sum along
    it (a NaN or an inf still reaches its row)."""
    return _row_dot(e, np.ones(e.shape[-1], e.dtype), out=out)


# -- common acceptance checks -----------------------------------------------------------------------


def _float_array(x) -> bool:
    return type(x) is np.ndarray and x.dtype in _FLOATS


def _number(v) -> bool:
    return type(v) in (int, float) and math.isfinite(v)


def _reduction_ok(reduction, normalizer) -> bool:
    if reduction not in _REDUCTIONS:
        return False
    return normalizer is None or (reduction == "mean" and _number(normalizer) and normalizer >= 0)


def _coefficient(reduction: str, divisor, normalizer) -> float:
    return number_coefficient(reduction, float(divisor), normalizer)


def _finish(total, per_item, reduction: str, u: float, dtype):
    """The reduced value, as the reference path returns it, from the sum and the coefficient u."""
    if reduction == "none":
        return per_item
    return dtype.type(total * u)


# -- softmax cross-entropy on (N, C) logits (the row algebra of definitions/softmax_rows.py) -----------------------------------------------------------


_CE_OPTIONS = {"weight", "ignore_index", "label_smoothing", "lse_square_scale", "softcap"}


def _real_array(value):
    """``value`` as a NumPy array of real numbers, or None (ragged, strings, ...: the reference path names it)."""
    try:
        value = np.asarray(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return value if value.dtype.kind in "fiu" else None


def _class_weight(weight, c: int, dtype):
    """A per-class weight as a (C,) array of ``dtype``; None without one; NotImplemented otherwise."""
    if weight is None:
        return None
    weight = _real_array(weight)
    if weight is None or weight.shape != (c,):
        return NotImplemented
    return weight.astype(dtype, copy=False)


def _class_indices(targets, ignore_index: int, weight, n: int, c: int, dtype):
    """Integer (N,) class targets: (safe indices, valid mask, w_y, the mean's divisor), w_y being the target
    class's weight (1 without weights) and 0 on ignored rows; None for what the reference must handle.
    When no row is ignored, the mask is None, and so is w_y without class weights (every row weighs 1)."""
    if targets.dtype.kind not in "iu" or targets.shape != (n,):
        return None
    if ignore_index < 0 and n and targets.min() >= 0 and targets.max() < c:  # the usual batch: nothing ignored
        if weight is None:
            return targets, None, None, n
        w_y = weight[targets]
        return targets, None, w_y, w_y.sum(dtype=np.float64)
    valid = targets != ignore_index
    picked = targets[valid]
    if picked.size and (picked.min() < 0 or picked.max() >= c):
        return None  # the reference path raises the documented error
    safe = np.where(valid, targets, 0)
    w_y = ((weight[safe] if weight is not None else np.ones(n, dtype)) * valid).astype(dtype, copy=False)
    divisor = w_y.sum(dtype=np.float64) if weight is not None else int(valid.sum())
    return safe, valid, w_y, divisor


def cross_entropy(args, options, reduction, normalizer, with_grad):
    """logits (N, C) float32/64 with integer (N,) or probability (N, C) targets; every option."""
    if len(args) != 2 or not _reduction_ok(reduction, normalizer):
        return NotImplemented
    z, targets = args
    weight = options.get("weight")
    ignore_index = options.get("ignore_index", -100)
    eps = options.get("label_smoothing", 0.0)
    z_scale = options.get("lse_square_scale", 0.0)
    cap = options.get("softcap")
    if (len(options.keys() - _CE_OPTIONS) or not _float_array(z) or z.ndim != 2
            or type(targets) is not np.ndarray or type(ignore_index) is not int or not _number(eps)
            or not _number(z_scale) or not (cap is None or _number(cap))):
        return NotImplemented
    n, c = z.shape
    if n == 0 or c == 0:
        return NotImplemented
    weight = _class_weight(weight, c, z.dtype)
    if weight is NotImplemented:
        return NotImplemented
    prob_targets = targets.dtype.kind == "f"
    if prob_targets:  # (each block checks that its targets lie in [0, 1] while they are in cache, on the threads)
        if targets.shape != z.shape or ignore_index != -100:
            return NotImplemented
        divisor = n
    else:
        index = _class_indices(targets, ignore_index, weight, n, c, z.dtype)
        if index is None:
            return NotImplemented
        safe, valid, w_y, divisor = index
    u = _coefficient(reduction, divisor, normalizer)
    dt = z.dtype
    per_item = np.empty(n, dt)
    grad = np.empty_like(z) if with_grad else None
    rows = max(1, BLOCK_BYTES // (c * dt.itemsize))
    w_sum = float(weight.sum()) if weight is not None else float(c)
    # a large call's row-broadcast steps and its targets' sums by compiled row loops (_numba_lanes.row_loops), where
    # Numba runs; the targets' loop takes them as given (no smoothing, no weight, the logits' dtype)
    loops = _numba_lanes.row_loops(z) if z.size >= PARALLEL_MIN_ELEMENTS else None
    fused_targets = (loops is not None and prob_targets and not eps and weight is None and targets.dtype == dt
                     and targets.flags.c_contiguous)

    def block(lo: int, hi: int, bufs) -> None:
        zb = z[lo:hi]
        e = grad[lo:hi] if with_grad else bufs[0]  # the shifted logits, then exp, then the gradient
        slope = None
        if cap is not None:  # soft-capped logits c tanh(z / c), and dz'/dz for the gradient
            np.divide(zb, cap, out=e)
            np.tanh(e, out=e)
            e *= cap
            zb = e.copy()
            if with_grad:
                slope = softmax_rows.softcap_slope(zb, cap)
        m = zb.max(axis=1)
        r = np.arange(hi - lo)
        # shifted logits d = z - max: the target terms use d, not z, so a small loss is not the difference of two
        # large numbers
        if fused_targets:  # d, q . d, Q = sum(q) and the targets' range check in one pass
            q = targets[lo:hi]
            q_d, big_q = np.empty(hi - lo, dt), np.empty(hi - lo, dt)
            if loops["_shift_rows_dot"](zb, m, q, e, q_d, big_q):
                per_item[lo:hi] = np.nan  # a target outside [0, 1] or NaN: the reference path gives the error
                return
        else:
            if loops is not None:
                loops["_shift_rows"](zb, m, e)
            else:
                np.subtract(zb, m[:, None], out=e)
            if prob_targets:
                q = targets[lo:hi]  # the targets themselves (never written) unless smoothed or weighted
                if not (q.min() >= 0 and q.max() <= 1):  # (a NaN fails too) the reference path gives the error
                    per_item[lo:hi] = np.nan
                    return
                q = q.astype(dt, copy=False)
                if eps:
                    q = q * (1.0 - eps)
                    q += eps / c
                if weight is not None:
                    q = q * weight
                q_d, big_q = _row_dot(q, e), _row_sums(q)
            else:
                yb = safe[lo:hi]
                wyb = 1.0 if w_y is None else w_y[lo:hi]  # the target class's weight, 0 on ignored rows
                validb = 1.0 if valid is None else valid[lo:hi]
                d_y = e[r, yb]
                if eps:
                    d_w = e @ weight if weight is not None else _row_sums(e)
        np.exp(e, out=e)
        s = _row_sums(e)
        log_s = np.log(s)
        if prob_targets:  # l = Q log s - q . d,  Q = sum(q)
            li = big_q * log_s - q_d
            row_weight = 1.0
        elif eps:
            # l = Q log s - (1 - eps) w_y d_y - (eps / C) valid sum_c w_c d_c,  Q = (1 - eps) w_y + (eps / C) sum(w)
            big_q = (1.0 - eps) * wyb + (eps / c) * w_sum * validb
            li = big_q * log_s - (1.0 - eps) * wyb * d_y
            li -= (eps / c) * validb * d_w
            row_weight = wyb
        else:  # l = w_y (log s - d_y),  Q = w_y
            li = log_s - d_y
            if w_y is not None:
                li *= wyb
            big_q = row_weight = wyb
        a = big_q
        if z_scale:  # z-loss s r lse^2, lse = max + log s
            lse = m + log_s
            li += z_scale * row_weight * lse * lse
            a = softmax_rows.grad_scale(big_q, lse, row_weight, z_scale)
        per_item[lo:hi] = li
        if not with_grad:
            return
        scale = u * a / s  # u (a p - q), p = e / s (in float64 where a is: the loops multiply as NumPy does)
        if prob_targets and loops is not None and q.dtype == dt and q.flags.c_contiguous:
            loops["_scale_rows_minus"](e, scale, q, dt.type(u))
        else:
            if loops is not None:
                loops["_scale_rows"](e, scale)
            else:
                e *= scale[:, None]
            if prob_targets:
                e -= np.multiply(q, u, out=bufs[0])
            else:  # q = (1 - eps) w_y onehot(y) + (eps / C) w on valid rows
                e[r, yb] -= u * (1.0 - eps) * wyb
                if eps:
                    smooth = (u * eps / c) * (validb.astype(dt)[:, None] if valid is not None else 1.0)
                    e -= smooth * weight if weight is not None else smooth
        if slope is not None:
            e *= slope

    # a scratch block: the shifted logits of a value-only call; u q of a gradient with probability targets
    scratch = lambda r: [np.empty((r, c), dt)]  # noqa: E731
    _blocks(n, rows, z.size, block, scratch if prob_targets or not with_grad else None)
    if not np.isfinite(per_item).all():
        return NotImplemented  # infinite logits or targets out of [0, 1]: the reference path's result or error
    value = _finish(per_item.sum(), per_item, reduction, u, dt)
    return (value, grad) if with_grad else value


def nll(args, options, reduction, normalizer, with_grad):
    """log-probabilities (N, C) float32/64 with integer (N,) targets: a gather for the value and a
    scatter into zeros for the gradient (-w_y at each target), not a dense pass over one-hot rows."""
    if len(args) != 2 or not _reduction_ok(reduction, normalizer) or len(options.keys() - {"weight", "ignore_index"}):
        return NotImplemented
    x, targets = args
    weight, ignore_index = options.get("weight"), options.get("ignore_index", -100)
    if not _float_array(x) or x.ndim != 2 or type(targets) is not np.ndarray or type(ignore_index) is not int:
        return NotImplemented
    n, c = x.shape
    weight = _class_weight(weight, c, x.dtype)
    index = (None if n == 0 or c == 0 or weight is NotImplemented
             else _class_indices(targets, ignore_index, weight, n, c, x.dtype))
    if index is None:
        return NotImplemented
    safe, _, w_y, divisor = index
    rows = np.arange(n)
    per_item = -x[rows, safe] if w_y is None else -w_y * x[rows, safe]
    u = _coefficient(reduction, divisor, normalizer)
    if not np.isfinite(per_item).all():
        return NotImplemented  # infinite log-probabilities: the reference path defines the result
    value = _finish(per_item.sum(), per_item, reduction, u, x.dtype)
    if not with_grad:
        return value
    scale = -u if w_y is None else -u * w_y
    rows_per_block = max(1, _ZERO_BLOCK_BYTES // (c * x.itemsize))
    if not x.flags.c_contiguous or n <= rows_per_block:  # a small one in a single step (np.zeros), in the input's layout
        grad = np.zeros_like(x)
        grad[rows, safe] = scale
        return value, grad
    grad = np.empty_like(x)
    if _numba_lanes.nll_grad(safe, scale, grad):
        return value, grad
    per_row = type(scale) is np.ndarray

    def block(lo: int, hi: int, _) -> None:  # zero a block of rows, then write its targets while it is in cache
        grad[lo:hi].view(np.uint8).fill(0)
        grad[rows[: hi - lo] + lo, safe[lo:hi]] = scale[lo:hi] if per_row else scale

    _blocks(n, rows_per_block, x.size, block)
    return value, grad


# -- elementwise losses: regression, BCE with logits, focal ----------------------------------------
# A kernel fills l (the per-element loss) and, when g is given, g (dl/dx) for one block; the
# driver handles weights, reductions and threads. Blocks of ELEMENT_BLOCK elements (1 MiB of float32 an array; 1 << 17
# until measured on an Intel Xeon, 2 cores: BCE with logits 3.65 -> 3.41 ms at 1M elements, 14.5 -> 13.3 at 4M,
# 63.6 -> 58.0 at 16M, 254 -> 241 at 64M; focal level to 4 % faster; mse level): each block's dozen NumPy calls and
# the GIL handovers between the threads cost more than the cache that the smaller block kept.

ELEMENT_BLOCK = 1 << 18
_LOG2 = math.log(2.0)


def _rows_view(x: np.ndarray):
    """x as (R, K) rows without a copy: K = the last axis when short, else one element per row."""
    if x.ndim >= 2 and x.shape[-1] <= ELEMENT_BLOCK:
        return x.reshape(-1, x.shape[-1])
    return x.reshape(-1, 1)


def _option_rows(o, x: np.ndarray, x2: np.ndarray):
    """An option array aligned with the (R, K) view, or NotImplemented if it needs a full broadcast copy."""
    if o is None:
        return None
    o = _real_array(o)
    if o is None:
        return NotImplemented
    o = o.astype(x.dtype, copy=False)
    if o.shape == x.shape:
        return o.reshape(x2.shape)
    if o.ndim == 0 or o.shape == (1,) or (x2.shape[1] > 1 and o.shape == (x2.shape[1],)):
        return o.reshape(-1) if o.ndim else o
    return NotImplemented


def _mse(xb, tb, l, g, o):
    np.subtract(xb, tb, out=l)
    if g is not None:
        np.multiply(l, 2.0, out=g)
    np.multiply(l, l, out=l)


def _mae(xb, tb, l, g, o):
    np.subtract(xb, tb, out=l)
    if g is not None:
        np.sign(l, out=g)
    np.abs(l, out=l)


def _huber_like(xb, tb, l, g, delta, scale):
    e = xb - tb
    if g is not None:
        np.clip(e, -delta, delta, out=g)
        if scale != 1.0:
            g *= scale
    np.abs(e, out=e)
    np.minimum(e, delta, out=l)  # m = min(|e|, delta);  m (|e| - m / 2)
    e -= 0.5 * l
    l *= e
    if scale != 1.0:
        l *= scale


def _huber(xb, tb, l, g, o):
    _huber_like(xb, tb, l, g, o["delta"], 1.0)


def _smooth_l1(xb, tb, l, g, o):
    if o["beta"] == 0:
        return _mae(xb, tb, l, g, o)
    return _huber_like(xb, tb, l, g, o["beta"], 1.0 / o["beta"])


def _log_cosh(xb, tb, l, g, o):
    e = xb - tb
    if g is not None:
        np.tanh(e, out=g)
    np.abs(e, out=e)
    np.multiply(e, -2.0, out=l)
    np.exp(l, out=l)
    log1p(l, out=l)
    l += e
    l -= _LOG2


def _quantile(xb, tb, l, g, o):
    q = o["q"]
    r = tb - xb
    if g is not None:  # -q above... below the target, 1 - q above it, 0 on it
        np.multiply(r < 0, 1.0 - q, out=g)
        g -= q * (r > 0)
    np.maximum(q * r, (q - 1.0) * r, out=l)


def _sigmoid_parts(xb):
    """a = e^-|x|, sigmoid(x) and sigmoid(-x), without overflow or cancellation.

    With inv = 1/(1+a): sigmoid(x) = inv for x >= 0 and a inv below. The select is arithmetic
    (a inv + [x >= 0] (inv - a inv)) because np.where costs several times an exp; each sigmoid
    adds the gap to the small branch a inv, so the small one is never a difference."""
    a = np.abs(xb)
    np.negative(a, out=a)
    np.exp(a, out=a)
    inv = 1.0 + a
    np.reciprocal(inv, out=inv)
    a_inv = a * inv
    np.subtract(inv, a_inv, out=inv)  # inv now holds the gap
    positive = xb >= 0
    return a, a_inv + inv * positive, a_inv + inv * ~positive


def _bce_logits(xb, tb, l, g, o):
    # l = (1 - t) relu(x) + w+ t relu(-x) + ((1 - t) + w+ t) log1p(e^-|x|)
    #   = relu(x) - t x + log1p(e^-|x|) without pos_weight (exact: no large terms cancel)
    # dl/dx = (1 - t) sigmoid(x) - w+ t sigmoid(-x)
    if o["pos_weight"] is None:
        log1p_a = np.abs(xb)  # L = log1p(e^-|x|), built in place: 4 passes
        np.negative(log1p_a, out=log1p_a)
        np.exp(log1p_a, out=log1p_a)
        log1p(log1p_a, out=log1p_a)
        np.maximum(xb, 0.0, out=l)
        l -= tb * xb  # exact first (0 when the target agrees), then the small log term
        l += log1p_a
        if g is not None:  # sigmoid(x) = exp(min(x, 0) - L): exact, and reuses L
            np.minimum(xb, 0.0, out=g)
            g -= log1p_a
            np.exp(g, out=g)
            g -= tb
        return
    a, s, s_neg = _sigmoid_parts(xb)
    pt = o["pos_weight"] * tb
    nt = 1.0 - tb
    np.multiply(nt, np.maximum(xb, 0.0), out=l)
    l += pt * np.maximum(-xb, 0.0)
    l += (nt + pt) * log1p(a)
    if g is not None:
        np.multiply(nt, s, out=g)
        g -= pt * s_neg


def _focal(xb, tb, l, g, o):
    a, s, s_neg = _sigmoid_parts(xb)
    bce = np.maximum(xb, 0.0)
    bce -= tb * xb
    bce += log1p(a)
    m = tb * s_neg + (1.0 - tb) * s  # 1 - p_t
    alpha, gamma = o["alpha"], o["gamma"]
    a_t = 1.0 if alpha is None or alpha < 0 else alpha * tb + (1.0 - alpha) * (1.0 - tb)
    m_gamma = m**gamma
    np.multiply(m_gamma, bce, out=l)
    l *= a_t
    if g is not None:  # a_t m^g [g (1 - 2t) r bce + (p - t)], r = p (1 - p) / m in [0, 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.where(m > 0, s * s_neg / m, 1.0)
        np.multiply(r, bce, out=g)
        g *= gamma * (1.0 - 2.0 * tb)
        g += s - tb
        g *= m_gamma
        g *= a_t


def _kernel_for(name: str, opts: dict, small: bool = False):
    """(the Numba kernel generated for loss ``name`` with options ``opts``, its option arguments, whether it runs at
    every size) or None: no kernel for the loss or these options, or Numba missing (``_numba.kernel``)."""
    from .definitions import codegen  # imported here: `python -m losslab.definitions.codegen` imports losslab first

    variant = codegen.variant_for(name, opts)
    kernel = _numba.kernel(variant.name, small) if variant is not None else None
    if kernel is None:
        return None
    return kernel, tuple(opts[o] for o in variant.params), _numba.at_every_size(variant.name)


def _run_kernel(kernel, arguments: tuple, x, t, w, u, keep, with_grad):
    """A generated kernel on contiguous x and t (and w of their shape, or None): (total, per-item losses or None,
    gradient or None), shaped like x."""
    empty = np.empty(0, x.dtype)
    flat_w = np.ascontiguousarray(w).reshape(-1) if w is not None else empty
    per_item = np.empty(x.size, x.dtype) if keep else empty
    grad = np.empty(x.size, x.dtype) if with_grad else empty
    scalar = x.dtype.type  # float32 options keep float32 arithmetic (and SIMD width)
    total = _numba.launch(kernel, x.reshape(-1), t.reshape(-1), flat_w, scalar(u), per_item, grad,
                          *[scalar(a) for a in arguments])
    return total, (per_item.reshape(x.shape) if keep else None), (grad.reshape(x.shape) if with_grad else None)


def _compiled(name, opts: dict, x, t, w):
    """The Numba kernel generated for loss ``name`` with options ``opts`` and its option arguments, for flat contiguous
    arrays (``_run_kernel``); None where none applies (no kernel for the loss or these options, Numba off or missing,
    a strided array); the caller takes only large inputs to it (below PARALLEL_MIN_ELEMENTS the NumPy blocks are as
    fast)."""
    if not _settings.compiled:
        return None
    found = _kernel_for(name, opts)
    if found is None:
        return None
    if not (x.flags.c_contiguous and t.flags.c_contiguous) or (w is not None and w.shape != x.shape):
        return None
    return found[:2]


def _element_block(kernel, xb, tb, lb, gb, sub: dict, w, u: float):
    """One block of an elementwise loss: its losses (weighted) into lb, its gradient (weighted, scaled by u) into gb
    while the block is in cache; their sum."""
    kernel(xb, tb, lb, gb, sub)
    if w is not None:
        wb = sub["weight"]
        lb *= wb
        if gb is not None:
            gb *= wb
    if gb is not None and u != 1.0:
        gb *= u
    return lb.sum()


def _elementwise(kernel, option_names, weighted_mean: bool, extra_arrays=(), checks=None, name=None,
                 label_smoothing=False):
    """A fast path for an elementwise loss: ``kernel`` plus the options it reads.

    ``name`` selects the fused Numba kernel generated from the loss's definition (``_numba.kernel``);
    ``label_smoothing``: the loss takes Keras's binary label smoothing, applied to the targets first."""

    array_options = ("weight", *extra_arrays)
    known = frozenset(option_names) | set(array_options) | ({"label_smoothing"} if label_smoothing else set())
    base = {**option_names, **dict.fromkeys(array_options)}  # every option a kernel reads, at its default

    def fast(args, options, reduction, normalizer, with_grad):
        if len(args) != 2 or not _reduction_ok(reduction, normalizer):
            return NotImplemented
        x, t = args
        if (type(x) is not np.ndarray or x.dtype not in _FLOATS or x.ndim == 0 or x.size == 0
                or type(t) is not np.ndarray or t.shape != x.shape or t.dtype.kind not in "fiub"):
            return NotImplemented
        if options and not known.issuperset(options):
            return NotImplemented
        opts = dict(base)
        if options:
            for option in option_names:
                if option in options:
                    opts[option] = options[option]
        x2 = _rows_view(x)
        rows = max(1, ELEMENT_BLOCK // x2.shape[1])
        # the checks of the values (targets in [0, 1], signs, ...): of a call in several blocks, block by block on the
        # threads while each is in cache (a whole-array check first was one more pass over the inputs, on one thread:
        # 0.5 ms of BCE with logits' 9 at 4M elements); of the compiled loop and of a single block, first
        checks_per_block = checks is not None and x2.shape[0] > rows
        if checks is not None and not checks_per_block and not checks(opts, t, x):
            return NotImplemented
        t2 = t.astype(x.dtype, copy=False).reshape(x2.shape)
        w = None
        if options:  # arrays aligned with the rows view; label smoothing applied to the targets first
            smoothing = options.get("label_smoothing") or 0.0
            if smoothing:  # the loss's prepare does the same on the targets it checked
                t2 = smoothed_binary_targets(t2, smoothing)
            for option in array_options:
                value = options.get(option)
                if value is not None:
                    value = _option_rows(value, x, x2)
                    if value is NotImplemented:
                        return NotImplemented
                opts[option] = value
            w = opts["weight"]
        dt = x.dtype
        keep = reduction == "none"  # otherwise only block partial sums: no full-size loss buffer
        if w is None or not weighted_mean:
            divisor = x.size
        else:
            divisor = float(np.broadcast_to(w, x2.shape).sum(dtype=np.float64))
        u = _coefficient(reduction, divisor, normalizer)
        if name is not None and x.size >= PARALLEL_MIN_ELEMENTS:  # (the Numba kernels take large inputs only)
            w_full = None if w is None else (w.reshape(x.shape) if w.shape == x2.shape else w)
            compiled = _compiled(name, opts, x, t2.reshape(x.shape), w_full)
            if compiled is not None:
                if checks_per_block and not checks(opts, t, x):
                    return NotImplemented
                total, items, grad = _run_kernel(*compiled, x, t2.reshape(x.shape), w_full, u, keep, with_grad)
                if not finite_in(total, dt):
                    return NotImplemented
                value = _finish(total, items, reduction, u, dt)
                return (value, grad) if with_grad else value
        grad = np.empty(x2.shape, dt) if with_grad else None
        if x2.shape[0] <= rows:  # one block, the whole arrays: no views, no driver (a small call's cost is its Python)
            per_item = np.empty(x2.shape, dt)
            total = _element_block(kernel, x2, t2, per_item, grad, opts, w, u)
        else:
            per_item = np.empty(x2.shape, dt) if keep else None  # else per-thread scratch blocks
            t_given = t.reshape(x2.shape) if checks_per_block else None  # (checked as given: before a cast or smoothing)

            def block(lo, hi, bufs):
                if checks_per_block and not checks(opts, t_given[lo:hi], x2[lo:hi]):
                    return dt.type(np.nan)  # the call declines (below): the reference path gives its error
                sub = {k: (v[lo:hi] if isinstance(v, np.ndarray) and v.shape == x2.shape else v)
                       for k, v in opts.items()}
                return _element_block(kernel, x2[lo:hi], t2[lo:hi], bufs[0] if bufs else per_item[lo:hi],
                                      grad[lo:hi] if with_grad else None, sub, w, u)

            scratch = None if keep else (lambda r: [np.empty((r, x2.shape[1]), dt)])
            total = sum(_blocks(x2.shape[0], rows, x.size, block, scratch), dt.type(0))  # in dt on NumPy 1.x too
        if not math.isfinite(total):
            return NotImplemented  # infinite inputs or a block's failed check: the reference path's result or error
        value = _finish(total, per_item.reshape(x.shape) if keep else None, reduction, u, dt)
        return (value, grad.reshape(x.shape)) if with_grad else value

    fast.lane = None if name is None else _Lane(name, checks, known, base, option_names, array_options)
    return fast


_EMPTY = {dt: np.empty(0, dt) for dt in _FLOATS}  # "no weight", "no per-item losses" to a kernel (read-only)
_LARGEST = {dt: float(np.finfo(dt).max) for dt in _FLOATS}


def finite_in(total: float, dt) -> bool:
    """Whether a compiled loop's float64 total is finite in the inputs' dtype ``dt``: beyond dt's largest value, the
    sum in dt that the reference path computes overflows to inf (so the call goes there)."""
    return math.isfinite(total) and abs(total) <= _LARGEST[dt]


class _Lane:
    """The compiled lane of an elementwise loss: its generated Numba kernel alone for the plainest call (x and t
    C-contiguous arrays of one float dtype and shape, scalar options, no weight or label smoothing, reduction
    "mean", "sum" or kl_div's "batchmean"), at every size for the kernels ``_numba.at_every_size`` names, up to DIRECT_SMALL_ELEMENTS for the others.
    The torch engine's lane for CPU tensors: one compiled call in place of a dozen NumPy operations and their
    Python, which are most of a small call's cost. ``plan`` looks up the kernel for a set of options once,
    ``run`` computes."""

    def __init__(self, name, checks, known, base, option_names, array_options):
        self.name, self.checks, self.known, self.base = name, checks, known, base
        self.option_names, self.array_options = option_names, array_options
        # the options' values -> plan or None; at most _PLANS entries (a sweep over an option must not grow it)
        self.plans: dict = {}

    def plan(self, options: dict):
        """The plan for a call with ``options`` (the loss's keyword options, checked and with their defaults, in
        declaration order): (kernel, its option arguments per dtype, whether it runs at every size, the options the
        kernel's checks read), or None where the lane does not compute such a call (an array option, label
        smoothing, no kernel for these options, Numba missing)."""
        key = tuple(options.values())
        if not all(type(v) in _PLAIN_OPTIONS for v in key):
            return None  # an array option (a weight): the usual path; and no array is kept as a key
        plan = self.plans.get(key, False)
        if plan is False:
            if len(self.plans) >= _PLANS:
                self.plans.clear()
            plan = self.plans[key] = self._plan(options)
        return plan

    def _plan(self, options: dict):
        if (any(options.get(option) is not None for option in self.array_options) or options.get("label_smoothing")
                or not self.known.issuperset(k for k, v in options.items() if v is not None)):
            return None  # a weight, smoothed targets or an option the kernel does not read: the usual path
        opts = {**self.base, **{k: v for k, v in options.items() if k in self.option_names}}
        found = _kernel_for(self.name, opts, small=True)
        if found is None:
            return None
        kernel, arguments, any_size = found
        # float32 options keep float32 arithmetic (and SIMD width): the scalars made once per dtype
        per_dtype = {dt: tuple(dt.type(a) for a in arguments) for dt in _FLOATS}
        return kernel, per_dtype, any_size, opts

    def run(self, plan, arrays, reduction: str):
        """(value, (gradient,)) of a planned call on ``arrays`` (x, t) by the kernel; NotImplemented for a call outside
        the lane, or a value that is not finite (the reference path then defines the result, as for ``fast``)."""
        if not _settings.compiled:
            return NotImplemented
        x, t = arrays
        dt = x.dtype
        if dt not in _FLOATS or t.dtype != dt or t.shape != x.shape or x.size == 0:
            return NotImplemented
        if reduction == "mean":
            u = 1.0 / x.size
        elif reduction == "sum":
            u = 1.0
        elif reduction == "batchmean":  # (kl_div's) the sum over the first dimension's count
            u = 1.0 / (x.shape[0] if x.ndim else 1)
        else:
            return NotImplemented
        kernel, per_dtype, any_size, opts = plan
        if not (any_size or x.size <= DIRECT_SMALL_ELEMENTS) or not (x.flags.c_contiguous and t.flags.c_contiguous):
            return NotImplemented
        if self.checks is not None and not self.checks(opts, t, x):
            return NotImplemented
        grad = np.empty(x.shape, dt)
        empty = _EMPTY[dt]
        total = _numba.launch(kernel, x.reshape(-1), t.reshape(-1), empty, dt.type(u), empty, grad.reshape(-1),
                              *per_dtype[dt])
        if not finite_in(total, dt):
            return NotImplemented  # NaN or infinite inputs or sum: the reference path defines the result
        return dt.type(total * u), (grad,)


def _numbers(*names):
    # the options' ranges were checked against their declared domains (Loss._bind): only their kind here
    return lambda o, t, x: all(_number(o[name]) for name in names)


def _in_unit(t) -> bool:
    """Whether every value of t lies in [0, 1] (a NaN does not): on a small float array by a compiled loop where
    Numba is loaded (the torch lane's calls: a tenth of the time), else by NumPy's min and max."""
    if t.size <= DIRECT_SMALL_ELEMENTS and t.dtype in _FLOATS and t.flags.c_contiguous:
        inside = _numba_lanes.in_unit_interval(t)
        if inside is not None:
            return inside
    return bool(t.min() >= 0 and t.max() <= 1)


def _focal_ok(o, t, x):
    alpha = o["alpha"]
    return (alpha is None or _number(alpha)) and _number(o["gamma"]) and _in_unit(t)


mse = _elementwise(_mse, {}, True, name="mse")
mae = _elementwise(_mae, {}, True, name="mae")
huber = _elementwise(_huber, {"delta": 1.0}, True, checks=_numbers("delta"), name="huber")
smooth_l1 = _elementwise(_smooth_l1, {"beta": 1.0}, True, checks=_numbers("beta"),
                         name="smooth_l1")
log_cosh = _elementwise(_log_cosh, {}, True, name="log_cosh")
quantile = _elementwise(_quantile, {"q": 0.5}, True, checks=_numbers("q"),
                        name="quantile")
binary_cross_entropy_with_logits = _elementwise(_bce_logits, {}, False, extra_arrays=("pos_weight",),
                                                checks=lambda o, t, x: _in_unit(t), name="binary_cross_entropy_with_logits",
                                                label_smoothing=True)
focal = _elementwise(_focal, {"alpha": 0.25, "gamma": 2.0}, False, checks=_focal_ok)


def _kl_div(xb, tb, l, g, o):
    """kl_div's definition (``pointwise.KLDivergence``) on one block, by hand in 5-7 NumPy passes where its generated
    kernel takes 11, so written twice and held to the definition by tests/test_fast.py. Measured on one block of
    128K float32 (benchmarks/generated_kernels.py and its README): the generated kernel takes 0.61 ms whatever the
    targets, this one 0.16 ms on targets without zeros and 0.31 ms with zeros among them (masks written with the
    bitwise select, not boolean indexing, which took 0.8-1.8 ms on scattered zeros)."""
    if o["log_target"]:  # exp(t) (t - x), dl/dx = -exp(t)
        e = np.exp(tb)
        np.subtract(tb, xb, out=l)
        l *= e
        if g is not None:
            np.negative(e, out=g)
        return
    # t (log t - x), 0 where t = 0, NaN where x is; dl/dx = -t (a NaN prediction makes the call's total NaN, and
    # the fast path then hands the call to the reference path, which gives its NaN gradient)
    zero = tb == 0
    has_zero = zero.any()
    if has_zero:  # log(1) = 0 where t = 0: the term is then 0 x, 0 for a finite x and NaN for a NaN one
        _numpy_kernels._select(zero, 1.0, tb, l)
        np.log(l, out=l)
    else:
        np.log(tb, out=l)
    l -= xb
    l *= tb
    if has_zero:
        zero &= np.isinf(xb)  # t = 0 and an infinite x (a masked class): 0 inf is NaN, the definition's term 0
        if zero.any():
            _numpy_kernels._select(zero, 0.0, l, l)
    if g is not None:
        np.negative(tb, out=g)


_kl_div_blocks = _elementwise(_kl_div, {"log_target": False}, False, name="kl_div",
                              checks=lambda o, t, x: t.dtype.kind == "f" and (o["log_target"] or _in_unit(t)))


def kl_div(args, options, reduction, normalizer, with_grad):
    """kl_div in blocks; "batchmean" is the mean with the first dimension as its normaliser."""
    if reduction == "batchmean":
        x = args[0] if args else None
        if normalizer is not None or not _float_array(x) or x.ndim == 0:
            return NotImplemented
        reduction, normalizer = "mean", x.shape[0]
    return _kl_div_blocks(args, options, reduction, normalizer, with_grad)


kl_div.lane = _kl_div_blocks.lane  # (which computes "batchmean" itself)


def _pm1(o, t, x):
    # two comparisons, not np.isin (a sort: 20x the time at 1,024 elements, 40x at 128K); a NaN is neither
    return bool(((t == 1) | (t == -1)).all())


def _signs(o, t, x):
    return _number(o["margin"]) and _pm1(o, t, x)


binary_cross_entropy = _elementwise(_numpy_kernels.binary_cross_entropy, {}, False,
                                    checks=lambda o, t, x: _in_unit(t) and _in_unit(x), name="binary_cross_entropy",
                                    label_smoothing=True)
def _above(v, low: float, inclusive: bool = False) -> bool:
    """Every value above ``low``: else (a NaN included) the reference path takes the call and says why."""
    return bool(np.all(v >= low) if inclusive else np.all(v > low))


# scikit-learn's count and positive-target losses: generated kernels, domains checked before
poisson_deviance = _elementwise(_numpy_kernels.poisson_deviance, {}, True,
                                checks=lambda o, t, x: _above(x, 0.0) and _above(t, 0.0, inclusive=True),
                                name="poisson_deviance")
gamma_deviance = _elementwise(_numpy_kernels.gamma_deviance, {}, True,
                              checks=lambda o, t, x: _above(x, 0.0) and _above(t, 0.0), name="gamma_deviance")
msle = _elementwise(_numpy_kernels.msle, {}, True, checks=lambda o, t, x: _above(x, -1.0) and _above(t, -1.0),
                    name="msle")


_POISSON_NLL_KERNELS = {(True, False): _numpy_kernels.poisson_nll, (False, False): _numpy_kernels.poisson_nll_rate,
                        (True, True): _numpy_kernels.poisson_nll_full, (False, True): _numpy_kernels.poisson_nll_rate_full}


def _poisson_nll(xb, tb, l, g, o):  # the generated kernel of the formula (log_input, full) select
    _POISSON_NLL_KERNELS[o["log_input"], o["full"]](xb, tb, l, g, o)


def _poisson_nll_ok(o, t, x) -> bool:  # values outside the domain: the reference path says why
    return (type(o["log_input"]) is bool and type(o["full"]) is bool and _number(o["eps"])
            and _above(t, 0.0, inclusive=True) and (o["log_input"] or _above(x, -o["eps"])))


poisson_nll = _elementwise(_poisson_nll, {"log_input": True, "full": False, "eps": 1e-8}, True, checks=_poisson_nll_ok,
                           name="poisson_nll")
mape = _elementwise(_numpy_kernels.mape, {}, True, name="mape")
hinge = _elementwise(_numpy_kernels.hinge, {"margin": 1.0}, False, checks=_signs, name="hinge")
squared_hinge = _elementwise(_numpy_kernels.squared_hinge, {"margin": 1.0}, False, checks=_signs,
                              name="squared_hinge")
def _log_sigmoid_terms(w, l, g, c: float, scratch) -> None:
    """For w = -z: l = softplus(w) + c w, i.e. -log s(z) - c z, and with g, g = s(w) + c = -dl/dz.

    softplus(w) = max(w, 0) + L and s(w) = exp(min(w, 0) - L), L = log1p(e^-|w|), -|w| = min(w, 0) - max(w, 0):
    no overflow, no cancellation. c = 0 is DPO's sigmoid loss and SimPO; with the share e of flipped labels,
    c = -e is conservative DPO ((1 - e) softplus(-z) + e softplus(z)) and c = e / (1 - 2e) robust DPO, since
    softplus(z) = softplus(-z) + z and s(z) = 1 - s(-z). Overwrites w (and scratch)."""
    big_l = scratch
    np.maximum(w, 0.0, out=l)  # keeps a NaN (the call is then declined)
    if g is None:
        np.minimum(w, 0.0, out=big_l)
        big_l -= l
    else:
        np.minimum(w, 0.0, out=g)
        np.subtract(g, l, out=big_l)
    np.exp(big_l, out=big_l)
    log1p(big_l, out=big_l)
    if g is not None:
        g -= big_l
        np.exp(g, out=g)
        if c:
            g += c
    l += big_l
    if c:
        w *= c
        l += w


def _soft_margin(xb, tb, l, g, o):
    # softplus(z) with z = -t x, and dl/dx = -t sigmoid(z): the log-sigmoid terms on w = z (exact in both
    # tails, no 1 - sigmoid), in half the passes of the generated kernel
    z = np.multiply(tb, xb)
    np.negative(z, out=z)
    _log_sigmoid_terms(z, l, g, 0.0, np.empty_like(z))
    if g is not None:
        g *= tb
        np.negative(g, out=g)


soft_margin = _elementwise(_soft_margin, {}, False, checks=_pm1, name="soft_margin")
hinge_embedding = _elementwise(_numpy_kernels.hinge_embedding, {"margin": 1.0}, False, checks=_signs, name="hinge_embedding")


# -- similarity losses on (N, D) embeddings: InfoNCE (CLIP) and SigLIP ----------------------------
# One N x N buffer holds S, then exp(S - max) or the pairwise terms, then dL/dS, in place;
# the other temporaries are row blocks. The matmuls are BLAS.

_SHIFT_RANGE = {np.dtype(np.float32): 60.0, np.dtype(np.float64): 600.0}  # exp(-range) stays normal


def _pair_inputs(args, options, allowed, reduction, normalizer):
    if len(args) != 2 or not _reduction_ok(reduction, normalizer) or len(options.keys() - allowed):
        return None
    a, b = args
    normalize = options.get("normalize", True)
    if not (_float_array(a) and _float_array(b)) or a.ndim != 2 or a.shape != b.shape or a.dtype != b.dtype:
        return None
    if a.shape[0] == 0 or type(normalize) is not bool:
        return None
    return a, b, normalize


def _unit_rows(x, normalize):
    if not normalize:
        return x, None
    n = np.sqrt(np.einsum("ij,ij->i", x, x))
    np.maximum(n, 1e-12, out=n)
    return x / n[:, None], n


def _unit_rows_backward(g, x_hat, n, raw):
    """Gradient w.r.t. x_hat = x / max(||x||, 1e-12) pulled back to x (as the reference path)."""
    if n is None:
        return g
    projected = (g - x_hat * np.einsum("ij,ij->i", x_hat, g)[:, None]) / n[:, None]
    clamped = np.sqrt(np.einsum("ij,ij->i", raw, raw)) <= 1e-12
    if clamped.any():
        projected[clamped] = g[clamped] / n[clamped, None]
    return projected


def _similarities(a, b, normalize, scale):
    """(a_hat, |a|, b_hat, |b|, scale * a_hat b_hat^T): the forward both similarity losses share."""
    a_hat, na = _unit_rows(a, normalize)
    b_hat, nb = _unit_rows(b, normalize)
    s = a_hat @ b_hat.T
    s *= scale
    return a_hat, na, b_hat, nb, s


def _similarity_grads(g, a, b, a_hat, na, b_hat, nb, scale):
    """dL/da, dL/db from dL/dS for S = scale * a_hat b_hat^T, through the normalisation."""
    ga = _unit_rows_backward((g @ b_hat) * scale, a_hat, na, a)
    gb = _unit_rows_backward((g.T @ a_hat) * scale, b_hat, nb, b)
    return ga.astype(a.dtype, copy=False), gb.astype(a.dtype, copy=False)


def _row_blocks(n_rows, n_cols, itemsize):
    return max(1, BLOCK_BYTES // max(1, n_cols * itemsize))


def info_nce(args, options, reduction, normalizer, with_grad):
    parsed = _pair_inputs(args, options, {"temperature", "normalize"}, reduction, normalizer)
    temperature = options.get("temperature", 0.07)
    if parsed is None or not _number(temperature):
        return NotImplemented
    a, b, normalize = parsed
    n, dt = a.shape[0], a.dtype
    a_hat, na, b_hat, nb, s = _similarities(a, b, normalize, 1.0 / temperature)
    top, bottom = s.max(), s.min()
    if not (np.isfinite(top) and np.isfinite(bottom)) or top - bottom > _SHIFT_RANGE[dt]:
        return NotImplemented  # one shared shift would underflow: the reference path shifts per row and column
    diag = s.diagonal().astype(np.float64)
    s -= top
    np.exp(s, out=s)  # s now holds E = exp(S - max S), for the row and the column softmax alike
    # the sums and the per-pair terms in float64: a confident pair's loss is log(sum) + (max S - S_ii), two
    # numbers far larger than it, so the sums' float32 rounding (along axis 0 NumPy adds row after row) would
    # be most of it (N = 512, losses near 1e-3: 3.0e-2 before, 3.7e-4 with float32 row sums, 2.5e-5 now)
    rows, cols = s.sum(axis=1, dtype=np.float64), s.sum(axis=0, dtype=np.float64)
    # l_i = [(lse_row_i - S_ii) + (lse_col_i - S_ii)] / 2,  lse = max S + log(sum E)
    per_item = (0.5 * (np.log(rows) + np.log(cols)) + (float(top) - diag)).astype(dt, copy=False)
    u = _coefficient(reduction, n, normalizer)
    value = _finish(per_item.sum(), per_item, reduction, u, dt)
    if not with_grad:
        return value
    # dL/dS_ij = (u / 2) E_ij (1 / rows_i + 1 / cols_j) - u [i = j]   (u: d value / d l_i)
    inv_rows, inv_cols = ((0.5 * u) / rows).astype(dt), ((0.5 * u) / cols).astype(dt)
    step = _row_blocks(n, n, dt.itemsize)
    for lo in range(0, n, step):
        block = s[lo:lo + step]
        block *= inv_rows[lo:lo + step, None] + inv_cols[None, :]
    s[np.arange(n), np.arange(n)] -= u
    return value, _similarity_grads(s, a, b, a_hat, na, b_hat, nb, 1.0 / temperature)


def siglip(args, options, reduction, normalizer, with_grad):
    parsed = _pair_inputs(args, options, {"t", "bias", "normalize"}, reduction, normalizer)
    scale, bias = options.get("t", 10.0), options.get("bias", -10.0)
    if parsed is None or not (_number(scale) and _number(bias)):
        return NotImplemented
    a, b, normalize = parsed
    n, dt = a.shape[0], a.dtype
    a_hat, na, b_hat, nb, w = _similarities(a, b, normalize, scale)
    w += bias
    index = np.arange(n)
    w[index, index] *= -1.0  # w = -z S (z = +1 on the diagonal, -1 off it): l_i = sum_j softplus(w_ij)
    per_item = np.empty(n, dt)
    step = _row_blocks(n, n, dt.itemsize)
    for lo in range(0, n, step):
        wb = w[lo:lo + step]
        log_term = log1p(np.exp(-np.abs(wb)))  # L = log1p(e^-|w|)
        sp = np.maximum(wb, 0.0)
        sp += log_term  # softplus(w), exact for large |w|
        per_item[lo:lo + step] = sp.sum(axis=1)
        if with_grad:  # d softplus(w)/dw = sigmoid(w) = exp(min(w, 0) - L); dw/dS = -z
            np.minimum(wb, 0.0, out=wb)
            wb -= log_term
            np.exp(wb, out=wb)
    if not np.isfinite(per_item).all():
        return NotImplemented
    u = _coefficient(reduction, n, normalizer)
    value = _finish(per_item.sum(), per_item, reduction, u, dt)
    if not with_grad:
        return value
    w *= u
    w[index, index] *= -1.0  # dL/dS = -z sigmoid(w) u
    return value, _similarity_grads(w, a, b, a_hat, na, b_hat, nb, scale)


# -- row-separable embedding losses: the loss's own formulas on cache-sized blocks of rows -------------
# Each row's loss and gradient depend on that row alone, so the reference's prepare and value_and_grads,
# run with plain NumPy (no array-API wrappers) on blocks of rows that stay in cache, over threads, give
# the same numbers as on the whole batch with one pass over memory instead of one per operation. The
# formulas stay in losses/ranking.py: nothing is written twice here.

_PLAIN_OPTIONS = (bool, int, float, str, type(None))
_NUMPY = array_api_compat.numpy  # the losses' namespace (NumPy 1.x lacks parts of the array API)


def _loss_named(name: str):
    from . import registry  # imported at the first call: the losses import this module

    return registry.get_loss(name)


def _row_blocked(name: str, n_embeddings: int):
    """A fast path for loss ``name`` whose first ``n_embeddings`` arguments are (N, D) embeddings (the
    differentiable inputs) and that splits into rows (``Loss.splits_into_rows``): the loss's own prepare and
    value_and_grads on blocks of rows (``Loss.row_block``) over threads, each block divided by the whole
    batch's divisor (``Loss.rows_divisor``), as the torch engine's row blocks do."""

    def fast(args, options, reduction, normalizer, with_grad):
        if not _reduction_ok(reduction, normalizer) or len(args) < n_embeddings:
            return NotImplemented
        first = args[0]
        if not _float_array(first) or first.ndim != 2 or 0 in first.shape:
            return NotImplemented  # one (D,) item: nothing to block, the reference path
        embeddings = args[:n_embeddings]
        if any(type(e) is not np.ndarray or e.dtype != first.dtype or e.shape != first.shape for e in embeddings):
            return NotImplemented
        if any(type(r) is not np.ndarray or r.dtype.kind not in "fiub" for r in args[n_embeddings:]):
            return NotImplemented
        if not all(type(v) in _PLAIN_OPTIONS for v in options.values()):
            return NotImplemented  # array or callable options: the reference path
        loss = _loss_named(name)
        bound = loss._quick_bind(args, options)  # None: not the positional arguments, each by position
        if bound is None or not loss.splits_into_rows(bound):
            return NotImplemented
        lane = getattr(fast, "lane", None)
        if lane is not None and with_grad and normalizer is None and len(args) == len(loss._positional):
            # the compiled loop over the rows (triplet_margin's, cosine_embedding's): one pass where the blocks take a dozen
            plan = lane.plan(bound)
            out = NotImplemented if plan is None else lane.run(plan, list(args), reduction)
            if out is not NotImplemented:
                return out
        n, dt = first.shape[0], first.dtype
        rows = _row_blocks(n, n_embeddings * first.shape[-1], dt.itemsize)
        k = normalizer  # one block: the loss's own divisor; several: the batch's
        if k is None and reduction == "mean" and n > rows:
            try:
                k = loss.rows_divisor(_NUMPY, bound)
            except (ValueError, TypeError):
                return NotImplemented  # bad values: the reference path raises its documented error
        per_item = np.empty(n, dt) if reduction == "none" else None
        grads = tuple(np.empty_like(e) for e in embeddings) if with_grad else None

        def block(lo: int, hi: int, _):
            st = loss.prepare(_NUMPY, **loss.row_block(bound, lo, hi))
            if with_grad:
                value, block_grads = loss.value_and_grads(_NUMPY, st, reduction, k, np)
                for out, g in zip(grads, block_grads):
                    out[lo:hi] = g
            else:
                value = loss._value(_NUMPY, st, reduction, k)[0]
            if per_item is None:
                return value
            per_item[lo:hi] = value
            return 0.0

        try:
            with np.errstate(all="ignore"):
                partial = _blocks(n, rows, n * first.shape[-1] * n_embeddings, block)
        except (ValueError, TypeError):
            return NotImplemented  # bad values: the reference path raises its documented error
        total = float(sum(partial)) if per_item is None else float(per_item.sum())
        if not math.isfinite(total):
            return NotImplemented  # NaN or infinite inputs: the reference path defines the result
        value = per_item if per_item is not None else dt.type(total)
        return (value, grads) if with_grad else value

    return fast


triplet_margin = _row_blocked("triplet_margin", 3)
triplet_margin_with_distance = _row_blocked("triplet_margin_with_distance", 3)
cosine_embedding = _row_blocked("cosine_embedding", 2)
contrastive = _row_blocked("contrastive", 2)


# -- the compiled lanes' plans, and the NumPy lane of small plain calls -------------------------------------------
# A lane (``_Lane`` above, ``_numba_lanes._HandLane``) computes the plainest call of a loss by one compiled loop. Its
# plan for a set of options is made once: the options checked against their domains as binding checks them
# (``Loss._check_options``), then the lane's own plan. Both array kinds' lanes (NumPy: ``numpy_lane`` below; torch:
# ``losslab.torch._function.lane``) look plans up here.

# (loss, the call's options) -> (the fast path's lane, its plan, the bound options, the inputs' places) or None
_LANE_PLANS: dict = {}
_NO_OPTIONS = ()
_LANE_REDUCTIONS = ("mean", "sum", "batchmean")  # per-item values ("none") take the usual flow


def lane_entry(loss, options: dict, reduction: str):
    """The lane's entry for ``loss`` called with keyword ``options`` and ``reduction``: (the NumPy fast path's lane, its
    plan, the options bound and checked, each positional argument's place among the loss's inputs or None); None where
    no lane takes such a call (a reduction the lanes or the loss lack, an array option, an option the lane does not
    read, no lane, an option outside its domain: that one is not kept, and the usual flow raises its error). Each
    value's type is part of the key: ``True == 1 == 1.0`` as keys, but an option's check may take one and refuse
    another."""
    if reduction not in _LANE_REDUCTIONS or reduction not in loss.reductions:
        return None
    key = (loss, _NO_OPTIONS)
    if options:
        if not all(type(v) in _PLAIN_OPTIONS for v in options.values()):
            return None  # an array option (a weight): the usual flow; and no array is kept as a key
        key = (loss, tuple([(k, v, type(v)) for k, v in options.items()]))
    entry = _LANE_PLANS.get(key, False)
    if entry is False:
        entry = _new_lane_entry(loss, options)
        if entry is NotImplemented:
            return None
        if len(_LANE_PLANS) >= _PLANS:
            _LANE_PLANS.clear()
        _LANE_PLANS[key] = entry
    return entry


def _new_lane_entry(loss, options: dict):
    fast_lane = getattr(_engines.fast_path_of(loss.name, "numpy"), "lane", None)
    if fast_lane is None or not options.keys() <= loss._keyword_defaults.keys():
        return None
    bound_options = {**loss._keyword_defaults, **options}
    try:
        loss._check_options(bound_options)
    except (ValueError, TypeError):
        return NotImplemented
    plan = fast_lane.plan(bound_options)
    slots = tuple(loss.inputs.index(name) if name in loss.inputs else None for name in loss._positional)
    return None if plan is None else (fast_lane, plan, bound_options, slots)


def numpy_lane(loss, args: tuple, options: dict, reduction: str, with_grad: bool):
    """The NumPy lane (``_engines.register_lane``): a small plain call (its NumPy arrays by position, at most
    DIRECT_SMALL_ELEMENTS elements in the first, scalar options, mean, sum or batchmean, no normalizer) by the loss's
    compiled lane alone, without binding, the fast path's checks and its dozen NumPy operations; the value (the
    gradients the loop wrote are dropped), or with ``with_grad`` the value and gradients. NotImplemented for any
    other call, which then takes the usual flow, so its errors and results are the usual flow's."""
    if len(args) != len(loss._positional) or not _settings.enabled:
        return NotImplemented
    for a in args:
        if type(a) is not np.ndarray:
            return NotImplemented
    if args[0].size > DIRECT_SMALL_ELEMENTS:
        return NotImplemented  # large: the fast path's blocks and kernels, and a value alone writes no gradient
    entry = lane_entry(loss, options, reduction)
    if entry is None:
        return NotImplemented
    out = entry[0].run(entry[1], list(args), reduction)
    if out is NotImplemented:
        return out
    value, grads = out
    if not with_grad:
        return value
    return _engines.value_and_grad_result(value, grads)


# the engines' registry: ll.<name> on NumPy arrays tries these first (and the torch engine, on
# zero-copy views of large CPU tensors)
for _name, _path in {"mse": mse, "mae": mae, "huber": huber, "smooth_l1": smooth_l1, "log_cosh": log_cosh,
                     "quantile": quantile, "binary_cross_entropy_with_logits": binary_cross_entropy_with_logits,
                     "focal": focal, "cross_entropy": cross_entropy, "nll": nll,
                     "binary_cross_entropy": binary_cross_entropy, "hinge": hinge, "squared_hinge": squared_hinge,
                     "kl_div": kl_div, "info_nce": info_nce, "siglip": siglip, "poisson_deviance": poisson_deviance,
                     "poisson_nll": poisson_nll,
                     "gamma_deviance": gamma_deviance, "msle": msle, "mape": mape, "soft_margin": soft_margin,
                     "hinge_embedding": hinge_embedding, "triplet_margin": triplet_margin,
                     "triplet_margin_with_distance": triplet_margin_with_distance,
                     "cosine_embedding": cosine_embedding, "contrastive": contrastive}.items():
    _engines.register_fast_path(_name, "numpy", _path)

# the fast paths of the pair, class-row and CTC losses live in their own modules and register themselves
from . import _fast_ctc, _fast_pairs, _fast_rows, _numba_lanes  # noqa: E402,F401

# compiled lanes of small calls
nll.lane, cross_entropy.lane = _numba_lanes.NLL, _numba_lanes.CROSS_ENTROPY
triplet_margin.lane, cosine_embedding.lane = _numba_lanes.TRIPLET_MARGIN, _numba_lanes.COSINE_EMBEDDING
_engines.register_lane("numpy", numpy_lane)
