"""Post-training and distillation losses: preference pairs (DPO, SimPO, ORPO) and a student's
logits against a teacher's (distillation KL, generalised Jensen-Shannon).

Preference losses take per-sequence log-probabilities (any shape, one number per chosen/rejected
response) and return gradients for the policy's two inputs, as a tuple (chosen, rejected); the
reference model's log-probabilities are constants. Distillation losses take logits with the classes
(vocabulary) on the last axis, as TRL and Liger-Kernel do for (batch, tokens, vocabulary) logits, and
return the gradient for the student's logits; one term per row (every axis but the last).
"""

from __future__ import annotations

import math

from .. import _checks as check
from .. import _stable, _xp
from .._loss import Loss, State, floating_input, per_row
from .._spec import Choices, Interval, LossSpec, OptionSpec

_LOGPS = "per-sequence log-probabilities (any shape; one per response)"
_AVG_LOGPS = "length-averaged log-probabilities of each response (any shape)"
_POLICY_LAYER = ("the policy's log-probability of each whole response: the sum over its tokens of log_softmax(logits) at "
                 "the response's tokens (prompt and padding masked out)")
_AVG_LAYER = "the policy's average token log-probability of each response (the sum divided by its length)"
_LOGITS_LAYER = "raw logits of the student (no softmax), classes on the last axis"
_DISTILL_INPUTS = {"student_logits": "(..., C) real logits", "teacher_logits": "(..., C) real logits, constant"}


def _same_shape_inputs(xp, names_values, constants=()):
    """The differentiable inputs (floating, compute dtype) and the constant ones (cast like the first),
    every one of the same shape: one number per response."""
    arrays, dtypes = [], []
    for name, value in names_values:
        x, dtype = floating_input(xp, name, value)
        arrays.append(x)
        dtypes.append(dtype)
    first_name, first = names_values[0][0], arrays[0]
    for name, value in constants:
        c = _xp.as_array(value, xp, first, name=name)
        arrays.append(c if c.dtype == first.dtype else xp.astype(c, first.dtype))
    for name, x in zip([n for n, _ in (*names_values, *constants)][1:], arrays[1:]):
        check.same_shape(first_name, first, name, x)
    return arrays, tuple(dtypes)


def _count(shape) -> int:
    return math.prod(shape)


