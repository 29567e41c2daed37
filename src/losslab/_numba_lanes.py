"""Hand-written compiled lanes: one Numba loop computes the value and writes the gradients of a small call, where the
NumPy fast paths take a dozen NumPy operations (gathers, scatters into zeros, masks), whose per-operation cost is
most of a small call's (torch CPU tensors: ``losslab.torch._function.lane`` runs them; ``_fast._Lane`` is the
generated lane of the elementwise losses, with the same ``plan`` and ``run``). For four class-index row losses,
nll, cross_entropy, multiclass_hinge and multilabel_margin, over the rows of an (N, C) float32/float64 input with
(N,) integer targets ((N, C) for multilabel_margin); for margin_ranking, over its pairs; for triplet_margin (p = 2,
no swap) and cosine_embedding, over the rows of their (N, D) embeddings.

Written by hand: the row losses' definitions are their ``terms`` and ``grad_terms`` over a class axis
(losses/classification.py), margin_ranking, triplet_margin and cosine_embedding have three arguments (and norms over
each row): the elementwise code generator covers none of them. tests/test_engines.py holds each loop to its loss's reference path on random inputs and every option the
lane takes.

Taken: C-contiguous arrays, at most ``_fast.DIRECT_SMALL_ELEMENTS`` scores (above it the NumPy paths' threads are
faster; of a large nll call, only the gradient is a loop here, ``nll_grad``, over the thread pool), no class weight,
reduction mean or sum; margin_ranking's targets in the inputs' dtype. Declined (the usual flow then computes the call, or raises its documented error): a target out of range,
a NaN or infinite score, Numba missing or switched off. The loops of
triplet_margin and cosine_embedding run over the thread pool and take calls of every size, as does the NumPy fast path
(one read of the embeddings and one write of the gradients, each row in cache: 4096 x 1024 float32, triplet_margin's
value and gradients in 5-6 ms on 2 cores, where the NumPy blocks took 30 and torch takes 22-30). Besides the lanes,
``row_loops``: arithmetic row loops (shift by the row max, per-row scale, target sums) for the blocks of a large
cross_entropy call in ``_fast`` (no formula of their own). Loops are compiled on first use (Numba imported then, as
in ``_numba``) and cached on disk.
"""

from __future__ import annotations

import math

import numpy as np

from . import _fast, _numba
from .losses.ranking import _COSINE_EMBEDDING_EPS

_KERNELS: dict = {}


def _nll_rows(x, y, ignore_index, mean, largest, grad):
    """nll: sum over the rows not ignored of -x[i, y_i], and the gradient -u at each target (u = 1 / the rows not
    ignored for the mean, 0 if there are none; 1 for the sum) and 0 elsewhere. NaN when the reference must take
    the call: a target out of [0, C), or a NaN or infinite score anywhere (the reference reads every score)."""
    n, c = x.shape
    total = 0.0  # float64 accumulator
    count = 0
    for i in range(n):
        for j in range(c):
            if not math.isfinite(x[i, j]):
                return math.nan
            grad[i, j] = 0.0
        k = y[i]
        if k == ignore_index:
            continue
        if k < 0 or k >= c:
            return math.nan
        total -= x[i, k]
        count += 1
    if abs(total) > largest:
        return math.nan  # the reference's sum in the inputs' dtype overflows
    u = (1.0 / count if count else 0.0) if mean else 1.0
    for i in range(n):
        k = y[i]
        if k != ignore_index:
            grad[i, k] = -u
    return total * u


