"""losslab.gpu: the fused cross-entropy kernel and linear + cross-entropy, held to the reference.

Without a GPU the Triton kernels run in Triton's CPU interpreter (TRITON_INTERPRET=1, set by
conftest.py before Triton is imported) on small, odd shapes; with CUDA the same tests run on the GPU, plus
the GPU-only ones (no host sync, CUDA graphs, large vocabularies).
"""

from __future__ import annotations

import pytest

from gpu_setup import kernels_or_skip

torch, CUDA, DEVICE = kernels_or_skip()

import numpy as np  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from hypothesis import example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import losslab as ll  # noqa: E402
from losslab import gpu  # noqa: E402
from reference import confident_logits, softmax_cross_entropy_torch  # noqa: E402

BLOCK = None if CUDA else 64  # the interpreter: small blocks, so rows take several steps of the loop
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.bfloat16: dict(rtol=2e-2, atol=2e-3),
       torch.float16: dict(rtol=2e-3, atol=2e-4)}


def data(n=13, c=300, dtype=torch.float32, seed=0, ignored=(2, 5), ignore_index=-100):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, c, generator=g, dtype=torch.float64) * 3).to(dtype)
    targets = torch.randint(0, c, (n,), generator=g)
    targets[[i for i in ignored if i < n]] = ignore_index
    weight = torch.rand(c, generator=g, dtype=torch.float64) + 0.5
    return logits.to(DEVICE), targets.to(DEVICE), weight.to(DEVICE)


def fused(logits, targets, **options):
    x = logits.clone().requires_grad_()
    loss = gpu.cross_entropy(x, targets, _block=BLOCK, **options)
    return x, loss


def reference(logits, targets, softcap=None, **options):
    """The float64 reference on (capped) logits: returns the leaf it differentiates, the loss and lse."""
    x = logits.double() if logits.requires_grad else logits.double().detach().requires_grad_()
    loss, lse = softmax_cross_entropy_torch(softcap * torch.tanh(x / softcap) if softcap else x, targets, **options)
    return x, loss, lse


def assert_matches_reference(dtype, options, n=13, c=300, ignored=(2, 5)):
    logits, targets, weight = data(n, c, dtype, ignored=ignored, ignore_index=options.get("ignore_index", -100))
    if options.pop("weight", False):
        options["weight"] = weight
    x, loss = fused(logits, targets, **options)
    xr, ref, _ = reference(logits, targets, **{k: v for k, v in options.items()})
    upstream = torch.randn(loss.shape, dtype=torch.float64, device=DEVICE)
    (loss.double() * upstream).sum().backward()
    (ref * upstream).sum().backward()
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(x.grad.double(), xr.grad, **TOL[dtype])
    assert x.grad.dtype == dtype


OPTIONS = [
    {}, {"label_smoothing": 0.1}, {"weight": True}, {"weight": True, "label_smoothing": 0.3},
    {"reduction": "sum"}, {"reduction": "none"}, {"reduction": "none", "weight": True, "label_smoothing": 0.2},
    {"lse_square_scale": 1e-2}, {"softcap": 5.0}, {"softcap": 2.0, "lse_square_scale": 0.1, "label_smoothing": 0.1, "weight": True},
    {"ignore_index": 7, "label_smoothing": 0.05},
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: "-".join(o) or "plain")
def test_every_option_matches_the_reference(options):
    assert_matches_reference(torch.float32, dict(options))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("options", [{}, {"weight": True, "label_smoothing": 0.1, "softcap": 3.0}], ids=["plain", "all"])
def test_half_precision_logits_are_computed_in_float32(dtype, options):
    assert_matches_reference(dtype, dict(options))


@pytest.mark.parametrize(("n", "c"), [(1, 300), (5, 64), (4, 65), (3, 7), (6, 1)])
def test_odd_shapes(n, c):
    assert_matches_reference(torch.float32, {"label_smoothing": 0.1, "weight": True}, n=n, c=c, ignored=())


