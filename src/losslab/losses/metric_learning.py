"""Metric-learning losses on L2-normalised embeddings: the additive-margin softmax losses ArcFace and
CosFace (embeddings against learnable class centers) and the batch-contrastive losses NT-Xent (Optax's
``ntxent``) and SupCon (Khosla et al. 2020).

Embeddings are ``(N, D)``; ArcFace and CosFace also take class centers ``(C, D)`` and return a
gradient for both, as a tuple in argument order. Every input is normalised inside the loss, so a
rescaled row gives the same loss.
"""

from __future__ import annotations

import math

from .. import _checks as check
from .. import _stable, _xp
from .._loss import Loss, State, floating_input
from .._spec import Interval, LossSpec, OptionSpec
from .ranking import _NORMALIZE_EPS, _normalized, _through_normalize

# ArcFace: the derivative of sin(theta) = sqrt(1 - cos^2) is taken at cos clamped into this band
# (it is infinite at cos = +-1)
_ARC_CLAMP = 1e-7


# -- shared checks --------------------------------------------------------------------------------


def _matrix(xp, name: str, value, meaning: str):
    x, dtype = floating_input(xp, name, value)
    if x.ndim != 2:
        raise ValueError(f"{name} must be {meaning} of shape {'(C, D)' if name == 'centers' else '(N, D)'}, "
                         f"got shape {tuple(x.shape)}")
    return x, dtype


def _integer_vector(xp, name: str, value, like, n: int, what: str):
    """An integer (n,) array of ``like``'s kind: class indices or group labels, checked."""
    t = _xp.as_array(value, xp, like, name=name, hint=f"integer {what}, one per embedding")
    if not _xp.is_integral(xp, t):
        raise TypeError(
            f"{name} must be integer {what} (one per embedding), got dtype {t.dtype}; convert them "
            f"(torch: {name}.long(), NumPy: {name}.astype(int), JAX: {name}.astype(jnp.int32))"
        )
    if tuple(t.shape) != (n,):
        raise ValueError(f"{name} must have shape ({n},) (one per row of embeddings, which has {n} rows), "
                         f"got shape {tuple(t.shape)}")
    return t


def _per_item(xp, u, like, n: int):
    """The upstream coefficient ``u`` (a number, or an array broadcasting to (n,)) as an (n,) array."""
    if isinstance(u, (int, float)):
        return xp.full((n,), float(u), dtype=like.dtype, device=_xp.device(like))
    u = xp.asarray(u)
    return xp.broadcast_to(u if u.dtype == like.dtype else xp.astype(u, like.dtype), (n,))


def _trig(xp, m):
    """cos m and sin m of an option: Python numbers, or arrays where the option is an array (a traced
    JAX value, a torch tensor that requires grad)."""
    if isinstance(m, (int, float)):
        return math.cos(m), math.sin(m)
    m = xp.asarray(m)
    return xp.cos(m), xp.sin(m)


def _self_and_same(xp, labels, n: int):
    """The (n, n) boolean masks [i = j] and [y_i = y_j]."""
    idx = xp.arange(n, device=_xp.device(labels))
    return idx[:, None] == idx[None, :], labels[:, None] == labels[None, :]


def _pull_back(xp, g, st):
    """dL/dx from dL/dx_hat, through x_hat = x / max(||x||, floor). ``_through_normalize`` tests
    ||x|| <= 1e-12 for the clamped branch; scaling x by 1e-12 / floor makes that ||x|| <= floor."""
    raw = st.x if st.floor == _NORMALIZE_EPS else st.x * (_NORMALIZE_EPS / st.floor)
    return _through_normalize(xp, g, st.x_hat, st.norm, raw)


def _gram_grad(xp, st, g_s):
    """dL/dx for S = x_hat x_hat^T / temperature, from G = dL/dS (S is symmetric: G + G^T)."""
    g_hat = ((g_s + xp.matrix_transpose(g_s)) @ st.x_hat) / st.temperature
    return (_pull_back(xp, g_hat, st),)