def _cross_entropy_rows(x, y, ignore_index, smoothing, z_scale, cap, mean, largest, grad):
    """cross_entropy with class indices and no class weight, the row algebra of definitions/softmax_rows.py: logits z
    (c tanh(x / c) with a cap c >= 0; cap -1: none), m = max z, S = sum exp(z - m), lse = m + log S, the target mass
    q_k = (1 - e) [k = y] + e / C (Q = 1), l = log S + (1 - e)(m - z_y) + (e / C) sum_k (m - z_k) + s lse^2 (the
    shifted form: a confident row's small loss is not lse - z_y rounded at the logits' scale), and the gradient
    u ((1 + 2 s lse) p_k - q_k) dz/dx (u = 1 / the rows not ignored for the mean, 0 if there are none; 1 for the
    sum); an ignored row adds 0 and gets a zero gradient. NaN when the reference must take the call: a target out of
    [0, C), a NaN or infinite logit anywhere (the reference reads every logit), a cap that is 0 or infinite in the
    inputs' dtype, or a shifted logit m - z_k, their sum, lse^2 (with a z-loss) or a row's loss beyond the dtype's
    largest number (where the reference's own sums in that dtype may overflow)."""
    n, c = x.shape
    capped = cap >= 0
    if capped and not (cap > 0 and cap <= largest):
        return math.nan
    count = 0
    for i in range(n):
        k = y[i]
        if k != ignore_index:
            if k < 0 or k >= c:
                return math.nan
            count += 1
    u = (1.0 / count if count else 0.0) if mean else 1.0
    hit = 1.0 - smoothing
    spread = smoothing / c
    total = 0.0  # float64 accumulator, as every row's sums
    for i in range(n):
        m = -math.inf
        for j in range(c):
            z = x[i, j]
            if not math.isfinite(z):
                return math.nan
            if capped:
                z = cap * math.tanh(z / cap)
            m = max(m, z)
        k = y[i]
        if k == ignore_index:
            for j in range(c):
                grad[i, j] = 0.0
            continue
        total_exp = 0.0
        shifted = 0.0  # sum_k (m - z_k)
        z_y = 0.0
        for j in range(c):
            z = x[i, j]
            if capped:
                z = cap * math.tanh(z / cap)
            if m - z > largest:
                return math.nan
            e = math.exp(z - m)
            grad[i, j] = e
            total_exp += e
            shifted += m - z
            if j == k:
                z_y = z
        log_total = math.log(total_exp)
        lse = m + log_total
        if shifted > largest or (z_scale > 0 and lse * lse > largest):
            return math.nan
        row = log_total + hit * (m - z_y) + spread * shifted + z_scale * lse * lse
        if abs(row) > largest:
            return math.nan  # the reference's per-row value in the inputs' dtype overflows
        total += row
        scale = (1.0 + 2.0 * z_scale * lse) / total_exp
        for j in range(c):
            g = grad[i, j] * scale - spread
            if j == k:
                g -= hit
            if capped:
                ratio = math.tanh(x[i, j] / cap)  # z / c
                g *= 1.0 - ratio * ratio
            grad[i, j] = g * u
    if abs(total) > largest:
        return math.nan
    return total * u


def _multiclass_hinge_rows(x, y, p, margin, mean, largest, grad):
    """multiclass_hinge: h_j = margin - x_y + x_j off the target, l_i = sum_j max(h_j, 0)^p / C; the gradient
    u p h_j^(p-1) / C where h_j > 0 and minus the row's sum at the target (u = 1 / N for the mean, 1 for the sum).
    NaN when the reference must take the call: a target out of [0, C), a NaN or infinite score, or a row's sum or
    the total beyond ``largest`` (where the reference's sums in the inputs' dtype overflow to inf)."""
    n, c = x.shape
    u = 1.0 / n if mean else 1.0
    scale = u / c
    total = 0.0  # float64 accumulator
    for i in range(n):
        k = y[i]
        if k < 0 or k >= c:
            return math.nan
        s_y = x[i, k]
        row = 0.0
        row_grad = 0.0
        for j in range(c):
            s = x[i, j]
            if not math.isfinite(s):
                return math.nan
            if j == k:
                continue
            h = margin - s_y + s
            if h > 0:
                if p == 2:
                    row += h * h
                    gj = 2.0 * h * scale
                else:
                    row += h
                    gj = scale
                grad[i, j] = gj
                row_grad += gj
            else:
                grad[i, j] = 0.0
        grad[i, k] = -row_grad
        if row > largest:
            return math.nan  # the reference's row sum in the inputs' dtype overflows
        total += row / c
    if total > largest:
        return math.nan
    return total * u


