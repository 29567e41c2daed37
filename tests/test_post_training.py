"""Preference and distillation losses against independent references: the formulas of TRL's trainers
(DPOTrainer's sigmoid/hinge/ipo/robust, CPOTrainer's SimPO, ORPOTrainer's odds ratio, GKDTrainer's
generalized JSD) transcribed into plain PyTorch and differentiated by autograd, PyTorch's own
``F.kl_div`` for distillation, and the properties that tie the losses together."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import losslab as ll
import losslab.torch as llt

jax.config.update("jax_enable_x64", True)


def _trl_dpo(pc, pr, rc, rr, beta, loss_type, e):
    logits = (pc - pr) - (rc - rr)
    if loss_type == "sigmoid":
        return -F.logsigmoid(beta * logits) * (1 - e) - F.logsigmoid(-beta * logits) * e
    if loss_type == "hinge":
        return torch.relu(1 - beta * logits)
    if loss_type == "ipo":
        return (logits - 1 / (2 * beta)) ** 2
    return (-F.logsigmoid(beta * logits) * (1 - e) + F.logsigmoid(-beta * logits) * e) / (1 - 2 * e)


def _trl_simpo(c, r, beta, gamma):
    return -F.logsigmoid(beta * ((c - r) - gamma / beta))  # CPOTrainer: gamma_beta_ratio = gamma / beta


def _trl_orpo(c, r, lam):
    log_odds = (c - r) - (torch.log1p(-torch.exp(c)) - torch.log1p(-torch.exp(r)))
    return -lam * F.logsigmoid(log_odds)


def _trl_jsd(s, t, beta, temperature):
    """GKDTrainer.generalized_jsd_loss per row (its 'none' reduction summed over the vocabulary)."""
    ls, lt = F.log_softmax(s / temperature, -1), F.log_softmax(t / temperature, -1)
    if beta == 0:
        per = F.kl_div(ls, lt, reduction="none", log_target=True)
    elif beta == 1:
        per = F.kl_div(lt, ls, reduction="none", log_target=True)
    else:
        b = torch.tensor(beta, dtype=s.dtype)
        lm = torch.logsumexp(torch.stack([ls + torch.log(1 - b), lt + torch.log(b)]), dim=0)
        per = b * F.kl_div(lm, lt, reduction="none", log_target=True) + (1 - b) * F.kl_div(lm, ls, reduction="none", log_target=True)
    return per.sum(-1)


def _distill_torch(s, t, temperature, reverse):
    ls, lt = F.log_softmax(s / temperature, -1), F.log_softmax(t / temperature, -1)
    kl = F.kl_div(lt, ls, reduction="none", log_target=True) if reverse else F.kl_div(ls, lt, reduction="none", log_target=True)
    return temperature**2 * kl.sum(-1)


def _assert_matches(loss, reference, inputs, constants, options, reduction):
    """losslab's value and analytic gradient (NumPy, torch, JAX) against the reference's autograd."""
    leaves = [torch.tensor(x, requires_grad=True) for x in inputs]
    per = reference(*leaves, *[torch.tensor(c) for c in constants])
    want = {"none": per, "mean": per.mean(), "sum": per.sum()}[reduction]
    grads = torch.autograd.grad(want.sum(), leaves)
    value, got = loss.value_and_grad(*inputs, *constants, reduction=reduction, **options)
    got = got if isinstance(got, tuple) else (got,)
    np.testing.assert_allclose(value, want.detach().numpy(), rtol=1e-10, atol=1e-12)
    for g, w in zip(got, grads):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-9, atol=1e-12)
    t_leaves = [torch.tensor(x, requires_grad=True) for x in inputs]  # torch tensors, through losslab's autograd bridge
    t_value = loss(*t_leaves, *[torch.tensor(c) for c in constants], reduction=reduction, **options)
    for g, w in zip(torch.autograd.grad(t_value.sum(), t_leaves), grads):
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-9, atol=1e-12)
    j_value, j_grads = jax.value_and_grad(
        lambda *xs: jnp.sum(loss(*xs, *map(jnp.asarray, constants), reduction=reduction, **options)),
        argnums=tuple(range(len(inputs))))(*map(jnp.asarray, inputs))
    np.testing.assert_allclose(float(j_value), float(want.detach().sum()), rtol=1e-10)
    for g, w in zip(j_grads, grads):
        np.testing.assert_allclose(np.asarray(g), w.numpy(), rtol=1e-9, atol=1e-12)


RNG = np.random.default_rng(7)
LOGPS = [-RNG.uniform(5, 60, size=(8,)) for _ in range(4)]


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize(("loss_type", "e", "beta"), [("sigmoid", 0.0, 0.1), ("sigmoid", 0.25, 0.3), ("hinge", 0.0, 0.1),
                                                      ("hinge", 0.0, 2.0), ("ipo", 0.0, 0.1), ("ipo", 0.0, 1.0),
                                                      ("robust", 0.1, 0.1), ("robust", 0.4, 0.5)])
def test_dpo_matches_trl(loss_type, e, beta, reduction):
    options = {"beta": beta, "loss_type": loss_type, "label_smoothing": e}
    _assert_matches(ll.dpo, lambda pc, pr, rc, rr: _trl_dpo(pc, pr, rc, rr, beta, loss_type, e), LOGPS[:2], LOGPS[2:], options, reduction)


@pytest.mark.parametrize(("beta", "gamma"), [(2.0, 0.5), (0.5, 0.0), (10.0, 3.0)])
def test_simpo_matches_trl(beta, gamma):
    c, r = -RNG.uniform(0.05, 3, size=(9,)), -RNG.uniform(0.05, 3, size=(9,))
    for reduction in ("none", "mean", "sum"):
        _assert_matches(ll.simpo, lambda a, b: _trl_simpo(a, b, beta, gamma), [c, r], [], {"beta": beta, "gamma": gamma}, reduction)


@pytest.mark.parametrize("lam", [0.1, 1.0])
def test_orpo_matches_trl(lam):
    c = np.concatenate([-RNG.uniform(0.05, 3, size=(6,)), [-1e-4, -0.69, -0.7, -30.0]])  # both sides of -log 2
    r = np.concatenate([-RNG.uniform(0.05, 3, size=(6,)), [-2.0, -1e-3, -5.0, -0.1]])
    for reduction in ("none", "mean", "sum"):
        _assert_matches(ll.orpo, lambda a, b: _trl_orpo(a, b, lam), [c, r], [], {"lam": lam}, reduction)


def test_orpo_log_odds_stay_accurate_near_probability_one():
    """log(1 - e^x) by log1p(-exp(x)) loses every digit for x near 0; log(-expm1(x)) keeps them."""
    c, r = np.array([-1e-12]), np.array([-1.0])
    exact = -math.log(1 / (1 + math.exp(-((-1e-12 - math.log(-math.expm1(-1e-12))) - (-1.0 - math.log(-math.expm1(-1.0)))))))
    assert ll.orpo(c, r, lam=1.0) == pytest.approx(exact, rel=1e-12)
    g = ll.orpo.grad(c, r)
    assert np.all(np.isfinite(g[0])) and np.all(np.isfinite(g[1]))


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize(("temperature", "reverse"), [(1.0, False), (2.0, False), (0.5, True), (4.0, True)])
def test_distill_kl_matches_torch_kl_div(temperature, reverse, reduction):
    s, t = RNG.normal(size=(2, 5, 11)) * 3, RNG.normal(size=(2, 5, 11)) * 3
    _assert_matches(ll.distill_kl, lambda a, b: _distill_torch(a, b, temperature, reverse), [s], [t],
           {"temperature": temperature, "reverse": reverse}, reduction)


def test_distill_kl_is_pytorchs_batchmean_recipe():
    """Hinton's recipe as PyTorch users write it: kl_div(log_softmax(s/T), softmax(t/T), 'batchmean') * T^2."""
    s, t = torch.randn(16, 10, dtype=torch.float64), torch.randn(16, 10, dtype=torch.float64)
    want = F.kl_div(F.log_softmax(s / 3, 1), F.softmax(t / 3, 1), reduction="batchmean") * 9
    assert float(ll.distill_kl(s, t, temperature=3.0)) == pytest.approx(float(want), rel=1e-12)


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize(("beta", "temperature"), [(0.5, 1.0), (0.1, 2.0), (0.9, 0.5), (0.0, 1.0), (1.0, 1.5)])
def test_jsd_matches_trl_generalized_jsd(beta, temperature, reduction):
    s, t = RNG.normal(size=(3, 4, 9)) * 2, RNG.normal(size=(3, 4, 9)) * 2
    _assert_matches(ll.jsd, lambda a, b: _trl_jsd(a, b, beta, temperature), [s], [t], {"beta": beta, "temperature": temperature}, reduction)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-30, 30), min_size=3, max_size=3), st.lists(st.floats(-30, 30), min_size=3, max_size=3),
       st.floats(0.2, 5.0))
