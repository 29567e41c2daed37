"""Ranking and similarity losses on embeddings: contrastive (pairs), triplet margin, InfoNCE
(CLIP's symmetric softmax) and SigLIP (pairwise sigmoid).

Embeddings are ``(N, D)`` (or ``(D,)`` for one pair/triplet where noted); gradients are returned
for every embedding input, as a tuple in argument order.
"""

from __future__ import annotations

import contextlib
import math

from .. import _checks as check
from .. import _stable, _xp
from .._loss import Loss, State, floating_input
from .._spec import Choices, Interval, LossSpec, OptionSpec
from ..definitions import pointwise
from ._elementwise import Elementwise

_PAIR_EPS = 1e-6  # torch.nn.functional.pairwise_distance adds it to the difference
_NORMALIZE_EPS = 1e-12  # torch.nn.functional.normalize's floor on the norm


def _embeddings(xp, names_values, allow_1d: bool):
    arrays, dtypes = [], []
    for name, value in names_values:
        x, dtype = floating_input(xp, name, value)
        if x.ndim not in ((1, 2) if allow_1d else (2,)):
            want = "(N, D) or (D,)" if allow_1d else "(N, D)"
            raise ValueError(f"{name} must be embeddings of shape {want}, got {tuple(x.shape)}")
        arrays.append(x)
        dtypes.append(dtype)
    first_name, first = names_values[0][0], arrays[0]
    for (name, _), x in zip(names_values[1:], arrays[1:]):
        if tuple(x.shape) != tuple(first.shape):
            raise ValueError(
                f"{first_name} and {name} must pair up item by item with the same embedding size, got "
                f"{tuple(first.shape)} and {tuple(x.shape)} (batch sizes or dimensions differ)"
            )
    return arrays, tuple(dtypes)


def _pnorm(xp, v, p):
    """||v||_p along the last axis, and its gradient d||v||/dv as ``direction * scale[..., None]``
    (a per-row scale, so a caller folds its own per-row factors in before the one full-size multiply);
    finite at v = 0."""
    if p == 2:
        d = _stable.safe_norm(xp, v)
        return d, v, 1.0 / d
    if p == 1:
        return xp.sum(xp.abs(v), axis=-1), xp.sign(v), None
    a = xp.abs(v)
    d = xp.sum(a**p, axis=-1) ** (1.0 / p)
    safe_d = xp.maximum(d, xp.full_like(d, 1e-30))
    safe_a = xp.maximum(a, xp.full_like(a, 1e-30)) if p < 1 else a
    # d/dv_k (sum |v|^p)^(1/p) = sign(v_k) |v_k|^(p-1) / ||v||^(p-1)
    return d, xp.sign(v) * safe_a ** (p - 1.0), 1.0 / safe_d ** (p - 1.0)


def _hinged(xp, z):
    """max(0, z), NaN kept (a comparison with NaN would pick 0)."""
    return _stable.keep_nan(xp, z, xp.where(z > 0, z, xp.zeros_like(z)))


def _scaled(direction, scale, factor):
    """direction * (factor * scale)[..., None]: one full-size multiply (scale None means 1)."""
    return direction * (factor if scale is None else factor * scale)[..., None]


class Contrastive(Loss):
    """Parameters: ``x1``, ``x2`` embeddings (N, D) or (D,); ``same`` (N,) or (): 1 for a similar
    pair, 0 for a dissimilar one; ``margin=1.0``. Distances as torch's pairwise_distance."""

    name = "contrastive"
    rows_are_items = True
    inputs = ("x1", "x2")
    spec = LossSpec(
        name="contrastive",
        family="ranking",
        tasks=("ranking",),
        summary="Contrastive pair loss (Hadsell, Chopra & LeCun 2006): pull similar pairs together, push "
        "dissimilar ones beyond the margin.",
        output_layer="embeddings (any real vectors)",
        inputs={"x1": "(N, D) real", "x2": "(N, D) real", "same": "1 (similar) or 0 (dissimilar), shape (N,)"},
        formula_latex=r"\ell = s\,d^2 + (1-s)\max(0,\ m - d)^2,\quad d = \lVert x_1 - x_2 + \epsilon\rVert_2",
        formula_text="l = s d^2 + (1 - s) max(0, margin - d)^2,   d = ||x1 - x2 + 1e-6||_2",
        gradient_latex=r"\partial\ell/\partial x_1 = 2\,\big[s - (1-s)\max(0, m-d)/d\big]\,(x_1 - x_2 + \epsilon) = -\partial\ell/\partial x_2",
        gradient_text="dl/dx1 = 2 [s - (1 - s) max(0, margin - d) / d] (x1 - x2 + eps) = -dl/dx2",
        convex=False,
        smooth=True,
        lower_bound=0.0,
        robust_to_outliers=False,
        when_to_use="Siamese networks for verification (same person? same product?) from labelled pairs.",
        peers={"pytorch": "none (torch.nn.CosineEmbeddingLoss / HingeEmbeddingLoss are variants)",
               "optax": "none", "keras": "keras.losses (none built in; tfa.losses.ContrastiveLoss)"},
        torch_module="ContrastiveLoss",
        options=(OptionSpec("margin", "distance dissimilar pairs must exceed", Interval(), 0.0, 5.0),),
        conventions="Without the 1/2 of the paper. eps = 1e-6 is added to the difference (torch's "
        "pairwise_distance), so identical embeddings give finite gradients.",
    )

    def prepare(self, xp, x1, x2, same, *, margin=1.0):
        (a, b), dtypes = _embeddings(xp, [("x1", x1), ("x2", x2)], allow_1d=True)
        s = _xp.as_array(same, xp, a, name="same", hint="1 (similar) or 0 (dissimilar) per pair, as numbers or bools")
        expected = tuple(a.shape[:-1])
        if tuple(s.shape) != expected:
            raise ValueError(f"same must have shape {expected} (one label per pair), got {tuple(s.shape)}")
        s = xp.astype(s, a.dtype)
        check.values_in("same", s, (0.0, 1.0), "use 1 for a similar pair and 0 for a dissimilar one")
        v = a - b + _PAIR_EPS
        return State(v=v, d=_stable.safe_norm(xp, v), s=s, margin=margin, input_dtypes=dtypes)

    def _push(self, xp, st):
        return _hinged(xp, st.margin - st.d)  # NaN kept: a NaN embedding reaches the loss

    def terms(self, xp, st):
        h = self._push(xp, st)
        # s d^2 is exactly 0 for a dissimilar pair, even where d^2 overflows (0 * inf would be NaN)
        pull = xp.where(st.s == 0, xp.zeros_like(st.d), st.s * st.d * st.d)
        return pull + (1.0 - st.s) * h * h, math.prod(st.d.shape)

    def grad_terms(self, xp, st, u):
        # d(d^2)/dv = 2 v;  d(h^2)/dv = -2 h v / d
        coef = 2.0 * (st.s - (1.0 - st.s) * self._push(xp, st) / st.d) * u
        g = coef[..., None] * st.v
        return g, -g