def _multilabel_margin_rows(x, t, one, mean, largest, grad):
    """multilabel_margin: each row's targets are t[i] up to its first -1 (Y_i); every pair j in Y_i, k not in Y_i
    adds h = 1 - x_j + x_k where positive, l_i = the sum / C, and -u / C to the gradient at j, +u / C at k (u = 1 / N
    for the mean, 1 for the sum; the pairs counted first, so the gradient is a count times u / C, as the
    reference's). NaN when the reference must take the call: a target out of [-1, C), or a NaN or infinite score."""
    n, c = x.shape
    u = 1.0 / n if mean else 1.0
    scale = u / c
    total = 0.0  # float64 accumulator
    is_target = np.zeros(c, np.bool_)
    for i in range(n):
        for j in range(c):
            if not math.isfinite(x[i, j]):
                return math.nan
            grad[i, j] = 0.0
            is_target[j] = False
        slots = c
        for s in range(c):
            k = t[i, s]
            if k < -1 or k >= c:
                return math.nan
            if k == -1 and slots == c:
                slots = s  # the rest of the row is ignored (but checked, as the reference checks it)
            if slots == c:
                is_target[k] = True
        row = 0.0
        for s in range(slots):
            j = t[i, s]
            x_j = x[i, j]
            for k in range(c):
                if is_target[k]:
                    continue
                h = one - x_j + x[i, k]
                if h > 0:
                    row += h
                    grad[i, j] -= 1.0
                    grad[i, k] += 1.0
        for j in range(c):
            grad[i, j] *= scale
        if row > largest:
            return math.nan  # the reference's row sum in the inputs' dtype overflows
        total += row / c
    if total > largest:
        return math.nan
    return total * u


def _margin_ranking_pairs(a, b, t, margin, mean, largest, g1, g2):
    """margin_ranking: z = t (b - a) + margin, l = max(0, z); the gradient u t [z >= 0] for b and its negative for a
    (passed at z = 0, as torch's clamp_min; u = 1 / n for the mean, 1 for the sum). NaN when the reference must take
    the call: a target other than -1 or +1, or a NaN input."""
    n = a.shape[0]
    u = 1.0 / n if mean else 1.0
    total = 0.0  # float64 accumulator
    for i in range(n):
        t_i = t[i]
        if t_i != 1.0 and t_i != -1.0:
            return math.nan
        z = (b[i] - a[i]) * t_i + margin
        if z != z:
            return math.nan
        g = 0.0
        if z >= 0:
            total += z
            g = t_i * u
        g2[i] = g
        g1[i] = -g
    if total > largest:
        return math.nan  # the reference's sum in the inputs' dtype overflows
    return total * u


def _triplet_row(a, p, n, i, margin, eps, zero, tiny, u, ga, gp, gn):
    """Row i of triplet_margin with p = 2, no swap: d(x, y) = max(||x - y + eps||, 1e-15) (the reference's safe norm),
    z = d(a, p) - d(a, n) + margin, l = max(0, z); where z > 0 the gradients -u v / d(a, p) for the positive (v = a - p
    + eps), u w / d(a, n) for the negative (w = a - n + eps) and minus their sum for the anchor, else 0. The distances
    and z in the inputs' dtype (``zero`` and ``tiny``, 1e-30, given in it), as the reference computes them, so that a
    row is active exactly where the reference's is. Returns l, NaN where z is NaN or infinite."""
    width = a.shape[1]
    s_ap = zero
    s_an = zero
    for k in range(width):
        v = a[i, k] - p[i, k] + eps
        w = a[i, k] - n[i, k] + eps
        s_ap += v * v
        s_an += w * w
    d_ap = np.sqrt(max(s_ap, tiny))
    d_an = np.sqrt(max(s_an, tiny))
    z = d_ap - d_an + margin
    c_ap = 0.0
    c_an = 0.0
    if z > 0 and math.isfinite(z):
        c_ap = -u / d_ap
        c_an = u / d_an
    for k in range(width):
        g_p = (a[i, k] - p[i, k] + eps) * c_ap
        g_n = (a[i, k] - n[i, k] + eps) * c_an
        gp[i, k] = g_p
        gn[i, k] = g_n
        ga[i, k] = -(g_p + g_n)
    if not math.isfinite(z):
        return math.nan
    return z if z > 0 else 0.0