class DPO(Loss):
    """Parameters: ``policy_chosen``, ``policy_rejected`` (the policy's log-probabilities of the chosen
    and rejected responses; the two inputs differentiated), ``ref_chosen``, ``ref_rejected`` (the frozen
    reference model's; constants), all of one shape; ``beta=0.1``; ``loss_type`` "sigmoid" (DPO, Rafailov
    et al. 2023), "hinge" (SLiC, Zhao et al. 2023), "ipo" (Azar et al. 2023) or "robust" (rDPO, Chowdhury
    et al. 2024); ``label_smoothing=0.0``: the assumed share e of flipped preference labels, for "sigmoid"
    (conservative DPO) and "robust" only. Formulas as TRL's ``DPOTrainer``. IPO's 1/(2 beta) target
    assumes length-normalised log-probabilities (average per token), as the IPO paper and TRL state: pass
    averages, not sums, with ``loss_type="ipo"``. The gradient returned is a tuple (chosen, rejected)."""

    name = "dpo"
    inputs = ("policy_chosen", "policy_rejected")
    spec = LossSpec(
        name="dpo",
        family="post-training",
        tasks=("preference",),
        summary="Direct preference optimisation: fit a policy to chosen-over-rejected pairs through the implicit "
        "reward beta log(pi / pi_ref), without a reward model (Rafailov et al. 2023); also SLiC's hinge, IPO and robust DPO.",
        output_layer=_POLICY_LAYER,
        inputs={"policy_chosen": _LOGPS, "policy_rejected": _LOGPS, "ref_chosen": _LOGPS + ", constant",
                "ref_rejected": _LOGPS + ", constant"},
        formula_latex=r"\ell = -(1-\epsilon)\log\sigma(\beta D) - \epsilon\log\sigma(-\beta D),\quad "
        r"D = (\pi_c - \pi^{ref}_c) - (\pi_r - \pi^{ref}_r)",
        formula_text="D = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected),  z = beta D,  e = label_smoothing\n"
        "sigmoid: l = -(1 - e) log s(z) - e log s(-z)\n"
        "hinge:   l = max(0, 1 - z)\n"
        "ipo:     l = (D - 1/(2 beta))^2\n"
        "robust:  l = ((1 - e)(-log s(z)) + e log s(-z)) / (1 - 2e)",
        gradient_latex=r"\partial\ell/\partial\pi_c = -\partial\ell/\partial\pi_r = \beta\,(\sigma(\beta D) - 1 + \epsilon)",
        gradient_text="dl/d policy_chosen = -dl/d policy_rejected = dl/dD, with\n"
        "sigmoid: dl/dD = beta (s(z) - (1 - e))\n"
        "hinge:   dl/dD = -beta [z < 1]\n"
        "ipo:     dl/dD = 2 (D - 1/(2 beta))\n"
        "robust:  dl/dD = -beta ((1 - e) s(-z) + e s(z)) / (1 - 2e)",
        convex=True,
        smooth=True,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="Preference fine-tuning of a language model from pairs of responses (chosen over rejected) "
        "with a frozen reference model: DPO's standard form. hinge and ipo regularise differently (IPO does not push "
        "the margin to infinity); label_smoothing (sigmoid: conservative, robust: unbiased) when some labels are noisy.",
        peers={"pytorch": "none", "optax": "none", "keras": "none", "trl": "trl.DPOTrainer (loss_type sigmoid, hinge, "
               "ipo, robust)"},
        torch_module="DPOLoss",
        options=(
            OptionSpec("beta", "strength of the KL constraint to the reference (the implicit reward's scale)",
                       Interval(0.0, None, closed="neither"), 0.01, 1.0),
            OptionSpec("loss_type", "the preference loss applied to D", Choices(("sigmoid", "hinge", "ipo", "robust"))),
            OptionSpec("label_smoothing", "assumed share of flipped labels (sigmoid and robust only)",
                       Interval(0.0, 0.5, closed="left"), 0.0, 0.45),
        ),
        conventions="Convex and smooth for the default sigmoid; hinge has a kink at beta D = 1 (gradient 0 there, "
        "as torch.relu's); ipo's gradient grows without bound with D; robust with label_smoothing > 0 is unbounded below "
        "(its -e log s(-z) term falls as z grows), so its lower bound 0 holds for the other types only. label_smoothing "
        "with hinge or ipo is refused (TRL ignores it there).",
    )

    def prepare(self, xp, policy_chosen, policy_rejected, ref_chosen, ref_rejected, *, beta=0.1, loss_type="sigmoid",
                label_smoothing=0.0):
        if label_smoothing != 0 and loss_type in ("hinge", "ipo"):
            raise ValueError(f"label_smoothing applies to loss_type 'sigmoid' and 'robust' only, got "
                             f"label_smoothing={label_smoothing!r} with loss_type={loss_type!r}; leave it at 0")
        (pc, pr, rc, rr), dtypes = _same_shape_inputs(
            xp, [("policy_chosen", policy_chosen), ("policy_rejected", policy_rejected)],
            [("ref_chosen", ref_chosen), ("ref_rejected", ref_rejected)])
        margin = (pc - rc) - (pr - rr)
        return State(d=margin, beta=beta, loss_type=loss_type, e=label_smoothing, input_dtypes=dtypes)

    def terms(self, xp, st):
        d, e = st.d, st.e
        z = st.beta * d
        if st.loss_type == "hinge":
            h = 1.0 - z
            return _stable.keep_nan(xp, h, xp.where(h > 0, h, xp.zeros_like(h))), _count(d.shape)
        if st.loss_type == "ipo":
            return (d - 1.0 / (2.0 * st.beta)) ** 2, _count(d.shape)
        up, down = _stable.softplus(xp, -z), _stable.softplus(xp, z)  # -log s(z), -log s(-z)
        if st.loss_type == "sigmoid":
            return (1.0 - e) * up + e * down if e else up, _count(d.shape)
        return ((1.0 - e) * up - e * down) / (1.0 - 2.0 * e), _count(d.shape)

    def grad_terms(self, xp, st, u):
        d, e, beta = st.d, st.e, st.beta
        z = beta * d
        if st.loss_type == "hinge":
            g = _stable.keep_nan(xp, z, xp.where(z < 1.0, xp.full_like(z, -beta), xp.zeros_like(z)))
        elif st.loss_type == "ipo":
            g = 2.0 * (d - 1.0 / (2.0 * beta))
        elif st.loss_type == "sigmoid":
            g = beta * (_stable.sigmoid(xp, z) - (1.0 - e))
        else:
            g = -beta * ((1.0 - e) * _stable.sigmoid(xp, -z) + e * _stable.sigmoid(xp, z)) / (1.0 - 2.0 * e)
        g = g * u
        return g, -g


