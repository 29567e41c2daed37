"""The torch engine's row blocks: where a loss splits into rows (``Loss.splits_into_rows``), torch tensors that
the NumPy engine does not take as they are (CUDA, float16/bfloat16) are computed block by block, so the temporaries
of the definitions are those of one block. Held here: each loss's claim that it splits, equality with the reference
path on many uneven blocks, and the peak memory of the temporaries (counted per torch operation, so it runs on the
CPU along the same path as on CUDA: bfloat16 CPU tensors with ``CPU_HALF_IN_NUMPY`` off). The NumPy engine's blocks
of float16/bfloat16 CPU tensors: tests/test_half_on_cpu.py."""

import weakref

import pytest

torch = pytest.importorskip("torch")

from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils._pytree import tree_flatten  # noqa: E402

import losslab as ll  # noqa: E402
from cases import CASES, convert  # noqa: E402
from losslab.losses._elementwise import Elementwise  # noqa: E402
from losslab.torch import _function  # noqa: E402


def _bound(case):
    return case.fn, case.fn._quick_bind(case.args, case.options)


SPLITTING = [c for c in CASES if c.fn.splits_into_rows(_bound(c)[1])]


def test_the_losses_that_split_into_rows():
    elementwise = {c.loss for c in SPLITTING if isinstance(c.fn, Elementwise)}  # every element an item
    assert {c.loss for c in SPLITTING} - elementwise == {
        "cross_entropy", "multiclass_hinge", "contrastive", "triplet_margin", "distill_kl", "jsd",
        "cosine_embedding", "multilabel_soft_margin", "multilabel_margin", "triplet_margin_with_distance"}
    assert {"poisson_nll", "soft_margin", "hinge_embedding", "msle", "mse", "kl_div"} <= elementwise
    # cross-entropy with class indices divides by the weights of the targets it does not ignore: it does not split
    assert all(c.label.startswith(("prob", "spatial-prob")) for c in SPLITTING if c.loss == "cross_entropy")
    assert not ll.info_nce.splits_into_rows({})  # one row's loss reads every other row


@pytest.mark.parametrize("case", SPLITTING, ids=[c.id for c in SPLITTING])
def test_the_mean_divides_by_a_count_proportional_to_the_rows(case):
    # what the row blocks rely on: the whole batch's divisor is the rows times one row's
    fn, bound = _bound(case)
    xp = ll._xp.namespace(bound[fn.inputs[0]])
    whole = fn.terms(xp, fn.prepare(xp, **bound))[1]
    one_row = fn.terms(xp, fn.prepare(xp, **{**bound, **{a: bound[a][:1] for a in fn._positional}}))[1]
    assert float(whole) == float(one_row) * bound[fn.inputs[0]].shape[0]


@pytest.fixture
def torch_ops_path(monkeypatch):
    """bfloat16 CPU tensors take the path of CUDA tensors (the definitions in torch operations), not the NumPy
    engine in float32."""
    monkeypatch.setattr(_function, "CPU_HALF_IN_NUMPY", False)


@pytest.fixture
def blocks_of_two_rows(two_row_blocks, torch_ops_path, off_numpy_engine):
    """two_row_blocks (conftest.py) on the path of CUDA tensors: float32 CPU tensors kept off the NumPy engine
    (off_numpy_engine), bfloat16 ones in torch operations (torch_ops_path)."""
    return two_row_blocks


def _torch_args(case, dtype):
    return [convert(a, "torch", dtype) for a in case.args], {k: convert(v, "torch", dtype) for k, v in case.options.items()}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("case", SPLITTING, ids=[c.id for c in SPLITTING])
