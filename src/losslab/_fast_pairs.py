"""Fast NumPy paths for the losses of aligned pairs of scores (preference and ranking):
fused, cache-blocked value and gradient passes that register themselves in ``_engines``
(imported by ``_fast``). Each is held to the reference path by ``tests/test_fast.py``.

Every loss here is elementwise over inputs of one shape, with gradients for two of them: the inputs
are cut into blocks of PAIR_BLOCK_BYTES per array, and each block goes through the whole formula
(scratch buffers of one block, reused per thread) and writes its gradients while it sits in cache.
DPO and SimPO are the log-sigmoid loss of a score z, written once (``_fast._log_sigmoid_terms``, on w = -z,
which soft_margin's block uses too).
"""

from __future__ import annotations

import math

import numpy as np

from . import _engines, _numba_lanes
from ._fast import _blocks, _coefficient, _finish, _float_array, _log_sigmoid_terms, _number, _reduction_ok

# per array (128K float32, the elementwise engine's block): a block's dozen ufunc calls each give up and take back the
# GIL, and with two threads the handovers, not the cache, set the cost of small blocks. 4M elements, 2 threads (Intel
# Xeon, 2 MiB L2 a core), value and gradients: dpo 28.2 -> 19.5 ms and margin_ranking 23.1 -> 17.0 ms at 4M elements,
# dpo 5.3 -> 3.7 at 1M and 90 -> 71 at 16M, from 1 << 17 (where a DPO block of 4 inputs, 2 gradients and 3 scratch
# arrays stayed in L2) to 1 << 19; 1 << 20, 1 << 21 no better
PAIR_BLOCK_BYTES = 1 << 19


def _aligned(arrays) -> bool:
    """Plain NumPy float32/float64 arrays of one dtype and one non-empty shape (no broadcasting)."""
    first = arrays[0]
    if not _float_array(first) or first.size == 0:
        return False
    return all(type(a) is np.ndarray and a.dtype == first.dtype and a.shape == first.shape for a in arrays[1:])


def _run(kernel, arrays, n_grads: int, n_tmp: int, reduction, normalizer, with_grad: bool):
    """Run ``kernel(inputs, l, grads, u, tmp)`` over blocks of the flattened ``arrays``: it fills l (the
    per-item losses) and, with grads, each gradient already scaled by u = d(value)/d(l_i); tmp are
    scratch buffers of the block's length. A kernel returns False for a block it cannot take (values out of
    the reference's domain). Returns the value, or (value, gradients) as the reference path does."""
    x = arrays[0]
    dt, shape, n = x.dtype, x.shape, x.size
    flat = [a.ravel() for a in arrays]  # views of contiguous arrays (never written)
    u = _coefficient(reduction, n, normalizer)
    keep = reduction == "none"
    grads = [np.empty(n, dt) for _ in range(n_grads)] if with_grad else None
    block = PAIR_BLOCK_BYTES // dt.itemsize
    per_item = np.empty(n, dt) if keep else None  # else a scratch block per thread

    def run_block(lo: int, hi: int, tmp):
        tmp = list(tmp)
        lb = per_item[lo:hi] if keep else tmp.pop()
        if hi - lo == n:  # one block: the whole arrays, no views to make
            ok = kernel(flat, lb, grads, u, tmp)
        else:
            ok = kernel([a[lo:hi] for a in flat], lb, grads and [g[lo:hi] for g in grads], u, tmp)
        return lb.sum() if ok is not False else dt.type(np.nan)

    partial = _blocks(n, block, n, run_block, lambda r: [np.empty(r, dt) for _ in range(n_tmp + (not keep))])
    total = sum(partial, dt.type(0))  # in dt on NumPy 1.x too
    if not math.isfinite(total):
        return NotImplemented  # NaN or inf inputs, or values out of domain: the reference path defines the result
    value = _finish(total, per_item.reshape(shape) if keep else None, reduction, u, dt)
    return (value, tuple(g.reshape(shape) for g in grads)) if with_grad else value


