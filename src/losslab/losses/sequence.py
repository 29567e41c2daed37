"""Sequence losses: connectionist temporal classification (CTC, Graves et al. 2006).

CTC scores a label sequence against per-frame class log-probabilities without a frame-level
alignment: the probability of the labels is the sum, over every frame-by-frame path that collapses
to them (merge repeats, then drop blanks), of the product of the frames' probabilities. The sum is
computed by the forward (alpha) recursion over the extended label (blank, y_1, blank, ..., y_S,
blank) in log space; the gradient by the forward-backward (alpha-beta) recursions. The loop runs
over time in Python; each step is vectorised over the batch and the extended-label positions, with
Array API operations only, so NumPy, PyTorch and JAX arrays share the one implementation.
"""

from __future__ import annotations

import math

import numpy as np

from .. import _checks as check
from .. import _stable, _xp
from .._loss import Loss, State, floating_input
from .._spec import Choices, Interval, LossSpec, OptionSpec

_NEG_INF = -math.inf


def _log_of_sum(xp, m, total):
    """m + log(total) for a sum of exponentials shifted by m, -inf where the sum is 0 (every term -inf),
    with the log never evaluated at 0 (JAX's autodiff of the value stays finite there); NaN kept."""
    empty = total == 0
    return xp.where(empty, xp.full_like(total, _NEG_INF), m + xp.log(xp.where(empty, xp.ones_like(total), total)))


def _safe_shift(xp, m):
    """The shift of a logsumexp, as a constant for autodiff (it cancels); 0 where it is not finite."""
    m = _stable._constant(m)
    return xp.where(xp.isfinite(m), m, xp.zeros_like(m))


def _lse3(xp, a, b, c):
    """log(e^a + e^b + e^c) elementwise: -inf where all three are -inf (no inf - inf), NaN kept."""
    m = _safe_shift(xp, xp.maximum(xp.maximum(a, b), c))
    return _log_of_sum(xp, m, xp.exp(a - m) + xp.exp(b - m) + xp.exp(c - m))


def _lse_rows(xp, a, mask):
    """log of the sum of e^a over the positions of each row where ``mask`` holds (-inf for none)."""
    neg = xp.full_like(a, _NEG_INF)
    a = xp.where(mask, a, neg)
    m = _safe_shift(xp, xp.max(a, axis=1, keepdims=True))
    return _log_of_sum(xp, m[:, 0], xp.sum(xp.exp(a - m), axis=1))


def _shift_right(xp, a, k: int):
    """a[:, s - k] at position s (-inf for s < k): the positions an alpha step comes from."""
    pad = xp.full((a.shape[0], min(k, a.shape[1])), _NEG_INF, dtype=a.dtype, device=_xp.device(a))
    return xp.concat([pad, a[:, : a.shape[1] - k]], axis=1) if a.shape[1] > k else pad


def _shift_left(xp, a, k: int):
    """a[:, s + k] at position s (-inf past the end): the positions a beta step comes from."""
    pad = xp.full((a.shape[0], min(k, a.shape[1])), _NEG_INF, dtype=a.dtype, device=_xp.device(a))
    return xp.concat([a[:, k:], pad], axis=1) if a.shape[1] > k else pad


_JAX_BODIES: dict = {}  # step -> its lax.scan body, made once: JAX reuses its trace of the same function


def _jax_body(step):
    body = _JAX_BODIES.get(step)
    if body is None:
        import jax.numpy as jnp

        def body(state, frame):
            carry, fixed = state
            carry, out = step(jnp, carry, fixed, frame)
            return (carry, fixed), out

        body = _JAX_BODIES[step] = body
    return body