class TripletMargin(Loss):
    """Parameters: ``anchor``, ``positive``, ``negative`` embeddings (N, D) or (D,); ``margin=1.0``;
    ``p=2`` (the norm degree, > 0); ``eps=1e-6``; ``swap=False`` (use the harder of d(a, n) and
    d(p, n), Balntas et al. 2016). Distances as torch's pairwise_distance: ||x - y + eps||_p."""

    name = "triplet_margin"
    rows_are_items = True
    inputs = ("anchor", "positive", "negative")
    spec = LossSpec(
        name="triplet_margin",
        family="ranking",
        tasks=("ranking",),
        summary="Triplet margin loss: the anchor must be closer to the positive than to the negative by a margin.",
        output_layer="embeddings (any real vectors)",
        inputs={"anchor": "(N, D) real", "positive": "(N, D) real", "negative": "(N, D) real"},
        formula_latex=r"\ell = \max(0,\ d(a,p) - d(a,n) + m),\quad d(x,y) = \lVert x - y + \epsilon\rVert_p",
        formula_text="l = max(0, d(a, p) - d(a, n) + margin),   d(x, y) = ||x - y + eps||_p",
        gradient_latex=r"\partial\ell/\partial a = [\ell>0]\,(\nabla d(a,p) - \nabla d(a,n)),\ \nabla\lVert v\rVert_p = \operatorname{sign}(v)|v|^{p-1}/\lVert v\rVert_p^{p-1}",
        gradient_text="active = [d(a,p) - d(a,n) + margin > 0];  with g(v) = sign(v) |v|^(p-1) / ||v||_p^(p-1):\n"
        "dl/da = active (g(a - p + eps) - g(a - n + eps)),  dl/dp = -active g(a - p + eps),  dl/dn = active g(a - n + eps)",
        convex=False,
        smooth=False,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="Metric learning (face recognition, retrieval) from (anchor, positive, negative) triplets.",
        peers={"pytorch": "torch.nn.functional.triplet_margin_loss", "optax": "optax.losses.triplet_margin_loss",
               "keras": "none (tfa.losses.TripletSemiHardLoss)"},
        torch_module="TripletMarginLoss",
        options=(OptionSpec("margin", "required gap between the distances", Interval(), 0.0, 5.0),
                 OptionSpec("p", "norm degree", Interval(0.0, None, closed="neither"), 1.0, 3.0),
                 OptionSpec("eps", "added to the difference before the norm (pairwise_distance)", Interval()),
                 OptionSpec("swap", "use the harder of the two negatives' distances (distance swap)", Choices((False, True)))),
        conventions="At the hinge (loss exactly 0) the gradient is 0. With swap, ties pick d(a, n).",
    )

    def prepare(self, xp, anchor, positive, negative, *, margin=1.0, p=2, eps=1e-6, swap=False):
        (a, pos, neg), dtypes = _embeddings(xp, [("anchor", anchor), ("positive", positive), ("negative", negative)], allow_1d=True)
        return State(a=a, pos=pos, neg=neg, margin=margin, p=float(p), eps=eps, swap=swap, input_dtypes=dtypes)

    def _parts(self, xp, st):
        d_ap, *g_ap = _pnorm(xp, st.a - st.pos + st.eps, st.p)
        d_an, *g_an = _pnorm(xp, st.a - st.neg + st.eps, st.p)
        use_pn = g_pn = None
        if st.swap:
            d_pn, *g_pn = _pnorm(xp, st.pos - st.neg + st.eps, st.p)
            use_pn = d_pn < d_an
            d_an = xp.where(use_pn, d_pn, d_an)
        z = d_ap - d_an + st.margin
        return z, g_ap, g_an, g_pn, use_pn

    def terms(self, xp, st):
        z = self._parts(xp, st)[0]
        return _hinged(xp, z), math.prod(z.shape)

    def grad_terms(self, xp, st, u):
        return self._grads(xp, st, self._parts(xp, st), u)

    def value_and_grads(self, xp, st, reduction, normalizer, ops=None):
        parts = self._parts(xp, st)  # the distances and their gradients, once for value and gradient
        z = parts[0]
        value, u = self._reduced(xp, _hinged(xp, z), math.prod(z.shape), st, reduction, normalizer)
        return value, self._grads(xp, st, parts, u)

    def _grads(self, xp, st, parts, u):
        # dz/da = g(a - p) - g(a - n), dz/dp = -g(a - p), dz/dn = g(a - n): each gradient of a distance
        # is a direction times a per-row scale, into which the hinge's [z > 0] u is folded first
        z, g_ap, g_an, g_pn, use_pn = parts
        active = _stable.keep_nan(xp, z, xp.astype(z > 0, z.dtype)) * u
        gp = _scaled(*g_ap, -active)  # the sign folded into the per-row factor: one full-size pass
        if st.swap:  # the negative's distance came from d(a, n) or from d(p, n)
            from_pn = xp.astype(use_pn, z.dtype)
            g_neg_a = _scaled(*g_an, active * (1.0 - from_pn))
            g_neg_p = _scaled(*g_pn, active * from_pn)
            return -(gp + g_neg_a), gp - g_neg_p, g_neg_a + g_neg_p
        gn = _scaled(*g_an, active)
        return -(gp + gn), gp, gn  # the distances are translation invariant: d/da = -(d/dp + d/dn)