def _triplet_margin_rows(a, p, n, margin, eps, zero, tiny, mean, largest, ga, gp, gn):
    """triplet_margin (p = 2, no swap): the sum of its rows' losses (``_triplet_row``) times u (1 / N for the mean, 1
    for the sum), the rows over the thread pool from ``_SERIAL_BELOW`` numbers up. NaN when the reference must take the
    call: a NaN or infinite z, or a sum beyond ``largest`` (where the reference's sum in the inputs' dtype overflows)."""
    rows = a.shape[0]
    u = 1.0 / rows if mean else 1.0
    total = 0.0  # float64 accumulator
    if a.size < _SERIAL_BELOW:
        for i in range(rows):
            total += _triplet_row(a, p, n, i, margin, eps, zero, tiny, u, ga, gp, gn)
    else:
        for i in _prange(rows):
            total += _triplet_row(a, p, n, i, margin, eps, zero, tiny, u, ga, gp, gn)
    return total * u if total <= largest else math.nan  # (a NaN row made the total NaN)


def _cosine_row(a, b, t, i, margin, zero, tiny, u, ga, gb):
    """Row i of cosine_embedding: cos = a.b / sqrt((|a|^2 + 1e-12)(|b|^2 + 1e-12)) (the sums in the inputs' dtype,
    ``zero`` and ``tiny``, 1e-12, given in it, as the reference computes them), l = 1 - cos for a target of +1 and
    max(0, cos - margin) for -1; the gradient s u (b / root - cos a / |a|^2) for a (and symmetrically for b), s = -1
    for +1, 1 for -1 where cos >= margin (passed there, as torch's clamp_min), else 0. Returns l, NaN where the
    reference must take the call: a target other than -1 or +1, or a NaN or infinite norm or cosine (an overflowing
    norm: the reference's result, whatever it is)."""
    width = a.shape[1]
    aa = zero
    bb = zero
    ab = zero
    for k in range(width):
        aa += a[i, k] * a[i, k]
        bb += b[i, k] * b[i, k]
        ab += a[i, k] * b[i, k]
    sq_a = aa + tiny
    sq_b = bb + tiny
    root = np.sqrt(sq_a * sq_b)
    cos = ab / root
    t_i = t[i]
    loss = 0.0
    slope = 0.0
    if not (math.isfinite(root) and math.isfinite(cos)) or (t_i != 1 and t_i != -1):
        loss = math.nan
    elif t_i == 1:
        loss = 1.0 - cos
        slope = -u
    elif cos - margin >= 0:
        loss = cos - margin
        slope = u
    cross = slope / root
    self_a = slope * cos / sq_a
    self_b = slope * cos / sq_b
    for k in range(width):
        ga[i, k] = b[i, k] * cross - a[i, k] * self_a
        gb[i, k] = a[i, k] * cross - b[i, k] * self_b
    return loss


def _cosine_embedding_rows(a, b, t, margin, zero, tiny, mean, largest, ga, gb):
    """cosine_embedding: the sum of its rows' losses (``_cosine_row``) times u (1 / N for the mean, 1 for the sum), the
    rows over the thread pool from ``_SERIAL_BELOW`` numbers up. NaN when the reference must take the call (a row's
    NaN, or a sum beyond ``largest``)."""
    rows = a.shape[0]
    u = 1.0 / rows if mean else 1.0
    total = 0.0  # float64 accumulator
    if a.size < _SERIAL_BELOW:
        for i in range(rows):
            total += _cosine_row(a, b, t, i, margin, zero, tiny, u, ga, gb)
    else:
        for i in _prange(rows):
            total += _cosine_row(a, b, t, i, margin, zero, tiny, u, ga, gb)
    return total * u if total <= largest else math.nan


def _nll_grad_rows(targets, scale, row_scales, grad):
    """nll's gradient on a large call, over the thread pool: each row zeroed and ``scale`` written at its target
    (``row_scales[i]`` when given: the target's weight, 0 on an ignored row, times the scale), a row at a time
    while it is in cache. One pass over the buffer, where zeros then a scatter took two: 4096 x 1024 float32,
    0.16 ms on 2 cores against 0.31-0.35 ms for the NumPy blocks (and torch.zeros's 0.26)."""
    n = grad.shape[0]
    per_row = row_scales.shape[0] == n
    for i in _prange(n):
        row = grad[i]
        row[:] = 0.0
        row[targets[i]] = row_scales[i] if per_row else scale


