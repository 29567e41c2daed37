"""The fast path of CTC (``ll.ctc``) on NumPy arrays, and so on PyTorch CPU tensors: the forward (alpha)
and backward (beta) recursions as one compiled Numba loop per sample, registered in ``_engines``
(imported by ``_fast``); held to the reference path by ``tests/test_fast.py`` and ``tests/test_ctc.py``.

Why compiled: the recursions are sequential over the T frames, and NumPy pays about 1 us an operation
whatever the array's size, so the reference's recursions (losses/sequence.py, about 45 operations a
frame; a NumPy-only rewrite in 18 was measured and still took 0.34 ms) take about 1 ms at T = 8, N = 2
where ``F.ctc_loss`` takes 0.1 ms for its forward and backward, and at T = 200, N = 64, C = 64, S = 50
their passes over each frame's arrays are slower than torch's per-sample loops. This kernel: 0.004 ms and about 25 ms (2 threads) there. It reads
each emission once, skips the trellis cells no path through the sample's ends can use (a path moves at
most two positions a frame), and sums the class posteriors straight into the gradient. Samples are split
over threads for large inputs (``_fast._run_blocks``; the kernel releases the GIL).

Same formulas as the reference, in the input's dtype (float32 stays float32): each step is the
reference's shifted logsumexp of three, m + log(e^(a-m) + e^(b-m) + e^(c-m)) with m the largest, and
the occupancies exp(alpha + beta~ - log p). The results agree with the reference to rounding, not
bitwise: libm's exp and log and NumPy's vectorised ones may differ in the last bit, and each class's
posterior is summed in another order. Measured in float32: 96% of the loss values bitwise equal, the rest
within 6 ulp; gradients within 7e-6 at T = 60 and 2.4e-4 at T = 200, where both paths are 9e-4 from the
float64 result on the same inputs (exp(alpha + beta~ - log p) cancels terms of size ~T); float64: 1e-15.

Taken: float32/float64 (T, N, C) log_probs without NaN or +inf (-inf is fine: an impossible step),
padded (N, S) or concatenated 1-D integer targets, (N,) integer lengths, every reduction and option.
Declined (``NotImplemented``: the reference computes it or raises its documented error): Numba not
installed or switched off (``LOSSLAB_NUMBA=0``, ``losslab.numpy_only()``), unbatched (T, C) input,
anything out of range, NaN or +inf in log_probs, and a gradient asked for an impossible alignment
without zero_infinity (the reference's NaN gradient is the pattern of inf - inf it computes).
"""

from __future__ import annotations

import math

import numpy as np

from . import _engines, _fast, _numba
from ._fast import _coefficient, _float_array, _reduction_ok, _run_blocks

_OPTIONS = {"blank", "zero_infinity"}
_KERNEL: list = []  # the compiled kernel, made on first use (Numba is imported lazily, as in _numba)