def _normalized(xp, x, normalize: bool):
    if not normalize:
        return x, None
    n = _stable.safe_norm(xp, x, floor=_NORMALIZE_EPS)[..., None]
    return x / n, n


def _through_normalize(xp, g, x_hat, n, raw):
    """Pull a gradient w.r.t. x_hat = x / max(||x||, eps) back to x."""
    if n is None:
        return g
    projected = (g - x_hat * xp.sum(x_hat * g, axis=-1, keepdims=True)) / n
    clamped = xp.sqrt(xp.sum(raw * raw, axis=-1, keepdims=True)) <= _NORMALIZE_EPS
    return xp.where(clamped, g / n, projected)


def _pair_options(xp, a, b, normalize):
    (x, y), dtypes = _embeddings(xp, [("a", a), ("b", b)], allow_1d=False)
    if x.shape[0] == 0:
        raise ValueError(f"a and b hold no pairs (shape {tuple(x.shape)}): the batch needs at least one pair")
    x_hat, nx = _normalized(xp, x, normalize)
    y_hat, ny = _normalized(xp, y, normalize)
    return State(x=x, y=y, x_hat=x_hat, y_hat=y_hat, nx=nx, ny=ny, input_dtypes=dtypes)


def _similarity_grads(xp, st, g_s, scale):
    # S = scale * x_hat y_hat^T: dL/dx_hat = scale G y_hat, dL/dy_hat = scale G^T x_hat
    gx = scale * (g_s @ st.y_hat)
    gy = scale * (xp.matrix_transpose(g_s) @ st.x_hat)
    return _through_normalize(xp, gx, st.x_hat, st.nx, st.x), _through_normalize(xp, gy, st.y_hat, st.ny, st.y)