def _unit_interval(a):
    """Whether every value of the 1-D array a lies in [0, 1] (a NaN does not)."""
    for i in range(a.shape[0]):
        v = a[i]
        if not (v >= 0.0 and v <= 1.0):
            return False
    return True


# Row loops of the NumPy fast path's large cross-entropy blocks (_fast.cross_entropy, on its threads: the GIL is
# released): one pass each where NumPy takes two to five, a row-broadcast operation among them (z - max, e * scale),
# which NumPy runs at a third of a plain operation's speed. Measured on one block of 256 x 1024 float32: shift 56 us
# against NumPy's 150-190; shift_dot 109 against 280 (subtract, row dot, row sums, min and max of the targets);
# scale_minus 44 against 290. No formula here: the block computes the loss from these sums.
def _shift_rows(z, m, e):
    """e = z - m[:, None]: each row shifted by its max."""
    for i in range(z.shape[0]):
        mi = m[i]
        for j in range(z.shape[1]):
            e[i, j] = z[i, j] - mi


def _shift_rows_dot(z, m, q, e, q_d, q_sum):
    """e = z - m[:, None]; per row, q . e into q_d and sum(q) into q_sum, each product exact and summed in float64 (a
    float32 running sum over a large vocabulary lost digits: 1.4e-6 relative at C = 262,144, np.vecdot 3.2e-7, this
    3e-8); the number of targets q outside [0, 1] (a NaN counts)."""
    outside = 0
    for i in range(z.shape[0]):
        mi = m[i]
        dot = 0.0
        total = 0.0
        for j in range(z.shape[1]):
            d = z[i, j] - mi
            e[i, j] = d
            v = q[i, j]
            outside += not (v >= 0.0 and v <= 1.0)
            dot += float(v) * float(d)
            total += v
        q_d[i] = dot
        q_sum[i] = total
    return outside


def _scale_rows(e, scale):
    """e *= scale[:, None]."""
    for i in range(e.shape[0]):
        si = scale[i]
        for j in range(e.shape[1]):
            e[i, j] *= si


def _scale_rows_minus(e, scale, q, u):
    """e = e * scale[:, None] - u q."""
    for i in range(e.shape[0]):
        si = scale[i]
        for j in range(e.shape[1]):
            e[i, j] = e[i, j] * si - u * q[i, j]


ROW_LOOPS = (_shift_rows, _shift_rows_dot, _scale_rows, _scale_rows_minus)


def row_loops(*arrays):
    """The compiled row loops by name, where Numba runs and every array given is C-contiguous (one compiled variant
    per dtype); None otherwise (the caller then takes NumPy's operations)."""
    if not (_numba.AVAILABLE and _fast._settings.compiled) or not all(a.flags.c_contiguous for a in arrays):
        return None
    _kernel(ROW_LOOPS[0].__name__)
    return _KERNELS


# The loops over the thread pool (compiled with parallel=True, run through _numba.launch), and the size from which
# they use it (below it, a loop on the calling thread: waking the pool costs more, as for the generated kernels).
PARALLEL = (_nll_grad_rows, _triplet_margin_rows, _cosine_embedding_rows)
_SERIAL_BELOW = _fast.PARALLEL_MIN_ELEMENTS
# The parallel loop's range and the row helpers the loops call: Numba resolves globals when it compiles, so
# ``_kernel`` binds these to numba.prange and the helpers' compiled forms just before compiling (Numba is imported
# only then); as plain Python the loops compute the same, serially.
_prange = range
_ROW_HELPERS = {"_triplet_row": _triplet_row, "_cosine_row": _cosine_row}