def _contrastive_state(xp, embeddings, labels, temperature, floor):
    x, dtype = _matrix(xp, "embeddings", embeddings, "embeddings")
    n = x.shape[0]
    if n == 0:
        raise ValueError(f"embeddings holds no rows (shape {tuple(x.shape)}): the batch needs at least one embedding")
    y = _integer_vector(xp, "labels", labels, x, n, "group labels (equal labels: a positive pair)")
    floor = floor(xp, x.dtype)
    norm = _stable.safe_norm(xp, x, floor=floor)[..., None]
    x_hat = x / norm
    is_self, same = _self_and_same(xp, y, n)
    s = (x_hat @ xp.matrix_transpose(x_hat)) / temperature
    return State(x=x, x_hat=x_hat, norm=norm, floor=floor, s=s, n=n, is_self=is_self, same=same,
                 temperature=temperature, input_dtypes=(dtype,))


# -- ArcFace and CosFace ------------------------------------------------------------------------------


class _MarginSoftmax(Loss):
    """Cross-entropy over scaled cosines to class centers, with a margin on the target class."""

    inputs = ("embeddings", "centers")

    def prepare(self, xp, embeddings, centers, targets, *, scale=64.0, margin=0.5):
        e, e_dtype = _matrix(xp, "embeddings", embeddings, "embeddings")
        w, w_dtype = _matrix(xp, "centers", centers, "class centers (one row per class)")
        if e.shape[1] != w.shape[1]:
            raise ValueError(
                f"embeddings and centers must have the same embedding size D, got embeddings {tuple(e.shape)} "
                f"and centers {tuple(w.shape)}; centers is (C, D): one row per class"
            )
        if w.shape[0] == 0:
            raise ValueError(f"centers holds no class (shape {tuple(w.shape)}): give one row per class")
        if e.dtype != w.dtype:
            dtype = xp.result_type(e.dtype, w.dtype)
            e, w = xp.astype(e, dtype), xp.astype(w, dtype)
        num_classes = w.shape[0]
        t = _integer_vector(xp, "targets", targets, e, e.shape[0], "class indices")
        if not check.class_indices("targets", t, num_classes):  # unchecked (jit, CUDA): clipped into range
            t = xp.minimum(xp.maximum(t, xp.zeros_like(t)), xp.full_like(t, num_classes - 1))
        e_hat, ne = _normalized(xp, e, True)
        w_hat, nw = _normalized(xp, w, True)
        classes = xp.arange(num_classes, device=_xp.device(t))
        onehot = t[:, None] == xp.astype(classes, t.dtype)[None, :]
        cos = e_hat @ xp.matrix_transpose(w_hat)
        return State(e=e, w=w, e_hat=e_hat, w_hat=w_hat, ne=ne, nw=nw, cos=cos, onehot=onehot, scale=scale,
                     margin=margin, input_dtypes=(e_dtype, w_dtype))

    def _target(self, xp, st, c, for_autodiff: bool):
        """phi(cos_y), the target's cosine after the margin, and dphi/dcos_y (both (N,))."""
        raise NotImplementedError  # pragma: no cover - abstract

    def _logits(self, xp, st, for_autodiff: bool):
        c = xp.sum(xp.where(st.onehot, st.cos, xp.zeros_like(st.cos)), axis=1)
        phi, dphi = self._target(xp, st, c, for_autodiff)
        return st.scale * xp.where(st.onehot, phi[:, None], st.cos), dphi

    def _loss_of(self, xp, st, log_p):
        """-log p_y (= lse - z_y, grouped as log_softmax does: small and exact for a confident row)."""
        return -xp.sum(xp.where(st.onehot, log_p, xp.zeros_like(log_p)), axis=1)

    def terms(self, xp, st):
        z, _ = self._logits(xp, st, True)
        return self._loss_of(xp, st, _stable.log_softmax(xp, z, axis=1)), st.cos.shape[0]

    def grad_terms(self, xp, st, u):
        z, dphi = self._logits(xp, st, False)
        p = _stable.softmax_parts(xp, z, axis=1)[2]
        return self._grads(xp, st, p, dphi, u)

    def value_and_grads(self, xp, st, reduction, normalizer, ops=None):
        z, dphi = self._logits(xp, st, False)  # logits and softmax once, for the value and the gradient
        hi, lo, p = _stable.softmax_parts(xp, z, axis=1)
        value, u = self._reduced(xp, self._loss_of(xp, st, _stable.log_softmax_from(z, hi, lo)), st.cos.shape[0], st, reduction, normalizer)
        return value, self._grads(xp, st, p, dphi, u)

    def _grads(self, xp, st, p, dphi, u):
        # dl/dz = p - onehot(y); z_j = s cos_j, z_y = s phi(cos_y): dl/dcos = s (p - onehot) [phi' on y]
        hot = xp.astype(st.onehot, p.dtype)
        coef = st.scale * _per_item(xp, u, p, p.shape[0])
        slope = 1.0 + hot * (dphi[:, None] - 1.0)
        g_cos = coef[:, None] * (p - hot) * slope
        g_e = g_cos @ st.w_hat
        g_w = xp.matrix_transpose(g_cos) @ st.e_hat
        return (_through_normalize(xp, g_e, st.e_hat, st.ne, st.e),
                _through_normalize(xp, g_w, st.w_hat, st.nw, st.w))