def _scan(xp, step, carry, fixed: tuple, frames: tuple, reverse: bool = False):
    """(carry, the outputs stacked) of ``carry, out = step(xp, carry, fixed, frame_t)`` over the leading axis
    of the arrays ``frames``, forward or in reverse (outputs None where the step gives None). JAX arrays
    run as lax.scan: one compiled step rather than T unrolled ones, whose XLA compile time grows with T
    (seconds at T = 12 on a CPU); the steps are module-level functions taking every array as an argument,
    so JAX reuses its trace of them from call to call. NumPy and torch run the plain loop."""
    if _xp.backend_of(frames[0]) == "jax":
        import jax

        (carry, _), outs = jax.lax.scan(_jax_body(step), (carry, fixed), frames, reverse=reverse)
        return carry, outs
    count = frames[0].shape[0]
    outs = [None] * count
    for t in range(count - 1, -1, -1) if reverse else range(count):
        carry, outs[t] = step(xp, carry, fixed, tuple(f[t] for f in frames))
    if not count or outs[0] is None:
        return carry, None
    return carry, xp.stack(outs, axis=0)


def _alpha_step_value(xp, carry, fixed, frame):
    """One frame of the forward recursion: alpha_t from alpha_{t-1}, and log p for samples ending at t."""
    alpha, log_p = carry
    exists, ends, skip, in_len = fixed
    emit_t, t = frame
    neg = xp.full_like(alpha, _NEG_INF)
    came = _lse3(xp, alpha, _shift_right(xp, alpha, 1), xp.where(skip, _shift_right(xp, alpha, 2), neg))
    alpha = xp.where(exists, emit_t + came, neg)
    log_p = xp.where(in_len == t + 1, _lse_rows(xp, alpha, ends), log_p)
    return (alpha, log_p), None


def _alpha_step(xp, carry, fixed, frame):
    """_alpha_step_value, keeping alpha_t for the gradient."""
    carry, _ = _alpha_step_value(xp, carry, fixed, frame)
    return carry, carry[0]


def _beta_step(xp, beta, fixed, frame):
    """One frame of the backward recursion, from t + 1 to t, and the occupancies of frame t.
    beta: x[t+1, y'_s] + beta~_{t+1}(s), the log-probability of the path's rest from frame t + 1."""
    exists, ends, skip, last, log_p, counted = fixed
    emit_t, alpha_t, t = frame
    neg = xp.full_like(beta, _NEG_INF)
    zero = xp.zeros_like(beta)
    went = _lse3(xp, beta, _shift_left(xp, beta, 1), _shift_left(xp, xp.where(skip, beta, neg), 2))
    rest = xp.where(exists, xp.where(t == last, xp.where(ends, zero, neg), xp.where(t < last, went, neg)), neg)
    occupancy = xp.where((t <= last) & counted, xp.exp(alpha_t + rest - log_p), zero)
    return emit_t + rest, occupancy


def _interleave(xp, even, odd, last):
    """(N, S) and (N, S) -> (N, 2S + 1): even[0], odd[0], even[1], odd[1], ..., last."""
    n, s = odd.shape
    pairs = xp.reshape(xp.stack([even, odd], axis=-1), (n, 2 * s))
    return xp.concat([pairs, last], axis=1)


def _index_dtype(xp):
    """The default integer dtype: int64, or JAX's int32 without jax_enable_x64 (asking JAX for int64
    there warns and truncates)."""
    return xp.asarray(0).dtype


def _int_array(xp, name: str, value, like, what: str):
    arr = _xp.as_array(value, xp, like, name=name, hint=f"an integer array or a list of ints ({what})")
    if not _xp.is_integral(xp, arr):
        raise TypeError(f"{name} must hold integers ({what}), got dtype {arr.dtype}; convert it first "
                        "(NumPy: x.astype(np.int64), torch: x.long(), JAX: x.astype(jnp.int32))")
    return arr


def _lengths(xp, name: str, value, like, batch: int, unbatched: bool, high: int, high_what: str):
    """input_lengths / target_lengths as an (N,) array of the index dtype, shape and range checked."""
    arr = _int_array(xp, name, value, like, "one length per sample")
    if unbatched and tuple(arr.shape) in ((), (1,)):
        arr = xp.reshape(arr, (1,))
    elif unbatched:
        raise ValueError(f"{name} must be one length (an int, a 0-d array or shape (1,)) for unbatched (T, C) "
                         f"log_probs, got shape {tuple(arr.shape)}")
    elif tuple(arr.shape) != (batch,):
        raise ValueError(f"{name} must have shape (N,) = ({batch},), one length per sample of log_probs (T, N, C), "
                         f"got shape {tuple(arr.shape)}")
    check.values_between(name, arr, 0, high, f"a length is at least 0 and at most {high_what}")
    return xp.astype(arr, _index_dtype(xp))


