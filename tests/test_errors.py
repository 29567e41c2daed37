"""Bad input gets a ValueError/TypeError that names the argument, what was seen, and the fix."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
import torch

import losslab as ll

P3, T3 = np.array([0.2, 0.5, 0.9]), np.array([0.0, 1.0, 1.0])
LOGITS = np.zeros((4, 3))
EMB = np.ones((4, 2))

BAD = [
    # (call, exception, pattern in the message)
    (lambda: ll.mse(P3, np.ones(4)), ValueError, r"predictions and targets must have the same shape.*\(3,\).*\(4,\)"),
    (lambda: ll.mse(np.ones((3, 1)), np.ones(3)), ValueError, r"never broadcasts"),
    (lambda: ll.mse(np.array([1, 2, 3]), T3), TypeError, r"predictions must be a floating-point array, got dtype int64.*astype"),
    (lambda: ll.mse(["a", "b"], T3), TypeError, r"predictions must be an array or a list of numbers"),
    (lambda: ll.mse(P3, T3, reduction="avg"), ValueError, r"reduction must be one of \('none', 'mean', 'sum'\), got 'avg'"),
    (lambda: ll.mse(P3, T3, reduction="sum", normalizer=3), ValueError, r"normalizer=.*cannot be combined with reduction='sum'"),
    (lambda: ll.mse(P3, T3, normalizer=-1), ValueError, r"normalizer must be a finite number >= 0"),
    (lambda: ll.mse(P3, T3, weight=[1.0, 2.0]), ValueError, r"weight of shape \(2,\) does not broadcast to predictions of shape \(3,\)"),
    (lambda: ll.huber(P3, T3, delta=0), ValueError, r"delta must be a finite number in \(0, inf\), got 0"),
    (lambda: ll.huber(P3, T3, delta=float("nan")), ValueError, r"delta must be a finite number"),
    (lambda: ll.smooth_l1(P3, T3, beta=-1), ValueError, r"beta must be a finite number in \[0, inf\)"),
    (lambda: ll.quantile(P3, T3, q=1.0), ValueError, r"q must be a finite number in \(0, 1\), got 1.0"),
    (lambda: ll.huber(P3, T3, delt=1.0), TypeError, r"huber\(predictions, targets.*unexpected keyword argument 'delt'"),
    (lambda: ll.cross_entropy(LOGITS, np.array([0, 1, 3, 0])), ValueError, r"targets holds class indices out of range \[0, 2\].*\[3\].*class axis.*size 3"),
    (lambda: ll.cross_entropy(LOGITS, np.array([0, 1, -1, 0])), ValueError, r"out of range.*other than ignore_index=-100"),
    (lambda: ll.cross_entropy(LOGITS, np.array([0.0, 1.0, 2.0, 0.0])), TypeError, r"targets are floating point.*class indices must be integers.*long\(\)"),
    (lambda: ll.cross_entropy(LOGITS, np.array([0, 1, 2])), ValueError, r"targets must have shape \(4,\).*got \(3,\)"),
    (lambda: ll.cross_entropy(LOGITS, np.array([0, 1, 2, 0]), weight=[1.0, 2.0]), ValueError, r"weight must hold one value per class, shape \(3,\), got shape \(2,\)"),
    (lambda: ll.cross_entropy(LOGITS, np.array([0, 1, 2, 0]), label_smoothing=1.5), ValueError, r"label_smoothing must be a finite number in \[0, 1\], got 1.5"),
    (lambda: ll.cross_entropy(LOGITS, np.full((4, 3), 1.5)), ValueError, r"targets must lie in \[0, 1\], got values \[1.5\]"),
    # a value just outside is shown as it is, not rounded into the range (":g" showed 1 + 1e-12 as "1")
    (lambda: ll.cross_entropy(LOGITS, np.full((4, 3), 1 + 1e-12)), ValueError, r"got values \[1.000000000001\]"),
    (lambda: ll.cross_entropy(np.float64(1.0), np.array(0)), ValueError, r"logits must have at least 1 dimension"),
    (lambda: ll.cross_entropy(LOGITS, np.array([0, 1, 2, 0]), ignore_index=1.0), TypeError, r"ignore_index must be an int"),
    # the int64 range's ends are compared as ints (as floats, 2**63 - 1 became 2**63 and was refused)
    (lambda: ll.cross_entropy(LOGITS, np.array([0, 1, 2, 0]), ignore_index=2**63), ValueError,
     r"ignore_index must be an int in \[-9223372036854775808, 9223372036854775807\], got 9223372036854775808"),
    (lambda: ll.nll(LOGITS, np.array([0, 1, 2, 5])), ValueError, r"out of range \[0, 2\]"),
    (lambda: ll.binary_cross_entropy(np.array([0.5, 1.2]), np.array([1.0, 0.0])), ValueError, r"probs must lie in \[0, 1\], got values \[1.2\].*sigmoid"),
    (lambda: ll.binary_cross_entropy(np.array([0.5, 0.2]), np.array([2.0, 0.0])), ValueError, r"targets must lie in \[0, 1\], got values \[2\]"),
    (lambda: ll.binary_cross_entropy_with_logits(np.array([0.5, 0.2]), np.array([-1.0, 0.0])), ValueError, r"targets must lie in \[0, 1\]"),
    (lambda: ll.binary_cross_entropy_with_logits(np.zeros((2, 3)), np.zeros((2, 3)), pos_weight=[1.0, 2.0]), ValueError, r"pos_weight of shape \(2,\) does not broadcast"),
    (lambda: ll.hinge(P3, T3), ValueError, r"targets must only contain \(-1.0, 1.0\), got values \[0\].*2 \* t - 1"),
    (lambda: ll.hinge(P3, -np.ones(3), margin=float("inf")), ValueError, r"margin must be a finite number"),
    (lambda: ll.multiclass_hinge(LOGITS, np.array([0, 1, 2, 0]), p=3), ValueError, r"p must be 1 or 2, got 3"),
    (lambda: ll.multiclass_hinge(LOGITS, np.array([0, 1, 2, 0]), weight=np.ones(4)), ValueError, r"weight must hold one value per class"),
    (lambda: ll.focal(P3, T3, gamma=-1.0), ValueError, r"gamma must be a finite number in \[0, inf\), got -1.0"),
    (lambda: ll.focal(P3, T3, alpha=1.5), ValueError, r"alpha must be a finite number in \[0, 1\].*None or a negative value"),
    (lambda: ll.kl_div(LOGITS, np.full((4, 3), -0.5)), ValueError, r"targets must lie in \[0, 1\].*log_target=True"),
    (lambda: ll.kl_div(LOGITS, np.zeros((4, 3)), reduction="avg"), ValueError, r"'batchmean'"),
    (lambda: ll.contrastive(EMB, np.ones((3, 2)), np.ones(4)), ValueError, r"x1 and x2 must pair up item by item.*\(4, 2\) and \(3, 2\)"),
    (lambda: ll.contrastive(EMB, EMB, np.full(4, 0.5)), ValueError, r"same must only contain \(0.0, 1.0\)"),
    (lambda: ll.contrastive(EMB, EMB, np.ones(3)), ValueError, r"same must have shape \(4,\)"),
    (lambda: ll.triplet_margin(EMB, EMB, np.ones((4, 3))), ValueError, r"anchor and negative must pair up"),
    (lambda: ll.triplet_margin(EMB, EMB, EMB, p=0), ValueError, r"p must be a finite number in \(0, inf\)"),
    (lambda: ll.info_nce(EMB, np.ones((5, 2))), ValueError, r"a and b must pair up item by item.*batch sizes or dimensions differ"),
    (lambda: ll.info_nce(EMB, EMB, temperature=0.0), ValueError, r"temperature must be a finite number in \(0, inf\), got 0.0"),
    (lambda: ll.info_nce(np.ones(3), np.ones(3)), ValueError, r"a must be embeddings of shape \(N, D\), got \(3,\)"),
    (lambda: ll.siglip(EMB, EMB, t=-1.0), ValueError, r"t must be a finite number in \(0, inf\)"),
    (lambda: ll.mse(torch.ones(3), jnp.ones(3)), TypeError, r"targets must be an array or a list of numbers, got ArrayImpl: a jax array alongside torch predictions"),
    (lambda: ll.contrastive(torch.ones(2, 2), jnp.ones((2, 2)), np.ones(2)), TypeError, r"x1 is a torch array, x2 is a jax array: pass x1, x2 as one kind"),
    (lambda: ll.get("hubber"), KeyError, r"no loss named 'hubber'; did you mean huber"),
]


@pytest.mark.parametrize(("call", "exception", "pattern"), BAD, ids=[p[2][:40] for p in BAD])
def test_bad_input_raises_a_helpful_error(call, exception, pattern):
    with pytest.raises(exception, match=pattern):
        call()


def test_the_int64_range_ends_are_valid_ignore_indices():
    for index in (2**63 - 1, -(2**63)):
        targets = np.array([0, 1, 2, 0])
        targets[1] = index
        with ll.reference_path():
            want = ll.cross_entropy(LOGITS, targets, ignore_index=index)
        np.testing.assert_allclose(ll.cross_entropy(LOGITS, targets, ignore_index=index), want, rtol=1e-12)


def test_value_checks_are_skipped_under_jit_but_shape_checks_are_not():
    import jax

    # index 7 is out of range; under jit values are unknown, so no error (and no host sync)
    f = jax.jit(lambda z, y: ll.cross_entropy(z, y))
    assert np.isfinite(float(f(jnp.zeros((2, 3)), jnp.array([0, 7]))))
    with pytest.raises(ValueError, match="targets must have shape"):
        f(jnp.zeros((2, 3)), jnp.array([0, 1, 2]))


def test_torch_value_checks_run_on_cpu_tensors():
    with pytest.raises(ValueError, match="out of range"):
        ll.cross_entropy(torch.zeros(2, 3, requires_grad=True), torch.tensor([0, 3]))


def test_strict_checks_switch_is_scoped():
    from losslab._xp import strict_checks_enabled

    assert not strict_checks_enabled()
    with ll.strict_checks():
        assert strict_checks_enabled()
    assert not strict_checks_enabled()


def test_module_rejects_unknown_option_and_bad_reduction():
    import losslab.torch as llt

    with pytest.raises(TypeError, match=r"unknown option\(s\) \['delt'\]; its options are \['delta', 'weight'\]"):
        llt.HuberLoss(delt=1.0)
    with pytest.raises(ValueError, match="reduction must be one of"):
        llt.MSELoss(reduction="avg")