class SimPO(Loss):
    """Parameters: ``chosen_avg_logps``, ``rejected_avg_logps`` (the policy's average token
    log-probabilities of each response; both differentiated), same shape; ``beta=2.0``; ``gamma=0.5``
    (the target reward margin). No reference model (Meng et al. 2024). The gradient is a tuple
    (chosen, rejected)."""

    name = "simpo"
    inputs = ("chosen_avg_logps", "rejected_avg_logps")
    spec = LossSpec(
        name="simpo",
        family="post-training",
        tasks=("preference",),
        summary="SimPO: preference optimisation with the length-averaged log-probability as the implicit reward and "
        "a target margin gamma, without a reference model (Meng, Xia & Chen 2024).",
        output_layer=_AVG_LAYER,
        inputs={"chosen_avg_logps": _AVG_LOGPS, "rejected_avg_logps": _AVG_LOGPS},
        formula_latex=r"\ell = -\log\sigma\big(\beta(\bar\pi_c - \bar\pi_r) - \gamma\big)",
        formula_text="l = -log s(beta (c - r) - gamma),   c, r = average log-probabilities of chosen and rejected",
        gradient_latex=r"\partial\ell/\partial\bar\pi_c = -\partial\ell/\partial\bar\pi_r = -\beta\,\sigma\big(\gamma - \beta(\bar\pi_c - \bar\pi_r)\big)",
        gradient_text="dl/dc = -dl/dr = -beta s(gamma - beta (c - r))",
        convex=True,
        smooth=True,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="Preference fine-tuning without a reference model (half the forward passes of DPO); the average "
        "over tokens removes DPO's bias toward longer responses.",
        peers={"pytorch": "none", "optax": "none", "keras": "none", "trl": "trl.CPOTrainer (loss_type='simpo'; its "
               "gamma is gamma/beta here)"},
        torch_module="SimPOLoss",
        options=(
            OptionSpec("beta", "scale of the reward (average log-probability)", Interval(0.0, None, closed="neither"), 0.1, 10.0),
            OptionSpec("gamma", "target reward margin", Interval(), 0.0, 3.0),
        ),
        conventions="gamma is the margin on beta (c - r) itself, as in the paper; TRL's CPOTrainer takes "
        "simpo_gamma / beta (its gamma_beta_ratio) inside the bracket, the same loss.",
    )

    def prepare(self, xp, chosen_avg_logps, rejected_avg_logps, *, beta=2.0, gamma=0.5):
        (c, r), dtypes = _same_shape_inputs(xp, [("chosen_avg_logps", chosen_avg_logps),
                                                 ("rejected_avg_logps", rejected_avg_logps)])
        return State(z=beta * (c - r) - gamma, beta=beta, input_dtypes=dtypes)

    def terms(self, xp, st):
        return _stable.softplus(xp, -st.z), _count(st.z.shape)

    def grad_terms(self, xp, st, u):
        g = -st.beta * _stable.sigmoid(xp, -st.z) * u
        return g, -g


def _log1mexp(xp, x):
    """log(1 - e^x) for x < 0, accurate at both ends (Maechler 2012): log(-expm1(x)) near 0,
    log1p(-exp(x)) far from it."""
    near = x > -math.log(2.0)
    safe_near = xp.where(near, x, xp.full_like(x, -1.0))  # no branch ever evaluates log(0)
    safe_far = xp.where(near, xp.full_like(x, -1.0), x)
    return xp.where(near, xp.log(-xp.expm1(safe_near)), xp.log1p(-xp.exp(safe_far)))