def _padded_from_concatenated(xp, targets, lengths, batch: int):
    """(sum(lengths),) targets -> (N, max(lengths)) padded (the padding is masked out later)."""
    if not _xp.is_concrete(lengths):
        raise TypeError("concatenated 1-D targets need concrete target_lengths (their layout depends on the values), "
                        "but target_lengths is traced (jax.jit, torch.compile); pass padded (N, S) targets instead")
    lens = _xp.to_numpy(lengths).astype(np.int64)
    total = int(lens.sum())
    if targets.shape[0] != total:
        raise ValueError(f"concatenated 1-D targets must hold sum(target_lengths) = {total} labels, got "
                         f"{targets.shape[0]}; pass padded (N, S) targets, or the labels of every sample one after "
                         "the other")
    width = int(lens.max()) if batch else 0
    if width == 0:
        return xp.zeros((batch, 0), dtype=targets.dtype, device=_xp.device(targets))
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    index = np.minimum(starts[:, None] + np.arange(width)[None, :], total - 1)  # past a sample's end: masked later
    index = xp.asarray(index.reshape(-1), device=_xp.device(targets))
    return xp.reshape(xp.take(targets, index, axis=0), (batch, width))


def _check_labels(padded, lengths, num_classes: int, blank: int) -> None:
    """Every label within a target length is a class index in [0, C) other than the blank (the padding
    past a sample's length is ignored, as PyTorch does)."""
    if not (_xp.is_concrete(padded) and _xp.is_concrete(lengths)):
        return
    labels = _xp.to_numpy(padded)
    used = np.arange(labels.shape[1])[None, :] < _xp.to_numpy(lengths)[:, None]
    check.class_indices("targets", labels[used], num_classes)
    if (labels[used] == blank).any():
        raise ValueError(f"targets hold the blank index {blank} within a target's length; the blank is not a label "
                         "(every label must be a class other than blank): remove it from the labels, pass the "
                         "right blank=, or shorten target_lengths if it is padding")


# -- the recursions ---------------------------------------------------------------------------------------


def _extended(xp, x, labels, tgt_len, blank: int):
    """Per sample: the emissions x[t, n, y'_s] (T, N, L), which positions exist, which end a complete path,
    where a skip s-2 -> s is allowed (L = 2 S + 1 for the padded width S); and the labels (padding
    replaced by the blank) with the mask of those within the target length."""
    frames, batch, num_classes = x.shape
    width = labels.shape[1]
    dev = _xp.device(x)
    idx = labels.dtype
    k = xp.arange(width, dtype=idx, device=dev)
    used = k[None, :] < tgt_len[:, None]  # (N, S): labels within the target length
    lab = xp.where(used, labels, xp.full_like(labels, blank))  # padding -> blank, a valid index
    blanks = xp.full((batch, width), blank, dtype=idx, device=dev)
    ext = _interleave(xp, blanks, lab, xp.full((batch, 1), blank, dtype=idx, device=dev))
    length = 2 * width + 1
    pos = xp.arange(length, dtype=idx, device=dev)[None, :]
    exists = pos < 2 * tgt_len[:, None] + 1
    ends = (pos == 2 * tgt_len[:, None]) | (pos == 2 * tgt_len[:, None] - 1)
    no = xp.zeros((batch, width), dtype=xp.bool, device=dev)
    differs = xp.concat([no[:, :1], lab[:, 1:] != lab[:, :-1]], axis=1) if width > 1 else no
    skip = _interleave(xp, no, differs, xp.zeros((batch, 1), dtype=xp.bool, device=dev))
    rows = xp.arange(batch, dtype=idx, device=dev)[:, None] * num_classes
    flat = xp.reshape(x, (frames, batch * num_classes))
    emit = xp.reshape(xp.take(flat, xp.reshape(rows + ext, (-1,)), axis=1), (frames, batch, length))
    return emit, exists, ends, skip, lab, used