def _samples(x, labels, width, in_len, tgt_len, blank, lo, hi, want_grad, zero_infinity, mean, u, terms, w, grad):
    """The kernel (compiled by _kernel), for samples lo..hi-1 of (T, N, C) log_probs ``x``; ``labels`` the targets
    as one int64 array, padded rows of ``width`` labels (width < 0: concatenated). Writes each sample's loss
    term (-log p, 0 if infinite with zero_infinity) into terms and its weight in the reduction into w (1, or
    1 / max(S_n, 1) for the mean); with want_grad, -posterior * u * w_n into grad[:, n] (the reference's
    -posterior * (u * per_length)). Returns 0, or 1 when the reference must take the call: a length out of
    range, a label within a target length out of [0, C) or the blank, NaN or +inf in an emission the
    reference would read, or a gradient asked for an impossible alignment without zero_infinity.
    Each logsumexp of three is the reference's: m + log(e^(a-m) + e^(b-m) + e^(c-m)), m the largest, -inf
    when all are -inf; a term exp(-inf) = 0 is skipped (it adds nothing)."""
    frames, _, classes = x.shape
    zero = u - u  # constants in the dtype (a literal would be float64)
    one = math.exp(zero)
    ninf = math.log(zero)
    inf = -ninf
    longest = 1
    first = 0  # the sample's first label in ``labels`` (concatenated: the lengths before it summed)
    for n in range(hi):  # every length up to hi is checked: the labels read depend on them
        tn = in_len[n]
        sn = tgt_len[n]
        if tn < 0 or tn > frames or sn < 0 or (width >= 0 and sn > width):
            return 1
        if n < lo:
            first += sn
        else:
            longest = max(longest, 2 * sn + 1)
    alpha = np.empty((frames, longest), x.dtype)
    beta = np.empty(longest + 2, x.dtype)
    nbeta = np.empty(longest + 2, x.dtype)
    ext = np.empty(longest, np.int64)
    skip = np.zeros(longest + 2, np.bool_)
    for n in range(lo, hi):
        tn = in_len[n]
        sn = tgt_len[n]
        ln = 2 * sn + 1
        if width >= 0:
            first = n * width
        elif first + sn > labels.shape[0]:
            return 1
        for s in range(ln):  # the extended labels: blank, y_1, blank, ..., y_S, blank
            if s % 2 == 0:
                ext[s] = blank
                skip[s] = False
            else:
                label = labels[first + s // 2]
                if label < 0 or label >= classes or label == blank:
                    return 1
                ext[s] = label
                skip[s] = s >= 3 and label != labels[first + s // 2 - 1]
        skip[ln] = False
        skip[ln + 1] = False
        first += sn
        if mean:  # the reference's 1.0 / float(max(S_n, 1)) in the dtype (the store rounds it as astype does)
            w[n] = max(sn, 1)
            w[n] = one / w[n]
        else:
            w[n] = one
        lp = zero if sn == 0 else ninf  # no frames: the empty path, probability 1 for an empty target
        if tn > 0:
            # forward. A cell (t, s) below position ln - 2 - 2 (tn - 1 - t) cannot reach the ends by the last
            # frame, and one above 2 t + 1 cannot be reached: the reference's values there only meet
            # beta~ = -inf or are -inf, and the cells computed here read only computed ones. Every emission
            # the reference reads (t < tn, s < ln) is checked for NaN and +inf, which it propagates.
            for s in range(ln):
                e = x[0, n, ext[s]]
                if not e < inf:
                    return 1
                if s < 2:
                    alpha[0, s] = e
            for t in range(1, tn):
                s0 = max(0, ln - 2 - 2 * (tn - 1 - t))
                s1 = min(ln, 2 * t + 2)
                done = min(ln, 2 * t)  # the end of the cells computed at t - 1
                for s in range(ln):
                    e = x[t, n, ext[s]]
                    if not e < inf:
                        return 1
                    if s < s0 or s >= s1:
                        continue
                    a = alpha[t - 1, s] if s < done else ninf
                    b = alpha[t - 1, s - 1] if s >= 1 and s - 1 < done else ninf
                    c = alpha[t - 1, s - 2] if skip[s] and s - 2 < done else ninf
                    alpha[t, s] = e + _lse3(a, b, c, ninf)
            # log p: the logsumexp of alpha at the last frame over the ends 2 S and 2 S - 1 (2 S alone for S = 0)
            last = tn - 1
            s1 = min(ln, 2 * last + 2)
            a = alpha[last, ln - 1] if ln - 1 < s1 else ninf
            b = alpha[last, ln - 2] if ln >= 2 and ln - 2 < s1 else ninf
            m = a if a > b else b
            if m != ninf:
                total = math.exp(a - m)
                if ln >= 2:
                    total = math.exp(b - m) + total
                m = m + math.log(total)
            lp = m
        terms[n] = zero if zero_infinity and lp == ninf else -lp
        if not want_grad:
            continue
        for t in range(frames):
            for k in range(classes):
                grad[t, n, k] = zero
        if tn > 0 and lp == ninf:
            if not zero_infinity:
                return 1  # the reference's NaN gradient (inf - inf) of an impossible alignment
        elif tn > 0:
            # backward: r = beta~_t(s), the log-probability of the path's rest after frame t, and
            # beta = x[t] + r; the occupancies exp(alpha + r - log p) summed per class into grad
            for s in range(longest + 2):
                beta[s] = ninf
                nbeta[s] = ninf
            for t in range(last, -1, -1):
                s0 = max(0, ln - 2 - 2 * (last - t))
                s1 = min(ln, 2 * t + 2)
                for s in range(s0, ln):
                    if t == last:
                        r = zero
                    else:
                        r = _lse3(beta[s], beta[s + 1], beta[s + 2] if skip[s + 2] else ninf, ninf)
                    nbeta[s] = x[t, n, ext[s]] + r
                    if s < s1 and r != ninf:
                        a = alpha[t, s]
                        if a != ninf:
                            grad[t, n, ext[s]] += math.exp(a + r - lp)
                beta, nbeta = nbeta, beta
        scale = u * w[n]  # -posterior * scale, as the reference (a signed 0 where nothing is occupied)
        for t in range(frames):
            for k in range(classes):
                grad[t, n, k] = -grad[t, n, k] * scale
    return 0


def _lse3(a, b, c, ninf):
    """The reference's logsumexp of three: m + log(e^(a-m) + e^(b-m) + e^(c-m)), m the largest, -inf when all
    are -inf; c = -inf (a skip not allowed) adds no term."""
    m = a if a > b else b
    m = m if m > c else c
    if m == ninf:
        return m
    total = math.exp(a - m) + math.exp(b - m)
    if c != ninf:
        total = total + math.exp(c - m)
    return m + math.log(total)


def _kernel():
    if not _KERNEL:
        from numba import njit

        global _lse3  # compiled first: the kernel calls it (inlined), as Numba resolves globals when it compiles
        _lse3 = njit(inline="always", cache=True)(_lse3)
        _KERNEL.append(njit(nogil=True, cache=True)(_samples))
    return _KERNEL[0]


def _lengths(value, batch: int):
    """(N,) int64 lengths (their range is checked by the kernel), or None."""
    if type(value) is not np.ndarray:
        if type(value) not in (list, tuple):
            return None
        try:
            value = np.asarray(value)
        except (TypeError, ValueError, OverflowError):
            return None
    if value.dtype.kind not in "iu" or value.shape != (batch,):
        return None
    return np.ascontiguousarray(value, dtype=np.int64)  # the kernel's one signature


def ctc(args, options, reduction, normalizer, with_grad):
    """CTC on (T, N, C) float32/float64 log_probs, padded or concatenated targets; every option."""
    if (not (_numba.AVAILABLE and _fast._settings.compiled) or len(args) != 4 or options.keys() - _OPTIONS
            or not _reduction_ok(reduction, normalizer)):
        return NotImplemented
    x, targets, input_lengths, target_lengths = args
    blank = options.get("blank", 0)
    zero_infinity = options.get("zero_infinity", False)
    if type(blank) is not int or type(zero_infinity) is not bool or not _float_array(x) or x.ndim != 3:
        return NotImplemented
    frames, batch, classes = x.shape
    if (not batch or not frames or not 0 <= blank < classes or type(targets) is not np.ndarray
            or targets.dtype.kind not in "iu" or targets.ndim not in (1, 2)
            or (targets.ndim == 2 and targets.shape[0] != batch)):
        return NotImplemented
    in_len = _lengths(input_lengths, batch)
    tgt_len = _lengths(target_lengths, batch)
    if in_len is None or tgt_len is None:
        return NotImplemented
    labels = targets.reshape(-1) if targets.dtype == np.int64 else targets.astype(np.int64).reshape(-1)
    width = targets.shape[1] if targets.ndim == 2 else -1
    dt = x.dtype
    coefficient = _coefficient(reduction, batch, normalizer)  # u = d(value)/d(term n) (times w_n for the mean)
    terms = np.empty(batch, dt)
    w = np.empty(batch, dt)
    grad = np.empty(x.shape, dt) if with_grad else np.empty((0, 0, 0), dt)
    kernel = _kernel()
    args = (x if x.flags.c_contiguous else np.ascontiguousarray(x), labels, width, in_len, tgt_len, blank)
    tail = (with_grad, zero_infinity, reduction == "mean", dt.type(coefficient), terms, w, grad)
    if width < 0 and int(tgt_len.sum()) != labels.shape[0]:
        return NotImplemented  # concatenated targets must hold sum(target_lengths) labels
    work = frames * (2 * labels.shape[0] + batch)  # the trellis cells, at most
    if work < _fast.PARALLEL_MIN_ELEMENTS or _fast.get_num_threads() == 1 or batch == 1:
        status = kernel(*args, 0, batch, *tail)
    else:
        statuses = []
        _run_blocks(batch, -(-batch // _fast.get_num_threads()), work,
                    lambda lo, hi: statuses.append(kernel(*args, lo, hi, *tail)))
        status = max(statuses)
    if status:
        return NotImplemented  # the reference computes it, or raises its documented error
    if reduction == "none":
        value = terms
    elif reduction == "sum":  # np.add.reduce: np.sum without its wrapper (the same pairwise sum)
        value = np.add.reduce(terms)
    else:  # each sample's loss divided by its target length (at least 1), as PyTorch's
        value = np.add.reduce(terms * w) * coefficient
    return (value, grad) if with_grad else value


_engines.register_fast_path("ctc", "numpy", ctc)