class InfoNCE(Loss):
    """Parameters: ``a``, ``b`` paired embeddings (N, D) (row i of a matches row i of b);
    ``temperature=0.07`` (> 0); ``normalize=True`` (L2-normalise rows first, as CLIP).
    ``reduction="none"`` gives one value per pair i."""

    name = "info_nce"
    inputs = ("a", "b")
    spec = LossSpec(
        name="info_nce",
        family="ranking",
        tasks=("ranking",),
        summary="InfoNCE / CLIP loss: symmetric softmax cross-entropy over the batch's similarity matrix.",
        output_layer="embeddings (L2-normalised inside when normalize=True)",
        inputs={"a": "(N, D) real", "b": "(N, D) real"},
        formula_latex=r"S = \hat a \hat b^\top/\tau,\quad \ell_i = \tfrac12\big[\mathrm{CE}(S_{i\cdot}, i) + \mathrm{CE}(S_{\cdot i}, i)\big]",
        formula_text="S = a_hat b_hat^T / temperature   (N x N)\nl_i = [CE(S_i., i) + CE(S_.i, i)] / 2",
        gradient_latex=r"\partial L/\partial S_{ij} = \tfrac12 u_i(P_{ij} - \delta_{ij}) + \tfrac12 u_j(Q_{ij} - \delta_{ij})",
        gradient_text="dL/dS_ij = [u_i (P_ij - [i = j]) + u_j (Q_ij - [i = j])] / 2,  P = row softmax, Q = column softmax\n"
        "dL/da_hat = G b_hat / temperature,  dL/db_hat = G^T a_hat / temperature, then through the normalisation",
        convex=False,
        smooth=True,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="Contrastive pre-training of paired encoders (CLIP image-text, SimCLR views): every other "
        "item of the batch is a negative.",
        peers={"pytorch": "none (cross_entropy on the similarity matrix, both ways)", "optax": "none",
               "keras": "none"},
        torch_module="InfoNCELoss",
        options=(OptionSpec("temperature", "softmax temperature", Interval(0.0, None, closed="neither"), 0.01, 1.0),
                 OptionSpec("normalize", "L2-normalise the embeddings first", Choices((True, False))),),
        conventions="Rows are normalised as torch's F.normalize (norm floored at 1e-12).",
        pairwise_batch=True,
    )

    def prepare(self, xp, a, b, *, temperature=0.07, normalize=True):
        st = _pair_options(xp, a, b, normalize)
        st.temperature = temperature
        st.s = (st.x_hat @ xp.matrix_transpose(st.y_hat)) / temperature
        return st

    def terms(self, xp, st):
        eye = xp.eye(st.s.shape[0], dtype=st.s.dtype, device=_xp.device(st.s))
        # -log p of each matching pair, along rows and along columns (log_softmax: small and exact when confident)
        rows = -xp.sum(_stable.log_softmax(xp, st.s, axis=1) * eye, axis=1)
        cols = -xp.sum(_stable.log_softmax(xp, st.s, axis=0) * eye, axis=0)
        return 0.5 * (rows + cols), st.s.shape[0]

    def grad_terms(self, xp, st, u):
        n = st.s.shape[0]
        eye = xp.eye(n, dtype=st.s.dtype, device=_xp.device(st.s))
        u = xp.broadcast_to(xp.asarray(u), (n,))
        g = 0.5 * (u[:, None] * (_stable.softmax(xp, st.s, axis=1) - eye) + u[None, :] * (_stable.softmax(xp, st.s, axis=0) - eye))
        return _similarity_grads(xp, st, g, 1.0 / st.temperature)


class SigLIP(Loss):
    """Parameters: ``a``, ``b`` paired embeddings (N, D); ``t=10.0`` (> 0, the logit scale itself,
    not its log); ``bias=-10.0``; ``normalize=True``. ``reduction="none"`` gives one value per row i;
    ``mean`` divides the total by N (the SigLIP paper's normalisation)."""

    name = "siglip"
    inputs = ("a", "b")
    spec = LossSpec(
        name="siglip",
        family="ranking",
        tasks=("ranking",),
        summary="SigLIP loss: every (i, j) pair is its own binary classification, matched (i = j) or not.",
        output_layer="embeddings (L2-normalised inside when normalize=True)",
        inputs={"a": "(N, D) real", "b": "(N, D) real"},
        formula_latex=r"S = t\,\hat a \hat b^\top + b,\quad \ell_i = -\sum_j \log\sigma(z_{ij} S_{ij}),\ z_{ij} = 2[i=j]-1",
        formula_text="S = t a_hat b_hat^T + bias,  z_ij = +1 if i = j else -1\nl_i = -sum_j log sigmoid(z_ij S_ij)",
        gradient_latex=r"\partial L/\partial S_{ij} = -u_i\,z_{ij}\,\sigma(-z_{ij}S_{ij})",
        gradient_text="dL/dS_ij = -u_i z_ij sigmoid(-z_ij S_ij)\ndL/da_hat = t G b_hat,  dL/db_hat = t G^T a_hat, then through the normalisation",
        convex=False,
        smooth=True,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="Image-text pre-training without a batch-wide softmax (scales to large batches; "
        "each pair is an independent BCE).",
        peers={"pytorch": "none", "optax": "none", "keras": "none"},
        torch_module="SigLIPLoss",
        options=(OptionSpec("t", "logit scale (multiplier)", Interval(0.0, None, closed="neither"), 0.1, 20.0),
                 OptionSpec("bias", "logit bias (negative: most pairs do not match)", Interval(), -20.0, 5.0),
                 OptionSpec("normalize", "L2-normalise the embeddings first", Choices((True, False)))),
        pairwise_batch=True,
    )

    def prepare(self, xp, a, b, *, t=10.0, bias=-10.0, normalize=True):
        st = _pair_options(xp, a, b, normalize)
        n = st.x.shape[0]
        st.t_scale = t
        st.z = 2.0 * xp.eye(n, dtype=st.x.dtype, device=_xp.device(st.x)) - 1.0
        st.s = t * (st.x_hat @ xp.matrix_transpose(st.y_hat)) + bias
        return st

    def terms(self, xp, st):  # -log sigmoid(zS) = softplus(-zS)
        return xp.sum(_stable.softplus(xp, -st.z * st.s), axis=1), st.s.shape[0]

    def grad_terms(self, xp, st, u):
        u = xp.broadcast_to(xp.asarray(u), (st.s.shape[0],))
        g = -u[:, None] * st.z * _stable.sigmoid(xp, -st.z * st.s)
        return _similarity_grads(xp, st, g, st.t_scale)


# -- the rest of PyTorch's ranking and similarity losses --------------------------------------------------

_PM1_FIX = "targets are -1 (dissimilar / second ranked higher) or +1 (similar / first ranked higher)"


