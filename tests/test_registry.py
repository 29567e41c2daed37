"""The registry's claims are checked, not just stated: convexity, smoothness, lower bounds,
outlier robustness, minimisers; and the registry, the API, the modules and the docs agree."""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import numpy as np
import pytest

import losslab as ll
import losslab.torch as llt
from cases import CASES
from losslab.docs import render

SPECS = ll.losses()


def test_registry_lists_every_public_loss_once():
    names = [s.name for s in SPECS]
    assert len(names) == len(set(names)) == 49
    for name in names:
        assert getattr(ll, name) is ll.get_loss(name)
        assert ll.get(name).name == name
    assert {s.name for s in ll.losses(family="regression")} == {"mse", "mae", "huber", "smooth_l1", "log_cosh", "quantile",
                                                               "poisson_deviance", "gamma_deviance", "tweedie_deviance",
                                                               "msle", "mape", "poisson_nll", "gaussian_nll"}
    assert "binary_cross_entropy_with_logits" in {s.name for s in ll.losses(task="multilabel")}
    assert {s.name for s in ll.losses(family="post-training")} == {"dpo", "simpo", "orpo", "distill_kl", "jsd"}
    assert {s.name for s in ll.losses(task="preference")} == {"dpo", "simpo", "orpo"}
    assert {s.name for s in ll.losses(family="segmentation")} == {"dice", "jaccard", "tversky", "focal_tversky",
                                                                 "lovasz_softmax", "lovasz_hinge"}
    with pytest.raises(ValueError, match="family must be one of"):
        ll.losses(family="vision")


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_spec_is_complete_and_matches_the_function(spec):
    fn = ll.get_loss(spec.name)
    positional = [p.name for p in fn.__signature__.parameters.values() if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    keyword = [p.name for p in fn.__signature__.parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    assert list(spec.inputs) == positional
    assert {o.name for o in spec.options} <= set(keyword)
    assert {"pytorch", "optax", "keras"} <= set(spec.peers) <= {"pytorch", "optax", "keras", "sklearn", "trl"}
    assert spec.formula_latex and spec.formula_text and spec.gradient_latex and spec.gradient_text and spec.when_to_use
    assert spec.task in ll.registry.TASKS and spec.family in ll.registry.FAMILIES
    assert issubclass(getattr(llt, spec.torch_module), llt.LosslabLoss)
    assert spec.formula_text.splitlines()[0] in fn.__doc__ and spec.gradient_text.splitlines()[0] in fn.__doc__
    case = next(c for c in CASES if c.loss == spec.name)
    if spec.has_hessian:
        assert fn.hessian(*case.args, **case.options).shape[: case.args[0].ndim] == case.args[0].shape[:1] + case.args[0].shape[1:][: case.args[0].ndim - 1]
    else:
        with pytest.raises(NotImplementedError, match="has no Hessian"):
            fn.hessian(*case.args, **case.options)
    assert spec.to_dict()["name"] == spec.name


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_every_option_default_lies_in_its_domain(spec):
    # Loss._bind skips the domain check for an option left at its default object: each must pass it unchanged
    from losslab import _checks

    defaults = ll.get_loss(spec.name)._keyword_defaults
    for option in spec.options:
        assert _checks.option_in(option, defaults[option.name]) is defaults[option.name], option.name


def test_docs_reference_is_generated_from_the_registry():
    path = Path(__file__).resolve().parents[1] / "docs" / "losses.md"
    assert path.read_text(encoding="utf-8") == render(), "docs/losses.md is stale: run `python -m losslab.docs`"


def _line_values(case, direction, steps):
    x0 = case.inputs_of(case.args)
    return np.array([case.fn(*case.call_with([x + s * d for x, d in zip(x0, direction)], case.args), **case.options, reduction="sum")
                     for s in steps])


def _directions(case, rng, count):
    for _ in range(count):
        yield [rng.normal(size=x.shape) for x in case.inputs_of(case.args)]


def _scaled_for_domain(case, direction):
    if case.loss == "lovasz_softmax":  # probabilities stay inside [0, 1] over steps in [-1, 1]
        room = min(float(case.args[0].min()), float(1 - case.args[0].max()))
        return [d / np.abs(d).max() * room * 0.9 for d in direction]
    if case.loss == "binary_cross_entropy":  # stay inside (0, 1)
        return [d * 0.01 for d in direction]
    if case.loss in (*POSITIVE_MEAN, "orpo", "poisson_nll"):  # means and rates stay > 0.3 - 0.1 (ORPO: < 0) over [-2, 2]
        return [d / np.abs(d).max() * 0.05 for d in direction]
    return direction


POSITIVE_MEAN = ("poisson_deviance", "gamma_deviance", "tweedie_deviance", "msle")
# the cap bends CE, and the reverse KL is not convex in the student's logits (their conventions)
CONVEX = [c for c in CASES if c.fn.spec.convex and "softcap" not in c.options and not c.options.get("reverse")]
NONCONVEX_LOSSES = sorted({c.loss for c in CASES if not c.fn.spec.convex})


@pytest.mark.parametrize("case", CONVEX, ids=[c.id for c in CONVEX])
def test_convex_claim_second_differences_are_nonnegative(case):
    rng = np.random.default_rng(0)
    steps = np.linspace(-1, 1, 21)
    for direction in _directions(case, rng, 8):
        v = _line_values(case, _scaled_for_domain(case, direction), steps)
        second = v[:-2] - 2 * v[1:-1] + v[2:]
        assert second.min() >= -1e-9 * max(1.0, np.abs(v).max())


@pytest.mark.parametrize("name", NONCONVEX_LOSSES)
def test_nonconvex_claim_has_a_witness(name):
    """A loss marked non-convex really has a line along which it curves down."""
    rng = np.random.default_rng(1)
    steps = np.linspace(-2, 2, 41)
    for case in [c for c in CASES if c.loss == name]:
        for direction in _directions(case, rng, 40):
            if name in POSITIVE_MEAN:  # they curve down for large means (gamma: x > 2 t): walk up, in the domain
                v = _line_values(case, [np.abs(d) / np.abs(d).max() for d in direction], np.linspace(0, 30, 41))
            elif name == "gaussian_nll":  # it curves down in the variance beyond twice the squared error: walk it up
                v = _line_values(case, [np.zeros_like(direction[0]), np.abs(direction[1]) / np.abs(direction[1]).max()],
                                 np.linspace(0, 30, 41))
            elif name == "orpo":  # it curves down as the chosen response nears probability 1: walk there, below 0
                top = -max(x.max() for x in case.args)
                v = _line_values(case, [np.abs(d) / np.abs(d).max() for d in direction], np.linspace(0, top * 0.999, 41))
            else:
                v = _line_values(case, direction, steps)
            if (v[:-2] - 2 * v[1:-1] + v[2:]).min() < -1e-6:
                return
    pytest.fail(f"no concave stretch found for {name}: is it convex after all?")


def _triplet_kink():
    a, p, n = np.array([[0.0, 0.0]]), np.array([[1.0, 0.0]]), np.array([[0.0, 2.0]])
    dist = lambda u, v: np.linalg.norm(u - v + 1e-6, axis=-1)  # noqa: E731
    margin = float(dist(a, n)[0] - dist(a, p)[0])  # exactly on the hinge
    return (a, p, n), {"margin": margin}, np.array([[-1.0, 1.0]])


def _lovasz_softmax_kink():
    # one image of two pixels, of classes 0 and 1, with errors 1 - 0.6 = 0.4 tying in both classes: the order of
    # the first pixel (a foreground one) and the second swaps across the tie, and the Jaccard increments differ
    probs = np.array([[[[0.6, 0.4]], [[0.4, 0.6]]]])
    return (probs, np.array([[[0, 1]]])), {}, np.array([[[[1.0, 0.0]], [[-1.0, 0.0]]]])


def _cosine_kink():
    x1, x2 = np.array([[1.0, 0.0]]), np.array([[1.0, 1.0]])
    cos = float(np.sum(x1 * x2) / np.sqrt((np.sum(x1 * x1) + 1e-12) * (np.sum(x2 * x2) + 1e-12)))
    return (x1, x2, np.array([-1.0])), {"margin": cos}, np.array([[0.0, 1.0]])


KINKS = {  # args exactly at a kink, options, and a direction (for the first input) that crosses it
    "mae": ((np.array([0.0]), np.array([0.0])), {}, np.array([1.0])),
    "quantile": ((np.array([0.0]), np.array([0.0])), {"q": 0.3}, np.array([1.0])),
    "hinge": ((np.array([1.0]), np.array([1.0])), {}, np.array([1.0])),
    "multiclass_hinge": ((np.array([[1.0, 0.0]]), np.array([0])), {}, np.array([[0.0, 1.0]])),
    "triplet_margin": _triplet_kink(),
    "mape": ((np.array([2.0]), np.array([2.0])), {}, np.array([1.0])),
    "hinge_embedding": ((np.array([1.0]), np.array([-1.0])), {}, np.array([1.0])),
    "margin_ranking": ((np.array([1.0]), np.array([0.0]), np.array([1.0])), {"margin": 1.0}, np.array([1.0])),
    "cosine_embedding": _cosine_kink(),
    "multilabel_margin": ((np.array([[1.0, 0.0]]), np.array([[0, -1]])), {}, np.array([[0.0, 1.0]])),
    "triplet_margin_with_distance": _triplet_kink(),
    # ArcFace's target logit switches to insightface's fallback at theta + m = pi
    "arcface": ((np.array([[math.cos(math.pi - 0.5), math.sin(math.pi - 0.5)]]), np.eye(2), np.array([0])),
                {"margin": 0.5, "scale": 4.0}, np.array([[0.0, 1.0]])),
    # two pixels' errors tie: the sort order, and with it the Lovasz gradient, swaps across the tie
    "lovasz_hinge": ((np.array([[[0.0, 0.0]]]), np.array([[[1, 0]]])), {}, np.array([[[1.0, 0.0]]])),
    "lovasz_softmax": _lovasz_softmax_kink(),
}


@pytest.mark.parametrize("spec", [s for s in SPECS if not s.smooth], ids=lambda s: s.name)
def test_nonsmooth_claim_gradient_jumps_at_the_kink(spec):
    args, opts, direction = KINKS[spec.name]
    fn = ll.get_loss(spec.name)

    def first_grad(x):
        g = fn.grad(x, *args[1:], **opts, reduction="sum")
        return g[0] if isinstance(g, tuple) else g

    h = 1e-7
    jump = np.abs(first_grad(args[0] + h * direction) - first_grad(args[0] - h * direction)).max()
    assert jump > 0.1


@pytest.mark.parametrize("name", ["huber", "smooth_l1", "squared_hinge", "log_cosh"])
def test_smooth_claim_gradient_is_continuous_where_the_formula_switches(name):
    switch = {"huber": 1.0, "smooth_l1": 1.0, "squared_hinge": 0.0, "log_cosh": 0.0}[name]
    t = np.array([1.0]) if name == "squared_hinge" else np.array([0.0])
    fn = ll.get_loss(name)
    for h in (1e-4, 1e-6):
        gap = np.abs(fn.grad(np.array([switch + h]), t) - fn.grad(np.array([switch - h]), t)).max()
        assert gap < 10 * h


ELEMENTWISE_FAR = {  # prediction far from a target of the valid range
    "mse": (1e6, 0.0), "mae": (1e6, 0.0), "huber": (1e6, 0.0), "smooth_l1": (1e6, 0.0), "log_cosh": (1e6, 0.0),
    "quantile": (1e6, 0.0), "binary_cross_entropy_with_logits": (-1e6, 1.0), "focal": (-1e6, 1.0),
    "hinge": (-1e6, 1.0), "squared_hinge": (-1e6, 1.0), "binary_cross_entropy": (1e-300, 1.0),
    "soft_margin": (-1e6, 1.0), "hinge_embedding": (1e6, 1.0),
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE_FAR))
def test_outlier_robustness_claim_is_a_bounded_gradient(name):
    fn = ll.get_loss(name)
    far, t = ELEMENTWISE_FAR[name]
    g = abs(float(fn.grad(np.array([far]), np.array([t]))[0]))
    if fn.spec.robust_to_outliers:
        assert g <= 1.0 + 1e-9
    else:
        assert g >= 1e3


def test_cross_entropy_gradient_is_bounded_however_wrong():
    g = ll.cross_entropy.grad(np.array([[1e6, -1e6, 0.0]]), np.array([1]))
    assert ll.get("cross_entropy").robust_to_outliers and np.abs(g).max() <= 1.0


@pytest.mark.parametrize("seed", range(5))
def test_minimisers_mean_median_and_quantile(seed):
    rng = np.random.default_rng(seed)
    t = rng.standard_t(df=2, size=41) * 3  # heavy tails: mean and median differ
    grid = np.linspace(t.min(), t.max(), 20001)

    def argmin(fn, **options):
        values = [fn(np.full_like(t, c), t, **options) for c in grid]
        return grid[int(np.argmin(values))]

    step = grid[1] - grid[0]
    assert abs(argmin(ll.mse) - t.mean()) <= step
    assert abs(argmin(ll.mae) - np.median(t)) <= step
    for q in (0.1, 0.25, 0.9):
        assert abs(argmin(ll.quantile, q=q) - np.quantile(t, q, method="inverted_cdf")) <= step
    # and the gradient vanishes at the closed forms
    assert abs(ll.mse.grad(np.full_like(t, t.mean()), t).sum()) < 1e-12


# robust DPO with label smoothing is unbounded below (its conventions)
@pytest.mark.parametrize("case", [c for c in CASES if c.id != "nll-spatial" and c.options.get("loss_type") != "robust"],
                         ids=lambda c: c.id)
def test_lower_bound_claim(case):
    assert float(np.sum(case.fn(*case.args, **case.options, reduction="sum"))) >= case.fn.spec.lower_bound - 1e-12