# -- DPO (sigmoid, hinge, ipo, robust) --------------------------------------------------------------------

_DPO_OPTIONS = frozenset({"beta", "loss_type", "label_smoothing"})


def dpo(args, options, reduction, normalizer, with_grad):
    """Four same-shape float arrays (policy chosen/rejected, reference chosen/rejected); every loss_type."""
    if len(args) != 4 or not _reduction_ok(reduction, normalizer) or not _aligned(args):
        return NotImplemented
    beta = options.get("beta", 0.1)
    loss_type = options.get("loss_type", "sigmoid")
    e = options.get("label_smoothing", 0.0)
    if (not _DPO_OPTIONS.issuperset(options) or not _number(beta) or not _number(e)
            or type(loss_type) is not str):  # its choices were checked against the spec (Loss._bind)
        return NotImplemented
    if e and loss_type in ("hinge", "ipo"):
        return NotImplemented  # the reference path refuses it
    c = -e if loss_type == "sigmoid" else e / (1.0 - 2.0 * e)  # robust: see _log_sigmoid_terms
    shift = 1.0 / (2.0 * beta)

    def kernel(ins, l, grads, u, tmp):
        pc, pr, rc, rr = ins
        w, t = tmp
        np.subtract(pc, rc, out=w)
        np.subtract(pr, rr, out=t)
        w -= t  # D = (pc - rc) - (pr - rr), as the reference
        g = grads[0] if grads else None
        if loss_type == "ipo":  # (D - 1/(2 beta))^2;  dl/dD = 2 (D - 1/(2 beta))
            w -= shift
            np.multiply(w, w, out=l)
            if g is not None:
                np.multiply(w, 2.0 * u, out=g)
        elif loss_type == "hinge":  # max(0, 1 - z);  dl/dD = -beta [z < 1], i.e. where 1 - z > 0
            w *= -beta
            w += 1.0
            np.maximum(w, 0.0, out=l)
            if g is not None:
                np.greater(w, 0.0, out=g)
                g *= -beta * u
        else:  # dl/dD = beta dl/dz = -beta (s(-z) + c)
            w *= -beta
            _log_sigmoid_terms(w, l, g, c, t)
            if g is not None:
                g *= -beta * u
        if g is not None:
            np.negative(g, out=grads[1])

    return _run(kernel, args, 2, 2, reduction, normalizer, with_grad)


# -- SimPO and ORPO ----------------------------------------------------------------------------------------


def simpo(args, options, reduction, normalizer, with_grad):
    """The log-sigmoid loss of z = beta (c - r) - gamma; dl/dc = -dl/dr = beta dl/dz."""
    if len(args) != 2 or not _reduction_ok(reduction, normalizer) or not _aligned(args):
        return NotImplemented
    beta, gamma = options.get("beta", 2.0), options.get("gamma", 0.5)
    if not {"beta", "gamma"}.issuperset(options) or not (_number(beta) and _number(gamma)):
        return NotImplemented

    def kernel(ins, l, grads, u, tmp):
        chosen, rejected = ins
        w, scratch = tmp
        np.subtract(rejected, chosen, out=w)
        w *= beta
        if gamma:
            w += gamma  # w = -z = gamma - beta (c - r)
        g = grads[0] if grads else None
        _log_sigmoid_terms(w, l, g, 0.0, scratch)
        if g is not None:
            g *= -beta * u
            np.negative(g, out=grads[1])

    return _run(kernel, args, 2, 2, reduction, normalizer, with_grad)