def test_all_rows_ignored_gives_zero_not_nan():
    logits, targets, weight = data(4, 50)
    targets[:] = -100
    for options in ({}, {"weight": weight, "label_smoothing": 0.2}):
        x, loss = fused(logits, targets, **options)
        loss.backward()
        assert float(loss) == 0.0 and torch.count_nonzero(x.grad) == 0


def test_the_core_cross_entropy_agrees_and_normalizer():
    logits, targets, weight = data()
    x, loss = fused(logits, targets, weight=weight, label_smoothing=0.1, normalizer=40)
    loss.backward()
    xr = logits.double().requires_grad_()
    with ll.reference_path():
        ref = ll.cross_entropy(xr, targets, weight=weight, label_smoothing=0.1, normalizer=40)
    ref.backward()
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(x.grad.double(), xr.grad, rtol=1e-5, atol=1e-6)
    _, loss2 = fused(logits, targets, weight=weight, label_smoothing=0.1, normalizer=torch.tensor(40.0, device=DEVICE))
    torch.testing.assert_close(loss2, loss)


def test_inplace_writes_the_gradient_into_the_logits_buffer():
    logits, targets, weight = data()
    x, loss = fused(logits, targets, weight=weight, label_smoothing=0.1)
    loss.backward()
    buffer = logits.clone().requires_grad_()
    loss_inplace = gpu.cross_entropy(buffer, targets, weight=weight, label_smoothing=0.1, inplace=True, _block=BLOCK)
    torch.testing.assert_close(buffer.detach(), x.grad)  # the logits were overwritten by the gradient
    loss_inplace.backward()
    torch.testing.assert_close(loss_inplace, loss)
    torch.testing.assert_close(buffer.grad, x.grad)
    assert buffer.grad.data_ptr() == buffer.data_ptr()  # no second buffer


def test_return_lse_and_no_grad():
    logits, targets, _ = data()
    loss, lse = gpu.cross_entropy(logits, targets, softcap=4.0, return_lse=True, _block=BLOCK)
    _, ref, ref_lse = reference(logits, targets, softcap=4.0)
    torch.testing.assert_close(lse.double(), ref_lse.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loss.double(), ref.detach(), rtol=1e-5, atol=1e-6)
    assert not lse.requires_grad and not loss.requires_grad


def test_upstream_gradient_of_one_needs_no_rescaling_and_others_do():
    logits, targets, _ = data()
    x1, loss1 = fused(logits, targets)
    loss1.backward()
    x3, loss3 = fused(logits, targets)
    (3 * loss3).backward()
    torch.testing.assert_close(x3.grad, 3 * x1.grad)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 6), c=st.integers(1, 90), seed=st.integers(0, 10**6), smoothing=st.sampled_from([0.0, 0.3]),
       weighted=st.booleans(), z_scale=st.sampled_from([0.0, 1e-3, 0.2]), cap=st.sampled_from([None, 0.7, 20.0]),
       reduction=st.sampled_from(["none", "mean", "sum"]))
def test_kernel_equals_the_single_definition(n, c, seed, smoothing, weighted, z_scale, cap, reduction):
    """The hand-written row kernel against definitions/softmax_rows.py (ll.cross_entropy's reference
    path in float64) on random shapes, logits and every option together."""
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, c, generator=g, dtype=torch.float64) * 4).to(DEVICE)
    targets = torch.randint(0, c, (n,), generator=g)
    targets[torch.rand(n, generator=g) < 0.3] = -100
    targets = targets.to(DEVICE)
    weight = (torch.rand(c, generator=g, dtype=torch.float64) + 0.5).to(DEVICE) if weighted else None
    opts = dict(weight=weight, label_smoothing=smoothing, lse_square_scale=z_scale, softcap=cap, reduction=reduction)
    x, loss = fused(logits.float(), targets, **{**opts, "weight": None if weight is None else weight.float()})
    upstream = torch.rand(loss.shape, generator=g, dtype=torch.float64).to(DEVICE) + 0.5
    (loss.double() * upstream).sum().backward()
    xr = logits.clone().requires_grad_()
    with ll.reference_path():
        ref = ll.cross_entropy(xr, targets, **opts)
    (ref * upstream).sum().backward()
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x.grad.double(), xr.grad, rtol=1e-4, atol=1e-6)