def _kernel(name: str):
    if not _KERNELS:
        global _prange
        numba = _numba.imported()
        _prange = numba.prange
        options = {"cache": True, "nogil": True, "error_model": "numpy"}
        globals().update({helper: numba.njit(inline="always", **options)(function)
                          for helper, function in _ROW_HELPERS.items()})
        compiled = {function.__name__: numba.njit(**options)(function)
                    for function in (_nll_rows, _cross_entropy_rows, _multiclass_hinge_rows, _multilabel_margin_rows,
                                     _margin_ranking_pairs, _unit_interval)}
        for function in PARALLEL:
            compiled[function.__name__] = numba.njit(parallel=True, **options)(function)
        # the row loops vectorise: reassociation for their sums, contraction for e * scale - u q (one rounding)
        compiled.update({function.__name__: numba.njit(fastmath={"reassoc", "contract"}, **options)(function)
                         for function in ROW_LOOPS})
        _KERNELS.update(compiled)  # all at once: another thread never sees some of them
    return _KERNELS[name]


def in_unit_interval(a):
    """Whether every value of the float, C-contiguous array ``a`` lies in [0, 1], by a compiled loop (about 0.3 us on
    1,024 elements, where NumPy's min and max take 2.5): None where Numba is not loaded yet (a NumPy call does not
    import it for this) or compiled loops are off."""
    if _numba.loaded() is None or not _fast._settings.compiled:
        return None
    return _kernel("_unit_interval")(a.reshape(-1))


def nll_grad(targets, scale, grad) -> bool:
    """``_nll_grad_rows`` into ``grad`` (C-contiguous) where Numba runs (True), else False: the caller fills it."""
    if not (_numba.AVAILABLE and _fast._settings.compiled):
        return False
    dt = grad.dtype
    per_row = type(scale) is np.ndarray
    # the targets as native, contiguous, writable intp (a copy of N integers), the scales in the gradient's dtype: one
    # compiled variant per gradient dtype, whatever the targets' integer type, byte order, layout or read-only flag
    targets = np.array(targets, dtype=np.intp)
    row_scales = np.array(scale, dtype=dt) if per_row else _fast._EMPTY[dt]
    _numba.launch(_kernel("_nll_grad_rows"), targets, dt.type(0 if per_row else scale), row_scales, grad)
    return True


class _HandLane:
    """The lane of one loss by its hand-written loop: ``plan(options)`` reads the options (the loss's keyword options,
    checked, with their defaults) once, into the loop's option arguments or None (the lane never takes such a call);
    ``run(plan, arrays, reduction)`` gives (value, gradients) or NotImplemented. What differs between the losses:
    ``arguments`` (options -> the loop's option arguments, or None), ``accepts`` (the arrays, checked beyond one
    float dtype, C-contiguous, at most DIRECT_SMALL_ELEMENTS elements), ``flat`` (the loop reads 1-D arrays),
    and ``inputs`` (how many gradients it writes). A loop over the thread pool (in ``PARALLEL``) takes calls of every
    size; the others decline those above DIRECT_SMALL_ELEMENTS."""

    def __init__(self, kernel: str, arguments, accepts, inputs: int = 1, flat: bool = False):
        self.kernel, self.arguments, self.accepts, self.inputs, self.flat = kernel, arguments, accepts, inputs, flat
        self.parallel = any(function.__name__ == kernel for function in PARALLEL)

    def plan(self, options: dict):
        arguments = self.arguments(options) if _numba.AVAILABLE else None
        if arguments is None:
            return None
        # float options in the inputs' dtype (float32 arithmetic stays float32, as the reference's), made once
        return {dt: tuple(dt.type(a) if type(a) is float else a for a in arguments) for dt in _fast._FLOATS}

    def run(self, plan, arrays, reduction: str):
        if not _fast._settings.compiled or (reduction != "mean" and reduction != "sum"):
            return NotImplemented
        x = arrays[0]
        dt = x.dtype
        if (dt not in _fast._FLOATS or x.size == 0 or (x.size > _fast.DIRECT_SMALL_ELEMENTS and not self.parallel)
                or not self.accepts(*arrays)):
            return NotImplemented
        for a in arrays:
            if not a.flags.c_contiguous:
                return NotImplemented
        grads = [np.empty(x.shape, dt) for _ in range(self.inputs)]
        if self.flat:
            arrays, grads_in = [a.reshape(-1) for a in arrays], [g.reshape(-1) for g in grads]
        else:
            grads_in = grads
        arguments = (*arrays, *plan[dt], reduction == "mean", _fast._LARGEST[dt], *grads_in)
        loop = _kernel(self.kernel)
        total = _numba.launch(loop, *arguments) if self.parallel else loop(*arguments)
        if not _fast.finite_in(total, dt):
            return NotImplemented
        return dt.type(total), tuple(grads)