def _forward(xp, emit, exists, ends, skip, in_len, tgt_len, keep: bool):
    """log p(y_n | x_n) per sample, and the alphas (T, N, L) when ``keep``."""
    frames, batch, length = emit.shape
    dev = _xp.device(emit)
    neg = xp.full((batch, length), _NEG_INF, dtype=emit.dtype, device=dev)
    # input_length 0: the empty path, probability 1 for an empty target and 0 otherwise
    log_p = xp.where(tgt_len == 0, xp.zeros_like(neg[:, 0]), neg[:, 0])
    if not frames:
        return log_p, emit
    start = xp.arange(length, device=dev)[None, :] < 2
    alpha = xp.where(start & exists, emit[0], neg)  # alpha_0: the blank or the first label
    log_p = xp.where(in_len == 1, _lse_rows(xp, alpha, ends), log_p)
    times = xp.arange(1, frames, dtype=in_len.dtype, device=dev)
    (_, log_p), alphas = _scan(xp, _alpha_step if keep else _alpha_step_value, (alpha, log_p),
                               (exists, ends, skip, in_len), (emit[1:], times))
    if keep:
        alphas = alpha[None] if alphas is None else xp.concat([alpha[None], alphas], axis=0)
    return log_p, alphas


def _occupancy(xp, emit, exists, ends, skip, in_len, log_p, alphas, zero_infinity: bool):
    """exp(alpha_t(s) + beta~_t(s) - log p): the posterior probability that frame t sits at extended
    position s, (T, N, L); 0 at frames t >= input_length (and for zeroed infinite losses)."""
    frames, batch, length = emit.shape
    dev = _xp.device(emit)
    if not frames:
        return emit
    neg = xp.full((batch, length), _NEG_INF, dtype=emit.dtype, device=dev)
    counted = ~xp.isinf(log_p)[:, None] if zero_infinity else xp.ones((batch, 1), dtype=xp.bool, device=dev)
    fixed = (exists, ends, skip, in_len[:, None] - 1, log_p[:, None], counted)
    times = xp.arange(frames, dtype=in_len.dtype, device=dev)
    return _scan(xp, _beta_step, neg, fixed, (emit, alphas, times), reverse=True)[1]


def _posterior(xp, occ, lab, used, blank: int, num_classes: int):
    """The posterior probability of each class at each frame (T, N, C): the occupancies summed over the
    extended positions of each class (the blanks at even positions, the labels at odd ones)."""
    dev = _xp.device(occ)
    classes = xp.arange(num_classes, dtype=lab.dtype, device=dev)
    onehot = xp.astype((lab[:, :, None] == classes) & used[:, :, None], occ.dtype)  # (N, S, C)
    per_label = xp.permute_dims(xp.matmul(xp.permute_dims(occ[:, :, 1::2], (1, 0, 2)), onehot), (1, 0, 2))
    at_blank = xp.sum(occ[:, :, 0::2], axis=-1)[:, :, None]  # (T, N, 1)
    return per_label + xp.where(classes == blank, at_blank, xp.zeros_like(at_blank))


def _recursions(xp, x, labels, in_len, tgt_len, blank: int, zero_infinity: bool, posterior: bool):
    """log p(y_n | x_n) (N,), and with ``posterior`` the class posteriors (T, N, C) (else None)."""
    emit, exists, ends, skip, lab, used = _extended(xp, x, labels, tgt_len, blank)
    log_p, alphas = _forward(xp, emit, exists, ends, skip, in_len, tgt_len, posterior)
    if not posterior:
        return log_p, None
    occ = _occupancy(xp, emit, exists, ends, skip, in_len, log_p, alphas, zero_infinity)
    return log_p, _posterior(xp, occ, lab, used, blank, x.shape[2])


_JAX_RECURSIONS = []  # _recursions under jax.jit, made on first use


