"""Extreme but finite inputs give finite values and gradients; documented clamps and kinks."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

import losslab as ll
from conftest import to_numpy
from reference import confident_logits


def _finite(*arrays):
    return all(np.all(np.isfinite(to_numpy(a))) for a in arrays)


@pytest.mark.parametrize("scale", [1e4, -1e4, 1e30])
def test_cross_entropy_with_huge_logits(scale):
    z = np.array([[scale, 0.0, -scale], [0.0, scale, 1.0]])
    y = np.array([2, 1])
    value, grad = ll.cross_entropy.value_and_grad(z, y, label_smoothing=0.1)
    assert _finite(value, grad, ll.cross_entropy.hessian(z, y))
    if scale > 0:  # row 0: log p = (0, -s, -2s), smoothed target (0.1/3, 0.1/3, 0.9 + 0.1/3)
        per_item = ll.cross_entropy(z, y, label_smoothing=0.1, reduction="none")
        assert per_item[0] == pytest.approx(0.9 * 2 * scale + 0.1 / 3 * 3 * scale, rel=1e-9)


def test_fp16_logits_near_the_fp16_maximum():
    z = torch.tensor([[65000.0, -65000.0, 0.0], [60000.0, 60000.0, 65504.0]], dtype=torch.float16, requires_grad=True)
    y = torch.tensor([1, 0])
    loss = ll.cross_entropy(z, y)
    loss.backward()
    assert loss.dtype == torch.float32
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()
    assert float(loss) == pytest.approx((130000.0 + 5504.0) / 2, rel=1e-3)


@pytest.mark.parametrize("x", [1e4, -1e4, 80.0, -80.0])
@pytest.mark.parametrize("t", [0.0, 1.0, 0.3])
def test_binary_losses_on_huge_logits(x, t):
    xs, ts = np.array([x]), np.array([t])
    for loss in (ll.binary_cross_entropy_with_logits, ll.focal):
        value, grad = loss.value_and_grad(xs, ts)
        assert _finite(value, grad, loss.hessian(xs, ts))
    assert float(ll.binary_cross_entropy_with_logits(xs, ts)) == pytest.approx(
        max(x, 0) - x * t + np.log1p(np.exp(-abs(x))), rel=1e-12)


def test_bce_with_logits_infinite_logits_never_nan():
    x = np.array([np.inf, -np.inf, np.inf, -np.inf])
    t = np.array([1.0, 0.0, 0.0, 1.0])
    value = ll.binary_cross_entropy_with_logits(x, t, reduction="none")
    np.testing.assert_array_equal(value, [0.0, 0.0, np.inf, np.inf])
    assert not np.isnan(ll.binary_cross_entropy_with_logits.grad(x, t)).any()


def test_bce_on_probabilities_of_exactly_zero_and_one_is_clamped_at_100():
    p = np.array([0.0, 1.0, 0.0, 1.0])
    t = np.array([1.0, 0.0, 0.0, 1.0])
    value, grad = ll.binary_cross_entropy.value_and_grad(p, t, reduction="none")
    np.testing.assert_array_equal(value, [100.0, 100.0, 0.0, 0.0])  # -log clamped at -100, as PyTorch
    assert _finite(grad, ll.binary_cross_entropy.hessian(p, t))
    assert grad[0] < -1e11 and grad[1] > 1e11  # confidently wrong: a huge but finite push
    assert grad[2] == 0 and grad[3] == 0


def test_zero_distances_in_contrastive_and_triplet():
    x = np.ones((3, 4))
    for same in (np.ones(3), np.zeros(3)):
        value, (g1, g2) = ll.contrastive.value_and_grad(x, x, same)
        assert _finite(value, g1, g2)
    tx = torch.ones(3, 4, requires_grad=True)
    ll.contrastive(tx, torch.ones(3, 4), torch.zeros(3)).backward()
    assert torch.isfinite(tx.grad).all()
    for p in (1, 2, 3, 0.5):
        value, grads = ll.triplet_margin.value_and_grad(x, x, x, p=p)
        assert _finite(value, *grads)
    for loss in (ll.info_nce, ll.siglip):
        value, grads = loss.value_and_grad(np.zeros((3, 4)), np.zeros((3, 4)))
        assert _finite(value, *grads)


def test_mean_over_no_valid_item_is_zero_with_zero_gradient():
    z = np.random.default_rng(0).normal(size=(3, 4))
    y = np.full(3, -100)
    for kwargs in ({}, {"weight": [1.0, 2.0, 3.0, 4.0]}, {"label_smoothing": 0.2}):
        value, grad = ll.cross_entropy.value_and_grad(z, y, **kwargs)
        assert value == 0.0
        assert not grad.any()
    assert ll.nll(z, y) == 0.0
    assert ll.mse(np.ones(2), np.zeros(2), weight=np.zeros(2)) == 0.0


@pytest.mark.parametrize("loss", [ll.mae, ll.quantile])
def test_kink_convention_gradient_is_zero_at_zero_error(loss):
    assert not loss.grad(np.array([1.0, 2.0]), np.array([1.0, 2.0])).any()


def test_hinge_kink_convention_matches_torch_multi_margin():
    # exactly on the margin: gradient 0 (strict inequality), as torch.nn.functional.multi_margin_loss
    assert ll.hinge.grad(np.array([1.0, -1.0]), np.array([1.0, -1.0])).tolist() == [0.0, 0.0]
    x = torch.tensor([[1.0, 0.0]], requires_grad=True)  # margin - s_y + s_j = 1 - 1 + 0 = 0
    torch.nn.functional.multi_margin_loss(x, torch.tensor([0])).backward()
    np.testing.assert_array_equal(ll.multiclass_hinge.grad(x.detach(), torch.tensor([0])).numpy(), x.grad.numpy())


def test_smooth_l1_beta_zero_is_l1_not_huber_over_zero():
    p, t = np.array([0.5, -3.0, 0.0]), np.zeros(3)
    np.testing.assert_array_equal(ll.smooth_l1(p, t, beta=0.0, reduction="none"), np.abs(p))
    np.testing.assert_array_equal(ll.smooth_l1.grad(p, t, beta=0.0, reduction="sum"), np.sign(p))
    assert _finite(ll.smooth_l1.hessian(p, t, beta=0.0))


def test_huber_is_delta_times_smooth_l1():
    rng = np.random.default_rng(3)
    p, t = rng.normal(size=20) * 3, rng.normal(size=20)
    for d in (0.2, 1.0, 4.0):
        np.testing.assert_allclose(ll.huber(p, t, delta=d), d * ll.smooth_l1(p, t, beta=d), rtol=1e-12)


def test_log_cosh_does_not_overflow():
    value, grad = ll.log_cosh.value_and_grad(np.array([1e4, -800.0]), np.zeros(2), reduction="none")
    np.testing.assert_allclose(value, [1e4 - np.log(2), 800 - np.log(2)])
    np.testing.assert_array_equal(grad, [1.0, -1.0])


def test_float32_sums_do_not_lose_the_small_terms():
    # a fp16 sum of many terms would overflow at 65504; the loss is accumulated in fp32
    p = torch.full((100_000,), 3.0, dtype=torch.float16)
    loss = ll.mse(p, torch.zeros_like(p), reduction="sum")
    assert loss.dtype == torch.float32 and float(loss) == 900_000.0


# -- a confident row keeps the digits of its small loss ----------------------------------------------------------
# lse = m + log sum exp(z - m) is rounded at the scale of the row max m (float32: 4e-6 at m near 100), so
# -log p_y computed as lse - z_y loses most digits of a loss near 1e-3; (z_y - m) - log sum exp(z - m) keeps
# them (torch's log_softmax groups it so). Tolerances: a tenth of what lse - z_y gets wrong here.


CONFIDENT = dict(rtol=3e-4, atol=1e-9)


@pytest.mark.parametrize("engine", ["numpy", "numpy reference", "torch", "jax"])
def test_cross_entropy_of_a_confident_row_in_float32(engine):
    x, y, truth, grad_truth = confident_logits()
    if engine.startswith("numpy"):
        with ll.reference_path() if engine == "numpy reference" else contextlib.nullcontext():
            value = ll.cross_entropy(x, y, reduction="none")
            _, grad = ll.cross_entropy.value_and_grad(x, y, reduction="sum")
    elif engine == "torch":
        xt = torch.tensor(x, requires_grad=True)
        rows = ll.cross_entropy(xt, torch.tensor(y), reduction="none")
        rows.sum().backward()
        value, grad = rows.detach(), xt.grad
    else:
        jnp = pytest.importorskip("jax.numpy")
        import jax

        value = ll.cross_entropy(jnp.asarray(x), jnp.asarray(y), reduction="none")
        grad = jax.grad(lambda z: ll.cross_entropy(z, jnp.asarray(y), reduction="sum"))(jnp.asarray(x))
    assert to_numpy(value).dtype == np.float32
    np.testing.assert_allclose(to_numpy(value), truth, **CONFIDENT)
    np.testing.assert_allclose(to_numpy(grad), grad_truth, **CONFIDENT)


def test_linear_cross_entropy_of_confident_rows_in_float32(monkeypatch):
    """The per-row-sums form (``losslab.torch._softmax_ce``) that the chunked and the vocabulary-parallel
    losses share, in torch operations (LOSSLAB_TRITON=0: the kernel's own test is in test_gpu.py);
    hidden @ I = the logits, exactly."""
    from losslab.gpu import linear_cross_entropy

    monkeypatch.setenv("LOSSLAB_TRITON", "0")

    x, y, truth, grad_truth = confident_logits()
    hidden = torch.tensor(x, requires_grad=True)
    rows = linear_cross_entropy(hidden, torch.eye(x.shape[1]), torch.tensor(y), reduction="none")
    rows.sum().backward()
    np.testing.assert_allclose(rows.detach().numpy(), truth, **CONFIDENT)
    np.testing.assert_allclose(hidden.grad.numpy(), grad_truth, **CONFIDENT)


def _on_circle(angles):
    return np.stack([np.cos(angles), np.sin(angles)], 1).astype(np.float32)


def test_info_nce_cosface_and_supcon_of_confident_pairs_in_float32():
    """Unit vectors 0.4 rad apart at temperature 0.01 (logits near 100): losses of 4e-4 to 3e-3."""
    angles = 0.4 * np.arange(6)
    a = _on_circle(angles)
    s = a.astype(np.float64) @ a.astype(np.float64).T / 0.01
    log_p = s - s.max(1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(1, keepdims=True))
    np.testing.assert_allclose(ll.info_nce(a, a, temperature=0.01, reduction="none"), -np.diag(log_p), rtol=3e-4)
    # cosface: the centres at the same angles, target i for embedding i, margin 0.01 at scale 100
    z = s.copy()
    z[np.diag_indices(6)] -= 100 * 0.01
    log_p = z - z.max(1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(1, keepdims=True))
    value = ll.cosface(a, a, np.arange(6), scale=100.0, margin=0.01, reduction="none")
    np.testing.assert_allclose(value, -np.diag(log_p), rtol=3e-4)
    # supcon: two identical views of each point, so each anchor's lone positive is its row's largest similarity
    views = np.repeat(a, 2, axis=0)
    s = views.astype(np.float64) @ views.astype(np.float64).T / 0.01
    np.fill_diagonal(s, -np.inf)
    twin = np.arange(12) ^ 1
    want = np.log(np.exp(s - 100).sum(1)) - (s[np.arange(12), twin] - 100)
    value = ll.supcon(views, np.arange(12) // 2, temperature=0.01, reduction="none")
    np.testing.assert_allclose(value, want, rtol=3e-4)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_info_nce_fast_path_of_confident_pairs_in_float32(backend):
    """Unnormalised embeddings whose similarities stay within the NumPy fast path's shared shift (S_ii = 111,
    S_ij = 100): losses near 1e-3, each formed there as log(sum) + (max S - S_ii), in float64."""
    n = 64
    x = np.zeros((n, n + 1), np.float32)
    x[:, 0] = 10.0
    x[np.arange(n), np.arange(n) + 1] = np.sqrt(11.0)
    s = x.astype(np.float64) @ x.astype(np.float64).T
    log_p = s - s.max(1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
    arrays = (x, x) if backend == "numpy" else (torch.tensor(x), torch.tensor(x))
    value = ll.info_nce(*arrays, temperature=1.0, normalize=False, reduction="none")
    np.testing.assert_allclose(to_numpy(value), -np.diag(log_p), rtol=3e-4)


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax"])
def test_kl_div_of_a_masked_class_is_zero(backend):
    """A target probability of 0 contributes 0 whatever the log-probability, -inf included (a class masked out of
    the softmax); PyTorch's kl_div and Optax's kl_divergence give NaN there."""
    x = np.log(np.array([[0.0, 0.25, 0.75], [0.5, 0.5, 0.0]]))  # -inf where the model masked a class
    t = np.array([[0.0, 0.5, 0.5], [0.5, 0.5, 0.0]])
    want = np.sum(t[t > 0] * (np.log(t[t > 0]) - x[t > 0]))
    if backend == "numpy":
        value, grad = ll.kl_div.value_and_grad(x, t, reduction="sum")
    elif backend == "torch":
        xt = torch.tensor(x, requires_grad=True)
        value = ll.kl_div(xt, torch.tensor(t), reduction="sum")
        value.backward()
        grad = xt.grad
    else:
        jax = pytest.importorskip("jax")
        value, grad = jax.jit(jax.value_and_grad(lambda z: ll.kl_div(z, jax.numpy.asarray(t), reduction="sum")))(
            jax.numpy.asarray(x))
    np.testing.assert_allclose(to_numpy(value), want, rtol=1e-6)
    np.testing.assert_array_equal(to_numpy(grad), -t)
    if backend == "numpy":  # the documented exception: log-targets of -inf are not guarded (as PyTorch)
        with np.errstate(all="ignore"):
            assert np.isnan(ll.kl_div(x, np.log(t), log_target=True, reduction="sum"))


# -- losslab._ufuncs.log1p: NumPy's float32 log1p is a scalar loop on x86 without AVX-512, so the NumPy engine computes
# it as a corrected log there; both forms are checked here on any CPU (the flag switched), against float64.
_LOG1P_RANGES = {
    "e^-|x| in (0, 1]": lambda rng, n: np.exp(-np.abs(rng.standard_normal(n)) * 20),
    "(-1, 0)": lambda rng, n: rng.uniform(-1, 0, n),
    "(1, 1e38)": lambda rng, n: 10 ** rng.uniform(0, 38, n),
    "tiny and subnormal": lambda rng, n: 10 ** rng.uniform(-45, -3, n),
}


@pytest.mark.parametrize("corrected", [False, True])
@pytest.mark.parametrize("interval", list(_LOG1P_RANGES))
def test_float32_log1p_within_4_ulp_of_float64_in_both_forms(interval, corrected, monkeypatch):
    from losslab import _ufuncs

    monkeypatch.setattr(_ufuncs, "CORRECTED_LOG1P", corrected)
    u = _LOG1P_RANGES[interval](np.random.default_rng(0), 200_000).astype(np.float32)
    u = u[u > -1]  # (uniform(-1, 0) rounded to float32 may give -1 exactly)
    exact = np.log1p(u.astype(np.float64))
    got = _ufuncs.log1p(u)
    assert got.dtype == np.float32
    ulps = np.abs(got - exact) / np.spacing(np.abs(exact.astype(np.float32))).astype(np.float64)
    # NumPy's own: libm's scalar log1pf (within 1 ulp) without AVX-512, an SVML routine (1.8 ulp seen) with it
    assert ulps.max() <= 4.0
    in_place = u.copy()
    assert _ufuncs.log1p(in_place, out=in_place) is in_place
    np.testing.assert_array_equal(in_place, got)


@pytest.mark.parametrize("corrected", [False, True])
def test_float32_log1p_edge_values_in_both_forms(corrected, monkeypatch):
    from losslab import _ufuncs

    monkeypatch.setattr(_ufuncs, "CORRECTED_LOG1P", corrected)
    u = np.array([0.0, 1e-45, 1e-30, 1.0, -0.5, -1.0, -2.0, np.inf, -np.inf, np.nan, 3e38], np.float32)
    with np.errstate(all="ignore"):
        expected = np.log1p(u.astype(np.float64)).astype(np.float32)
        np.testing.assert_array_equal(_ufuncs.log1p(u), expected)  # (-inf at -1, NaN below, inf at inf)
    wide = np.array([1e-300, 0.25, -0.75], np.float64)  # float64 is NumPy's log1p itself
    np.testing.assert_array_equal(_ufuncs.log1p(wide), np.log1p(wide))