def test_divergences_are_zero_at_the_teacher_and_ordered(s, t, temperature):
    s, t = np.array(s), np.array(t)
    kl, reverse = ll.distill_kl(s, t, temperature=temperature), ll.distill_kl(s, t, temperature=temperature, reverse=True)
    js = ll.jsd(s, t, temperature=temperature)
    assert min(kl, reverse, js) >= -1e-12
    assert js <= math.log(2) + 1e-12  # the symmetric JSD is bounded, whatever the logits
    assert ll.jsd(s, t, beta=0.0, temperature=temperature) == pytest.approx(kl / temperature**2, rel=1e-9, abs=1e-12)
    assert ll.jsd(s, t, beta=1.0, temperature=temperature) == pytest.approx(reverse / temperature**2, rel=1e-9, abs=1e-12)
    assert ll.distill_kl(t, t, temperature=temperature) == pytest.approx(0.0, abs=1e-12)
    assert np.abs(ll.jsd.grad(t, t, temperature=temperature)).max() < 1e-12


@settings(max_examples=60, deadline=None)
@given(st.floats(-1e4, 1e4), st.floats(0.01, 5.0), st.sampled_from(["sigmoid", "hinge", "ipo", "robust"]))
def test_dpo_depends_on_the_margin_only_and_stays_finite(d, beta, loss_type):
    e = 0.1 if loss_type == "robust" else 0.0
    options = {"beta": beta, "loss_type": loss_type, "label_smoothing": e}
    a = ll.dpo.value_and_grad(np.array([d - 3.0]), np.array([-3.0]), np.array([0.0]), np.array([0.0]), **options)
    b = ll.dpo.value_and_grad(np.array([-7.0]), np.array([-7.0 - d]), np.array([-1.0]), np.array([-1.0]), **options)
    assert np.isfinite(a[0]) and np.isfinite(a[1][0]).all()
    assert a[0] == pytest.approx(b[0], rel=1e-9, abs=1e-9) and a[1][0] == pytest.approx(b[1][0], rel=1e-6, abs=1e-9)
    assert a[1][0] == pytest.approx(-a[1][1])