def test_dispatch_from_ll_cross_entropy(monkeypatch):
    logits, targets, weight = data()
    if not CUDA:
        monkeypatch.setenv("LOSSLAB_TRITON", "1")  # CPU tensors take the kernel only on request, in the interpreter
        # and the compiled lane of small plain CPU calls (losslab.torch._function.lane) steps aside
        monkeypatch.setattr(ll._fast._settings, "compiled", False)
    x = logits.clone().requires_grad_()
    loss = ll.cross_entropy(x, targets, weight=weight, label_smoothing=0.1)
    assert type(loss.grad_fn).__name__ == "FusedCrossEntropyBackward"
    loss.backward()
    xr = logits.clone().requires_grad_()
    with ll.reference_path():  # the switch that turns every second implementation off
        ref = ll.cross_entropy(xr, targets, weight=weight, label_smoothing=0.1)
    assert type(ref.grad_fn).__name__ != "FusedCrossEntropyBackward"
    ref.backward()
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(x.grad, xr.grad, rtol=1e-5, atol=1e-6)
    _, grad = ll.cross_entropy.value_and_grad(logits, targets, weight=weight, label_smoothing=0.1)
    torch.testing.assert_close(grad, x.grad, rtol=1e-5, atol=1e-6)
    monkeypatch.setenv("LOSSLAB_TRITON", "0")
    assert type(ll.cross_entropy(logits.clone().requires_grad_(), targets).grad_fn).__name__ != "FusedCrossEntropyBackward"
    monkeypatch.setenv("LOSSLAB_TRITON", "1")
    z_loss = ll.cross_entropy(x, targets, lse_square_scale=1e-2, softcap=4.0)  # the kernel's own options
    assert type(z_loss.grad_fn).__name__ == "FusedCrossEntropyBackward"
    with ll.reference_path():
        torch.testing.assert_close(z_loss, ll.cross_entropy(logits, targets, lse_square_scale=1e-2, softcap=4.0),
                                   rtol=1e-5, atol=1e-6)
    probs = torch.softmax(logits, 1)  # probability targets, 3-D logits, float64: the array-API path
    assert type(ll.cross_entropy(x, probs).grad_fn).__name__ != "FusedCrossEntropyBackward"
    assert type(ll.cross_entropy(logits.double().requires_grad_(), targets).grad_fn).__name__ != "FusedCrossEntropyBackward"


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda x, t: gpu.cross_entropy(x.double(), t), TypeError, "use ll.cross_entropy for float64"),
    (lambda x, t: gpu.cross_entropy(x[None], t), ValueError, "flatten the leading axes"),
    (lambda x, t: gpu.cross_entropy(x, t.float()), TypeError, "integer class indices"),
    (lambda x, t: gpu.cross_entropy(x, t[:3]), ValueError, "targets must have shape (13,)"),
    (lambda x, t: gpu.cross_entropy(x, t, label_smoothing=1.5), ValueError, "label_smoothing must be"),
    (lambda x, t: gpu.cross_entropy(x, t, lse_square_scale=-1), ValueError, "lse_square_scale must be"),
    (lambda x, t: gpu.cross_entropy(x, t, softcap=0.0), ValueError, "softcap must be"),
    (lambda x, t: gpu.cross_entropy(x, t, reduction="avg"), ValueError, "reduction must be one of"),
    (lambda x, t: gpu.cross_entropy(x, t, weight=torch.ones(3)), ValueError, "one weight per class"),
    (lambda x, t: gpu.cross_entropy(x, t, inplace=True), ValueError, "needs logits that require grad"),
])
def test_bad_arguments_get_clear_errors(call, error, message):
    logits, targets, _ = data()
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(logits, targets)