class HingeEmbedding(Elementwise):
    """Parameters: ``distances`` (e.g. the L1 distance of each pair), ``targets`` in {-1, +1} (same
    shape), ``margin=1.0``. PyTorch's hinge_embedding_loss: the mean over every element."""

    name = "hinge_embedding"
    definition = pointwise.HingeEmbedding
    inputs = ("distances",)
    mean_divides_by_weight_sum = False
    spec = LossSpec(
        name="hinge_embedding",
        family="ranking",
        tasks=("ranking",),
        summary="Hinge embedding loss: the distance itself for a similar pair, max(0, margin - distance) for a "
        "dissimilar one.",
        output_layer="a distance between two embeddings (e.g. torch.cdist or the L1 norm of their difference)",
        inputs={"distances": "real (usually >= 0)", "targets": "+1 (similar) or -1 (dissimilar), same shape"},
        formula_latex=r"\ell = \begin{cases}x & y = 1\\ \max(0,\ m - x) & y = -1\end{cases}",
        formula_text="l = x                  if t = 1\n    max(0, margin - x)  if t = -1",
        gradient_latex=r"\partial\ell/\partial x = 1\ (y = 1),\quad -[x \le m]\ (y = -1)",
        gradient_text="dl/dx = 1 if t = 1;  -1 if t = -1 and x <= margin, else 0",
        hessian_text="d2l/dx2 = 0 (almost everywhere)",
        convex=True,
        smooth=False,
        lower_bound=-math.inf,
        robust_to_outliers=True,
        when_to_use="Learning embeddings from similar/dissimilar pairs through a distance you compute (PyTorch's "
        "HingeEmbeddingLoss); contrastive squares both terms instead.",
        peers={"pytorch": "torch.nn.functional.hinge_embedding_loss", "optax": "none", "keras": "none"},
        torch_module="HingeEmbeddingLoss",
        options=(OptionSpec("margin", "distance dissimilar pairs must exceed", Interval(), 0.0, 5.0),),
        conventions="At x = margin for a dissimilar pair the gradient is -1: torch's clamp_min passes the gradient on "
        "its boundary. The loss of a similar pair is the distance itself, so it is bounded below only by the "
        "distances (0 for true distances).",
    )

    def prepare(self, xp, distances, targets, *, margin=1.0):
        st = self.elementwise_state(xp, distances, targets, None, name="distances", margin=margin)
        check.values_in("targets", st.t, (-1.0, 1.0), _PM1_FIX)
        return st


def _paired_targets(xp, targets, like, shape, what):
    t = _xp.as_array(targets, xp, like, name="targets", hint="+1 or -1 per " + what)
    if tuple(t.shape) != shape:
        raise ValueError(f"targets must have shape {shape} (one +1/-1 per {what}), got {tuple(t.shape)}")
    t = t if t.dtype == like.dtype else xp.astype(t, like.dtype)
    check.values_in("targets", t, (-1.0, 1.0), _PM1_FIX)
    return t


class MarginRanking(Loss):
    """Parameters: ``input1``, ``input2`` (scores, same shape), ``targets`` (+1: input1 should rank
    higher, -1: input2), ``margin=0.0``. PyTorch's margin_ranking_loss; the gradient is a tuple."""

    name = "margin_ranking"
    inputs = ("input1", "input2")
    spec = LossSpec(
        name="margin_ranking",
        family="ranking",
        tasks=("ranking",),
        summary="Margin ranking loss: the score of the item that should rank higher must exceed the other's by a margin.",
        output_layer="a real score per item (no activation)",
        inputs={"input1": "real scores", "input2": "real scores, same shape",
                "targets": "+1 (input1 ranks higher) or -1 (input2 does), same shape"},
        formula_latex=r"\ell = \max(0,\ -y\,(x_1 - x_2) + m)",
        formula_text="l = max(0, -t (x1 - x2) + margin)",
        gradient_latex=r"\partial\ell/\partial x_1 = -\partial\ell/\partial x_2 = -y\,[-y(x_1 - x_2) + m \ge 0]",
        gradient_text="dl/dx1 = -dl/dx2 = -t if -t (x1 - x2) + margin >= 0, else 0",
        convex=True,
        smooth=False,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="Pairwise learning to rank (RankNet's setting with a hinge): which of two items should come first.",
        peers={"pytorch": "torch.nn.functional.margin_ranking_loss", "optax": "none", "keras": "none"},
        torch_module="MarginRankingLoss",
        options=(OptionSpec("margin", "required gap between the two scores", Interval(), 0.0, 3.0),),
        conventions="On the boundary (-t (x1 - x2) + margin = 0) the gradient is passed, as torch's clamp_min.",
    )

    def prepare(self, xp, input1, input2, targets, *, margin=0.0):
        x1, d1 = floating_input(xp, "input1", input1)
        x2, d2 = floating_input(xp, "input2", input2)
        check.same_shape("input1", x1, "input2", x2)
        t = _paired_targets(xp, targets, x1, tuple(x1.shape), "pair")
        return State(z=-t * ((x1 if x1.dtype == x2.dtype else xp.astype(x1, x2.dtype)) - x2) + margin, t=t,
                     input_dtypes=(d1, d2))

    def terms(self, xp, st):
        return _hinged(xp, st.z), math.prod(st.z.shape)

    def grad_terms(self, xp, st, u):
        g = _stable.keep_nan(xp, st.z, xp.where(st.z >= 0, -st.t, xp.zeros_like(st.t))) * u
        return g, -g