def test_conservative_dpo_prefers_a_finite_margin():
    """With label smoothing e the sigmoid loss is minimised at beta D = log((1 - e) / e), not at infinity."""
    beta, e = 0.5, 0.2
    d = np.linspace(-20, 20, 40001)
    zeros = np.zeros_like(d)
    values = ll.dpo(d, zeros, zeros, zeros, beta=beta, label_smoothing=e, reduction="none")
    assert d[np.argmin(values)] == pytest.approx(math.log((1 - e) / e) / beta, abs=1e-3)
    assert ll.dpo.grad(np.array([math.log((1 - e) / e) / beta]), np.zeros(1), np.zeros(1), np.zeros(1),
                       beta=beta, label_smoothing=e)[0][0] == pytest.approx(0.0, abs=1e-15)


def test_ipo_targets_a_margin_of_one_over_two_beta():
    d = np.array([5.0])
    assert ll.dpo(d, np.zeros(1), np.zeros(1), np.zeros(1), loss_type="ipo", beta=0.1) == 0.0


def test_bad_arguments_are_refused_with_the_reason():
    a, b = np.array([-1.0, -2.0]), np.array([-1.5, -2.5])
    with pytest.raises(ValueError, match="label_smoothing applies to loss_type 'sigmoid' and 'robust' only"):
        ll.dpo(a, b, a, b, loss_type="ipo", label_smoothing=0.1)
    with pytest.raises(ValueError, match=r"label_smoothing must be a finite number in \[0, 0.5\)"):
        ll.dpo(a, b, a, b, loss_type="robust", label_smoothing=0.5)
    with pytest.raises(ValueError, match="loss_type must be"):
        ll.dpo(a, b, a, b, loss_type="kto")
    with pytest.raises(ValueError, match=r"beta must be a finite number in \(0, inf\)"):
        ll.dpo(a, b, a, b, beta=0.0)
    with pytest.raises(ValueError, match="ref_rejected"):
        ll.dpo(a, b, a, b[:1])
    with pytest.raises(ValueError, match="chosen_avg_logps must be < 0"):
        ll.orpo(np.array([-0.5, 0.0]), b)
    with pytest.raises(ValueError, match="rejected_avg_logps must be < 0"):
        ll.orpo(a, np.array([0.3, -1.0]))
    with pytest.raises(ValueError, match="teacher_logits"):
        ll.distill_kl(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"beta must be a finite number in \[0, 1\]"):
        ll.jsd(np.zeros((2, 3)), np.zeros((2, 3)), beta=1.5)
    with pytest.raises(TypeError, match="student_logits must be a floating-point array"):
        ll.jsd(np.zeros((2, 3), dtype=np.int64), np.zeros((2, 3)))
    assert np.isnan(ll.orpo(np.array([np.nan]), np.array([-1.0])))  # NaN is not refused: it reaches the value


