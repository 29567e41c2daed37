"""Parity with torch.nn.functional: values and gradients (PyTorch's own autograd) for every loss
PyTorch has, across option combinations, in float32 and float64."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

import losslab as ll

DTYPES = [torch.float32, torch.float64]
REDUCTIONS = ["none", "mean", "sum"]


def _tol(dtype):
    return {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 1e-10, "atol": 1e-12}


def assert_parity(ours_fn, torch_fn, inputs, dtype, upstream_seed=0, grad_rtol=None):
    """Values equal, and gradients of both (for a random upstream gradient) equal."""
    ours_in = [x.detach().clone().requires_grad_(True) for x in inputs]
    ref_in = [x.detach().clone().requires_grad_(True) for x in inputs]
    ours, ref = ours_fn(*ours_in), torch_fn(*ref_in)
    torch.testing.assert_close(ours, ref.to(ours.dtype), **_tol(dtype))
    up = torch.rand(ref.shape, dtype=ref.dtype, generator=torch.Generator().manual_seed(upstream_seed)) + 0.5
    ours.backward(up.to(ours.dtype))
    ref.backward(up)
    tol = _tol(dtype) if grad_rtol is None else {"rtol": grad_rtol, "atol": 0.0}
    for a, b in zip(ours_in, ref_in):
        torch.testing.assert_close(a.grad, b.grad, **tol)
    return ours_in


def _gen(seed):
    return torch.Generator().manual_seed(seed)


# -- cross-entropy: weights x ignore_index x label_smoothing x reductions x target kind ----------
CE_COMBOS = list(itertools.product([False, True], [-100, 1], [0.0, 0.2], REDUCTIONS, ["index", "prob", "spatial"], DTYPES))


@pytest.mark.parametrize(("weighted", "ignore_index", "smoothing", "reduction", "kind", "dtype"), CE_COMBOS)
def test_cross_entropy(weighted, ignore_index, smoothing, reduction, kind, dtype):
    g = _gen(7)
    shape = (2, 5, 3, 2) if kind == "spatial" else (8, 5)
    logits = torch.randn(shape, generator=g, dtype=dtype) * 3
    if kind == "prob":
        targets = torch.softmax(torch.randn(shape, generator=g, dtype=dtype), dim=1)
    else:
        targets = torch.randint(0, 5, (shape[0], *shape[2:]), generator=g)
        targets.view(-1)[:3] = ignore_index if ignore_index >= 0 else -100
    weight = torch.rand(5, generator=g, dtype=dtype) + 0.2 if weighted else None
    opts = {"weight": weight, "ignore_index": ignore_index, "label_smoothing": smoothing, "reduction": reduction}
    if kind == "prob" and ignore_index != -100:  # PyTorch refuses too
        with pytest.raises(RuntimeError, match="ignore_index"):
            F.cross_entropy(logits, targets, **opts)
        with pytest.raises(ValueError, match="ignore_index=1 applies to integer class targets only"):
            ll.cross_entropy(logits, targets, **opts)
        return
    assert_parity(lambda x: ll.cross_entropy(x, targets, **opts), lambda x: F.cross_entropy(x, targets, **opts), [logits], dtype)
    # the analytic .grad agrees with PyTorch's autograd too
    x = logits.clone().requires_grad_(True)
    F.cross_entropy(x, targets, **{**opts, "reduction": "sum" if reduction == "none" else reduction}).backward()
    torch.testing.assert_close(ll.cross_entropy.grad(logits, targets, **opts), x.grad, **_tol(dtype))


@pytest.mark.parametrize(("weighted", "smoothing", "reduction", "dtype"),
                         list(itertools.product([False, True], [0.0, 0.2], REDUCTIONS, DTYPES)))
@pytest.mark.parametrize(("z_scale", "cap"), [(1e-2, None), (0.0, 4.0), (5e-3, 2.5)])
def test_cross_entropy_z_loss_and_softcap(weighted, smoothing, reduction, dtype, z_scale, cap):
    """lse_square_scale and softcap against PyTorch autograd through F.cross_entropy on c tanh(x / c)
    plus s w[y] lse^2 (tests/reference.py), as losslab.gpu and the distributed loss define them."""
    from reference import softmax_cross_entropy_torch

    g = _gen(5)
    logits = torch.randn(9, 6, generator=g, dtype=dtype) * 4
    targets = torch.randint(0, 6, (9,), generator=g)
    targets[:2] = -100
    weight = torch.rand(6, generator=g, dtype=dtype) + 0.2 if weighted else None
    opts = {"weight": weight, "label_smoothing": smoothing}

    def theirs(x):
        z = x if cap is None else cap * torch.tanh(x / cap)
        return softmax_cross_entropy_torch(z, targets, lse_square_scale=z_scale, reduction=reduction, **opts)[0]

    ours = lambda x: ll.cross_entropy(x, targets, lse_square_scale=z_scale, softcap=cap, reduction=reduction, **opts)  # noqa: E731
    assert_parity(ours, theirs, [logits], dtype)
    import losslab.torch as llt  # the nn.Module takes the same options

    module = llt.CrossEntropyLoss(lse_square_scale=z_scale, softcap=cap, reduction=reduction, **opts)
    torch.testing.assert_close(module(logits, targets), theirs(logits), **_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_unbatched(dtype):
    logits = torch.randn(6, dtype=dtype, generator=_gen(1))
    assert_parity(lambda x: ll.cross_entropy(x, torch.tensor(4)), lambda x: F.cross_entropy(x, torch.tensor(4)), [logits], dtype)


@pytest.mark.parametrize(("weighted", "ignore_index", "reduction", "dtype"), list(itertools.product([False, True], [-100, 2], REDUCTIONS, DTYPES)))
def test_nll(weighted, ignore_index, reduction, dtype):
    g = _gen(3)
    x = torch.log_softmax(torch.randn(7, 4, generator=g, dtype=dtype), 1)
    t = torch.randint(0, 4, (7,), generator=g)
    t[:2] = ignore_index
    w = torch.rand(4, generator=g, dtype=dtype) + 0.1 if weighted else None
    opts = {"weight": w, "ignore_index": ignore_index, "reduction": reduction}
    assert_parity(lambda v: ll.nll(v, t, **opts), lambda v: F.nll_loss(v, t, **opts), [x], dtype)


# -- regression ---------------------------------------------------------------------------------
REG = list(itertools.product(REDUCTIONS, DTYPES, [False, True]))


@pytest.mark.parametrize(("reduction", "dtype", "weighted"), REG)
@pytest.mark.parametrize(("ours", "theirs"), [(ll.mse, F.mse_loss), (ll.mae, F.l1_loss)])
def test_mse_mae(ours, theirs, reduction, dtype, weighted):
    g = _gen(11)
    p, t = torch.randn(4, 5, generator=g, dtype=dtype), torch.randn(4, 5, generator=g, dtype=dtype)
    w = torch.rand(4, 5, generator=g, dtype=dtype) + 0.1 if weighted else None
    assert_parity(lambda x: ours(x, t, weight=w, reduction=reduction), lambda x: theirs(x, t, weight=w, reduction=reduction), [p], dtype)


@pytest.mark.parametrize(("reduction", "dtype", "weighted"), REG)
@pytest.mark.parametrize("delta", [1.0, 0.4, 2.5])
def test_huber(delta, reduction, dtype, weighted):
    g = _gen(12)
    p, t = torch.randn(4, 5, generator=g, dtype=dtype) * 2, torch.randn(4, 5, generator=g, dtype=dtype)
    w = torch.rand(4, 5, generator=g, dtype=dtype) + 0.1 if weighted else None

    def theirs(x):
        if weighted and reduction == "mean":  # torch's weighted huber mean divides by the count; ours by sum(w)
            return F.huber_loss(x, t, delta=delta, weight=w, reduction="sum") / w.sum()
        return F.huber_loss(x, t, delta=delta, weight=w, reduction=reduction)

    assert_parity(lambda x: ll.huber(x, t, delta=delta, weight=w, reduction=reduction), theirs, [p], dtype)


@pytest.mark.parametrize(("reduction", "dtype"), list(itertools.product(REDUCTIONS, DTYPES)))
@pytest.mark.parametrize("beta", [1.0, 0.3, 0.0])
def test_smooth_l1(beta, reduction, dtype):
    g = _gen(13)
    p, t = torch.randn(4, 5, generator=g, dtype=dtype) * 2, torch.randn(4, 5, generator=g, dtype=dtype)
    assert_parity(lambda x: ll.smooth_l1(x, t, beta=beta, reduction=reduction), lambda x: F.smooth_l1_loss(x, t, beta=beta, reduction=reduction), [p], dtype)


# -- binary -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("reduction", "dtype", "weighted", "soft"), list(itertools.product(REDUCTIONS, DTYPES, [False, True], [False, True])))
def test_binary_cross_entropy(reduction, dtype, weighted, soft):
    g = _gen(14)
    p = torch.rand(3, 4, generator=g, dtype=dtype) * 0.96 + 0.02
    t = torch.rand(3, 4, generator=g, dtype=dtype) if soft else torch.randint(0, 2, (3, 4), generator=g).to(dtype)
    w = torch.rand(4, generator=g, dtype=dtype) + 0.5 if weighted else None
    assert_parity(lambda x: ll.binary_cross_entropy(x, t, weight=w, reduction=reduction),
                  lambda x: F.binary_cross_entropy(x, t, weight=w, reduction=reduction), [p], dtype)


@pytest.mark.parametrize(("reduction", "dtype", "weighted", "pos"), list(itertools.product(REDUCTIONS, DTYPES, [False, True], [False, True])))
def test_binary_cross_entropy_with_logits(reduction, dtype, weighted, pos):
    g = _gen(15)
    x = torch.randn(3, 4, generator=g, dtype=dtype) * 4
    t = torch.rand(3, 4, generator=g, dtype=dtype)
    w = torch.rand(3, 4, generator=g, dtype=dtype) + 0.5 if weighted else None
    pw = torch.rand(4, generator=g, dtype=dtype) * 3 + 0.2 if pos else None
    assert_parity(lambda v: ll.binary_cross_entropy_with_logits(v, t, weight=w, pos_weight=pw, reduction=reduction),
                  lambda v: F.binary_cross_entropy_with_logits(v, t, weight=w, pos_weight=pw, reduction=reduction), [x], dtype)


def test_bce_gradient_at_exact_zero_and_one_matches_torch():
    p = torch.tensor([0.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    t = torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    # gradients of order 1e12 (PyTorch's floor at 1e-12): equal to the last few bits
    inputs = assert_parity(lambda x: ll.binary_cross_entropy(x, t), lambda x: F.binary_cross_entropy(x, t), [p], torch.float64, grad_rtol=1e-8)
    assert torch.isfinite(inputs[0].grad).all()


# -- margins ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("p", "margin", "weighted", "reduction", "dtype"), list(itertools.product([1, 2], [1.0, 0.3], [False, True], REDUCTIONS, DTYPES)))
def test_multiclass_hinge(p, margin, weighted, reduction, dtype):
    g = _gen(16)
    x = torch.randn(7, 4, generator=g, dtype=dtype)
    t = torch.randint(0, 4, (7,), generator=g)
    w = torch.rand(4, generator=g, dtype=dtype) + 0.5 if weighted else None
    assert_parity(lambda v: ll.multiclass_hinge(v, t, p=p, margin=margin, weight=w, reduction=reduction),
                  lambda v: F.multi_margin_loss(v, t, p=p, margin=margin, weight=w, reduction=reduction), [x], dtype)


@pytest.mark.parametrize(("shape", "target"), [((4,), torch.tensor(2)), ((4,), torch.tensor([2])), ((), torch.tensor(0))])
def test_multiclass_hinge_unbatched_forms(shape, target):
    x = torch.randn(shape, dtype=torch.float64, generator=_gen(2))
    assert_parity(lambda v: ll.multiclass_hinge(v, target, reduction="none"), lambda v: F.multi_margin_loss(v, target, reduction="none"), [x], torch.float64)


@pytest.mark.parametrize(("reduction", "log_target", "dtype"), list(itertools.product(["none", "mean", "sum", "batchmean"], [False, True], DTYPES)))
def test_kl_div(reduction, log_target, dtype):
    g = _gen(17)
    x = torch.log_softmax(torch.randn(5, 4, generator=g, dtype=dtype), 1)
    t = torch.softmax(torch.randn(5, 4, generator=g, dtype=dtype), 1)
    t[0, 0] = 0.0  # 0 log 0 = 0
    if log_target:
        t = torch.log(t + 1e-3)
    assert_parity(lambda v: ll.kl_div(v, t, log_target=log_target, reduction=reduction),
                  lambda v: F.kl_div(v, t, log_target=log_target, reduction=reduction), [x], dtype)


@pytest.mark.parametrize(("p", "swap", "margin", "reduction", "dtype", "batched"),
                         list(itertools.product([1, 2, 3], [False, True], [1.0, 0.2], REDUCTIONS, DTYPES, [True, False])))
def test_triplet_margin(p, swap, margin, reduction, dtype, batched):
    g = _gen(18)
    shape = (6, 4) if batched else (4,)
    a, pos, neg = (torch.randn(shape, generator=g, dtype=dtype) for _ in range(3))
    opts = {"p": p, "swap": swap, "margin": margin, "reduction": reduction}
    assert_parity(lambda *xs: ll.triplet_margin(*xs, **opts), lambda *xs: F.triplet_margin_loss(*xs, **opts), [a, pos, neg], dtype)


def test_torch_modules_match_torch_nn():
    import losslab.torch as llt

    g = _gen(19)
    x, y = torch.randn(6, 4, generator=g), torch.randint(0, 4, (6,), generator=g)
    w = torch.rand(4, generator=g) + 0.5
    pairs = [
        (llt.CrossEntropyLoss(weight=w, label_smoothing=0.1), torch.nn.CrossEntropyLoss(weight=w, label_smoothing=0.1), (x, y)),
        (llt.MSELoss(reduction="sum"), torch.nn.MSELoss(reduction="sum"), (x, x.flip(0))),
        (llt.L1Loss(), torch.nn.L1Loss(), (x, x.flip(0))),
        (llt.HuberLoss(delta=0.5), torch.nn.HuberLoss(delta=0.5), (x, x.flip(0))),
        (llt.SmoothL1Loss(beta=0.5), torch.nn.SmoothL1Loss(beta=0.5), (x, x.flip(0))),
        (llt.BCEWithLogitsLoss(pos_weight=w), torch.nn.BCEWithLogitsLoss(pos_weight=w), (x, torch.rand(6, 4, generator=g))),
        (llt.BCELoss(), torch.nn.BCELoss(), (torch.sigmoid(x), torch.rand(6, 4, generator=g))),
        (llt.NLLLoss(weight=w), torch.nn.NLLLoss(weight=w), (torch.log_softmax(x, 1), y)),
        (llt.MultiMarginLoss(p=2, margin=0.5), torch.nn.MultiMarginLoss(p=2, margin=0.5), (x, y)),
        (llt.KLDivLoss(reduction="batchmean"), torch.nn.KLDivLoss(reduction="batchmean"), (torch.log_softmax(x, 1), torch.softmax(x.flip(0), 1))),
        (llt.TripletMarginLoss(margin=0.5), torch.nn.TripletMarginLoss(margin=0.5), (x, x.flip(0), x * 2)),
    ]
    for ours, theirs, args in pairs:
        torch.testing.assert_close(ours(*args), theirs(*args))
    moved = llt.CrossEntropyLoss(weight=w).to(torch.float64)
    assert moved.weight.dtype == torch.float64


def test_all_ignored_is_zero_where_torch_gives_nan():
    x = torch.randn(3, 4, requires_grad=True)
    t = torch.full((3,), -100)
    assert torch.isnan(F.cross_entropy(x, t))
    loss = ll.cross_entropy(x, t)
    loss.backward()
    assert float(loss) == 0.0
    assert torch.count_nonzero(x.grad) == 0