_COSINE_EMBEDDING_EPS = 1e-12  # torch's cosine_embedding_loss adds it to each squared norm


class CosineEmbedding(Loss):
    """Parameters: ``x1``, ``x2`` embeddings (N, D) or (D,); ``targets`` (N,) or (): +1 for a similar
    pair, -1 for a dissimilar one; ``margin=0.0`` (in [-1, 1]). PyTorch's cosine_embedding_loss (its
    cosine adds 1e-12 to each squared norm); the gradient is a tuple."""

    name = "cosine_embedding"
    rows_are_items = True
    inputs = ("x1", "x2")
    spec = LossSpec(
        name="cosine_embedding",
        family="ranking",
        tasks=("ranking",),
        summary="Cosine embedding loss: raise the cosine of similar pairs to 1, push dissimilar pairs' cosine below a margin.",
        output_layer="embeddings (any real vectors)",
        inputs={"x1": "(N, D) real", "x2": "(N, D) real", "targets": "+1 (similar) or -1 (dissimilar), shape (N,)"},
        formula_latex=r"\ell = \begin{cases}1 - \cos(x_1, x_2) & y = 1\\ \max(0,\ \cos(x_1, x_2) - m) & y = -1\end{cases}",
        formula_text="cos = x1.x2 / sqrt((|x1|^2 + 1e-12)(|x2|^2 + 1e-12))\n"
        "l = 1 - cos                 if t = 1\n    max(0, cos - margin)     if t = -1",
        gradient_latex=r"\partial\cos/\partial x_1 = x_2/\sqrt{ab} - \cos\,x_1/a,\quad a = |x_1|^2+\epsilon,\ b = |x_2|^2+\epsilon",
        gradient_text="dcos/dx1 = x2 / sqrt(a b) - cos x1 / a  (a = |x1|^2 + 1e-12, b = |x2|^2 + 1e-12), and symmetrically;\n"
        "dl/dcos = -1 if t = 1;  1 if t = -1 and cos >= margin, else 0",
        convex=False,
        smooth=False,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="Learning embeddings whose direction, not length, carries the meaning (text, faces) from "
        "similar/dissimilar pairs.",
        peers={"pytorch": "torch.nn.functional.cosine_embedding_loss", "optax": "none",
               "keras": "none (keras.losses.CosineSimilarity is -cos for similar pairs)"},
        torch_module="CosineEmbeddingLoss",
        options=(OptionSpec("margin", "cosine that dissimilar pairs must stay below", Interval(-1.0, 1.0), -1.0, 1.0),),
        conventions="At cos = margin for a dissimilar pair the gradient is passed, as torch's clamp_min. The 1e-12 "
        "inside the norms keeps a zero embedding finite (its cosine is 0).",
    )

    def prepare(self, xp, x1, x2, targets, *, margin=0.0):
        (a, b), dtypes = _embeddings(xp, [("x1", x1), ("x2", x2)], allow_1d=True)
        t = _paired_targets(xp, targets, a, tuple(a.shape[:-1]), "pair")
        sq_a = xp.vecdot(a, a) + _COSINE_EMBEDDING_EPS  # vecdot: one pass, no a * a temporary
        sq_b = xp.vecdot(b, b) + _COSINE_EMBEDDING_EPS
        root = xp.sqrt(sq_a * sq_b)
        cos = xp.vecdot(a, b) / root
        return State(a=a, b=b, t=t, sq_a=sq_a, sq_b=sq_b, root=root, cos=cos, margin=margin, input_dtypes=dtypes)

    def terms(self, xp, st):
        push = st.cos - st.margin
        zero = xp.zeros_like(st.cos)
        value = xp.where(st.t > 0, 1.0 - st.cos, xp.where(push > 0, push, zero))
        return _stable.keep_nan(xp, st.cos, value), math.prod(st.cos.shape)

    def grad_terms(self, xp, st, u):
        slope = xp.where(st.t > 0, -xp.ones_like(st.cos),
                         xp.where(st.cos - st.margin >= 0, xp.ones_like(st.cos), xp.zeros_like(st.cos)))
        slope = _stable.keep_nan(xp, st.cos, slope) * u
        # dcos/da = b / root - cos a / sq_a: the per-row factors folded first, so each gradient is two multiplies and
        # a subtraction over (N, D)
        cross = slope / st.root
        return (st.b * cross[..., None] - st.a * (slope * st.cos / st.sq_a)[..., None],
                st.a * cross[..., None] - st.b * (slope * st.cos / st.sq_b)[..., None])


_COSINE_SIMILARITY_EPS = 1e-8  # torch's cosine_similarity floors each norm at it


# A distance's gradients are kept as combinations of full-size arrays with per-row coefficients,
# ((array, coefficient), ...) meaning sum(array * coefficient[..., None]): the loss folds its own per-row factors
# into the coefficients and adds the terms of one input up once (_combined), so each gradient costs a multiply
# per distinct array and an add between them, not a full-size pass per factor.


def _pairwise_distance(xp, x, y, p, eps):
    """torch's pairwise_distance ||x - y + eps||_p with its gradients for x and y (as combinations)."""
    d, direction, scale = _pnorm(xp, x - y + eps, p)
    k = xp.ones_like(d) if scale is None else scale
    return d, ((direction, k),), ((direction, -k),)