def test_extreme_logits_give_finite_values_and_gradients():
    s = np.array([[1e4, -1e4, 0.0], [0.0, 0.0, 0.0]])
    t = np.array([[-1e4, 1e4, 0.0], [50.0, -50.0, 0.0]])
    for fn, options in ((ll.distill_kl, {}), (ll.distill_kl, {"reverse": True}), (ll.jsd, {}), (ll.jsd, {"beta": 0.9})):
        value, grad = fn.value_and_grad(s, t, **options)
        assert np.isfinite(value) and np.isfinite(grad).all(), (fn.name, options)
    value, grads = ll.dpo.value_and_grad(np.array([-1e6]), np.array([-1.0]), np.array([-1.0]), np.array([-1e6]))
    assert np.isfinite(value) and all(np.isfinite(g).all() for g in grads)


def test_half_precision_inputs_accumulate_in_float32():
    s, t = torch.randn(4, 50), torch.randn(4, 50)
    value = ll.distill_kl(s.to(torch.bfloat16), t.to(torch.bfloat16), temperature=2.0)
    assert value.dtype == torch.float32  # as cross_entropy: the value of half inputs in float32
    assert float(value) == pytest.approx(float(ll.distill_kl(s.to(torch.bfloat16).double(), t.to(torch.bfloat16).double(),
                                                             temperature=2.0)), rel=1e-5)


def test_modules_train_a_policy():
    """llt.DPOLoss in a training step: the chosen responses' log-probabilities rise against the rejected ones."""
    torch.manual_seed(0)
    logits = torch.zeros(4, 6, requires_grad=True)  # a toy policy over 6 responses
    ref = torch.log_softmax(torch.zeros(4, 6), 1)
    chosen, rejected = torch.tensor([0, 1, 2, 3]), torch.tensor([5, 4, 3, 2])
    criterion = llt.DPOLoss(beta=0.5)
    optimiser = torch.optim.SGD([logits], lr=1.0)
    for _ in range(50):
        logp = torch.log_softmax(logits, 1)
        loss = criterion(logp.gather(1, chosen[:, None])[:, 0], logp.gather(1, rejected[:, None])[:, 0],
                         ref.gather(1, chosen[:, None])[:, 0], ref.gather(1, rejected[:, None])[:, 0])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    logp = torch.log_softmax(logits, 1)
    assert (logp.gather(1, chosen[:, None]) > logp.gather(1, rejected[:, None])).all()
    assert float(loss.detach()) < math.log(2) / 4
    for module, args in ((llt.SimPOLoss(), (torch.tensor([-1.0]), torch.tensor([-2.0]))),
                         (llt.ORPOLoss(lam=0.2), (torch.tensor([-1.0]), torch.tensor([-2.0]))),
                         (llt.DistillKLLoss(temperature=2.0), (torch.randn(2, 5), torch.randn(2, 5))),
                         (llt.JSDLoss(beta=0.3), (torch.randn(2, 5), torch.randn(2, 5)))):
        assert torch.isfinite(module(*args))


@pytest.mark.parametrize("loss_type", ["sigmoid", "hinge", "ipo", "robust"])
def test_dpo_nan_reaches_the_value_and_the_gradient_for_every_loss_type(loss_type):
    # hinge's max(0, 1 - z) once turned a NaN margin into a loss of 0 (with a NaN gradient)
    x = np.array([np.nan, -1.0])
    value, grads = ll.dpo.value_and_grad(x, np.array([-2.0, -3.0]), np.array([-1.5, -1.0]), np.array([-2.0, -2.5]),
                                         loss_type=loss_type)
    assert np.isnan(value) and np.isnan(grads[0][0]) and np.isnan(grads[1][0])
    assert np.isfinite(grads[0][1])