class ORPO(Loss):
    """Parameters: ``chosen_avg_logps``, ``rejected_avg_logps`` (average token log-probabilities, < 0;
    both differentiated), same shape; ``lam=0.1`` (TRL's ``beta``). This is ORPO's odds-ratio term only:
    the full ORPO objective adds the supervised NLL of the chosen response, which is the user's
    ``ll.cross_entropy`` on the chosen tokens (Hong, Lee & Thorne 2024). The gradient is a tuple
    (chosen, rejected)."""

    name = "orpo"
    inputs = ("chosen_avg_logps", "rejected_avg_logps")
    spec = LossSpec(
        name="orpo",
        family="post-training",
        tasks=("preference",),
        summary="ORPO's odds-ratio term: push the odds of the chosen response above those of the rejected one, "
        "added to the chosen response's NLL, with no reference model (Hong, Lee & Thorne 2024).",
        output_layer=_AVG_LAYER + "; strictly negative",
        inputs={"chosen_avg_logps": _AVG_LOGPS + ", < 0", "rejected_avg_logps": _AVG_LOGPS + ", < 0"},
        formula_latex=r"\ell = -\lambda\log\sigma\big(\operatorname{lo}(\bar\pi_c) - \operatorname{lo}(\bar\pi_r)\big),\quad "
        r"\operatorname{lo}(x) = x - \log(1 - e^{x})",
        formula_text="l = -lam log s(lo(c) - lo(r)),   lo(x) = x - log(1 - e^x)   (the log-odds of probability e^x)",
        gradient_latex=r"\partial\ell/\partial\bar\pi_c = -\lambda\,\sigma\big(\operatorname{lo}(\bar\pi_r) - \operatorname{lo}(\bar\pi_c)\big)/(1 - e^{\bar\pi_c})",
        gradient_text="with R = lo(c) - lo(r) and lo'(x) = 1 / (1 - e^x):\n"
        "dl/dc = -lam s(-R) / (1 - e^c),   dl/dr = lam s(-R) / (1 - e^r)",
        convex=False,
        smooth=True,
        lower_bound=0.0,
        robust_to_outliers=False,
        when_to_use="Single-stage preference alignment: supervised fine-tuning and preference in one loss, no "
        "reference model. Add it to the chosen response's cross-entropy.",
        peers={"pytorch": "none", "optax": "none", "keras": "none", "trl": "trl.ORPOTrainer (odds_ratio_loss; lam is "
               "its beta)"},
        torch_module="ORPOLoss",
        options=(OptionSpec("lam", "weight of the odds-ratio term against the NLL", Interval(0.0, None, closed="neither"),
                            0.01, 1.0),),
        conventions="log(1 - e^x) is computed as log(-expm1(x)) above -log 2 and log1p(-e^x) below, so the log-odds "
        "stay accurate for averages near 0. An average log-probability of 0 or more (probability 1) has no log-odds "
        "and is refused. Not convex: the odds of the chosen response curve the loss down as it nears probability 1.",
    )

    def prepare(self, xp, chosen_avg_logps, rejected_avg_logps, *, lam=0.1):
        (c, r), dtypes = _same_shape_inputs(xp, [("chosen_avg_logps", chosen_avg_logps),
                                                 ("rejected_avg_logps", rejected_avg_logps)])
        for name, x in (("chosen_avg_logps", c), ("rejected_avg_logps", r)):
            check.values_below(name, x, 0.0, "average log-probabilities are < 0 (a probability below 1); pass "
                               "log-probabilities, not probabilities or logits")
        ratio = (c - _log1mexp(xp, c)) - (r - _log1mexp(xp, r))
        return State(c=c, r=r, ratio=ratio, lam=lam, input_dtypes=dtypes)

    def terms(self, xp, st):
        return st.lam * _stable.softplus(xp, -st.ratio), _count(st.ratio.shape)

    def grad_terms(self, xp, st, u):
        push = st.lam * _stable.sigmoid(xp, -st.ratio) * u
        return -push / -xp.expm1(st.c), push / -xp.expm1(st.r)


def _rows(xp, student_logits, teacher_logits, temperature):
    """Student and teacher log-softmax rows at the temperature (classes on the last axis)."""
    s, dtype = floating_input(xp, "student_logits", student_logits)
    if s.ndim < 1 or s.shape[-1] < 1:
        raise ValueError(f"student_logits must have the classes on the last axis, got shape {tuple(s.shape)}")
    t = _xp.as_array(teacher_logits, xp, s, name="teacher_logits")
    check.same_shape("student_logits", s, "teacher_logits", t)
    t = t if t.dtype == s.dtype else xp.astype(t, s.dtype)
    return _stable.log_softmax(xp, s / temperature), _stable.log_softmax(xp, t / temperature), (dtype,)


def _kl_rows(xp, log_p, log_q):
    """KL(p || q) per row, and p (exact 0 terms where p underflows: 0 * finite)."""
    p = xp.exp(log_p)
    return xp.sum(p * (log_p - log_q), axis=-1), p