def _cosine_distance(xp, x, y):
    """1 - torch's cosine_similarity (norms floored at 1e-8) with its gradients for x and y (as combinations):
    d/dx = -y / (|x| |y|) + [|x| > 1e-8] cos x / |x|^2, and symmetrically (the derivative of a floored norm is 0)."""
    raw_x, raw_y = _stable.safe_norm(xp, x), _stable.safe_norm(xp, y)
    floor = xp.full(raw_x.shape, _COSINE_SIMILARITY_EPS, dtype=raw_x.dtype, device=_xp.device(raw_x))
    nx, ny = xp.maximum(raw_x, floor), xp.maximum(raw_y, floor)
    inv = 1.0 / (nx * ny)
    cos = xp.vecdot(x, y) * inv
    zero = xp.zeros_like(cos)
    k_xx = xp.where(raw_x > _COSINE_SIMILARITY_EPS, cos / (nx * nx), zero)
    k_yy = xp.where(raw_y > _COSINE_SIMILARITY_EPS, cos / (ny * ny), zero)
    return 1.0 - cos, ((y, -inv), (x, k_xx)), ((x, -inv), (y, k_yy))


def _times(terms, factor):
    """A combination with every coefficient times a per-row ``factor``."""
    return tuple((a, k * factor) for a, k in terms)


def _combined(*terms):
    """sum(array * coefficient[..., None]) over the terms, the coefficients of one array (by identity) added first."""
    merged: list = []
    for a, k in terms:
        for i, (b, c) in enumerate(merged):
            if b is a:
                merged[i] = (b, c + k)
                break
        else:
            merged.append((a, k))
    total = None
    for a, k in merged:
        term = a * k[..., None]
        total = term if total is None else total + term
    return total