def test_row_blocks_equal_the_reference_path(case, dtype, blocks_of_two_rows):
    args, options = _torch_args(case, dtype)
    fn = case.fn
    tol = {"float32": dict(rtol=1e-5, atol=1e-6), "bfloat16": dict(rtol=2e-2, atol=2e-3)}[dtype]
    calls = [("mean", None), ("sum", None), ("mean", 3.5)] + [("batchmean", None)] * ("batchmean" in case.reductions)
    for reduction, normalizer in calls:
        blocks_of_two_rows.clear()
        value, grads = fn.value_and_grad(*args, **options, reduction=reduction, normalizer=normalizer)
        assert blocks_of_two_rows == [True], (reduction, blocks_of_two_rows)
        with ll.reference_path():
            ref_value, ref_grads = fn.value_and_grad(*args, **options, reduction=reduction, normalizer=normalizer)
        torch.testing.assert_close(value, ref_value, **tol)
        grads, ref_grads = (grads, ref_grads) if isinstance(grads, tuple) else ((grads,), (ref_grads,))
        for g, r in zip(grads, ref_grads):
            assert g.dtype == r.dtype and g.shape == r.shape
            torch.testing.assert_close(g, r, **tol)

    # through autograd, with an upstream gradient other than 1
    leaves = [a.detach().requires_grad_() if k in case.input_positions else a for k, a in enumerate(args)]
    (fn(*leaves, **options) * 2.5).backward()
    with ll.reference_path():
        value, ref_grads = fn.value_and_grad(*args, **options)
    ref_grads = ref_grads if isinstance(ref_grads, tuple) else (ref_grads,)
    for k, r in zip(case.input_positions, ref_grads):
        torch.testing.assert_close(leaves[k].grad, 2.5 * r, **tol)


def test_calls_that_do_not_split_take_one_pass(blocks_of_two_rows):
    x = torch.randn(6, 5, dtype=torch.bfloat16)
    ll.cross_entropy.value_and_grad(x, torch.tensor([0, 1, 2, 3, 4, 0]))  # class indices
    ll.multiclass_hinge.value_and_grad(x[0], torch.tensor(1))  # one unbatched item
    ll.multiclass_hinge(x, torch.tensor([0, 1, 2, 3, 4, 0]), reduction="none")
    assert blocks_of_two_rows == [False, False, False]


def test_a_weighted_mean_whose_divisor_is_the_weights_sum_takes_one_pass(blocks_of_two_rows):
    # mse's mean divides by the weights' sum, an array: no block can be told the batch's without a sync
    g = torch.Generator().manual_seed(3)
    x, t = torch.randn(6, 5, generator=g, dtype=torch.bfloat16), torch.randn(6, 5, generator=g, dtype=torch.bfloat16)
    w = torch.rand(5, generator=g, dtype=torch.bfloat16) + 0.5
    value, grad = ll.mse.value_and_grad(x, t, weight=w)
    assert blocks_of_two_rows == [False]
    with ll.reference_path():
        ref_value, ref_grad = ll.mse.value_and_grad(x, t, weight=w)
    torch.testing.assert_close(value, ref_value)
    torch.testing.assert_close(grad, ref_grad)


def test_a_bad_argument_gets_the_whole_call_s_error(blocks_of_two_rows):
    x = torch.randn(6, 5, dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="targets") as blocked:
        ll.multiclass_hinge.value_and_grad(x, torch.tensor([0, 1, 2, 3, 4, 7]))  # in the last block
    with ll.reference_path(), pytest.raises(ValueError, match="targets") as whole:
        ll.multiclass_hinge.value_and_grad(x, torch.tensor([0, 1, 2, 3, 4, 7]))
    assert str(blocked.value) == str(whole.value)
    with pytest.raises(ValueError, match=r"\(6, 5\).*\(6, 4\)|\(6, 4\).*\(6, 5\)"):  # the call's shapes, not a block's
        ll.kl_div.value_and_grad(x.log_softmax(1), torch.rand(6, 4, dtype=torch.bfloat16))


@pytest.mark.parametrize(("weight_shape", "splits"), [((5,), True), ((1, 5), True), ((6, 1), False), ((6, 5), False)])
def test_a_keyword_array_that_varies_along_the_rows_keeps_the_call_whole(weight_shape, splits, blocks_of_two_rows):
    # multilabel_soft_margin's weight broadcasts to the scores: a class weight splits, a per-row one does not
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 5, generator=g, dtype=torch.bfloat16)
    t = (torch.rand(6, 5, generator=g) > 0.5).to(torch.bfloat16)
    w = torch.rand(weight_shape, generator=g, dtype=torch.bfloat16) + 0.5
    value, grad = ll.multilabel_soft_margin.value_and_grad(x, t, weight=w)
    assert blocks_of_two_rows == [splits]
    with ll.reference_path():
        ref_value, ref_grad = ll.multilabel_soft_margin.value_and_grad(x, t, weight=w)
    torch.testing.assert_close(value, ref_value, rtol=2e-2, atol=2e-3)
    torch.testing.assert_close(grad, ref_grad, rtol=2e-2, atol=2e-3)
    bound = {**ll.multilabel_soft_margin._keyword_defaults, "scores": x, "targets": t, "weight": w.tolist()}
    assert not ll.multilabel_soft_margin.splits_into_rows(bound)  # a nested list is read by the whole call