def test_out_of_range_targets_are_refused_where_checkable():
    logits, targets, _ = data()
    targets[0] = 300
    with ll.strict_checks(), pytest.raises(ValueError, match="out of range"):
        gpu.cross_entropy(logits, targets)


def test_backward_twice_is_refused_not_wrong():
    logits, targets, _ = data()
    _, loss = fused(logits, targets)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward ran twice"):
        loss.backward()


# -- linear + cross-entropy (the kernel per chunk of rows; float64 and plain CPU: torch operations) ----------

def linear_data(n=11, h=8, v=70, dtype=torch.float64, seed=1):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, h, generator=g, dtype=torch.float64).to(dtype).to(DEVICE)
    weight = torch.randn(v, h, generator=g, dtype=torch.float64).to(dtype).to(DEVICE)
    bias = torch.randn(v, generator=g, dtype=torch.float64).to(dtype).to(DEVICE)
    targets = torch.randint(0, v, (n,), generator=g).to(DEVICE)
    targets[3] = -100
    class_weight = (torch.rand(v, generator=g, dtype=torch.float64) + 0.5).to(DEVICE)
    return hidden, weight, bias, targets, class_weight


LINEAR_OPTIONS = [{}, {"label_smoothing": 0.2}, {"class_weight": True, "label_smoothing": 0.1}, {"reduction": "sum"},
                  {"reduction": "none", "softcap": 3.0}, {"lse_square_scale": 1e-2, "class_weight": True},
                  {"normalizer": 25}, {"bias": False}]


def linear_against_materialised(options, chunk_size, dtype=torch.float64, **extra):
    """linear_cross_entropy and the reference on the materialised float64 logits, both differentiated
    with one random upstream gradient (a scalar for mean/sum, one per row for "none")."""
    options = dict(options)
    hidden, weight, bias, targets, class_weight = linear_data(dtype=dtype)
    if not options.pop("bias", True):
        bias = None
    if options.pop("class_weight", False):
        options["class_weight"] = class_weight
    inputs = [x.clone().requires_grad_() for x in (hidden, weight, bias) if x is not None]
    loss = gpu.linear_cross_entropy(inputs[0], inputs[1], targets, inputs[2] if bias is not None else None,
                                    chunk_size=chunk_size, **options, **extra)
    ref_inputs = [x.detach().double().requires_grad_() for x in (hidden, weight, bias) if x is not None]
    logits = ref_inputs[0] @ ref_inputs[1].T + (ref_inputs[2] if bias is not None else 0)
    ref_options = {("weight" if k == "class_weight" else k): v for k, v in options.items()}
    ref = reference(logits, targets, **ref_options)[1]
    upstream = torch.randn(loss.shape, dtype=torch.float64, device=DEVICE)
    (loss * upstream.to(loss.dtype)).sum().backward()
    (ref * upstream).sum().backward()
    assert [x.grad.dtype for x in inputs] == [dtype] * len(inputs)
    return loss, ref, [x.grad for x in inputs], [x.grad for x in ref_inputs]


@pytest.mark.parametrize("chunk_size", [1, 4, 11, None])  # rows per chunk (N = 11): 11, 3 uneven, 1, 6 uneven
@pytest.mark.parametrize("options", LINEAR_OPTIONS, ids=lambda o: "-".join(o) or "plain")
def test_linear_cross_entropy_equals_the_materialised_logits(options, chunk_size):
    """float64: the plain-torch path (the kernel is float32 inside), exact to rounding."""
    loss, ref, grads, ref_grads = linear_against_materialised(options, chunk_size)
    torch.testing.assert_close(loss, ref, rtol=1e-12, atol=1e-12)
    for mine, theirs in zip(grads, ref_grads):
        torch.testing.assert_close(mine, theirs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("block", [BLOCK, None], ids=["block", "default-launch"])
@pytest.mark.parametrize("options", LINEAR_OPTIONS, ids=lambda o: "-".join(o) or "plain")
def test_linear_cross_entropy_kernel_path_in_float32(options, block):
    """float32: the Triton kernel per chunk of rows (on CUDA, or the interpreter), 4 chunks, the last uneven."""
    loss, ref, grads, ref_grads = linear_against_materialised(options, 3, torch.float32, _block=block)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=1e-5)
    for mine, theirs in zip(grads, ref_grads):
        torch.testing.assert_close(mine.double(), theirs, rtol=1e-4, atol=1e-5)