_MARGIN_SOFTMAX_INPUTS = {
    "embeddings": "(N, D) real (L2-normalised inside)",
    "centers": "(C, D) real, one learnable row per class (L2-normalised inside)",
    "targets": "int class index in [0, C), shape (N,)",
}
_MARGIN_OUTPUT = "embeddings (any real vectors, L2-normalised inside) and a learnable (C, D) matrix of class centers"
_SCALE = OptionSpec("scale", "logit scale s (the radius of the hypersphere)", Interval(0.0, None, closed="neither"),
                    1.0, 64.0)


class ArcFace(_MarginSoftmax):
    """Parameters: ``embeddings`` (N, D); ``centers`` (C, D), the class centers (a learnable weight);
    ``targets`` (N,) integer class indices; ``scale=64.0`` (> 0); ``margin=0.5`` (radians, in [0, pi)).
    ``reduction="none"`` gives one cross-entropy per embedding; ``mean`` divides by N. The gradient is a
    tuple (d/dembeddings, d/dcenters)."""

    name = "arcface"
    spec = LossSpec(
        name="arcface",
        family="ranking",
        tasks=("multiclass", "ranking"),
        summary="ArcFace (Deng et al. 2019): softmax cross-entropy over scaled cosines to class centers, with an "
        "additive angular margin on the target class.",
        output_layer=_MARGIN_OUTPUT,
        inputs=_MARGIN_SOFTMAX_INPUTS,
        formula_latex=r"\cos_j = \hat e^\top \hat w_j,\ \theta = \arccos(\cos_y),\quad "
        r"z_y = \begin{cases} s\cos(\theta + m) & \theta + m < \pi \\ s(\cos\theta - m\sin m) & \text{else}\end{cases},"
        r"\ z_j = s\cos_j\ (j \ne y),\quad \ell = \log\textstyle\sum_j e^{z_j} - z_y",
        formula_text="cos_j = <e / ||e||, w_j / ||w_j||>,  theta = arccos(cos_y)\n"
        "z_y = s cos(theta + m) = s (cos_y cos m - sin_y sin m)   if cos_y > cos(pi - m)  (theta + m < pi)\n"
        "z_y = s (cos_y - m sin m)                                otherwise (insightface's fallback)\n"
        "z_j = s cos_j (j != y);   l = logsumexp(z) - z_y,   sin_y = sqrt(max(1 - cos_y^2, 0))",
        gradient_latex=r"\partial\ell/\partial\cos_j = s\,(p_j - [j=y])\,\phi'(\cos_y)^{[j=y]},\quad "
        r"\phi'(c) = \cos m + \sin m\,\tilde c/\sqrt{1-\tilde c^2}\ (\text{arc}),\ 1\ (\text{fallback}),\ "
        r"\tilde c = \operatorname{clip}(c, -1+10^{-7}, 1-10^{-7})",
        gradient_text="dl/dcos_j = s (p_j - [j = y]) (phi'(cos_y) on j = y),  p = softmax(z)\n"
        "phi'(c) = cos m + sin m c~ / sqrt(1 - c~^2) on the arc branch, 1 on the fallback;  "
        "c~ = c clamped into [-1 + 1e-7, 1 - 1e-7]\n"
        "dl/de_hat = G w_hat,  dl/dw_hat = G^T e_hat  (G = dl/dcos), then through the normalisations",
        convex=False,
        smooth=False,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="Face recognition and other open-set identification with many classes: learn embeddings "
        "whose angle to their class center beats every other class by a margin.",
        peers={"pytorch": "none (pytorch_metric_learning.losses.ArcFaceLoss)", "optax": "none", "keras": "none"},
        torch_module="ArcFaceLoss",
        options=(_SCALE,
                 OptionSpec("margin", "additive angular margin m (radians)", Interval(0.0, math.pi, closed="left"),
                            0.0, 1.0)),
        conventions="Embeddings and centers are normalised as torch's F.normalize (norm floored at 1e-12). Where "
        "theta + m >= pi (cos_y <= cos(pi - m)) the target logit is insightface's fallback s (cos_y - m sin m), "
        "so the loss jumps there for m > 0 (not continuous: smooth=False). The derivative of "
        "sin_y = sqrt(1 - cos_y^2), infinite at cos_y = +-1, is taken at cos_y clamped into "
        "[-1 + 1e-7, 1 - 1e-7]: finite, and equal to the exact derivative inside that band (the value "
        "always uses the exact cos_y). With margin 0 it is CosFace with margin 0.",
    )

    def prepare(self, xp, embeddings, centers, targets, *, scale=64.0, margin=0.5):
        return super().prepare(xp, embeddings, centers, targets, scale=scale, margin=margin)

    def _target(self, xp, st, c, for_autodiff):
        m = st.margin
        cos_m, sin_m = _trig(xp, m)
        threshold = math.cos(math.pi - m) if isinstance(m, (int, float)) else xp.cos(math.pi - xp.asarray(m))
        sin_y = xp.sqrt(xp.maximum(1.0 - c * c, xp.zeros_like(c)))
        bound = 1.0 - _ARC_CLAMP
        c_clamped = xp.clip(c, -bound, bound)
        dsin = -c_clamped / xp.sqrt(1.0 - c_clamped * c_clamped)  # d sin_y / d cos_y, the documented clamp
        if for_autodiff:  # the same value, and the clamped derivative for autodiff of the reference path
            sin_y = _stable._constant(sin_y) + (c - _stable._constant(c)) * _stable._constant(dsin)
        arc = c * cos_m - sin_y * sin_m
        on_arc = c > threshold  # insightface: theta + m < pi; NaN takes the fallback (and stays NaN)
        phi = xp.where(on_arc, arc, c - m * sin_m)
        dphi = xp.where(on_arc, cos_m - sin_m * dsin, xp.ones_like(c))
        return phi, dphi


