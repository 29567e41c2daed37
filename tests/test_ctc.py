"""CTC against PyTorch's ``F.ctc_loss`` (values for every reduction; gradients compared on logits, where
PyTorch's is the derivative through the log_softmax it assumes), against finite differences of the true
derivative with respect to log_probs, against optax, across NumPy / torch / JAX, under ``jax.grad``,
and for its invariants and its errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import losslab as ll
from losslab import _engines, _fast
from losslab.losses.sequence import ctc

jax.config.update("jax_enable_x64", True)

REDUCTIONS = ("none", "mean", "sum")


def _logits(rng, t, n, c):
    return rng.normal(size=(t, n, c)) * 2.0


def _log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _case(name):
    """(logits (T, N, C) or (T, C), targets, input_lengths, target_lengths, options) of a named case."""
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    if name == "padded":
        z = _logits(rng, 12, 3, 5)
        return z, np.array([[1, 2, 3, 4], [2, 2, 0, 0], [4, 1, 3, 0]]), [12, 9, 7], [4, 2, 3], {}
    if name == "blank_last":  # blank = C - 1, padding with other classes (ignored past the lengths)
        z = _logits(rng, 10, 3, 6)
        return z, np.array([[0, 1, 2, 0], [3, 3, 4, 2], [4, 0, 1, 1]]), [10, 10, 8], [4, 2, 1], {"blank": 5}
    if name == "blank_middle":
        z = _logits(rng, 9, 2, 5)
        return z, np.array([[0, 1, 3, 4], [4, 4, 0, 0]]), [9, 6], [4, 3], {"blank": 2}
    if name == "repeats":  # "a a" needs a blank between: 6 frames for 4 labels with 2 repeats
        z = _logits(rng, 6, 2, 4)
        return z, np.array([[1, 1, 2, 2], [3, 3, 3, 1]]), [6, 6], [4, 3], {}
    if name == "zero_length":
        z = _logits(rng, 7, 3, 4)
        return z, np.array([[1, 2], [0, 0], [3, 0]]), [7, 5, 4], [2, 0, 1], {}
    if name == "zero_input":  # input_length 0: loss 0 for an empty target, inf otherwise
        z = _logits(rng, 5, 3, 4)
        return z, np.array([[1, 2], [2, 0], [3, 1]]), [0, 0, 5], [0, 1, 2], {"zero_infinity": False}
    if name == "impossible":  # sample 1 needs 4 frames, has 3; sample 2 needs 3 ("1 1" + blank), has 2
        z = _logits(rng, 8, 3, 4)
        return z, np.array([[1, 2, 3], [1, 2, 3], [1, 1, 0]]), [8, 3, 2], [3, 3, 2], {"zero_infinity": False}
    if name == "impossible_zeroed":
        z, t, il, tl, _ = _case("impossible")
        return z, t, il, tl, {"zero_infinity": True}
    if name == "padded_impossible":  # the shapes of "padded"; sample 1 needs 4 frames ("2 2 x" + blank), has 3
        z, _, _, _, _ = _case("padded")
        return z, np.array([[1, 2, 3, 4], [2, 2, 1, 0], [4, 1, 3, 0]]), [12, 3, 7], [4, 3, 3], {"zero_infinity": True}
    if name == "concatenated":
        z = _logits(rng, 9, 3, 5)
        return z, np.array([1, 2, 2, 4, 3, 1, 1]), [9, 8, 9], [3, 1, 3], {}
    if name == "unbatched":
        z = rng.normal(size=(8, 5)) * 2.0
        return z, np.array([1, 3, 3]), 8, 3, {}
    if name == "int32":
        z, t, il, tl, o = _case("padded")
        return z, t.astype(np.int32), np.array(il, dtype=np.int32), np.array(tl, dtype=np.int32), o
    raise KeyError(name)


CASES = ("padded", "blank_last", "blank_middle", "repeats", "zero_length", "zero_input", "impossible",
         "impossible_zeroed", "concatenated", "unbatched", "int32")


def _torch_ctc(lp, targets, input_lengths, target_lengths, reduction, options):
    """F.ctc_loss with lengths as tensors (its unbatched form takes 0-d ones)."""
    as_t = torch.as_tensor
    return F.ctc_loss(lp, as_t(np.asarray(targets)).long(), as_t(np.asarray(input_lengths)).long(),
                      as_t(np.asarray(target_lengths)).long(), reduction=reduction, **options)


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_value_and_logit_gradient_match_pytorch(name, reduction):
    z, targets, il, tl, options = _case(name)
    lp = _log_softmax(z)
    want = _torch_ctc(torch.tensor(lp), targets, il, tl, reduction, options).numpy()
    got = ctc(lp, targets, il, tl, reduction=reduction, **options)
    assert np.shape(got) == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    # gradients on the logits: PyTorch's autograd through F.log_softmax and its ctc_loss, against torch
    # autograd through log_softmax into losslab's bridge (the analytic true derivative wrt log_probs)
    leaf = torch.tensor(z, requires_grad=True)
    (want_g,) = torch.autograd.grad(_torch_ctc(F.log_softmax(leaf, -1), targets, il, tl, reduction, options).sum(), leaf)
    leaf = torch.tensor(z, requires_grad=True)
    value = ctc(torch.log_softmax(leaf, -1), torch.as_tensor(targets), torch.as_tensor(np.asarray(il)),
                torch.as_tensor(np.asarray(tl)), reduction=reduction, **options)
    (got_g,) = torch.autograd.grad(value.sum(), leaf)
    np.testing.assert_allclose(got_g.numpy(), want_g.numpy(), rtol=1e-9, atol=1e-12, equal_nan=True)
    # and by hand: g_logits = g - softmax * sum_c g, from ctc.grad on NumPy
    g = ctc.grad(lp, targets, il, tl, reduction=reduction, **options)
    by_hand = g - np.exp(lp) * g.sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(by_hand, want_g.numpy(), rtol=1e-9, atol=1e-12, equal_nan=True)


def test_none_is_undivided_and_mean_divides_by_target_length():
    z, targets, il, tl, _ = _case("zero_length")
    lp = _log_softmax(z)
    per = ctc(lp, targets, il, tl, reduction="none")
    assert per.shape == (3,) and np.all(np.isfinite(per)) and np.all(per > 0)
    np.testing.assert_allclose(ctc(lp, targets, il, tl), np.mean(per / np.maximum(tl, 1)), rtol=1e-13)
    np.testing.assert_allclose(ctc(lp, targets, il, tl, reduction="sum"), per.sum(), rtol=1e-13)
    # the zero-length target's loss is -sum_t x[t, blank] over its frames
    np.testing.assert_allclose(per[1], -lp[:5, 1, 0].sum(), rtol=1e-13)
    # normalizer=K: the sum of the length-divided losses over K
    np.testing.assert_allclose(ctc(lp, targets, il, tl, normalizer=10.0), np.sum(per / np.maximum(tl, 1)) / 10,
                               rtol=1e-13)
    g = ctc.grad(lp, targets, il, tl, normalizer=10.0)
    g_none = np.stack([ctc.grad(lp[:, i:i + 1], targets[i:i + 1], il[i:i + 1], tl[i:i + 1], reduction="sum")[:, 0]
                       for i in range(3)], axis=1)
    np.testing.assert_allclose(g, g_none / np.maximum(tl, 1)[None, :, None] / 10, rtol=1e-12, atol=1e-15)


def _finite_differences(f, x, h=1e-6):
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += h
        down[idx] -= h
        g[idx] = (f(up) - f(down)) / (2 * h)
    return g


@pytest.mark.parametrize("name", ["padded", "repeats", "blank_middle", "concatenated", "unbatched", "zero_length"])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_gradient_is_the_true_derivative_wrt_log_probs(name, reduction):
    """Finite differences on log_probs themselves, one entry at a time (not renormalised)."""
    z, targets, il, tl, options = _case(name)
    if z.ndim == 3:
        z = z[:, :2] if name != "concatenated" else z
        if name != "concatenated":
            targets, il, tl = targets[:2], il[:2], tl[:2]
    lp = _log_softmax(z)
    analytic = ctc.grad(lp, targets, il, tl, reduction=reduction, **options)
    numeric = _finite_differences(lambda x: float(ctc(x, targets, il, tl, reduction=reduction, **options)), lp)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)
    # not PyTorch's exp(log_probs) - posterior: that would not sum to zero against the finite differences
    assert np.abs(analytic).max() > 1e-3


def test_gradient_is_zero_past_input_lengths_and_off_the_labels():
    z, targets, il, tl, _ = _case("padded")
    lp = _log_softmax(z)
    g = ctc.grad(lp, targets, il, tl, reduction="sum")
    for n, length in enumerate(il):
        assert np.all(g[length:, n] == 0)
        unused = sorted(set(range(5)) - set(targets[n, : tl[n]].tolist()) - {0})
        assert np.all(g[:, n, unused] == 0)


@pytest.mark.parametrize("name", ["impossible_zeroed"])
def test_matches_optax_on_logits(name):
    optax = pytest.importorskip("optax")
    z, targets, il, tl, options = _case(name)
    if z.ndim == 2:
        z, targets, il, tl = z[:, None], targets[None], [il], [tl]
    t = z.shape[0]
    possible = np.isfinite(ctc(_log_softmax(z), targets, il, tl, reduction="none"))
    frames = np.arange(t)[None, :] >= np.asarray(il)[:, None]
    labels = np.asarray(targets)
    label_pad = np.arange(labels.shape[1])[None, :] >= np.asarray(tl)[:, None]
    want = np.asarray(optax.ctc_loss(jnp.asarray(np.transpose(z, (1, 0, 2))), jnp.asarray(frames, dtype=jnp.float64),
                                     jnp.asarray(labels, dtype=jnp.int32), jnp.asarray(label_pad, dtype=jnp.float64)))
    got = ctc(_log_softmax(z), targets, il, tl, reduction="none", **options)
    np.testing.assert_allclose(got[possible], want[possible], rtol=1e-9)
    assert possible.any()


def _to(backend, a, dtype=None):
    a = np.asarray(a) if dtype is None else np.asarray(a, dtype=dtype)
    if backend == "torch":
        return torch.as_tensor(a)
    if backend == "jax":
        return jnp.asarray(a)
    return a


# JAX compiles every operation for every new shape, so its cases share the shapes of "padded" (the
# jit-compiled and custom_jvp paths have their own tests below)
@pytest.mark.parametrize(("backend", "name"), [
    *((b, n) for b in ("numpy", "torch") for n in ("padded", "concatenated", "unbatched", "impossible_zeroed",
                                                   "blank_last")),
    ("jax", "padded"), ("jax", "padded_impossible"),
])
def test_backends_agree(backend, name):
    z, targets, il, tl, options = _case(name)
    lp = _log_softmax(z)
    for reduction in REDUCTIONS:
        want_v, want_g = ctc.value_and_grad(lp, targets, il, tl, reduction=reduction, **options)
        args = (_to(backend, lp), _to(backend, targets), _to(backend, il), _to(backend, tl))
        got_v, got_g = ctc.value_and_grad(*args, reduction=reduction, **options)
        assert type(got_g) is type(args[0]) and got_g.dtype == args[0].dtype
        np.testing.assert_allclose(np.asarray(got_v), want_v, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(np.asarray(got_g), want_g, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(np.asarray(ctc.grad(*args, reduction=reduction, **options)), want_g, rtol=1e-12,
                                   atol=1e-14)


def test_jax_grad_under_jit():
    """jax.grad of functions calling ctc, in one jit (XLA compiles once): mean and sum go through
    losslab's custom_jvp (the analytic gradient); reduction='none' differentiates the forward recursion
    itself, which must stay finite at the trellis's -inf positions. The lengths are traced; the padded
    targets have shapes that do not depend on them."""
    z, targets, il, tl, _ = _case("padded")
    lp = _log_softmax(z)
    t, x = jnp.asarray(targets), jnp.asarray(lp)
    weights = jnp.asarray([0.5, 2.0, 1.0])

    def f(x, i, s, reduction):
        return 3.0 * ctc(x, t, i, s, reduction=reduction)

    assert "custom_jvp_call" in str(jax.make_jaxpr(f, static_argnums=3)(x, jnp.asarray(il), jnp.asarray(tl), "mean"))

    @jax.jit
    def grads(x, i, s):
        return (f(x, i, s, "mean"), jax.grad(f)(x, i, s, "mean"), jax.grad(f)(x, i, s, "sum"),
                jax.grad(lambda x: jnp.sum(weights * f(x, i, s, "none")))(x))

    value, g_mean, g_sum, g_none = grads(x, jnp.asarray(il), jnp.asarray(tl))
    np.testing.assert_allclose(float(value), 3.0 * ctc(lp, targets, il, tl), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(g_mean), 3.0 * ctc.grad(lp, targets, il, tl), rtol=1e-11, atol=1e-14)
    g = ctc.grad(lp, targets, il, tl, reduction="sum")
    np.testing.assert_allclose(np.asarray(g_sum), 3.0 * g, rtol=1e-11, atol=1e-14)
    assert np.all(np.isfinite(np.asarray(g_none)))
    np.testing.assert_allclose(np.asarray(g_none), 3.0 * g * np.asarray(weights)[None, :, None], rtol=1e-9,
                               atol=1e-12)
    # concatenated 1-D targets: their layout needs concrete target_lengths, refused with a clear message
    flat = jnp.asarray([1, 2, 3, 4, 2, 2, 4, 1, 3])
    with pytest.raises(TypeError, match="concatenated 1-D targets need concrete target_lengths"):
        jax.jit(lambda x, s: ctc(x, flat, jnp.asarray(il), s))(x, jnp.asarray(tl))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), frames=st.integers(1, 9), batch=st.integers(1, 3), classes=st.integers(2, 5),
       width=st.integers(0, 4), blank_at=st.floats(0, 0.999))
def test_posterior_invariants(seed, frames, batch, classes, width, blank_at):
    """For a possible alignment and normalised log_probs: the loss is >= 0, it equals PyTorch's, and the
    gradient of the sum is minus the class posterior, so each entry is in [-1, 0] and each frame t < T_n sums
    to -1 over the classes (0 past T_n); an impossible alignment is inf exactly when T_n < S_n + repeats."""
    rng = np.random.default_rng(seed)
    blank = int(blank_at * classes)
    others = [c for c in range(classes) if c != blank]
    targets = rng.choice(others, size=(batch, width))
    tl = rng.integers(0, width + 1, size=batch)
    il = rng.integers(0, frames + 1, size=batch)
    lp = _log_softmax(_logits(rng, frames, batch, classes))
    per = ctc(lp, targets, il, tl, reduction="none", blank=blank)
    need = np.array([tl[n] + int(np.sum(targets[n, 1:tl[n]] == targets[n, : max(tl[n] - 1, 0)]))
                     for n in range(batch)])
    np.testing.assert_array_equal(np.isinf(per), il < need)
    assert np.all(per[np.isfinite(per)] >= -1e-12)
    want = _torch_ctc(torch.tensor(lp), targets, il, tl, "none", {"blank": blank}).numpy()
    np.testing.assert_allclose(per, want, rtol=1e-9, atol=1e-12)
    g = ctc.grad(lp, targets, il, tl, reduction="sum", blank=blank, zero_infinity=True)
    assert np.all((g >= -1 - 1e-12) & (g <= 1e-15))
    occupied = (np.arange(frames)[:, None] < il[None, :]) & (il >= need)[None, :]
    np.testing.assert_allclose(g.sum(axis=-1), np.where(occupied, -1.0, 0.0), atol=1e-10)


def test_nan_reaches_the_loss_and_its_gradient():
    z, targets, il, tl, _ = _case("padded")
    lp = _log_softmax(z)
    lp[3, 0, 0] = np.nan  # the blank of sample 0 at a frame it uses
    per = ctc(lp, targets, il, tl, reduction="none")
    assert np.isnan(per[0]) and np.all(np.isfinite(per[1:]))
    assert np.isnan(ctc(lp, targets, il, tl))
    g = ctc.grad(lp, targets, il, tl, reduction="none")
    assert np.isnan(g[:, 0]).any() and np.all(np.isfinite(g[:, 1:]))
    t = torch.tensor(lp)
    assert torch.isnan(ctc(t, torch.as_tensor(targets), torch.as_tensor(il), torch.as_tensor(tl)))
    assert np.isnan(float(ctc(jnp.asarray(lp), targets, il, tl, reduction="sum")))


def test_minus_inf_log_probs_make_an_alignment_impossible_without_nan_in_the_value():
    z, targets, il, tl, _ = _case("padded")
    lp = _log_softmax(z)
    lp[:, 0, 1] = -np.inf  # sample 0's first label can never be emitted
    per = ctc(lp, targets, il, tl, reduction="none")
    want = _torch_ctc(torch.tensor(lp), targets, il, tl, "none", {}).numpy()
    assert np.isinf(per[0]) and per[0] > 0
    np.testing.assert_allclose(per, want, rtol=1e-10)
    g = ctc.grad(lp, targets, il, tl, reduction="sum", zero_infinity=True)
    assert np.all(g[:, 0] == 0) and np.all(np.isfinite(g))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_low_precision_inputs_compute_in_float32(dtype):
    z, targets, il, tl, _ = _case("padded")
    lp = torch.tensor(_log_softmax(z)).to(dtype)
    exact = ctc(lp.double().numpy(), targets, il, tl, reduction="none")  # the same rounded inputs, in float64
    leaf = lp.clone().requires_grad_(True)
    value = ctc(leaf, torch.as_tensor(targets), torch.as_tensor(il), torch.as_tensor(tl), reduction="none")
    assert value.dtype == torch.float32
    np.testing.assert_allclose(value.detach().numpy(), exact, rtol=1e-5)
    value.sum().backward()
    assert leaf.grad.dtype == dtype
    want_g = ctc.grad(lp.double().numpy(), targets, il, tl, reduction="sum")
    tol = 1e-5 if dtype == torch.float32 else 1e-2
    np.testing.assert_allclose(leaf.grad.double().numpy(), want_g, atol=tol)


def _good():
    z, targets, il, tl, _ = _case("padded")
    return _log_softmax(z), targets, il, tl


@pytest.mark.parametrize(("change", "error", "words"), [
    ({"log_probs": np.zeros((3, 2, 4, 1))}, ValueError, "log_probs must have shape (T, N, C)"),
    ({"log_probs": np.zeros((12, 3, 5), dtype=np.int64)}, TypeError, "log_probs must be a floating-point"),
    ({"blank": 5}, ValueError, "blank=5 must be a class index in [0, 4]"),
    ({"blank": -1}, ValueError, "blank must be"),
    ({"blank": 1.0}, TypeError, "blank must be"),
    ({"zero_infinity": 1}, ValueError, "zero_infinity must be"),
    ({"targets": np.array([[1, 2, 3, 5], [2, 2, 0, 0], [4, 1, 3, 0]])}, ValueError, "targets holds class indices out"),
    ({"targets": np.array([[1, 2, -1, 4], [2, 2, 0, 0], [4, 1, 3, 0]])}, ValueError, "targets holds class indices out"),
    ({"targets": np.array([[1, 0, 3, 4], [2, 2, 0, 0], [4, 1, 3, 0]])}, ValueError, "blank index 0"),
    ({"targets": np.ones((3, 4))}, TypeError, "targets must hold integers"),
    ({"targets": np.ones((2, 4), dtype=np.int64)}, ValueError, "one row per sample"),
    ({"targets": np.ones((3, 4, 1), dtype=np.int64)}, ValueError, "targets must be padded (N, S) or concatenated"),
    ({"targets": np.ones(8, dtype=np.int64)}, ValueError, "sum(target_lengths) = 9"),
    ({"targets": "abc"}, TypeError, "targets must be"),
    ({"input_lengths": [12, 9]}, ValueError, "input_lengths must have shape (N,) = (3,)"),
    ({"input_lengths": [13, 9, 7]}, ValueError, "input_lengths must lie in [0, 12]"),
    ({"input_lengths": [-1, 9, 7]}, ValueError, "input_lengths must lie in [0, 12]"),
    ({"input_lengths": [12.0, 9.0, 7.0]}, TypeError, "input_lengths must hold integers"),
    ({"target_lengths": [5, 2, 3]}, ValueError, "target_lengths must lie in [0, 4]"),
    ({"target_lengths": [-2, 2, 3]}, ValueError, "target_lengths must lie in [0, 4]"),
    ({"target_lengths": np.array([4.0, 2, 3])}, TypeError, "target_lengths must hold integers"),
    ({"target_lengths": [[4, 2, 3]]}, ValueError, "target_lengths must have shape (N,)"),
])
def test_errors_name_the_argument(change, error, words):
    lp, targets, il, tl = _good()
    args = {"log_probs": lp, "targets": targets, "input_lengths": il, "target_lengths": tl}
    options = {k: change.pop(k) for k in list(change) if k in ("blank", "zero_infinity")}
    args.update(change)
    with pytest.raises(error) as info:
        ctc(**args, **options)
    assert words in str(info.value)


def test_unbatched_errors_and_forms():
    z, targets, il, tl, _ = _case("unbatched")
    lp = _log_softmax(z)
    want = ctc(lp[:, None], targets[None], [il], [tl], reduction="none")[0]
    for a, b in [(il, tl), ([il], [tl]), (np.array(il), np.array(tl))]:
        assert float(ctc(lp, targets, a, b, reduction="none")) == pytest.approx(want, rel=1e-14)
    assert np.shape(ctc(lp, targets, il, tl, reduction="none")) == ()
    assert ctc.grad(lp, targets, il, tl).shape == lp.shape
    with pytest.raises(ValueError, match=r"targets must have shape \(S,\)"):
        ctc(lp, targets[None], il, tl)
    with pytest.raises(ValueError, match="input_lengths must be one length"):
        ctc(lp, targets, [il, il], tl)


def test_spec_and_signature():
    import inspect

    params = list(inspect.signature(ctc).parameters)
    assert params == ["log_probs", "targets", "input_lengths", "target_lengths", "blank", "zero_infinity",
                      "reduction", "normalizer"]
    assert ctc.spec.peers["pytorch"] == "torch.nn.functional.ctc_loss"
    assert [o.name for o in ctc.spec.options] == ["blank", "zero_infinity"]
    assert "true derivative" in ctc.__doc__ and "Equivalents:" in ctc.__doc__


# -- the compiled fast path (losslab/_fast_ctc.py) -----------------------------------------------------------

needs_numba = pytest.mark.skipif(not _fast._numba.AVAILABLE, reason="the compiled CTC path needs Numba")


def _random_call(rng, frames, batch, classes, width, dtype=np.float64, blank=0, special=None, concatenated=False):
    """(log_probs, targets, input_lengths, target_lengths) with unequal lengths, repeated labels, zero lengths
    and alignments too long for their frames; ``special`` puts NaN, +inf or -inf in log_probs."""
    lp = _log_softmax(_logits(rng, frames, batch, classes) * 1.5).astype(dtype)
    others = np.array([c for c in range(classes) if c != blank])
    targets = others[rng.integers(0, len(others), size=(batch, width))]
    if width > 1:
        targets[::3, 1] = targets[::3, 0]  # repeats need a blank between them
    tl = rng.integers(0, width + 1, size=batch)
    il = rng.integers(0, frames + 1, size=batch)
    il[0], tl[-1] = frames, 0
    if batch > 2 and width > 1:
        il[1], tl[1] = 1, width  # impossible: two labels or more in one frame
    if special is not None and frames:
        where = rng.integers(frames), rng.integers(batch)
        if special == "-inf":
            lp[:, where[1], targets[where[1], 0] if width else blank] = -np.inf
        else:
            lp[where[0], where[1], blank] = {"nan": np.nan, "+inf": np.inf}[special]
    if concatenated:
        targets = np.concatenate([targets[n, : tl[n]] for n in range(batch)]).astype(np.int64)
    return lp, targets, il, tl


def test_empty_batch():
    x, targets, lengths = np.zeros((5, 0, 4)), np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=np.int64)
    value, g = ctc.value_and_grad(x, targets, lengths, lengths, reduction="none")
    assert value.shape == (0,) and g.shape == (5, 0, 4)
    assert ctc(x, targets, lengths, lengths, reduction="sum") == 0


def _fast_path(args, options, reduction, normalizer=None, with_grad=True):
    return _engines.fast_path_of("ctc", "numpy")(args, options, reduction, normalizer, with_grad)


def _reference(args, options, reduction, normalizer=None):
    with ll.reference_path():
        return ctc.value_and_grad(*args, **options, reduction=reduction, normalizer=normalizer)


@needs_numba
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layout", ["padded", "concatenated"])
def test_fast_path_equals_the_reference_on_a_large_batch(dtype, layout):
    """The compiled path against the reference on a larger batch, with every option: blanks, zero_infinity,
    the reductions and a normalizer, unequal and zero lengths, repeats, -inf log-probabilities."""
    tol = {"rtol": 1e-4, "atol": 1e-5} if dtype == "float32" else {"rtol": 1e-11, "atol": 1e-13}
    rng = np.random.default_rng(7)
    for blank, special, possible in [(0, None, False), (11, "-inf", False), (4, None, True)]:
        args = _random_call(rng, 60, 24, 12, 15, np.dtype(dtype), blank, special, layout == "concatenated")
        if possible:
            args[2][:] = 60
        impossible = np.isinf(_reference(args, {"blank": blank}, "none")[0]) & (args[2] > 0)
        assert impossible.any() != possible
        for zero_infinity in (False, True):
            options = {"blank": blank, "zero_infinity": zero_infinity}
            for reduction, normalizer in [("none", None), ("sum", None), ("mean", None), ("mean", 7.5), ("mean", 0)]:
                with np.errstate(invalid="ignore"):  # normalizer 0 times an infinite loss: NaN, in both
                    ref = _reference(args, options, reduction, normalizer)
                    value = _fast_path(args, options, reduction, normalizer, with_grad=False)
                assert value is not NotImplemented
                assert type(value) is type(ref[0]) and np.asarray(value).dtype == np.asarray(ref[0]).dtype
                np.testing.assert_allclose(value, ref[0], **tol)
                out = _fast_path(args, options, reduction, normalizer)
                if impossible.any() and not zero_infinity:
                    assert out is NotImplemented  # the reference's NaN gradient of an impossible alignment
                    continue
                assert out is not NotImplemented
                assert type(out[0]) is type(ref[0]) and out[1].dtype == ref[1].dtype
                np.testing.assert_allclose(out[0], ref[0], **tol)
                np.testing.assert_allclose(out[1], ref[1], **tol)


@needs_numba
def test_fast_path_threads_give_the_single_thread_result():
    rng = np.random.default_rng(3)
    args = _random_call(rng, 256, 16, 20, 40, np.float32)  # enough trellis cells for the thread pool
    threads = ll.get_num_threads()
    try:
        ll.set_num_threads(1)
        one = _fast_path(args, {"zero_infinity": True}, "mean")
        ll.set_num_threads(2)
        two = _fast_path(args, {"zero_infinity": True}, "mean")
    finally:
        ll.set_num_threads(threads)
    assert one[0] == two[0] and np.array_equal(one[1], two[1])
    np.testing.assert_allclose(two[1], _reference(args, {"zero_infinity": True}, "mean")[1], rtol=1e-3, atol=1e-4)


@needs_numba
def test_fast_path_declines_what_the_reference_must_take():
    rng = np.random.default_rng(11)
    lp, targets, _, _ = _random_call(rng, 9, 3, 5, 3)
    il, tl = np.array([9, 4, 7]), np.array([3, 1, 2])
    assert _fast_path((lp, targets, il, tl), {}, "sum") is not NotImplemented
    declined = [
        ((lp[:, 0], targets[0], il[0], tl[0]), {}),  # unbatched
        ((np.where(np.arange(5) == 0, np.nan, lp), targets, il, tl), {}),  # NaN: the reference propagates it
        ((lp, np.where(targets == targets[0, 0], 0, targets), [9, 9, 9], [3, 3, 3]), {}),  # the blank as a label
        ((lp, targets, [9, 9, 10], tl), {}),  # a length out of range
        ((lp, targets.astype(np.float64), il, tl), {}),
        ((lp, targets, il, tl), {"zero_infinity": 1}),
    ]
    for args, options in declined:
        assert _fast_path(args, options, "sum") is NotImplemented
    with _fast.numpy_only():
        assert _fast_path((lp, targets, il, tl), {}, "sum") is NotImplemented
    # an impossible alignment: its value is taken, its NaN gradient left to the reference
    impossible = (lp, np.array([[1, 1, 1], [1, 2, 3], [2, 3, 4]]), [9, 2, 9], [3, 3, 3])
    assert np.isinf(_fast_path(impossible, {}, "none", with_grad=False)[1])
    assert _fast_path(impossible, {}, "none") is NotImplemented
    g = ctc.grad(*impossible, reduction="none")
    assert np.isnan(g[:2, 1]).all() and np.all(g[2:, 1] == 0) and np.isfinite(np.delete(g, 1, axis=1)).all()
    # and the public calls give the reference's results and errors
    nan_lp = declined[1][0][0]
    assert np.isnan(ctc(nan_lp, targets, il, tl, reduction="none")[il > 0]).all()
    with pytest.raises(ValueError, match="blank index 0"):
        ctc(*declined[2][0])


@needs_numba
def test_torch_cpu_tensors_take_the_fast_path():
    rng = np.random.default_rng(5)
    z = _logits(rng, 30, 4, 8)
    _, targets, il, tl = _random_call(rng, 30, 4, 8, 6)
    leaf = torch.tensor(z, requires_grad=True)
    args = (torch.as_tensor(targets), torch.as_tensor(il), torch.as_tensor(tl))
    value = ctc(torch.log_softmax(leaf, -1), *args, zero_infinity=True)
    value.backward()
    lp = _log_softmax(z)
    want_v, want_g = _reference((lp, targets, il, tl), {"zero_infinity": True}, "mean")
    np.testing.assert_allclose(value.item(), want_v, rtol=1e-12)
    want_logits = want_g - np.exp(lp) * want_g.sum(-1, keepdims=True)
    np.testing.assert_allclose(leaf.grad.numpy(), want_logits, rtol=1e-9, atol=1e-12)