def test_linear_cross_entropy_in_bfloat16():
    """Logits come out of the bf16 matmul rounded to bf16 (as in eager PyTorch); from there on
    everything is float32, so the loss and lse match float64 on those rounded logits."""
    hidden, weight, _, targets, _ = linear_data(n=32, h=16, v=200, dtype=torch.bfloat16)
    h1, w1 = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    loss, lse = gpu.linear_cross_entropy(h1, w1, targets, label_smoothing=0.1, chunk_size=12, return_lse=True)
    loss.backward()
    rounded = (hidden @ weight.T).double()
    torch.testing.assert_close(loss.double(), F.cross_entropy(rounded, targets, label_smoothing=0.1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lse.double(), torch.logsumexp(rounded, 1), rtol=1e-5, atol=1e-5)
    h2, w2 = hidden.double().requires_grad_(), weight.double().requires_grad_()
    F.cross_entropy(h2 @ w2.T, targets, label_smoothing=0.1).backward()
    assert loss.dtype == torch.float32 and h1.grad.dtype == torch.bfloat16
    torch.testing.assert_close(h1.grad.double(), h2.grad, rtol=3e-2, atol=2e-3)
    torch.testing.assert_close(w1.grad.double(), w2.grad, rtol=3e-2, atol=2e-3)


@pytest.mark.parametrize("options", [{"reduction": "sum"}, {"reduction": "none", "class_weight": True},
                                     {"label_smoothing": 0.1, "softcap": 3.0}], ids=["sum", "none", "smooth-cap"])
def test_linear_cross_entropy_in_bfloat16_with_bias_over_chunks(options):
    """bf16, a bias, 4 chunks (the last uneven), a random upstream gradient: within bf16 rounding of float64
    on the same inputs (grad_weight is accumulated in bf16 across chunks, see docs/gpu.md)."""
    loss, ref, grads, ref_grads = linear_against_materialised(options, 3, torch.bfloat16)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss.double(), ref, rtol=2e-2, atol=2e-2)
    for mine, theirs in zip(grads, ref_grads):
        torch.testing.assert_close(mine.double(), theirs, rtol=5e-2, atol=1e-2 * theirs.abs().max().item())