class CosFace(_MarginSoftmax):
    """Parameters: ``embeddings`` (N, D); ``centers`` (C, D), the class centers (a learnable weight);
    ``targets`` (N,) integer class indices; ``scale=64.0`` (> 0); ``margin=0.35`` (>= 0).
    ``reduction="none"`` gives one cross-entropy per embedding; ``mean`` divides by N. The gradient is a
    tuple (d/dembeddings, d/dcenters)."""

    name = "cosface"
    spec = LossSpec(
        name="cosface",
        family="ranking",
        tasks=("multiclass", "ranking"),
        summary="CosFace / large-margin cosine loss (Wang et al. 2018): softmax cross-entropy over scaled cosines "
        "to class centers, the target's cosine lowered by a margin.",
        output_layer=_MARGIN_OUTPUT,
        inputs=_MARGIN_SOFTMAX_INPUTS,
        formula_latex=r"\cos_j = \hat e^\top \hat w_j,\quad z_y = s(\cos_y - m),\ z_j = s\cos_j\ (j \ne y),"
        r"\quad \ell = \log\textstyle\sum_j e^{z_j} - z_y",
        formula_text="cos_j = <e / ||e||, w_j / ||w_j||>\nz_y = s (cos_y - m),  z_j = s cos_j (j != y);   "
        "l = logsumexp(z) - z_y",
        gradient_latex=r"\partial\ell/\partial\cos_j = s\,(p_j - [j=y]),\quad p = \operatorname{softmax}(z)",
        gradient_text="dl/dcos_j = s (p_j - [j = y]),  p = softmax(z)\n"
        "dl/de_hat = G w_hat,  dl/dw_hat = G^T e_hat  (G = dl/dcos), then through the normalisations",
        convex=False,
        smooth=True,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="Face recognition and open-set identification: like ArcFace with the margin on the cosine "
        "instead of the angle (no special cases, smooth).",
        peers={"pytorch": "none (pytorch_metric_learning.losses.CosFaceLoss)", "optax": "none", "keras": "none"},
        torch_module="CosFaceLoss",
        options=(_SCALE,
                 OptionSpec("margin", "additive cosine margin m", Interval(0.0, None), 0.0, 1.0)),
        conventions="Embeddings and centers are normalised as torch's F.normalize (norm floored at 1e-12). "
        "Not convex: the normalisation bends it.",
    )

    def prepare(self, xp, embeddings, centers, targets, *, scale=64.0, margin=0.35):
        return super().prepare(xp, embeddings, centers, targets, scale=scale, margin=margin)

    def _target(self, xp, st, c, for_autodiff):
        return c - st.margin, xp.ones_like(c)