def test_a_nan_in_one_block_reaches_the_value_and_its_rows_gradient(blocks_of_two_rows):
    x = torch.randn(6, 5, dtype=torch.bfloat16)
    x[4, 2] = float("nan")
    value, grad = ll.multiclass_hinge.value_and_grad(x, torch.tensor([0, 1, 2, 3, 4, 0]))
    assert torch.isnan(value) and torch.isnan(grad[4]).any() and torch.isfinite(grad[:4]).all()


class PeakBytes(TorchDispatchMode):
    """The peak of the bytes held by tensors that torch operations create inside the mode: each new storage
    (views of an operation's arguments are not) counted from its creation to its release."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0
        self.storages = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        given = {t.untyped_storage().data_ptr() for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key, size = storage.data_ptr(), storage.nbytes()
                if size and key not in self.storages and key not in given:  # not a view of an argument
                    self.storages.add(key)
                    self.live += size
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(storage, self._release, key, size)
        return out

    def _release(self, key, size):
        self.live -= size
        self.storages.discard(key)


def _peak_bytes(step) -> int:
    with PeakBytes() as mode:
        step()
    return mode.peak


@pytest.mark.parametrize("name", ["cross_entropy", "distill_kl", "multiclass_hinge"])
def test_the_temporaries_are_a_block_s_not_the_batch_s(name, monkeypatch, torch_ops_path):
    """bfloat16 logits (the path of CUDA tensors): forward and backward peak, beside torch's own loss (the same
    quantity: probability targets, Hinton's distillation recipe; measured 3.0 and 5.0 gradients' worth), with
    blocks of 1/16 of the batch."""
    import torch.nn.functional as F

    n, c = 512, 1000
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, generator=g, dtype=torch.bfloat16, requires_grad=True)
    if name == "cross_entropy":
        other = torch.softmax(torch.randn(n, c, generator=g), 1).to(torch.bfloat16)
        peer = lambda: F.cross_entropy(x, other)  # noqa: E731
    elif name == "distill_kl":
        other = torch.randn(n, c, generator=g, dtype=torch.bfloat16)
        peer = lambda: F.kl_div(F.log_softmax(x, -1), F.log_softmax(other, -1), log_target=True,  # noqa: E731
                                reduction="batchmean")
    else:
        other = torch.randint(0, c, (n,), generator=g)
        peer = None  # PyTorch has no bfloat16 multi_margin_loss on the CPU

    def ours():
        x.grad = None
        getattr(ll, name)(x, other).backward()

    monkeypatch.setitem(_function.ROW_BLOCK_ELEMENTS, "cpu", n * c)
    one_pass = _peak_bytes(ours)  # measured: 11-12 bfloat16 gradients' worth (the batch upcast, six temporaries)
    monkeypatch.setitem(_function.ROW_BLOCK_ELEMENTS, "cpu", n * c // 16)  # CUDA's default share at 8192 x 32000
    blocked = _peak_bytes(ours)  # measured: 1.7-1.75
    grad_bytes = n * c * 2
    assert blocked < one_pass / 4, (blocked, one_pass)
    assert blocked <= 2.25 * grad_bytes, (blocked, grad_bytes)  # the gradient, and one block's temporaries
    if peer is not None:
        x.grad = None
        theirs = _peak_bytes(lambda: peer().backward())
        assert blocked <= theirs, (blocked, theirs)


def test_multilabel_margin_s_blocks_are_sized_by_its_slot_by_class_temporaries(monkeypatch, torch_ops_path):
    # its definition holds (rows, C, C) arrays: a block of the default CPU size takes a handful of rows
    n, c = 256, 300
    g = torch.Generator().manual_seed(2)
    x = torch.randn(n, c, generator=g, dtype=torch.bfloat16, requires_grad=True)
    targets = torch.full((n, c), -1, dtype=torch.long)
    targets[:, :3] = torch.randint(0, c, (n, 3), generator=g)

    def ours():
        x.grad = None
        ll.multilabel_margin(x, targets).backward()

    monkeypatch.setitem(_function.ROW_BLOCK_ELEMENTS, "cpu", n * c * c)
    one_pass = _peak_bytes(ours)
    monkeypatch.setitem(_function.ROW_BLOCK_ELEMENTS, "cpu", 8 * c * c)  # 8 rows a block
    blocked = _peak_bytes(ours)
    assert blocked < one_pass / 16, (blocked, one_pass)
    assert ll.multilabel_margin.row_elements({"scores": x}) == c * c