class MatmulCount(torch.utils._python_dispatch.TorchDispatchMode):
    """Multiply-adds of every matrix product (mm, addmm, addmm_, out= variants, bmm, baddbmm) run under it."""

    PRODUCTS = ("mm", "addmm", "addmm_", "bmm", "baddbmm", "baddbmm_")

    def __init__(self):
        super().__init__()
        self.madds = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name in self.PRODUCTS:
            a, b = args[1:3] if "add" in name else args[:2]  # addmm(input, mat1, mat2); out= is a keyword
            batch = a.shape[0] if a.ndim == 3 else 1
            self.madds += batch * a.shape[-2] * a.shape[-1] * b.shape[-1]
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["torch-ops", "kernel"])
@pytest.mark.parametrize(("reduction", "needs", "products"), [
    ("mean", (True, True, True), 3), ("sum", (True, True, False), 3), ("mean", (True, False, False), 2),
    ("mean", (False, True, True), 2), ("none", (True, True, True), 4), ("mean", (False, False, False), 1),
])
def test_linear_cross_entropy_costs_three_products_not_four(dtype, reduction, needs, products):
    """Forward + backward: 3 N H V multiply-adds with the gradient computed in the forward pass (2 when
    hidden or weight is frozen, 1 when nothing requires grad); reduction="none" recomputes the logits: 4.
    The values and gradients are the materialised logits' whatever is skipped."""
    n, h, v = 11, 8, 70
    hidden, weight, bias, targets, _ = linear_data(n, h, v, dtype=dtype)
    inputs = [x.clone().requires_grad_(need) for x, need in zip((hidden, weight, bias), needs)]
    refs = [x.double().requires_grad_(need) for x, need in zip((hidden, weight, bias), needs)]
    with MatmulCount() as count:
        loss = gpu.linear_cross_entropy(*inputs[:2], targets, inputs[2], reduction=reduction, chunk_size=4)
        if any(needs):
            loss.sum().backward()
    assert count.madds == products * n * h * v
    ref = F.cross_entropy(refs[0] @ refs[1].T + refs[2], targets, reduction=reduction)
    if any(needs):
        ref.sum().backward()
    else:
        assert loss.grad_fn is None
    tol = TOL[torch.float32] if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(loss.double(), ref.detach(), **tol)
    for mine, theirs in zip(inputs, refs):
        assert (mine.grad is None) == (theirs.grad is None)
        if mine.grad is not None:
            torch.testing.assert_close(mine.grad.double(), theirs.grad, **tol)


def test_linear_cross_entropy_uses_the_kernel_and_no_grad_skips_the_gradient(monkeypatch):
    """float32 on the kernel's device: one launch per chunk, the gradient written only when something
    requires grad (no_grad, or inputs without requires_grad: WITH_GRAD off)."""
    from losslab.gpu import _cross_entropy

    calls = []
    real = _cross_entropy.launch
    monkeypatch.setattr(_cross_entropy, "launch", lambda *a, **k: calls.append(k["with_grad"]) or real(*a, **k))
    hidden, weight, bias, targets, _ = linear_data(dtype=torch.float32)
    w = weight.clone().requires_grad_()
    with torch.no_grad():
        loss = gpu.linear_cross_entropy(hidden, w, targets, bias, chunk_size=4)
    assert loss.grad_fn is None and calls == [False] * 3
    calls.clear()
    gpu.linear_cross_entropy(hidden, weight, targets, bias, chunk_size=4, reduction="none")
    assert calls == [False] * 3
    calls.clear()
    gpu.linear_cross_entropy(hidden, w, targets, bias, chunk_size=4).backward()
    assert calls == [True] * 3 and w.grad is not None


def test_linear_cross_entropy_backward_twice_is_refused_not_wrong():
    hidden, weight, _, targets, _ = linear_data()
    loss = gpu.linear_cross_entropy(hidden.clone().requires_grad_(), weight, targets)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward ran twice"):
        loss.backward()


def test_linear_cross_entropy_all_rows_ignored_and_no_rows():
    hidden, weight, bias, targets, _ = linear_data()
    for h, t in ((hidden, torch.full_like(targets, -100)), (hidden[:0], targets[:0])):
        h, w = h.clone().requires_grad_(), weight.clone().requires_grad_()
        loss = gpu.linear_cross_entropy(h, w, t, bias)
        loss.backward()
        assert loss.item() == 0 and not h.grad.any() and not w.grad.any()


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"hidden": "h"}, TypeError, "hidden must be a torch tensor"),
    ({"weight": torch.zeros(70, 5, dtype=torch.float64)}, ValueError, "the same H"),
    ({"weight": torch.zeros(70, 8, dtype=torch.float32)}, TypeError, "share one floating dtype"),
    ({"targets": torch.zeros(11)}, ValueError, "integer class indices"),
    ({"bias": torch.zeros(3, dtype=torch.float64)}, ValueError, "bias must be a tensor of shape (70,)"),
    ({"chunk_size": 0}, ValueError, "chunk_size must be a positive int"),
    ({"label_smoothing": -0.1}, ValueError, "label_smoothing must be"),
])
def test_linear_cross_entropy_bad_arguments(kwargs, error, message):
    hidden, weight, _, targets, _ = linear_data()
    args = {"hidden": hidden, "weight": weight, "targets": targets, **kwargs}
    if "weight" in kwargs:
        args["weight"] = kwargs["weight"].to(DEVICE)
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")):
        gpu.linear_cross_entropy(args.pop("hidden"), args.pop("weight"), args.pop("targets"), **args)