def _grad_kl_from(xp, ls, lt):
    """d KL(p || q) / dz for the student's q = softmax(z), p fixed: q - p."""
    return xp.exp(ls) - xp.exp(lt)


def _grad_kl_to(xp, ls, other):
    """d KL(q || m) / dz for the student's q = softmax(z): q (log q - log m - KL(q || m)) (m fixed, or JSD's
    mixture, whose own dependence on q cancels)."""
    kl, q = _kl_rows(xp, ls, other)
    return q * (ls - other - kl[..., None])


class DistillKL(Loss):
    """Parameters: ``student_logits``, ``teacher_logits`` (same shape, classes on the last axis; the
    teacher's are constants); ``temperature=1.0``; ``reverse=False`` (KL(student || teacher), mode-seeking,
    as in MiniLLM). Hinton et al. 2015's T^2 keeps the gradient's scale independent of T. To mask tokens
    (padding, the prompt), take ``reduction="none"`` (one value per row) and average the kept ones, or
    pass ``normalizer``."""

    name = "distill_kl"
    rows_are_items = True
    inputs = ("student_logits",)
    spec = LossSpec(
        name="distill_kl",
        family="post-training",
        tasks=("distribution", "multiclass"),
        summary="Knowledge distillation: the KL divergence from the teacher's temperature-softened distribution to "
        "the student's, times T^2 (Hinton, Vinyals & Dean 2015); reverse=True for KL(student || teacher).",
        output_layer=_LOGITS_LAYER,
        inputs=_DISTILL_INPUTS,
        formula_latex=r"\ell = T^2\,\mathrm{KL}\big(\operatorname{softmax}(t/T)\,\|\,\operatorname{softmax}(s/T)\big)"
        r" = T^2\sum_j p_j(\log p_j - \log q_j)",
        formula_text="p = softmax(teacher / T),  q = softmax(student / T)\n"
        "l = T^2 sum_j p_j (log p_j - log q_j)          (reverse: T^2 sum_j q_j (log q_j - log p_j))",
        gradient_latex=r"\partial\ell/\partial s = T\,(q - p)",
        gradient_text="dl/ds = T (q - p)          (reverse: T q (log q - log p - KL(q || p)))",
        convex=True,
        smooth=True,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="Training a small model on a large one's outputs (soft targets carry how the teacher ranks the "
        "wrong answers); for language models, per token over the vocabulary. Forward KL covers every mode of the "
        "teacher; reverse KL fits the student to its main one.",
        peers={"pytorch": "torch.nn.functional.kl_div(log_softmax(s / T), log_softmax(t / T), log_target=True) * T**2",
               "optax": "optax.losses.kl_divergence_with_log_targets (times T^2)", "keras": "keras.losses.KLDivergence "
               "(on softened probabilities)"},
        torch_module="DistillKLLoss",
        options=(
            OptionSpec("temperature", "softens both distributions (T > 1 shows the teacher's small probabilities)",
                       Interval(0.0, None, closed="neither"), 0.5, 10.0),
            OptionSpec("reverse", "KL(student || teacher) instead of KL(teacher || student)", Choices((False, True))),
        ),
        conventions="The mean is over rows (every axis but the last): per token for (batch, tokens, vocabulary) "
        "logits, PyTorch's 'batchmean' for (batch, classes). Convex in the student's logits for the forward KL; the "
        "reverse KL is not convex.",
    )

    def prepare(self, xp, student_logits, teacher_logits, *, temperature=1.0, reverse=False):
        ls, lt, dtypes = _rows(xp, student_logits, teacher_logits, temperature)
        return State(ls=ls, lt=lt, temperature=temperature, reverse=reverse, input_dtypes=dtypes)

    def terms(self, xp, st):
        kl, _ = _kl_rows(xp, st.ls, st.lt) if st.reverse else _kl_rows(xp, st.lt, st.ls)
        return st.temperature**2 * kl, _count(st.ls.shape[:-1])

    def grad_terms(self, xp, st, u):
        grad = _grad_kl_to(xp, st.ls, st.lt) if st.reverse else _grad_kl_from(xp, st.ls, st.lt)
        return (grad * per_row(st.temperature * u),)