def orpo(args, options, reduction, normalizer, with_grad):
    """lam softplus(-R), R = lo(c) - lo(r), the log-odds lo(x) = x - log(1 - e^x) = -log(e^-x - 1): one expm1
    and one log per input, accurate at both ends (the reference's two-branch log(1 - e^x) in one form), and
    lo'(x) = 1 / (1 - e^x) = 1 + 1 / (e^-x - 1). Declines log-probabilities >= 0 (no log-odds: the reference
    names them), NaN, and those so negative that e^-x overflows (the reference computes them)."""
    if len(args) != 2 or not _reduction_ok(reduction, normalizer) or not _aligned(args):
        return NotImplemented
    lam = options.get("lam", 0.1)
    if not {"lam"}.issuperset(options) or not _number(lam):
        return NotImplemented

    def kernel(ins, l, grads, u, tmp):
        chosen, rejected = ins
        w, scratch, em_c, em_r = tmp
        with np.errstate(all="ignore"):  # out-of-domain values give inf or NaN here, and are declined below
            np.negative(chosen, out=em_c)
            np.expm1(em_c, out=em_c)
            np.negative(rejected, out=em_r)
            np.expm1(em_r, out=em_r)
            np.log(em_c, out=w)
            np.log(em_r, out=scratch)
        w -= scratch  # w = -R = lo(r) - lo(c)
        if not math.isfinite(w.sum()):  # a log-probability >= 0, NaN, or e^-x overflowing
            return False
        g = grads[1] if grads else None  # s(-R) in dl/dr's buffer first
        _log_sigmoid_terms(w, l, g, 0.0, scratch)
        l *= lam
        if g is None:
            return True
        g *= lam * u  # push = lam u s(-R);  dl/dc = -push lo'(c),  dl/dr = push lo'(r)
        g_c = grads[0]
        np.divide(-1.0, em_c, out=g_c)
        g_c -= 1.0
        g_c *= g
        np.reciprocal(em_r, out=em_r)
        em_r += 1.0
        g *= em_r
        return True

    return _run(kernel, args, 2, 4, reduction, normalizer, with_grad)


# -- margin ranking ----------------------------------------------------------------------------------------


def margin_ranking(args, options, reduction, normalizer, with_grad):
    """max(0, z), z = -t (x1 - x2) + margin, targets +-1 (float or integer, same shape); the gradient passed at
    z = 0 (torch's clamp_min). Declines other target values: the reference path names them."""
    if len(args) != 3 or not _reduction_ok(reduction, normalizer):
        return NotImplemented
    x1, x2, targets = args
    if (not _aligned((x1, x2)) or type(targets) is not np.ndarray or targets.shape != x1.shape
            or targets.dtype.kind not in "fiu"):
        return NotImplemented
    margin = options.get("margin", 0.0)
    if not {"margin"}.issuperset(options) or not _number(margin):
        return NotImplemented
    dt = x1.dtype

    def kernel(ins, l, grads, u, tmp):
        a, b, t = ins
        w, check = tmp
        if t.dtype != dt:
            t = t.astype(dt)  # as the reference, which casts the targets to the inputs' dtype
        np.abs(t, out=check)
        if check.min() != 1.0 or check.max() != 1.0:
            return False
        np.subtract(b, a, out=w)
        w *= t
        if margin:
            w += margin  # z = t (x2 - x1) + margin
        np.maximum(w, 0.0, out=l)  # keeps a NaN (the call is then declined)
        if grads:  # dl/dx2 = -dl/dx1 = t [z >= 0]
            g1, g2 = grads
            np.greater_equal(w, 0.0, out=g2)
            g2 *= t
            if u != 1.0:
                g2 *= u
            np.negative(g2, out=g1)
        return True

    return _run(kernel, (x1, x2, targets), 2, 2, reduction, normalizer, with_grad)


margin_ranking.lane = _numba_lanes.MARGIN_RANKING  # the compiled lane of small calls (torch CPU tensors)
for _name, _path in {"dpo": dpo, "simpo": simpo, "orpo": orpo, "margin_ranking": margin_ranking}.items():
    _engines.register_fast_path(_name, "numpy", _path)