# -- GPU only ----------------------------------------------------------------------------------------

@needs_cuda
@pytest.mark.parametrize("options", [{}, {"label_smoothing": 0.1, "weight": True, "normalizer": "tensor", "softcap": 30.0}])
def test_no_host_sync_and_cuda_graph_capture(options):
    logits, targets, weight = data(64, 5000, torch.bfloat16)
    options = dict(options)
    if options.pop("weight", False):
        options["weight"] = weight.float()
    if options.get("normalizer") == "tensor":
        options["normalizer"] = torch.tensor(40.0, device=DEVICE)
    x = logits.clone().requires_grad_()
    gpu.cross_entropy(x, targets, **options).backward()  # compile first
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        x.grad = None
        gpu.cross_entropy(x, targets, **options).backward()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    expected = x.grad.clone()
    static = logits.clone().requires_grad_()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        gpu.cross_entropy(static, targets, **options).backward()
    torch.cuda.current_stream().wait_stream(stream)
    static.grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        loss = gpu.cross_entropy(static, targets, **options)
        loss.backward()
    graph.replay()
    torch.cuda.synchronize()
    torch.testing.assert_close(static.grad, expected)


@needs_cuda
@pytest.mark.parametrize("vocab", [32000, 50304, 128256])
def test_large_vocabularies_in_bfloat16(vocab):
    assert_matches_reference(torch.bfloat16, {"label_smoothing": 0.1}, n=64, c=vocab)
    logits, targets, _ = data(64, vocab, torch.bfloat16)
    value = ll.cross_entropy(logits, targets)  # dispatched to the kernel
    with ll.reference_path():
        ref = ll.cross_entropy(logits.float(), targets)
    assert float(abs(value - ref)) < 1e-4 * float(ref)
    assert np.isfinite(float(value))


# -- properties over random shapes and options (hypothesis) ------------------------------------------------


@settings(max_examples=60 if not CUDA else 200, deadline=None)
# a confident row at scale 30 (p_y = 0.9995): 1 - p_y lost its digits while the kernel formed exp(z - lse)
@example(n=1, c=81, block=16, smoothing=0.0, z_scale=0.0, softcap=None, weighted=True, reduction="none", seed=20473,
         scale=30.0)
@given(n=st.integers(1, 6), c=st.integers(1, 150), block=st.sampled_from([16, 32, 128]),
       smoothing=st.sampled_from([0.0, 0.3]), z_scale=st.sampled_from([0.0, 0.05]), softcap=st.sampled_from([None, 2.5]),
       weighted=st.booleans(), reduction=st.sampled_from(["none", "mean", "sum"]), seed=st.integers(0, 2**16),
       scale=st.sampled_from([0.1, 3.0, 30.0]))
def test_kernel_matches_the_reference_for_random_shapes_and_options(n, c, block, smoothing, z_scale, softcap, weighted,
                                                                      reduction, seed, scale):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, c, generator=g, dtype=torch.float64) * scale).to(DEVICE)
    targets = torch.randint(-1, c, (n,), generator=g).to(DEVICE)
    targets[targets < 0] = -100  # some rows ignored, sometimes all
    weight = (torch.rand(c, generator=g, dtype=torch.float64) + 0.1).to(DEVICE) if weighted else None
    options = dict(weight=weight, label_smoothing=smoothing, lse_square_scale=z_scale, softcap=softcap, reduction=reduction)
    x = logits.float().requires_grad_()
    loss = gpu.cross_entropy(x, targets, _block=block if not CUDA else None, **options)
    xr, ref, _ = reference(logits, targets, **options)
    upstream = torch.randn(loss.shape, generator=g, dtype=torch.float64).to(DEVICE)
    (loss.double() * upstream).sum().backward()
    (ref * upstream).sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(x.grad).all()
    torch.testing.assert_close(loss.double(), ref.detach(), rtol=2e-5, atol=2e-5)
    torch.testing.assert_close(x.grad.double(), xr.grad, rtol=2e-4, atol=2e-6)