class JSD(Loss):
    """Parameters: ``student_logits``, ``teacher_logits`` (same shape, classes on the last axis; the
    teacher's are constants); ``beta=0.5`` (the teacher's weight in the mixture); ``temperature=1.0``. As
    TRL's ``generalized_jsd_loss`` (Agarwal et al. 2024, GKD): beta = 0 is the forward KL(teacher ||
    student) and beta = 1 the reverse KL(student || teacher), not the limits of the mixture (which are
    0). No T^2 factor (TRL has none)."""

    name = "jsd"
    rows_are_items = True
    inputs = ("student_logits",)
    spec = LossSpec(
        name="jsd",
        family="post-training",
        tasks=("distribution", "multiclass"),
        summary="Generalised Jensen-Shannon divergence between the teacher's and the student's softened "
        "distributions (GKD, Agarwal et al. 2024): bounded by log 2 for beta = 0.5, between forward and reverse KL.",
        output_layer=_LOGITS_LAYER,
        inputs=_DISTILL_INPUTS,
        formula_latex=r"\ell = \beta\,\mathrm{KL}(p\,\|\,m) + (1-\beta)\,\mathrm{KL}(q\,\|\,m),\quad m = \beta p + (1-\beta) q",
        formula_text="p = softmax(teacher / T),  q = softmax(student / T),  m = beta p + (1 - beta) q\n"
        "l = beta KL(p || m) + (1 - beta) KL(q || m)     (beta = 0: KL(p || q);  beta = 1: KL(q || p))",
        gradient_latex=r"\partial\ell/\partial s = \tfrac{1-\beta}{T}\,q\odot\big(\log\tfrac{q}{m} - \mathrm{KL}(q\,\|\,m)\big)",
        gradient_text="dl/ds = (1 - beta) / T  q (log q - log m - KL(q || m))\n"
        "(beta = 0: (q - p) / T;  beta = 1: q (log q - log p - KL(q || p)) / T)",
        convex=False,
        smooth=True,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="On-policy distillation of language models (GKD): the symmetric, bounded divergence tolerates "
        "tokens where teacher and student disagree strongly; beta moves it between mode-covering and mode-seeking.",
        peers={"pytorch": "none", "optax": "none", "keras": "none",
               "trl": "trl.GKDTrainer.generalized_jsd_loss (reduction 'batchmean' divides by the batch, not the tokens)"},
        torch_module="JSDLoss",
        options=(
            OptionSpec("beta", "the teacher's weight in the mixture m (0: forward KL, 1: reverse KL)", Interval(0.0, 1.0),
                       0.0, 1.0),
            OptionSpec("temperature", "softens both distributions", Interval(0.0, None, closed="neither"), 0.5, 10.0),
        ),
        conventions="log m is logaddexp(log beta + log p, log(1 - beta) + log q), finite wherever the logits are. "
        "Not convex in the student's logits (the softmax bends it). The mean is over rows (every axis but the last).",
    )

    def prepare(self, xp, student_logits, teacher_logits, *, beta=0.5, temperature=1.0):
        ls, lt, dtypes = _rows(xp, student_logits, teacher_logits, temperature)
        return State(ls=ls, lt=lt, beta=float(beta), temperature=temperature, input_dtypes=dtypes)

    def _mixture(self, xp, st):
        return _stable.logaddexp(xp, math.log(st.beta) + st.lt, math.log1p(-st.beta) + st.ls)

    def terms(self, xp, st):
        rows = _count(st.ls.shape[:-1])
        if st.beta == 0.0:
            return _kl_rows(xp, st.lt, st.ls)[0], rows
        if st.beta == 1.0:
            return _kl_rows(xp, st.ls, st.lt)[0], rows
        lm = self._mixture(xp, st)
        return st.beta * _kl_rows(xp, st.lt, lm)[0] + (1.0 - st.beta) * _kl_rows(xp, st.ls, lm)[0], rows

    def grad_terms(self, xp, st, u):
        scale = per_row(u / st.temperature)
        if st.beta == 0.0:
            return (_grad_kl_from(xp, st.ls, st.lt) * scale,)
        if st.beta == 1.0:
            return (_grad_kl_to(xp, st.ls, st.lt) * scale,)
        return (_grad_kl_to(xp, st.ls, self._mixture(xp, st)) * ((1.0 - st.beta) * scale),)


dpo, simpo, orpo, distill_kl, jsd = DPO(), SimPO(), ORPO(), DistillKL(), JSD()
LOSSES = (dpo, simpo, orpo, distill_kl, jsd)