# -- NT-Xent (Optax) and SupCon --------------------------------------------------------------------


def _optax_floor(xp, dtype) -> float:
    # optax.losses.ntxent: cosine similarity with ||x|| floored at sqrt(finfo(dtype).eps)
    return math.sqrt(float(xp.finfo(dtype).eps))


def _torch_floor(xp, dtype) -> float:
    return _NORMALIZE_EPS


class NTXent(Loss):
    """Parameters: ``embeddings`` (N, D); ``labels`` (N,) integer group labels (equal labels make a
    positive pair); ``temperature=0.07`` (> 0). Optax's ``optax.losses.ntxent``: every ordered positive
    pair (i, p), p != i, is a softmax over that positive and all of i's negatives (other labels).

    ``reduction="none"`` gives one value per anchor i: the sum of its positive pairs' terms (0 for an
    anchor without positive); ``mean`` divides their total by the number of positive pairs, which is
    Optax's value; ``sum`` is the total over positive pairs."""

    name = "ntxent"
    inputs = ("embeddings",)
    spec = LossSpec(
        name="ntxent",
        family="ranking",
        tasks=("ranking",),
        summary="NT-Xent (SimCLR, Chen et al. 2020) as optax.losses.ntxent: each positive pair against the "
        "anchor's negatives, softmax over cosine similarities / temperature.",
        output_layer="embeddings (any real vectors, L2-normalised inside)",
        inputs={"embeddings": "(N, D) real", "labels": "int group label per embedding, shape (N,)"},
        formula_latex=r"S_{ij} = \hat x_i^\top \hat x_j/\tau,\quad \ell_{ip} = -\log\frac{e^{S_{ip}}}{e^{S_{ip}} + "
        r"\sum_{n: y_n \ne y_i} e^{S_{in}}},\quad L_i = \sum_{p \ne i,\ y_p = y_i} \ell_{ip},\quad "
        r"\text{mean} = \textstyle\sum_i L_i / \#\{(i,p)\}",
        formula_text="S = x_hat x_hat^T / temperature;  positives P(i) = {p != i: y_p = y_i}, negatives N(i) = {n: y_n != y_i}\n"
        "l_ip = -log(exp(S_ip) / (exp(S_ip) + sum_{n in N(i)} exp(S_in))) = softplus(lse_{N(i)} S_i - S_ip)\n"
        "L_i = sum_{p in P(i)} l_ip;   mean = sum_i L_i / (number of positive pairs)",
        gradient_latex=r"\partial L/\partial S_{ip} = -u_i r_{ip},\ \partial L/\partial S_{in} = u_i\,q_{in}\textstyle\sum_{p} r_{ip},"
        r"\quad r_{ip} = \sigma(\operatorname{lse}_{N(i)} S_i - S_{ip}),\ q_{in} = \operatorname{softmax}_{N(i)}(S_i)_n",
        gradient_text="r_ip = sigmoid(lse_{N(i)} S_i - S_ip) (p in P(i)),  q_in = softmax of S_i over N(i)\n"
        "G = dL/dS:  G_ip = -u_i r_ip,  G_in = u_i q_in sum_p r_ip,  G_ii = 0\n"
        "dL/dx_hat = (G + G^T) x_hat / temperature, then through the normalisation",
        convex=False,
        smooth=True,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="Self-supervised or supervised contrastive pre-training (SimCLR views share a label): pull "
        "positives together, push the batch's other groups away.",
        peers={"pytorch": "none (pytorch_metric_learning.losses.NTXentLoss)", "optax": "optax.losses.ntxent",
               "keras": "none"},
        torch_module="NTXentLoss",
        options=(OptionSpec("temperature", "softmax temperature", Interval(0.0, None, closed="neither"), 0.01, 1.0),),
        conventions="As optax.losses.ntxent: rows are normalised with the norm floored at sqrt(finfo(dtype).eps) "
        "(of the compute dtype: float32 for fp16/bf16 inputs), the self-similarity is excluded, an anchor's other "
        "positives are not in its denominator, and the mean is over ordered positive pairs. A positive pair of an "
        "anchor without negatives counts in the divisor with a loss of 0 (as Optax). Difference: with no positive "
        "pair in the batch the mean is 0 with a zero gradient (Optax: NaN from 0/0).",
        pairwise_batch=True,
    )

    def prepare(self, xp, embeddings, labels, *, temperature=0.07):
        st = _contrastive_state(xp, embeddings, labels, temperature, _optax_floor)
        st.pos = xp.logical_and(st.same, xp.logical_not(st.is_self))
        st.neg = xp.logical_not(st.same)
        return st

    def _parts(self, xp, st):
        """e = exp(S - c) on the negatives (0 elsewhere), its row sum E, lse over the negatives (0 for a row
        without any) and the float masks of positive pairs that count."""
        s = st.s
        minus_inf = xp.full_like(s, -math.inf)
        c = _stable._constant(xp.max(xp.where(st.neg, s, minus_inf), axis=1, keepdims=True))
        c = xp.where(xp.isfinite(c), c, xp.zeros_like(c))  # no negative in the row (or a NaN: kept by e)
        e = xp.exp(xp.where(st.neg, s - c, minus_inf))
        total = xp.sum(e, axis=1, keepdims=True)
        has_neg = xp.any(st.neg, axis=1, keepdims=True)
        lse = c + xp.log(xp.where(has_neg, total, xp.ones_like(total)))
        active = xp.astype(xp.logical_and(st.pos, has_neg), s.dtype)  # l_ip = 0 without negatives
        return e, total, has_neg, lse, active

    def _divisor(self, xp, st):
        return xp.sum(xp.astype(st.pos, st.s.dtype))

    def terms(self, xp, st):
        _, _, _, lse, active = self._parts(xp, st)
        # times the mask, not a where: a NaN anywhere in a counted row reaches the output
        return xp.sum(_stable.softplus(xp, lse - st.s) * active, axis=1), self._divisor(xp, st)

    def grad_terms(self, xp, st, u):
        return self._grads(xp, st, self._parts(xp, st), u)

    def value_and_grads(self, xp, st, reduction, normalizer, ops=None):
        parts = self._parts(xp, st)
        lse, active = parts[3], parts[4]
        terms = xp.sum(_stable.softplus(xp, lse - st.s) * active, axis=1)
        value, u = self._reduced(xp, terms, self._divisor(xp, st), st, reduction, normalizer)
        return value, self._grads(xp, st, parts, u)

    def _grads(self, xp, st, parts, u):
        e, total, has_neg, lse, active = parts
        r = _stable.sigmoid(xp, lse - st.s) * active  # 1 - softmax of the positive against the negatives
        q = e / xp.where(has_neg, total, xp.ones_like(total))
        g = _per_item(xp, u, st.s, st.n)[:, None] * (q * xp.sum(r, axis=1, keepdims=True) - r)
        return _gram_grad(xp, st, g)