@pytest.mark.parametrize("variant", ["row", "rows"])
def test_a_confident_row_keeps_the_digits_of_its_small_loss(variant):
    """Losses of 1e-3 beside lse near 100 (float32 holds lse to 4e-6): the kernels keep the row max and
    log sum exp(z - max) apart, as the core loss (tests/test_numerics.py) and torch's log_softmax do."""
    from losslab.gpu._cross_entropy import LaunchConfig

    config = LaunchConfig("row", 16) if variant == "row" else LaunchConfig("rows", rows_per_program=4)
    x, y, truth, grad_truth = confident_logits()
    logits = torch.tensor(x, device=DEVICE, requires_grad=True)
    rows = gpu.cross_entropy(logits, torch.tensor(y, device=DEVICE), reduction="none", _config=config)
    rows.sum().backward()
    # compiled for CUDA, Triton's float32 exp is the approximate ex2 (relative error ~2^-22: up to ~2.5e-7 on
    # 1 - p_y near 1e-3, so an absolute allowance of 5e-7 there); the old lse - z_y form was off by 4e-6
    tol = dict(rtol=3e-4, atol=5e-7 if CUDA else 1e-9)
    np.testing.assert_allclose(rows.detach().cpu().numpy(), truth, **tol)
    np.testing.assert_allclose(logits.grad.cpu().numpy(), grad_truth, **tol)


@pytest.mark.skipif(CUDA, reason="with a GPU, run the benchmark itself; --smoke is the check for machines without one")
def test_the_gpu_benchmark_script_runs(tmp_path):
    """--smoke: the benchmark's every step on the CPU under Triton's interpreter (timings meaningless),
    so the script stays ready for the next GPU."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parent.parent / "benchmarks" / "gpu_cross_entropy.py"
    out = subprocess.run([sys.executable, str(script), "--smoke", "--out", str(tmp_path)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(next(tmp_path.glob("gpu_cross_entropy-*.json")).read_text(),
                        parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
    rows = {(r["case"].split()[0], r["impl"]): r for r in result["rows"]}
    for key in (("ce", "losslab"), ("ce", "losslab inplace=True"), ("linear_ce", "losslab linear_cross_entropy"),
                ("ce", "torch eager bf16"), ("linear_ce", "limit: 3 matmuls of NxHxV")):
        assert "ms" in rows[key], rows[key]
    assert all("ms" in r or "error" in r for r in result["rows"]) and result["versions"]["losslab"]
    assert next(tmp_path.glob("gpu_cross_entropy-*.md")).read_text().startswith("# GPU cross-entropy benchmark")


def test_inplace_refuses_to_corrupt_a_gradient_that_needs_the_logits():
    """tanh keeps its output for its backward; overwriting that output silently would give a wrong
    gradient. The kernel bumps the version counter, so autograd raises its usual in-place error."""
    logits, targets, _ = data()
    x = logits.clone().requires_grad_()
    loss = gpu.cross_entropy(torch.tanh(x), targets, inplace=True, _block=BLOCK)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()
    # where the op before the loss does not keep its output (a product by 3 here), in-place is exact
    x1, x2 = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    gpu.cross_entropy(3 * torch.tanh(x1), targets, inplace=True, _block=BLOCK).backward()
    gpu.cross_entropy(3 * torch.tanh(x2), targets, _block=BLOCK).backward()
    torch.testing.assert_close(x1.grad, x2.grad)