def _class_rows(targets_per_class: bool):
    """``accepts`` of a class-row loss: (N, C) scores, integer targets of shape (N,), or (N, C) per class. (uint64
    targets: Numba compares them with the int64 ignore_index as float64, which rounds above 2^53.)"""
    def accepts(x, t):
        return (x.ndim == 2 and t.dtype.kind in "iu" and t.dtype != np.uint64
                and t.shape == (x.shape if targets_per_class else x.shape[:1]))
    return accepts


def _same(*arrays):
    """``accepts`` of a loss whose arrays share one dtype and shape."""
    first = arrays[0]
    return all(a.dtype == first.dtype and a.shape == first.shape for a in arrays[1:])


def _unweighted(arguments):
    """No class weight: the loop has none."""
    return lambda options: None if options.get("weight") is not None else arguments(options)


def _ignore_index(options):
    index = options.get("ignore_index", -100)
    return (index,) if type(index) is int else None


def _cross_entropy_options(options):
    """ignore_index, label_smoothing, lse_square_scale and softcap (-1 for none: a cap the inputs' dtype rounds to 0
    is the loop's to decline), each checked against its domain by binding: only their kinds here."""
    index = _ignore_index(options)
    smoothing, z_scale = options.get("label_smoothing", 0.0), options.get("lse_square_scale", 0.0)
    cap = options.get("softcap")
    numbers = (smoothing, z_scale) if cap is None else (smoothing, z_scale, cap)
    if index is None or not all(_fast._number(v) for v in numbers):
        return None
    return *index, float(smoothing), float(z_scale), -1.0 if cap is None else float(cap)


def _hinge_options(options):
    p, margin = options.get("p", 1), options.get("margin", 1.0)
    if p not in (1, 2) or type(p) is bool or not _fast._number(margin):
        return None
    return int(p), float(margin)


def _margin_option(options):
    margin = options.get("margin", 0.0)
    return (float(margin),) if _fast._number(margin) else None


def _cosine_options(options):
    """margin, and 0 and the squared norms' 1e-12 (in the inputs' dtype)."""
    margin = options.get("margin", 0.0)
    return (float(margin), 0.0, _COSINE_EMBEDDING_EPS) if _fast._number(margin) else None


def _triplet_options(options):
    """p = 2 without the distance swap; margin, eps, and 0 and the norm's floor 1e-30 (in the inputs' dtype)."""
    p, margin, eps = options.get("p", 2), options.get("margin", 1.0), options.get("eps", 1e-6)
    if (p != 2 or type(p) is bool or options.get("swap", False) is not False
            or not (_fast._number(margin) and _fast._number(eps))):
        return None
    return float(margin), float(eps), 0.0, 1e-30


NLL = _HandLane("_nll_rows", _unweighted(_ignore_index), _class_rows(False))
CROSS_ENTROPY = _HandLane("_cross_entropy_rows", _unweighted(_cross_entropy_options), _class_rows(False))
MULTICLASS_HINGE = _HandLane("_multiclass_hinge_rows", _unweighted(_hinge_options), _class_rows(False))
MULTILABEL_MARGIN = _HandLane("_multilabel_margin_rows", lambda options: (1.0,), _class_rows(True))
MARGIN_RANKING = _HandLane("_margin_ranking_pairs", _margin_option, _same, inputs=2, flat=True)  # (any shape)
# (N, D) embeddings
COSINE_EMBEDDING = _HandLane("_cosine_embedding_rows", _cosine_options,
                             lambda a, b, t: a.ndim == 2 and _same(a, b) and t.shape == a.shape[:1] and t.dtype.kind in "fi",
                             inputs=2)
TRIPLET_MARGIN = _HandLane("_triplet_margin_rows", _triplet_options, lambda a, p, n: a.ndim == 2 and _same(a, p, n),
                           inputs=3)
