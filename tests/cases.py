"""Valid inputs for every loss and every option set, shared by the test modules.

A Case holds NumPy arrays (float64 predictions, int64 class targets) and options; ``convert``
turns it into any backend and dtype. Inputs stay away from kinks (hinge margins, |e| = delta)
so finite differences and autodiff are comparable there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import losslab as ll


@dataclass
class Case:
    loss: str
    args: tuple
    options: dict = field(default_factory=dict)
    label: str = ""
    reductions: tuple = ("none", "mean", "sum")

    @property
    def id(self) -> str:
        return f"{self.loss}-{self.label}" if self.label else self.loss

    @property
    def fn(self):
        return ll.get_loss(self.loss)

    @property
    def n_inputs(self) -> int:
        return len(self.fn.inputs)

    @property
    def input_positions(self) -> tuple[int, ...]:
        """Where the differentiable inputs sit among the positional arguments (gaussian_nll's var is third)."""
        return tuple(self.fn._positional.index(name) for name in self.fn.inputs)

    def inputs_of(self, args) -> list:
        return [args[k] for k in self.input_positions]

    def call_with(self, inputs, args) -> list:
        """``args`` with its differentiable inputs replaced by ``inputs``."""
        full = list(args)
        for k, x in zip(self.input_positions, inputs):
            full[k] = x
        return full


def convert(value, backend: str, dtype: str = "float64"):
    """A NumPy array (or option) as an array of ``backend``; floats cast to ``dtype``."""
    if not isinstance(value, np.ndarray):
        return value
    if backend == "numpy":
        return value.astype(dtype) if value.dtype.kind == "f" and dtype in ("float32", "float64", "float16") else value
    if backend == "torch":
        import torch

        t = torch.as_tensor(value)
        return t.to(getattr(torch, dtype)) if value.dtype.kind == "f" else t
    if backend == "jax":
        import jax.numpy as jnp

        return jnp.asarray(value, dtype=dtype) if value.dtype.kind == "f" else jnp.asarray(value)
    raise ValueError(backend)


def convert_case(case: Case, backend: str, dtype: str = "float64"):
    args = tuple(convert(a, backend, dtype) for a in case.args)
    options = {k: convert(v, backend, dtype) for k, v in case.options.items()}
    return args, options


def _away_from(rng, shape, points, gap=0.05, scale=2.0):
    """Normal samples nudged at least ``gap`` away from each kink in ``points``."""
    x = rng.normal(size=shape) * scale
    for p in points:
        close = np.abs(x - p) < gap
        x = np.where(close, p + np.sign(x - p + 1e-12) * gap * 2, x)
    return x


def _regression(rng):
    out = []
    for name, opts_list in [
        ("mse", [{}]),
        ("mae", [{}]),
        ("log_cosh", [{}]),
        ("huber", [{}, {"delta": 0.3}, {"delta": 2.5}]),
        ("smooth_l1", [{}, {"beta": 0.5}, {"beta": 0.0}]),
        ("quantile", [{}, {"q": 0.1}, {"q": 0.9}]),
    ]:
        for opts in opts_list:
            kinks = [0.0, opts.get("delta", 1.0), -opts.get("delta", 1.0), opts.get("beta", 1.0), -opts.get("beta", 1.0)]
            for shape in [(7,), (3, 4)]:
                t = rng.normal(size=shape)
                x = t + _away_from(rng, shape, kinks)
                label = "-".join(f"{k}{v}" for k, v in opts.items()) + f"-{'x'.join(map(str, shape))}"
                out.append(Case(name, (x, t), dict(opts), label))
            w = rng.uniform(0.2, 2.0, size=(3, 4))
            t = rng.normal(size=(3, 4))
            out.append(Case(name, (t + _away_from(rng, (3, 4), kinks), t), {**opts, "weight": w}, "weighted" + "".join(map(str, opts.values()))))
    return out


def _counts(rng):
    """The deviances, MSLE and MAPE: positive means, targets in each loss's domain (zeros for Poisson)."""
    out = []
    for name, opts_list in [("poisson_deviance", [{}]), ("gamma_deviance", [{}]), ("msle", [{}]), ("mape", [{}]),
                            ("tweedie_deviance", [{"power": 0.0}, {"power": -1.0}, {"power": 1.0}, {"power": 1.5},
                                                  {"power": 2.0}, {"power": 3.0}])]:
        for opts in opts_list:
            for shape in [(7,), (3, 4)]:
                x = rng.uniform(0.3, 6.0, size=shape)
                power = opts.get("power")
                if name == "poisson_deviance" or (power is not None and 1 <= power < 2):  # counts, zeros included
                    t = rng.poisson(2.0, size=shape).astype(float)
                elif name == "mape":  # away from p = t (the kink) and from t = 0
                    t = (x + _away_from(rng, shape, [0.0], gap=0.2)) * np.sign(rng.normal(size=shape))
                    t = np.where(np.abs(t) < 0.2, 0.2, t)
                elif power is not None and power < 1:  # any real target
                    t = rng.uniform(0.2, 8.0, size=shape) * np.sign(rng.normal(size=shape))
                else:
                    t = rng.uniform(0.2, 8.0, size=shape)
                label = "-".join(f"{k}{v}" for k, v in opts.items()) + f"-{'x'.join(map(str, shape))}"
                out.append(Case(name, (x, t), dict(opts), label))
            w = rng.uniform(0.2, 2.0, size=(3, 4))
            x = rng.uniform(0.3, 6.0, size=(3, 4))
            t = x * rng.uniform(0.5, 1.5, size=(3, 4)) + 0.1
            out.append(Case(name, (x, t), {**opts, "weight": w}, "weighted" + "".join(map(str, opts.values()))))
    return out


def _class_targets(rng, n_shape, c, ignore=-100, n_ignored=1):
    t = rng.integers(0, c, size=n_shape)
    flat = t.reshape(-1)
    flat[: min(n_ignored, flat.size - 1)] = ignore
    return flat.reshape(n_shape)


def _classification(rng):
    out = []
    c = 5
    x = rng.normal(size=(6, c)) * 2
    weights = rng.uniform(0.3, 2.0, size=c)
    for weight in (None, weights):
        for smoothing in (0.0, 0.15):
            for ignore in (-100, 2):
                t = _class_targets(rng, (6,), c, ignore=ignore, n_ignored=2)
                opts = {"label_smoothing": smoothing, "ignore_index": ignore}
                if weight is not None:
                    opts["weight"] = weight
                out.append(Case("cross_entropy", (x, t), opts, f"idx-w{weight is not None}-ls{smoothing}-ig{ignore}"))
            probs = rng.dirichlet(np.ones(c), size=6)
            opts = {"label_smoothing": smoothing} | ({"weight": weight} if weight is not None else {})
            out.append(Case("cross_entropy", (x, probs), opts, f"prob-w{weight is not None}-ls{smoothing}"))
    out.append(Case("cross_entropy", (rng.normal(size=(2, 4, 3, 2)), _class_targets(rng, (2, 3, 2), 4)), {"weight": rng.uniform(0.5, 1.5, 4)}, "spatial"))
    out.append(Case("cross_entropy", (rng.normal(size=(2, 4, 3)), rng.dirichlet(np.ones(4), size=(2, 3)).transpose(0, 2, 1)), {"label_smoothing": 0.1}, "spatial-prob"))
    out.append(Case("cross_entropy", (rng.normal(size=(c,)), np.array(3)), {}, "unbatched"))
    # z-loss (PaLM) and soft-capping (Gemma 2), alone and with every other option
    t_ignored = _class_targets(rng, (6,), c, n_ignored=2)
    out.append(Case("cross_entropy", (x, t_ignored), {"lse_square_scale": 0.01}, "zloss"))
    out.append(Case("cross_entropy", (x * 4, t_ignored), {"softcap": 3.0}, "softcap"))
    out.append(Case("cross_entropy", (x * 4, t_ignored), {"lse_square_scale": 0.05, "softcap": 2.5, "weight": weights,
                                                            "label_smoothing": 0.1}, "zloss-softcap-w-ls"))
    out.append(Case("cross_entropy", (x, rng.dirichlet(np.ones(c), size=6)), {"lse_square_scale": 0.02, "softcap": 2.0},
                    "prob-zloss-softcap"))
    out.append(Case("cross_entropy", (rng.normal(size=(2, 4, 3)) * 3, _class_targets(rng, (2, 3), 4)),
                    {"lse_square_scale": 0.01, "softcap": 1.5}, "spatial-zloss-softcap"))
    log_probs = x - np.log(np.exp(x).sum(1, keepdims=True))
    for weight in (None, weights):
        opts = {} if weight is None else {"weight": weight}
        out.append(Case("nll", (log_probs, _class_targets(rng, (6,), c, n_ignored=2)), opts, f"w{weight is not None}"))
    out.append(Case("nll", (rng.normal(size=(2, 4, 3)), _class_targets(rng, (2, 3), 4)), {}, "spatial"))

    probs = rng.uniform(0.02, 0.98, size=(3, 4))
    hard = rng.integers(0, 2, size=(3, 4)).astype(float)
    soft = rng.uniform(0, 1, size=(3, 4))
    for targets, tl in ((hard, "hard"), (soft, "soft")):
        out.append(Case("binary_cross_entropy", (probs, targets), {}, tl))
        out.append(Case("binary_cross_entropy", (probs, targets), {"weight": rng.uniform(0.5, 2, size=(4,))}, tl + "-weight"))
        out.append(Case("binary_cross_entropy", (probs, targets), {"label_smoothing": 0.2}, tl + "-ls"))
        logits = rng.normal(size=(3, 4)) * 3
        out.append(Case("binary_cross_entropy_with_logits", (logits, targets), {}, tl))
        out.append(Case("binary_cross_entropy_with_logits", (logits, targets),
                        {"weight": rng.uniform(0.5, 2, size=(3, 4)), "pos_weight": rng.uniform(0.5, 4, size=(4,))}, tl + "-weights"))
        out.append(Case("binary_cross_entropy_with_logits", (logits, targets), {"label_smoothing": 0.1, "pos_weight": 2.0 * np.ones(4)},
                        tl + "-ls"))
        for alpha, gamma in ((0.25, 2.0), (None, 2.0), (0.5, 0.0), (0.7, 0.5)):
            out.append(Case("focal", (logits, targets), {"alpha": alpha, "gamma": gamma}, f"{tl}-a{alpha}-g{gamma}"))
    signs = np.where(rng.uniform(size=(9,)) < 0.5, -1.0, 1.0)
    for name in ("hinge", "squared_hinge"):
        for margin in (1.0, 0.5):
            scores = signs * _away_from(rng, (9,), [margin, -margin], scale=1.5)
            out.append(Case(name, (scores, signs), {"margin": margin}, f"m{margin}"))
    scores = rng.normal(size=(6, c))
    t = rng.integers(0, c, size=(6,))
    for p in (1, 2):
        for margin in (1.0, 0.5):
            out.append(Case("multiclass_hinge", (scores, t), {"p": p, "margin": margin}, f"p{p}-m{margin}"))
    out.append(Case("multiclass_hinge", (scores, t), {"weight": weights, "p": 2}, "weight"))
    out.append(Case("multiclass_hinge", (rng.normal(size=(c,)), np.array(2)), {}, "unbatched"))
    out.append(Case("multiclass_hinge", (rng.normal(size=(c,)), np.array([1])), {}, "unbatched-1"))
    target_probs = rng.dirichlet(np.ones(c), size=6)
    reds = ("none", "mean", "sum", "batchmean")
    out.append(Case("kl_div", (log_probs, target_probs), {}, "probs", reds))
    out.append(Case("kl_div", (log_probs, np.log(target_probs)), {"log_target": True}, "log", reds))
    out.append(Case("kl_div", (log_probs[0], target_probs[0]), {}, "1d", reds))
    return out


def _ranking(rng):
    out = []
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    same = np.array([1.0, 0.0, 1.0, 0.0, 0.0])
    for margin in (1.0, 3.0):
        out.append(Case("contrastive", (a, b, same), {"margin": margin}, f"m{margin}"))
    out.append(Case("contrastive", (a[0], b[0], np.array(0.0)), {"margin": 3.0}, "single"))
    n = rng.normal(size=(5, 3))
    for p, swap, margin in ((2, False, 1.0), (1, False, 2.0), (3, True, 1.0), (2, True, 5.0), (1.5, False, 2.0)):
        out.append(Case("triplet_margin", (a, b, n), {"p": p, "swap": swap, "margin": margin}, f"p{p}-swap{swap}-m{margin}"))
    out.append(Case("triplet_margin", (a[0], b[0], n[0]), {"margin": 5.0}, "single"))
    for temperature, normalize in ((0.07, True), (0.5, True), (1.0, False)):
        out.append(Case("info_nce", (a, b), {"temperature": temperature, "normalize": normalize}, f"t{temperature}-n{normalize}"))
    for t, bias, normalize in ((10.0, -10.0, True), (2.0, 0.5, True), (1.0, -1.0, False)):
        out.append(Case("siglip", (a, b), {"t": t, "bias": bias, "normalize": normalize}, f"t{t}-b{bias}-n{normalize}"))
    return out


def _pytorch_rest(rng):
    """The rest of PyTorch's losses, away from their kinks."""
    out = []
    signs = np.where(rng.uniform(size=(4, 3)) < 0.5, -1.0, 1.0)
    out.append(Case("soft_margin", (rng.normal(size=(4, 3)) * 2, signs), {}, "2d"))
    out.append(Case("soft_margin", (rng.normal(size=(5,)), signs[0:1].repeat(5)[:5] * 1.0), {}, "1d"))
    for margin in (1.0, 2.0):
        d = _away_from(rng, (4, 3), [margin], scale=1.5) ** 2
        out.append(Case("hinge_embedding", (d, signs), {"margin": margin}, f"m{margin}"))
    a, b = rng.normal(size=(2, 7))
    t = np.where(rng.uniform(size=7) < 0.5, -1.0, 1.0)
    for margin in (0.0, 0.5):
        b_away = b + np.where(np.abs(-t * (a - b) + margin) < 0.05, 0.3, 0.0)
        out.append(Case("margin_ranking", (a, b_away, t), {"margin": margin}, f"m{margin}"))
    x1, x2 = rng.normal(size=(2, 6, 4))
    pair = np.where(rng.uniform(size=6) < 0.5, -1.0, 1.0)
    for margin in (0.0, -0.3):
        out.append(Case("cosine_embedding", (x1, x2, pair), {"margin": margin}, f"m{margin}"))
    out.append(Case("cosine_embedding", (x1[0], x2[0], np.array(-1.0)), {"margin": -0.9}, "single"))
    scores = rng.normal(size=(5, 4)) * 2
    out.append(Case("multilabel_soft_margin", (scores, (rng.uniform(size=(5, 4)) < 0.4) * 1.0), {}, "hard"))
    out.append(Case("multilabel_soft_margin", (scores, rng.uniform(size=(5, 4))), {"weight": rng.uniform(0.5, 2, 4)}, "soft-w"))
    labels = np.array([[3, 0, -1, 1], [1, -1, -1, -1], [0, 1, 2, 3], [2, 2, -1, 0], [-1, 0, 0, 0]])
    out.append(Case("multilabel_margin", (scores * 3, labels), {}, "2d"))
    out.append(Case("multilabel_margin", (scores[0] * 3, labels[0]), {}, "1d"))
    counts = rng.poisson(3.0, size=(3, 4)).astype(float)
    for log_input, full in ((True, False), (False, False), (True, True), (False, True)):
        x = rng.normal(size=(3, 4)) if log_input else rng.uniform(0.3, 5.0, size=(3, 4))
        out.append(Case("poisson_nll", (x, counts), {"log_input": log_input, "full": full}, f"log{log_input}-full{full}"))
    mean, target = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    for var, label in ((rng.uniform(0.3, 2, (4, 3)), "same"), (rng.uniform(0.3, 2, (4,)), "row"),
                       (rng.uniform(0.3, 2, (4, 1)), "column")):
        out.append(Case("gaussian_nll", (mean, target, var), {}, label))
    out.append(Case("gaussian_nll", (mean, target, rng.uniform(0.3, 2, (4, 3))), {"full": True, "eps": 1e-3}, "full"))
    anchor, positive, negative = rng.normal(size=(3, 5, 3))
    for distance, p, swap in (("pairwise", 2, False), ("pairwise", 1.5, True), ("cosine", 2, False), ("cosine", 2, True)):
        out.append(Case("triplet_margin_with_distance", (anchor, positive, negative),
                        {"distance_function": distance, "p": p, "swap": swap, "margin": 0.4}, f"{distance}-p{p}-s{swap}"))
    return out


def _log_softmax(x, axis):
    return x - np.log(np.exp(x - x.max(axis=axis, keepdims=True)).sum(axis=axis, keepdims=True)) - x.max(axis=axis, keepdims=True)


def _groups_2_4(rng):
    """CTC, segmentation and metric learning: one or two small cases each (their own test files go deep)."""
    out = []
    log_probs = _log_softmax(rng.normal(size=(6, 2, 4)) * 2, -1)
    ctc_args = (log_probs, np.array([[1, 2, 2], [3, 1, 0]]), np.array([6, 5]), np.array([3, 2]))
    out.append(Case("ctc", ctc_args, {}, "padded", ("none", "sum")))
    out.append(Case("ctc", ctc_args, {"blank": 0, "zero_infinity": True}, "zero-inf", ("none", "sum")))
    logits = rng.normal(size=(2, 3, 3, 4)) * 2
    labels = rng.integers(0, 3, size=(2, 3, 4))
    out.append(Case("dice", (logits, labels), {}, "multiclass"))
    out.append(Case("dice", (logits[:, :1], (rng.uniform(size=(2, 1, 3, 4)) < 0.5) * 1.0), {"mode": "binary", "smooth": 1.0},
                    "binary"))
    out.append(Case("jaccard", (logits, (rng.uniform(size=(2, 3, 3, 4)) < 0.5) * 1.0), {"mode": "multilabel"}, "multilabel"))
    out.append(Case("tversky", (logits, labels), {"alpha": 0.3, "beta": 0.7}, "multiclass"))
    out.append(Case("focal_tversky", (logits, labels), {"alpha": 0.7, "beta": 0.3, "gamma": 1.5}, "multiclass"))
    probs = np.exp(_log_softmax(logits, 1))
    out.append(Case("lovasz_softmax", (probs, labels), {}, "present", ("mean",)))
    out.append(Case("lovasz_softmax", (probs, labels), {"classes": "all", "per_image": True}, "all-per-image", ("mean",)))
    out.append(Case("lovasz_hinge", (logits[:, 0], (rng.uniform(size=(2, 3, 4)) < 0.5) * 1), {}, "per-image", ("mean",)))
    embeddings, centers = rng.normal(size=(6, 4)), rng.normal(size=(5, 4))
    classes = np.array([0, 3, 1, 4, 2, 3])
    out.append(Case("arcface", (embeddings, centers, classes), {"scale": 8.0, "margin": 0.3}, "s8"))
    out.append(Case("cosface", (embeddings, centers, classes), {"scale": 8.0, "margin": 0.2}, "s8"))
    views = np.array([0, 0, 1, 1, 2, 2])
    out.append(Case("ntxent", (embeddings, views), {"temperature": 0.5}, "pairs"))
    out.append(Case("supcon", (embeddings, np.array([0, 0, 0, 1, 1, 2])), {"temperature": 0.5}, "groups"))
    return out


def _post_training(rng):
    """Preference pairs (per-sequence log-probabilities, away from hinge's kink at beta D = 1) and distillation."""
    out = []
    pc, pr, rc, rr = (-rng.uniform(5, 40, size=(6,)) for _ in range(4))
    d = (pc - rc) - (pr - rr)
    for loss_type, e, beta in (("sigmoid", 0.0, 0.1), ("sigmoid", 0.2, 0.5), ("hinge", 0.0, 0.1), ("ipo", 0.0, 0.1),
                               ("robust", 0.1, 0.2)):
        if loss_type == "hinge":  # nudge beta D away from 1
            pc = pc + np.where(np.abs(beta * d - 1) < 0.05, 1.0, 0.0)
        out.append(Case("dpo", (pc, pr, rc, rr), {"beta": beta, "loss_type": loss_type, "label_smoothing": e},
                        f"{loss_type}-e{e}-b{beta}"))
    out.append(Case("dpo", (pc.reshape(2, 3), pr.reshape(2, 3), rc.reshape(2, 3), rr.reshape(2, 3)), {}, "2d"))
    c, r = -rng.uniform(0.05, 3.0, size=(7,)), -rng.uniform(0.05, 3.0, size=(7,))
    for beta, gamma in ((2.0, 0.5), (0.5, 0.0), (5.0, 1.5)):
        out.append(Case("simpo", (c, r), {"beta": beta, "gamma": gamma}, f"b{beta}-g{gamma}"))
    for lam in (0.1, 1.0):
        out.append(Case("orpo", (c, r), {"lam": lam}, f"lam{lam}"))
    out.append(Case("orpo", (c.reshape(7, 1), r.reshape(7, 1)), {}, "2d"))
    s, t = rng.normal(size=(4, 6)) * 2, rng.normal(size=(4, 6)) * 2
    for temperature, reverse in ((1.0, False), (2.0, False), (0.7, True), (3.0, True)):
        out.append(Case("distill_kl", (s, t), {"temperature": temperature, "reverse": reverse}, f"T{temperature}-r{reverse}"))
    out.append(Case("distill_kl", (rng.normal(size=(2, 3, 5)), rng.normal(size=(2, 3, 5))), {}, "3d"))
    out.append(Case("distill_kl", (s[0], t[0]), {"temperature": 2.0}, "1d"))
    for beta, temperature in ((0.5, 1.0), (0.1, 2.0), (0.9, 0.5), (0.0, 1.5), (1.0, 1.0)):
        out.append(Case("jsd", (s, t), {"beta": beta, "temperature": temperature}, f"b{beta}-T{temperature}"))
    out.append(Case("jsd", (rng.normal(size=(2, 3, 5)), rng.normal(size=(2, 3, 5))), {}, "3d"))
    return out


def all_cases(seed: int = 0) -> list[Case]:
    rng = np.random.default_rng(seed)
    return (_regression(rng) + _counts(rng) + _classification(rng) + _ranking(rng) + _post_training(rng)
            + _pytorch_rest(rng) + _groups_2_4(rng))


CASES = all_cases()