class TripletMarginWithDistance(Loss):
    """Parameters: ``anchor``, ``positive``, ``negative`` (N, D) or (D,); ``distance_function`` "pairwise"
    (torch's pairwise_distance ||x - y + 1e-6||_p, PyTorch's default), "cosine" (1 - cosine_similarity) or,
    for torch tensors only, any callable (x, y) -> distances (autograd differentiates it); ``p=2`` (for
    "pairwise"); ``margin=1.0``; ``swap=False``. PyTorch's triplet_margin_with_distance_loss; the gradient
    is a tuple (anchor, positive, negative)."""

    name = "triplet_margin_with_distance"
    rows_are_items = True
    inputs = ("anchor", "positive", "negative")
    spec = LossSpec(
        name="triplet_margin_with_distance",
        family="ranking",
        tasks=("ranking",),
        summary="Triplet margin loss with a chosen distance: the p-norm distance or the cosine distance (or your own, "
        "on torch tensors).",
        output_layer="embeddings (any real vectors)",
        inputs={"anchor": "(N, D) real", "positive": "(N, D) real", "negative": "(N, D) real"},
        formula_latex=r"\ell = \max(0,\ d(a,p) - d(a,n) + m),\quad d = \lVert x - y + \epsilon\rVert_p\ \text{or}\ 1 - \cos(x, y)",
        formula_text="l = max(0, d(a, p) - d(a, n) + margin)\n"
        "d(x, y) = ||x - y + 1e-6||_p (pairwise)  or  1 - x.y / (max(|x|, 1e-8) max(|y|, 1e-8)) (cosine)",
        gradient_latex=r"\partial\ell/\partial a = [\ell>0]\,(\nabla_a d(a,p) - \nabla_a d(a,n))",
        gradient_text="active = [d(a,p) - d(a,n) + margin > 0]\n"
        "dl/da = active (d_x d(a, p) - d_x d(a, n)),  dl/dp = active d_y d(a, p),  dl/dn = -active d_y d(a, n)\n"
        "cosine: d_x (1 - cos) = -(y / (|x| |y|) - cos x / |x|^2)",
        convex=False,
        smooth=False,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="Metric learning from triplets when the embedding's direction matters (cosine), or with a distance "
        "of your own on torch tensors.",
        peers={"pytorch": "torch.nn.functional.triplet_margin_with_distance_loss", "optax": "none", "keras": "none"},
        torch_module="TripletMarginWithDistanceLoss",
        options=(OptionSpec("distance_function", "the distance between two embeddings", Choices(("pairwise", "cosine")),
                            callable_means="a function (x, y) -> distances, differentiated by torch autograd; torch "
                            "tensors only"),
                 OptionSpec("p", "the norm degree of the pairwise distance", Interval(0.0, None, closed="neither"), 1.0, 3.0),
                 OptionSpec("margin", "required gap between the distances", Interval(), 0.0, 3.0),
                 OptionSpec("swap", "use the harder of the two negatives' distances (distance swap)", Choices((False, True)))),
        conventions="At the hinge (loss exactly 0) the gradient is 0, as triplet_margin. With swap, ties pick d(a, n). "
        "Where a norm is at cosine_similarity's floor 1e-8 its derivative is 0. A callable distance is refused for "
        "NumPy and JAX arrays (no autograd for it there).",
    )

    def splits_into_rows(self, bound):
        # a named distance is per row; what a callable does across rows is its own business
        return isinstance(bound["distance_function"], str) and super().splits_into_rows(bound)

    def prepare(self, xp, anchor, positive, negative, *, distance_function="pairwise", p=2, margin=1.0, swap=False):
        if callable(distance_function):
            raise TypeError("distance_function: a Python callable is accepted for torch tensors only (torch autograd "
                            "differentiates it); for NumPy and JAX arrays use 'pairwise' or 'cosine'")
        (a, pos, neg), dtypes = _embeddings(xp, [("anchor", anchor), ("positive", positive), ("negative", negative)],
                                            allow_1d=True)
        return State(a=a, pos=pos, neg=neg, distance=distance_function, p=float(p), margin=margin, swap=swap,
                     input_dtypes=dtypes)

    def _distance(self, xp, st, x, y):
        if st.distance == "cosine":
            return _cosine_distance(xp, x, y)
        return _pairwise_distance(xp, x, y, st.p, _PAIR_EPS)

    def _parts(self, xp, st):
        d_ap, ga_ap, gp_ap = self._distance(xp, st, st.a, st.pos)
        d_an, ga_an, gn_an = self._distance(xp, st, st.a, st.neg)
        swapped = None
        if st.swap:
            d_pn, gp_pn, gn_pn = self._distance(xp, st, st.pos, st.neg)
            use_pn = d_pn < d_an
            d_an = xp.where(use_pn, d_pn, d_an)
            swapped = (xp.astype(use_pn, d_pn.dtype), gp_pn, gn_pn)
        return d_ap - d_an + st.margin, (ga_ap, gp_ap, ga_an, gn_an), swapped

    def terms(self, xp, st):
        z = self._parts(xp, st)[0]
        return _hinged(xp, z), math.prod(z.shape)

    def grad_terms(self, xp, st, u):
        # z = d(a, p) - d(a, n) + margin: the hinge's [z > 0] u folded into the distances' per-row coefficients
        z, (ga_ap, gp_ap, ga_an, gn_an), swapped = self._parts(xp, st)
        active = _stable.keep_nan(xp, z, xp.astype(z > 0, z.dtype)) * u
        if swapped is None:
            return (_combined(*_times(ga_ap, active), *_times(ga_an, -active)), _combined(*_times(gp_ap, active)),
                    _combined(*_times(gn_an, -active)))
        from_pn, gp_pn, gn_pn = swapped
        via_an, via_pn = active * (1.0 - from_pn), active * from_pn
        return (_combined(*_times(ga_ap, active), *_times(ga_an, -via_an)),
                _combined(*_times(gp_ap, active), *_times(gp_pn, -via_pn)),
                _combined(*_times(gn_an, -via_an), *_times(gn_pn, -via_pn)))

    def _run(self, args, options, reduction, normalizer, with_grad: bool):
        if not callable(options.get("distance_function")):
            return super()._run(args, options, reduction, normalizer, with_grad)
        return self._run_callable(args, options, reduction, normalizer, with_grad)

    def _run_callable(self, args, options, reduction, normalizer, with_grad: bool):
        """A user's distance on torch tensors: the forward in torch operations, differentiated by autograd."""
        xp, bound, normalizer = self._bind(args, options, reduction, normalizer)
        arrays = [bound[n] for n in self.inputs]
        if not all(_xp.kind(x) == "torch" for x in arrays):
            return self.prepare(xp, *arrays, distance_function=bound["distance_function"])  # raises: torch only
        import torch

        (a, pos, neg), _ = _embeddings(xp, list(zip(self.inputs, arrays)), allow_1d=True)
        fn = bound["distance_function"]
        with torch.enable_grad() if with_grad else contextlib.nullcontext():
            leaves = [x.detach().requires_grad_() for x in (a, pos, neg)] if with_grad else [a, pos, neg]
            d_ap, d_an = fn(leaves[0], leaves[1]), fn(leaves[0], leaves[2])
            if bound["swap"]:
                d_an = torch.minimum(d_an, fn(leaves[1], leaves[2]))
            for name, d in (("d(anchor, positive)", d_ap), ("d(anchor, negative)", d_an)):
                if not isinstance(d, torch.Tensor) or tuple(d.shape) != tuple(a.shape[:-1]):
                    raise ValueError(f"distance_function must return one distance per triplet, shape "
                                     f"{tuple(a.shape[:-1])}; {name} gave {getattr(d, 'shape', type(d).__name__)}")
            terms = torch.clamp_min(d_ap - d_an + bound["margin"], 0.0)
            value = self._reduced(xp, terms, math.prod(terms.shape), None, reduction, normalizer)[0]
            if not with_grad:
                return value
            grads = torch.autograd.grad(value.sum(), leaves)
        return value.detach(), tuple(g.to(x.dtype) for g, x in zip(grads, arrays))


contrastive, triplet_margin, info_nce, siglip = Contrastive(), TripletMargin(), InfoNCE(), SigLIP()
hinge_embedding, margin_ranking, cosine_embedding = HingeEmbedding(), MarginRanking(), CosineEmbedding()
triplet_margin_with_distance = TripletMarginWithDistance()
LOSSES = (contrastive, triplet_margin, info_nce, siglip, hinge_embedding, margin_ranking, cosine_embedding,
          triplet_margin_with_distance)