class SupCon(Loss):
    """Parameters: ``embeddings`` (N, D); ``labels`` (N,) integer class labels; ``temperature=0.1``
    (> 0). The L_out loss of Khosla et al. 2020 on L2-normalised embeddings; for several views of an
    image, stack the views as rows and repeat its label.

    ``reduction="none"`` gives one value per anchor (0 for an anchor without positive); ``mean``
    divides their total by the number of anchors that have a positive; ``sum`` is the total."""

    name = "supcon"
    inputs = ("embeddings",)
    spec = LossSpec(
        name="supcon",
        family="ranking",
        tasks=("ranking",),
        summary="Supervised contrastive loss (SupCon L_out, Khosla et al. 2020): each anchor's mean "
        "log-probability of its same-label positives, softmax over all other items of the batch.",
        output_layer="embeddings (any real vectors, L2-normalised inside)",
        inputs={"embeddings": "(N, D) real", "labels": "int class label per embedding, shape (N,)"},
        formula_latex=r"S_{ij} = \hat x_i^\top \hat x_j/\tau,\quad L_i = -\frac{1}{|P(i)|}\sum_{p \in P(i)} "
        r"\log\frac{e^{S_{ip}}}{\sum_{a \ne i} e^{S_{ia}}},\ P(i) = \{p \ne i: y_p = y_i\}",
        formula_text="S = x_hat x_hat^T / temperature;  P(i) = {p != i: y_p = y_i}\n"
        "L_i = -(1 / |P(i)|) sum_{p in P(i)} log(exp(S_ip) / sum_{a != i} exp(S_ia))\n"
        "    = logsumexp_{a != i} S_ia - mean_{p in P(i)} S_ip   (0 when P(i) is empty)\n"
        "mean = sum_i L_i / #{i: P(i) not empty}",
        gradient_latex=r"\partial L/\partial S_{ij} = u_i\big(\operatorname{softmax}_{a \ne i}(S_i)_j - [j \in P(i)]/|P(i)|\big),"
        r"\ \partial L/\partial S_{ii} = 0",
        gradient_text="G = dL/dS:  G_ij = u_i (softmax_{a != i}(S_i)_j - [j in P(i)] / |P(i)|)  (j != i, P(i) not empty), else 0\n"
        "dL/dx_hat = (G + G^T) x_hat / temperature, then through the normalisation",
        convex=False,
        smooth=True,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="Supervised pre-training of an encoder with labels (then a linear classifier on top): every "
        "same-class item of the batch is a positive, any number per anchor.",
        peers={"pytorch": "none (pytorch_metric_learning.losses.SupConLoss)", "optax": "none", "keras": "none"},
        torch_module="SupConLoss",
        options=(OptionSpec("temperature", "softmax temperature", Interval(0.0, None, closed="neither"), 0.01, 1.0),),
        conventions="Rows are normalised inside as torch's F.normalize (norm floored at 1e-12). An anchor without "
        "positive contributes 0 and is left out of the mean's divisor; with none at all the mean is 0 with a zero "
        "gradient. Against HobbitLong/SupContrast's SupConLoss (contrast_mode='all', labels): it takes "
        "[bsz, n_views, D] features that are already normalised, adds 1e-9 inside the log, scales by "
        "temperature / base_temperature (1 at its defaults), and averages over all anchors, where an anchor without "
        "positive divides 0 by 0 (NaN); losslab normalises, adds nothing, has no base_temperature, and averages over "
        "the anchors that have a positive. Its default temperature is 0.07, losslab's 0.1.",
        pairwise_batch=True,
    )

    def prepare(self, xp, embeddings, labels, *, temperature=0.1):
        st = _contrastive_state(xp, embeddings, labels, temperature, _torch_floor)
        st.pos = xp.astype(xp.logical_and(st.same, xp.logical_not(st.is_self)), st.s.dtype)
        st.count = xp.sum(st.pos, axis=1)
        st.has_pos = xp.astype(st.count > 0, st.s.dtype)
        return st

    def _softmax_others(self, xp, st):
        """(c, log_total) with lse = c + log_total over a != i (c the row's largest, kept apart: see ``_terms``)
        and the softmax over a != i (0 on the diagonal) of every row."""
        s = st.s
        minus_inf = xp.full_like(s, -math.inf)
        c = _stable._constant(xp.max(xp.where(st.is_self, minus_inf, s), axis=1, keepdims=True))
        c = xp.where(xp.isfinite(c), c, xp.zeros_like(c))  # N = 1: no other item
        e = xp.exp(xp.where(st.is_self, minus_inf, s - c))
        total = xp.sum(e, axis=1, keepdims=True)
        total = total if st.n > 1 else xp.ones_like(total)
        return (c[:, 0], xp.log(total[:, 0])), e / total

    def _terms(self, xp, st, lse):
        # lse - mean_pos as (c - mean_pos) + log_total: exact for a lone positive that is the row's largest (a
        # confident anchor's small loss), where c + log_total, rounded at c's scale, would lose its digits
        c, log_total = lse
        safe = xp.where(st.count > 0, st.count, xp.ones_like(st.count))
        mean_pos = xp.sum(st.s * st.pos, axis=1) / safe
        return ((c - mean_pos) + log_total) * st.has_pos  # a product, not a where: a NaN reaches the output

    def terms(self, xp, st):
        lse, _ = self._softmax_others(xp, st)
        return self._terms(xp, st, lse), xp.sum(st.has_pos)

    def grad_terms(self, xp, st, u):
        return self._grads(xp, st, self._softmax_others(xp, st)[1], u)

    def value_and_grads(self, xp, st, reduction, normalizer, ops=None):
        lse, p = self._softmax_others(xp, st)
        value, u = self._reduced(xp, self._terms(xp, st, lse), xp.sum(st.has_pos), st, reduction, normalizer)
        return value, self._grads(xp, st, p, u)

    def _grads(self, xp, st, p, u):
        safe = xp.where(st.count > 0, st.count, xp.ones_like(st.count))
        coef = _per_item(xp, u, st.s, st.n) * st.has_pos
        g = coef[:, None] * (p - st.pos / safe[:, None])
        return _gram_grad(xp, st, g)


arcface, cosface, ntxent, supcon = ArcFace(), CosFace(), NTXent(), SupCon()
LOSSES = (arcface, cosface, ntxent, supcon)
