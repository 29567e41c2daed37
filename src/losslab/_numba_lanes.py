"""Hand-written compiled lanes: one Numba loop computes the value and writes the gradients of a small call, where the
NumPy fast paths take a dozen NumPy operations (gathers, scatters into zeros, masks), whose per-operation cost is
most of a small call's (torch CPU tensors: ``losslab.torch._function.lane`` runs them; ``_fast._Lane`` is the
generated lane of the elementwise losses, with the same ``plan`` and ``run``). For four class-index row losses,
nll, cross_entropy, multiclass_hinge and multilabel_margin, over the rows of an (N, C) float32/float64 input with
(N,) integer targets ((N, C) for multilabel_margin); for margin_ranking, over its pairs; for triplet_margin (p = 2,
no swap), over the rows of its three (N, D) embeddings.

Written by hand: the row losses' definitions are their ``terms`` and ``grad_terms`` over a class axis
(losses/classification.py), margin_ranking and triplet_margin have three arguments (and triplet_margin a norm over
each row): the elementwise code generator covers none of them. tests/test_engines.py holds each loop to its loss's reference path on random inputs and every option the
lane takes.

Taken: C-contiguous arrays, at most ``_fast.DIRECT_SMALL_ELEMENTS`` scores (above it the NumPy paths' threads are
faster; of a large nll call, only the gradient is a loop here, ``nll_grad``, over the thread pool), no class weight,
reduction mean or sum; margin_ranking's targets in the inputs' dtype. Declined (the usual flow then computes the call, or raises its documented error): a target out of range,
a NaN or infinite score, Numba missing or switched off. Loops are compiled on first use (Numba imported then, as
in ``_numba``) and cached on disk.
"""

from __future__ import annotations

import math

import numpy as np

from . import _fast, _numba

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


def _triplet_margin_rows(a, p, n, margin, eps, zero, tiny, mean, largest, ga, gp, gn):
    """triplet_margin with p = 2, no swap: d(x, y) = max(||x - y + eps||, 1e-15) (the reference's safe norm), z = d(a, p)
    - d(a, n) + margin, l = max(0, z); where z > 0 the gradients -u v / d(a, p) for the positive (v = a - p + eps),
    u w / d(a, n) for the negative (w = a - n + eps) and minus their sum for the anchor (u = 1 / N for the mean, 1
    for the sum). The distances and z in the inputs' dtype (``zero`` and ``tiny``, 1e-30, given in it), as the
    reference computes them, so that a row is active exactly where the reference's is. NaN when the reference must
    take the call: a NaN or infinite z."""
    rows, width = a.shape
    u = 1.0 / rows if mean else 1.0
    total = 0.0  # float64 accumulator of the hinges
    for i in range(rows):
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
        if not math.isfinite(z):
            return math.nan
        c_ap = 0.0
        c_an = 0.0
        if z > 0:
            total += z
            c_ap = -u / d_ap
            c_an = u / d_an
        for k in range(width):
            g_p = (a[i, k] - p[i, k] + eps) * c_ap
            g_n = (a[i, k] - n[i, k] + eps) * c_an
            gp[i, k] = g_p
            gn[i, k] = g_n
            ga[i, k] = -(g_p + g_n)
    if total > largest:
        return math.nan  # the reference's sum in the inputs' dtype overflows
    return total * u


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


# The parallel loop's range: Numba resolves a global when it compiles, so ``_kernel`` sets this to numba.prange just
# before compiling (Numba is imported only then); as plain Python (range) the function computes the same, serially.
_prange = range


def _kernel(name: str):
    if not _KERNELS:
        global _prange
        numba = _numba.imported()
        _prange = numba.prange
        compiled = {function.__name__: numba.njit(cache=True, nogil=True, error_model="numpy")(function)
                    for function in (_nll_rows, _cross_entropy_rows, _multiclass_hinge_rows, _multilabel_margin_rows,
                                     _margin_ranking_pairs, _triplet_margin_rows, _unit_interval)}
        compiled["_nll_grad_rows"] = numba.njit(cache=True, nogil=True, parallel=True)(_nll_grad_rows)
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
    float dtype, C-contiguous, at most DIRECT_SMALL_ELEMENTS elements), ``flat`` (the loop reads 1-D arrays) and
    ``inputs`` (how many gradients it writes)."""

    def __init__(self, kernel: str, arguments, accepts, inputs: int = 1, flat: bool = False):
        self.kernel, self.arguments, self.accepts, self.inputs, self.flat = kernel, arguments, accepts, inputs, flat

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
        if dt not in _fast._FLOATS or x.size == 0 or x.size > _fast.DIRECT_SMALL_ELEMENTS or not self.accepts(*arrays):
            return NotImplemented
        for a in arrays:
            if not a.flags.c_contiguous:
                return NotImplemented
        grads = [np.empty(x.shape, dt) for _ in range(self.inputs)]
        loop, scalars = _kernel(self.kernel), plan[dt]
        if self.flat:
            total = loop(*[a.reshape(-1) for a in arrays], *scalars, reduction == "mean", _fast._LARGEST[dt],
                         *[g.reshape(-1) for g in grads])
        else:
            total = loop(*arrays, *scalars, reduction == "mean", _fast._LARGEST[dt], *grads)
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
TRIPLET_MARGIN = _HandLane("_triplet_margin_rows", _triplet_options, lambda a, p, n: a.ndim == 2 and _same(a, p, n),
                           inputs=3)