def _trellis(xp, st, posterior: bool):
    """_recursions on a prepared call. JAX runs it as one jit-compiled function (compiled once per shape,
    where eager JAX would compile each of its hundred operations); inside the user's own jit or grad it
    is inlined like any jitted function. NumPy is told not to warn about log(0) = -inf (an impossible
    step) or the NaN gradient of an impossible alignment (as PyTorch's): both are by design."""
    args = (st.x, st.labels, st.in_len, st.tgt_len, st.blank, bool(st.zero_infinity), posterior)
    if _xp.backend_of(st.x) == "jax":
        if not _JAX_RECURSIONS:
            import functools

            import jax
            import jax.numpy as jnp

            _JAX_RECURSIONS.append(jax.jit(functools.partial(_recursions, jnp), static_argnums=(4, 5, 6)))
        return _JAX_RECURSIONS[0](*args)
    if _xp.backend_of(st.x) != "numpy":  # torch (torch.compile cannot trace np.errstate)
        return _recursions(xp, *args)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _recursions(xp, *args)


class CTC(Loss):
    """Parameters: ``log_probs`` (T, N, C) per-frame log-probabilities (log_softmax over the C classes,
    blank included; the input differentiated), or (T, C) for one unbatched sequence; ``targets`` integer
    labels in [0, C) other than the blank: padded (N, S) (values past a sample's length are ignored), or
    the N label sequences concatenated as one 1-D array of sum(target_lengths) labels; (S,) unbatched;
    ``input_lengths`` (N,) ints in [0, T]: the frames of each sample; ``target_lengths`` (N,) ints in
    [0, S]: the labels of each sample (lists, tuples, or ints when unbatched, are accepted);
    ``blank=0``: the blank's class index; ``zero_infinity=False``: give an impossible alignment (a target
    needing more frames than it has) the loss 0 and the gradient 0 instead of inf.

    Reductions, as PyTorch's ``ctc_loss``: ``none`` returns each sample's -log p; ``sum`` their sum;
    ``mean`` divides each sample's loss by its target length (at least 1) and averages over the batch
    (with ``normalizer=K``: the sum of those quotients over K). The gradient is the true derivative with
    respect to ``log_probs`` (see Conventions); it is 0 at frames t >= input_length. No Hessian."""

    name = "ctc"
    inputs = ("log_probs",)
    spec = LossSpec(
        name="ctc",
        family="classification",
        tasks=("multiclass",),
        summary="Connectionist temporal classification: the negative log-probability of a label sequence summed over "
        "all its frame alignments (repeats merged, blanks dropped), for unsegmented sequences (Graves et al. 2006).",
        output_layer="log_softmax over the classes (blank included) at every time step",
        inputs={"log_probs": "log-probabilities (T, N, C) or (T, C), classes (blank included) on the last axis",
                "targets": "int labels in [0, C) other than blank: padded (N, S), concatenated (sum(target_lengths),), "
                           "or (S,) unbatched",
                "input_lengths": "int in [0, T] per sample, (N,)",
                "target_lengths": "int in [0, S] per sample, (N,)"},
        formula_latex=r"\ell_n = -\log \sum_{\pi \in \mathcal{B}^{-1}(y_n)} \prod_{t < T_n} e^{x_{t,n,\pi_t}},\quad "
        r"\alpha_t(s) = x_{t,y'_s} + \log\!\big(e^{\alpha_{t-1}(s)} + e^{\alpha_{t-1}(s-1)} + "
        r"[y'_s \ne b,\, y'_s \ne y'_{s-2}]\, e^{\alpha_{t-1}(s-2)}\big),\quad "
        r"\ell_n = -\log\big(e^{\alpha_{T_n-1}(2S_n)} + e^{\alpha_{T_n-1}(2S_n-1)}\big)",
        formula_text="l_n = -log p(y_n | x_n) = -log sum over paths pi collapsing to y_n of prod_{t < T_n} exp(x[t, n, pi_t])\n"
        "over the extended label y' = (b, y_1, b, y_2, ..., y_S, b) (b = blank), in log space:\n"
        "alpha_0(0) = x[0, b], alpha_0(1) = x[0, y_1];\n"
        "alpha_t(s) = x[t, y'_s] + logsumexp(alpha_{t-1}(s), alpha_{t-1}(s-1), alpha_{t-1}(s-2) if y'_s != b and y'_s != y'_{s-2})\n"
        "l_n = -logsumexp(alpha_{T_n-1}(2 S_n), alpha_{T_n-1}(2 S_n - 1))   (T_n = input length, S_n = target length)",
        gradient_latex=r"\partial\ell_n/\partial x_{t,n,c} = -\sum_{s:\,y'_s = c} \exp\big(\alpha_t(s) + "
        r"\tilde\beta_t(s) + \ell_n\big) \in [-1, 0],\quad \textstyle\sum_c \partial\ell_n/\partial x_{t,n,c} = -1 "
        r"\ (t < T_n)",
        gradient_text="dl_n/dx[t, n, c] = -sum over s with y'_s = c of exp(alpha_t(s) + beta~_t(s) + l_n)\n"
        "beta~_t(s) = log-probability of completing y' from position s after frame t (frame t's own x not included):\n"
        "beta~_{T_n-1}(s) = 0 for s in {2 S_n, 2 S_n - 1} (else -inf);\n"
        "beta~_t(s) = logsumexp over s2 in {s, s+1, s+2 (if allowed)} of x[t+1, y'_s2] + beta~_{t+1}(s2)\n"
        "= minus the posterior probability that frame t emits class c: in [-1, 0], summing to -1 over c at every "
        "frame t < T_n; 0 for t >= T_n",
        convex=False,
        smooth=True,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="Sequence labelling without a frame-level alignment, where the output is shorter than the input and "
        "in order: speech recognition, handwriting and text-line OCR, keyword spotting. The model emits per-frame "
        "log_softmax over the labels plus a blank.",
        peers={"pytorch": "torch.nn.functional.ctc_loss", "optax": "optax.ctc_loss (takes logits and paddings)",
               "keras": "keras.losses.CTC"},
        torch_module="CTCLoss",
        options=(
            OptionSpec("blank", "class index of the blank symbol", Interval(0, None, integer=True)),
            OptionSpec("zero_infinity", "impossible alignments (infinite loss) give loss 0 and gradient 0",
                       Choices((False, True))),
        ),
        conventions="The gradient is the true derivative with respect to log_probs (minus the posterior probability "
        "of each class at each frame); PyTorch's ctc_loss instead returns exp(log_probs) - posterior, the gradient "
        "with respect to the logits under the log_softmax it assumes before it. The two agree once pushed through "
        "log_softmax: g_logits = g - softmax(logits) sum_c g. An impossible alignment (a target needing more frames "
        "than input_length, counting a blank between repeated labels) has loss inf and a NaN gradient at its frames "
        "t < input_length, as PyTorch; zero_infinity=True makes both 0. reduction='mean' is PyTorch's: each "
        "sample's loss divided by its target length (at least 1), then the mean over the batch; 'none' returns the "
        "undivided losses. A zero-length target has loss -sum_t x[t, blank]; input_length 0 gives 0 (empty target) "
        "or inf. Concave in log_probs (-log of a sum of exponentials of linear functions), so not convex; >= 0 "
        "for log_probs that are normalised. Refused where PyTorch computes silently: labels out of [0, C) or equal "
        "to blank within a target length, and float targets or lengths. fp16/bf16 log_probs are computed in float32.",
    )

    def prepare(self, xp, log_probs, targets, input_lengths, target_lengths, *, blank=0, zero_infinity=False):
        x, dtype = floating_input(xp, "log_probs", log_probs)
        if x.ndim not in (2, 3):
            raise ValueError(f"log_probs must have shape (T, N, C) (time, batch, classes) or (T, C) for one sequence, "
                             f"got shape {tuple(x.shape)}")
        unbatched = x.ndim == 2
        if unbatched:
            x = x[:, None, :]
        frames, batch, num_classes = x.shape
        if not isinstance(blank, int):
            raise TypeError(f"blank must be a concrete int (it shapes the extended labels), got {type(blank).__name__}")
        if blank >= num_classes:
            raise ValueError(f"blank={blank} must be a class index in [0, {num_classes - 1}]: log_probs has "
                             f"C = {num_classes} classes on its last axis (blank included)")
        t = _int_array(xp, "targets", targets, x, "label indices")
        if unbatched and t.ndim != 1:
            raise ValueError(f"targets must have shape (S,) for unbatched (T, C) log_probs, got shape {tuple(t.shape)}")
        if not unbatched and t.ndim not in (1, 2):
            raise ValueError(f"targets must be padded (N, S) or concatenated 1-D (sum(target_lengths),) labels, got "
                             f"shape {tuple(t.shape)}")
        t = xp.astype(t, _index_dtype(xp))
        concatenated = not unbatched and t.ndim == 1
        padded = t[None, :] if unbatched else t
        if not concatenated and padded.shape[0] != batch:
            raise ValueError(f"targets must have one row per sample: shape (N, S) with N = {batch} (log_probs "
                             f"{tuple(x.shape)}), got shape {tuple(t.shape)}")
        in_len = _lengths(xp, "input_lengths", input_lengths, x, batch, unbatched, frames,
                          f"T = {frames}, the frames of log_probs")
        width_bound = t.shape[0] if concatenated else padded.shape[1]
        tgt_len = _lengths(xp, "target_lengths", target_lengths, x, batch, unbatched, width_bound,
                           f"S = {width_bound}, the labels in targets" if not concatenated else
                           f"{width_bound}, the length of the concatenated targets")
        if concatenated:
            padded = _padded_from_concatenated(xp, t, tgt_len, batch)
        _check_labels(padded, tgt_len, num_classes, blank)
        return State(x=x, labels=padded, in_len=in_len, tgt_len=tgt_len, blank=blank, zero_infinity=zero_infinity,
                     unbatched=unbatched, input_dtypes=(dtype,))

    # -- the Loss interface ------------------------------------------------------------------------------
    def _loss_terms(self, xp, st, log_p):
        loss = -log_p
        if st.zero_infinity:
            loss = xp.where(xp.isinf(loss), xp.zeros_like(loss), loss)
        return (xp.reshape(loss, ()) if st.unbatched else loss), st.x.shape[1]

    def _grad(self, xp, st, posterior, u):
        """d(sum_n u_n l_n)/dx = -u_n posterior[t, n, c]."""
        batch = st.x.shape[1]
        w = xp.reshape(u + xp.zeros((batch,), dtype=posterior.dtype, device=_xp.device(posterior)), (1, batch, 1))
        g = -posterior * w
        return g[:, 0, :] if st.unbatched else g

    def terms(self, xp, st):
        return self._loss_terms(xp, st, _trellis(xp, st, False)[0])

    def grad_terms(self, xp, st, u):
        return (self._grad(xp, st, _trellis(xp, st, True)[1], u),)

    def value_and_grads(self, xp, st, reduction, normalizer, ops=None):
        log_p, posterior = _trellis(xp, st, True)  # one forward pass for the value and the gradient
        terms, divisor = self._loss_terms(xp, st, log_p)
        value, u = self._reduced(xp, terms, divisor, st, reduction, normalizer)
        return value, (self._grad(xp, st, posterior, u),)

    def _reduced(self, xp, terms, divisor, st, reduction, normalizer):
        # The terms are the undivided per-sample losses (what "none" returns, as PyTorch). PyTorch's "mean"
        # first divides each by its target length (at least 1), so for "mean" the terms are scaled by
        # those weights before the base class's rule (divisor N, or the normalizer) and u = d(value)/d(terms)
        # carries the same weights; "none" and "sum" are the base class's.
        if reduction != "mean":
            return super()._reduced(xp, terms, divisor, st, reduction, normalizer)
        per_length = 1.0 / xp.astype(xp.maximum(st.tgt_len, xp.ones_like(st.tgt_len)), terms.dtype)
        if st.unbatched:
            per_length = xp.reshape(per_length, ())
        value, u = super()._reduced(xp, terms * per_length, divisor, st, reduction, normalizer)
        return value, u * per_length


ctc = CTC()

LOSSES = (ctc,)
