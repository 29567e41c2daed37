"""The torch engine and the PyTorch autograd bridge, in one module.

Every ``ll.<loss>`` call on torch tensors comes here: a plain small call first to the compiled lane (``lane``,
before binding; it checks each distinct set of options once, as binding does), every other call after it is bound
and validated once (``run``):

- **fused** (the default, eager mode): value and gradient are computed together, before the graph
  node, from the loss's own definitions: a plain call of an elementwise loss (and of nll, cross_entropy,
  multiclass_hinge, multilabel_margin, margin_ranking, triplet_margin, cosine_embedding) on float32/float64 CPU tensors by one compiled
  Numba loop (``lane``: generated from the definition, or written by hand in ``losslab._numba_lanes``; a small call
  that wants only the value takes it too and drops the gradient); other CPU float32/float64 calls
  by the NumPy engine on zero-copy views (its blocked kernels, else the definitions in NumPy); on
  CUDA the Triton kernel generated from the loss's definition where one is registered
  (``losslab.gpu.pointwise``); else the definitions evaluated with torch operations (fp16/bf16
  computed in float32). The node keeps the gradient (one buffer, the size of the
  input) and the backward pass only rescales it by the upstream gradient, in place; on the CPU
  nothing at all when the upstream gradient is 1, as it is for ``loss.backward()``. A backward that
  builds a graph (``create_graph=True``: Hessian-vector products) or a second backward through the
  same graph recomputes the gradient with differentiable operations instead, so it stays exact.
- **reference** (``LosslabFunction``): under ``torch.compile``, inside ``ll.reference_path()``, for
  ``reduction="none"``: the forward computes the value only and the backward is the analytic
  gradient for any upstream gradient, written with differentiable torch operations.
- inside a ``torch.func`` transform (``grad``, ``vmap``, ``jacrev``, ...) neither: the engine declines and the
  reference path runs in torch operations, which the transform differentiates and batches.

Either way ``loss.backward()`` equals ``.grad``, no intermediate of the forward but the gradient is
kept, and the gradient stays finite where autodiff of the forward would not (BCE at p = 0 or 1).
Targets or weights that require gradients are left to autograd tracing the reference forward.
Defined at import time (not lazily) so ``torch.compile(fullgraph=True)`` can trace it.
"""

from __future__ import annotations

from typing import Any

import array_api_compat.numpy as _NUMPY
import numpy as np
import torch

from .. import _engines, _fast, _xp
from .._loss import Loss, astype

_NUMPY_DTYPES = (torch.float32, torch.float64)


def run(loss: Loss, xp, bound: dict, reduction: str, normalizer: Any, with_grad: bool):
    """The torch engine's entry (registered in losslab/__init__.py for torch tensors)."""
    if _xp.functorch_active():
        # inside torch.func.grad / vmap / jacrev: the reference path in torch operations, which the transform
        # differentiates and batches (an autograd.Function would need setup_context and a vmap rule)
        return NotImplemented
    # one pass over the arguments: the tensors (autograd's inputs) apart from the rest, and who needs a gradient
    names, tensors, constants = [], [], {}
    tracks = others_track = False
    grad_mode = torch.is_grad_enabled()
    inputs = loss.inputs
    for k, v in bound.items():
        if isinstance(v, torch.Tensor):
            names.append(k)
            tensors.append(v)
            if grad_mode and v.requires_grad:
                if k in inputs:
                    tracks = True
                else:
                    others_track = True
        else:
            constants[k] = v
    if others_track and not with_grad:
        return NotImplemented  # targets or weights with gradients: autograd traces the reference forward
    fused = (_fast.enabled() and not torch.compiler.is_compiling()
             and type(bound[loss.inputs[0]]).__name__ not in _xp.TRACED_TORCH_TYPES)
    if with_grad or not tracks:
        if not fused:
            return NotImplemented
        if not with_grad:
            return _compute(loss, xp, bound, reduction, normalizer, False)[0]
        value, grads = _compute(loss, xp, bound, reduction, normalizer, True)
        return _engines.value_and_grad_result(value, grads)
    if not fused or reduction == "none":
        return _reference_apply(loss, bound, reduction, normalizer)
    # value and gradients first (_compute records no graph), then the graph node that holds the gradients
    value, grads = _compute(loss, xp, bound, reduction, normalizer, True)
    if isinstance(normalizer, torch.Tensor):  # an autograd input too (it gets no gradient)
        names.append("_normalizer")
        tensors.append(normalizer)
        normalizer = None
    # the gradients in the order of the tensor arguments (None for targets and weights)
    by_input = dict(zip(loss.inputs, grads))
    # one constant (apply's cost grows with its arguments) that holds no tensor: the graph keeps the
    # inputs only as saved tensors, which backward() frees
    call = (loss, constants, reduction, normalizer, tuple(names))
    return _apply_fused((call, value, tuple([by_input.get(n) for n in names])), tensors)


# -- the compiled lane: plain small calls on CPU tensors ----------------------------------------------------------
# A small call's cost is mostly Python: binding, the engine's checks, the NumPy views and the fast path's dozen
# NumPy operations, each paid per call. For the plainest call of a loss whose NumPy fast path has a lane (its
# float32/float64 CPU tensors by position, scalar options, mean or sum, no normalizer; the lane checks the rest) this
# skips all of them: the options are checked once per distinct set (as binding checks them) and one Numba loop
# (``_fast._Lane``: generated from an elementwise definition; ``_numba_lanes``: by hand) computes the value and the
# gradients on zero-copy views. Measured on 2 cores, mse on 1,024 elements, forward and backward: 44 us in place of
# 67 (torch 32). A small value-only call (evaluation) takes it too, the gradients dropped: mse 21.5 -> 10.9 us.

_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)


def lane(loss: Loss, args: tuple, options: dict, reduction: str, with_grad: bool):
    """The torch lane (``_engines.register_lane``): the compiled lane for a plain call of a loss whose NumPy fast path
    has one (``fast.lane``; its plan from ``_fast.lane_entry``, the options checked once per distinct set), the fused
    node (or, with ``with_grad``, value and gradients; with no gradient to track, at most
    ``_fast.DIRECT_SMALL_ELEMENTS`` elements, the value) as ``run`` makes them; NotImplemented for any other call,
    which then takes the usual flow (so the errors are its errors)."""
    if len(args) != len(loss._positional) or torch.compiler.is_compiling():
        return NotImplemented
    for a in args:
        if type(a) not in _TENSOR_TYPES or not a.is_cpu:
            return NotImplemented
    if args[0].dtype not in _NUMPY_DTYPES or _xp.functorch_active() or not _fast.enabled():
        return NotImplemented  # (the fast path's lane checks the other arguments' shapes and dtypes)
    entry = _fast.lane_entry(loss, options, reduction)
    if entry is None:
        return NotImplemented
    fast_lane, plan, bound_options, slots = entry
    tracks = False  # whether the value goes through autograd: an input requires a gradient, and nothing else may
    if not with_grad and torch.is_grad_enabled():
        for a, slot in zip(args, slots):
            if a.requires_grad:
                if slot is None:
                    return NotImplemented  # targets with gradients: autograd traces the reference forward
                tracks = True
    if not (with_grad or tracks) and args[0].numel() > _fast.DIRECT_SMALL_ELEMENTS:
        return NotImplemented  # a large value only: the usual flow's value pass writes no gradient
    try:
        out = fast_lane.run(plan, [a.detach().numpy() for a in args], reduction)
    except RuntimeError:  # the conjugate or negative bit: numpy() refuses, torch resolves it on the usual flow
        return NotImplemented
    if out is NotImplemented:
        return out
    value = torch.from_numpy(np.asarray(out[0]))
    grads = [torch.from_numpy(g) for g in out[1]]
    if with_grad:
        return _engines.value_and_grad_result(value, grads)
    if not tracks:  # a small value only (evaluation, torch.no_grad): the gradients the loop wrote are dropped
        return value
    call = (loss, bound_options, reduction, None, loss._positional)
    return _apply_fused((call, value, tuple([None if slot is None else grads[slot] for slot in slots])), list(args))


# -- computing: value and gradient in one pass --------------------------------------------------------
# CPU float32/float64 tensors are computed by losslab's NumPy engine on zero-copy views: the blocked
# kernels where registered, else the same definitions evaluated with NumPy. Measured on 2 cores, a
# NumPy operation on a small array costs about 1 us and a torch CPU operation 4-10 us, and at large
# sizes the blocks (threads, cache-sized, gradient written while the block is in cache) beat torch
# operations 2-5x. On CUDA a registered kernel runs on the prepared call (the generated Triton kernels
# of the elementwise losses); everything else (other CUDA losses, fp16/bf16) evaluates the definitions
# with torch itself.


_PLAIN = (type(None), int, float, bool, str)


def _numpy_view(v: Any):
    """A zero-copy NumPy view of a CPU tensor (other values as they are); TypeError for what the NumPy
    engine cannot take: another device, bfloat16, a lazily conjugated or negated tensor (``numpy()``
    refuses each), another framework's array (the torch path gives its error)."""
    if type(v) in _PLAIN:
        return v
    if isinstance(v, torch.Tensor):
        try:
            return v.detach().numpy()
        except RuntimeError:  # the conjugate or negative bit: torch resolves it
            raise TypeError from None
    if not _xp.is_array(v) or _xp.backend_of(v) in ("numpy", "torch"):
        return v
    raise TypeError


def _numpy_views(loss: Loss, bound: dict, normalizer: Any):
    """Zero-copy NumPy views of every tensor of a CPU float32/float64 call, or None."""
    x = bound[loss.inputs[0]]
    if not x.is_cpu or x.dtype not in _NUMPY_DTYPES:  # CUDA: no exception raised and caught per call
        return None
    try:
        return ({k: v if type(v) in _PLAIN else _numpy_view(v) for k, v in bound.items()},
                normalizer if normalizer is None else _numpy_view(normalizer))
    except TypeError:
        return None


def _as_tensor(a):
    if type(a) is np.ndarray:
        return torch.from_numpy(a if a.flags.writeable else a.copy())
    if isinstance(a, np.generic):  # a NumPy scalar keeps its dtype (a 0-d array: 3x cheaper than torch.tensor)
        return torch.from_numpy(np.asarray(a))
    return torch.tensor(a)


# Rows per block of the row-blocked evaluation below, per device type: a block's largest temporary holds at most
# this many elements (Loss.row_elements), so the temporaries of a definition are those of one block, not the
# batch's. CPU (bfloat16/float16 tensors): 1M elements, 4 MiB in float32, measured 1.5-2x faster than one pass
# over 4096 x 8192 logits (4M: 1.3x, 256K and 64K slower again). CUDA: 16M, 64 MiB, so that 8192 x 32000 logits
# take 16 blocks of some 15 kernels each, well above launch cost; not yet timed on a GPU (benchmarks/on_gpu.sh).
ROW_BLOCK_ELEMENTS = {"cpu": 1 << 20, "cuda": 1 << 24}

_HALF_DTYPES = (torch.float16, torch.bfloat16)

# float16/bfloat16 CPU tensors: the NumPy engine on float32 copies, a block of rows at a time where the call splits
# into rows (so the copies are a block's), else the whole call. Measured on 2 cores, bf16, value_and_grad
# (benchmarks/results/torch_losses-cpu-2026-11-30-bfloat16-half-in-numpy.md): as fast as to 28x faster than the
# definitions in torch operations at 4M elements where the NumPy engine has a fast path for the loss, 1.1-26x at
# 1,024 for every loss; 1.5x slower at 4M for the two losses then without one (poisson_nll, which has one since,
# and gaussian_nll: the NumPy reference path is one thread, torch's operations use all), so a loss without one
# stays in torch operations from PARALLEL_MIN_ELEMENTS up. The tests switch it off to run the CUDA path on the CPU.
CPU_HALF_IN_NUMPY = True


def _half_in_numpy(loss: Loss, x) -> bool:
    return (CPU_HALF_IN_NUMPY and x.is_cpu and x.dtype in _HALF_DTYPES
            and (x.numel() < _fast.PARALLEL_MIN_ELEMENTS or _engines.fast_path_of(loss.name, "numpy") is not None))


def _in_row_blocks(loss: Loss, xp, bound: dict, reduction: str, normalizer: Any, with_grad: bool, evaluate):
    """``evaluate(block, reduction, normalizer)`` (the block's value and gradients, or None) on blocks of rows,
    where the call splits into rows (``Loss.splits_into_rows``) and spans several blocks: the values add up,
    each block's gradient is written into the one gradient buffer (in the input's dtype), and every block divides
    by the whole batch's divisor (``Loss.rows_divisor``). NotImplemented otherwise. A bad argument raises the
    whole call's error, as one pass would. (With ``strict_checks`` on CUDA, each block's value checks sync once.)"""
    if reduction == "none" or not loss.splits_into_rows(bound):
        return NotImplemented
    rows_of = [bound[name] for name in loss._positional]
    if not all(isinstance(a, torch.Tensor) for a in rows_of):
        return NotImplemented
    n = rows_of[0].shape[0]
    block = ROW_BLOCK_ELEMENTS.get(rows_of[0].device.type, ROW_BLOCK_ELEMENTS["cuda"])
    rows = max(1, block // max(1, loss.row_elements(bound)))
    if n <= rows:
        return NotImplemented
    try:
        if reduction == "batchmean":  # the sum over the first dimension's count
            reduction, normalizer = "mean", n
        elif reduction == "mean" and normalizer is None:
            normalizer = loss.rows_divisor(xp, bound)
            if normalizer is None:
                return NotImplemented
        grads = tuple(torch.empty_like(bound[name]) for name in loss.inputs) if with_grad else None
        total = None
        for lo in range(0, n, rows):
            # this block's temporaries are gone (evaluate returned) before the next block's come
            value, block_grads = evaluate(loss.row_block(bound, lo, lo + rows), reduction, normalizer)
            if with_grad:
                for out, g in zip(grads, block_grads):
                    out[lo:lo + rows] = g  # in the input's dtype
            del block_grads
            total = value if total is None else total + value
    except (ValueError, TypeError):
        loss.prepare(xp, **bound)  # the error as the whole call gives it (names its shapes, every bad value)
        raise
    return total, grads


def _in_torch_ops(loss: Loss, xp, with_grad: bool):
    """An ``evaluate`` of the definitions in torch operations (fp16/bf16 computed in float32): the value and the
    gradients in the compute dtype."""
    def evaluate(bound: dict, reduction: str, normalizer: Any):
        st = loss.prepare(xp, **bound)
        if with_grad:
            return loss.value_and_grads(xp, st, reduction, normalizer, torch)
        return loss._value(xp, st, reduction, normalizer)[0], None
    return evaluate


def _in_float32(loss: Loss, xp, with_grad: bool):
    """An ``evaluate`` for float16/bfloat16 CPU tensors: the NumPy engine on float32 copies (the gradients in
    float32); the torch operations where a value has no NumPy view."""
    def evaluate(bound: dict, reduction: str, normalizer: Any):
        wide = {k: v.float() if isinstance(v, torch.Tensor) and v.dtype in _HALF_DTYPES else v for k, v in bound.items()}
        if isinstance(normalizer, torch.Tensor) and normalizer.dtype in _HALF_DTYPES:
            normalizer = normalizer.float()
        views = _numpy_views(loss, wide, normalizer)
        if views is None:
            return _in_torch_ops(loss, xp, with_grad)(bound, reduction, normalizer)
        return _numpy_compute(loss, *views, reduction, with_grad)
    return evaluate


def _compute(loss: Loss, xp, bound: dict, reduction: str, normalizer: Any, with_grad: bool):
    """(value, gradients as a tuple in the inputs' dtypes, or None), recording no autograd graph: the NumPy engine
    on views, else torch operations under ``torch.no_grad()`` (the entry to a context costs a small call ~1 us, so
    only the torch paths pay it)."""
    views = _numpy_views(loss, bound, normalizer)
    if views is not None:
        return _numpy_compute(loss, *views, reduction, with_grad)
    with torch.no_grad():
        return _compute_in_torch(loss, xp, bound, reduction, normalizer, with_grad)


def _compute_in_torch(loss: Loss, xp, bound: dict, reduction: str, normalizer: Any, with_grad: bool):
    """``_compute`` for tensors without NumPy views: fp16/bf16 on the CPU, CUDA."""
    x = bound[loss.inputs[0]]
    if _half_in_numpy(loss, x):
        evaluate = _in_float32(loss, xp, with_grad)
        out = _in_row_blocks(loss, xp, bound, reduction, normalizer, with_grad, evaluate)
        if out is NotImplemented:
            value, grads = evaluate(bound, reduction, normalizer)
            if grads is not None:
                grads = tuple([g.to(bound[name].dtype) for g, name in zip(grads, loss.inputs)])
            out = value, grads
        return out
    # CUDA (or fp16/bf16 in torch): a registered kernel (generated Triton), else the definitions in torch
    kernel = _engines.kernel_of(loss.name, "torch")
    if kernel is None or not x.is_cuda:  # a kernel makes one fused pass
        out = _in_row_blocks(loss, xp, bound, reduction, normalizer, with_grad, _in_torch_ops(loss, xp, with_grad))
        if out is not NotImplemented:
            return out
    st = loss.prepare(xp, **bound)
    out = NotImplemented if kernel is None else kernel(loss, xp, st, reduction, normalizer, with_grad)
    if out is NotImplemented:
        out = loss._reference_state(xp, st, reduction, normalizer, with_grad, ops=torch)
    return out if with_grad else (out, None)


def _numpy_compute(loss: Loss, np_bound: dict, np_normalizer: Any, reduction: str, with_grad: bool):
    """The NumPy engine on NumPy views, in its own order (its fast path, else the reference): (value, gradients as
    a tuple, or None), as tensors sharing the results' memory."""
    out = NotImplemented
    fast = _engines.fast_path_of(loss.name, "numpy")  # (the fast paths are on: run checked)
    if fast is not None:
        positional = tuple([np_bound[n] for n in loss._positional])
        # only the options given, as a NumPy call passes them (a fast path reads a missing one as its default)
        options = {k: np_bound[k] for k, default in loss._keyword_defaults.items() if np_bound[k] is not default}
        out = fast(positional, options, reduction, np_normalizer, with_grad)
    if out is NotImplemented:
        out = loss._reference(_NUMPY, np_bound, reduction, np_normalizer, with_grad, ops=np)
    if not with_grad:
        return _as_tensor(out), None
    value, grads = out
    if type(grads) is tuple:
        return _as_tensor(value), tuple([_as_tensor(g) for g in grads])
    return _as_tensor(value), (_as_tensor(grads),)


# -- autograd -----------------------------------------------------------------------------------------


def _apply(function, loss: Loss, bound: dict, reduction: str, normalizer: Any, xp=None):
    items = dict(bound)
    items["_normalizer"] = normalizer
    items["_reduction"] = reduction
    names = tuple(k for k, v in items.items() if isinstance(v, torch.Tensor))
    constants = {k: v for k, v in items.items() if k not in names}
    return function.apply(loss, names, constants, xp, *(items[k] for k in names))


def _reference_apply(loss: Loss, bound: dict, reduction: str, normalizer: Any):
    return _apply(LosslabFunction, loss, bound, reduction, normalizer)


def _unpack(names, constants, tensors):
    kwargs = {**constants, **dict(zip(names, tensors))}
    return kwargs, kwargs.pop("_normalizer"), kwargs.pop("_reduction")


def _differentiable_backward(loss: Loss, names, constants, tensors, upstream, u=None):
    """The analytic gradient for any upstream gradient, written with differentiable torch operations."""
    kwargs, normalizer, reduction = _unpack(names, constants, tensors)
    xp = _xp.namespace(*(kwargs[n] for n in loss.inputs))
    st = loss.prepare(xp, **kwargs)  # re-checks values on host tensors: cheap, and no sync
    if u is None:
        u = loss._value(xp, st, reduction, normalizer)[1]
    grads = loss.grad_terms(xp, st, xp.astype(upstream, u.dtype) * u)
    by_name = dict(zip(loss.inputs, (astype(g, dt) for g, dt in zip(grads, st.input_dtypes))))
    if torch.is_grad_enabled():  # create_graph=True: every gradient a function of its input, as torch's own
        for name, g in by_name.items():
            x = kwargs[name]
            if isinstance(g, torch.Tensor) and not g.requires_grad and isinstance(x, torch.Tensor) and x.requires_grad:
                by_name[name] = _TiedToInput.apply(g, x)
    return (None, None, None, None, *(by_name.get(n) for n in names))


class _TiedToInput(torch.autograd.Function):
    """A gradient ``g`` that holds no function of its input ``x`` (a loss linear in x, as nll, or whose pieces are,
    as multilabel_margin), tied to x with a zero derivative: under ``create_graph=True`` it stays in the graph, so a
    Hessian-vector product gives zeros (as torch's nll_loss does), not autograd's "does not require grad" error."""

    @staticmethod
    def forward(ctx, g, x):
        ctx.like = (x.shape, x.dtype, x.device)
        return g.detach()  # (not a view: the caller may change the gradient in place, as torch's own allows)

    @staticmethod
    def backward(ctx, upstream):
        shape, dtype, device = ctx.like
        return None, torch.zeros(shape, dtype=dtype, device=device)


class LosslabFunction(torch.autograd.Function):
    """The reference bridge: value in the forward, the analytic gradient in the backward."""

    @staticmethod
    def forward(ctx, loss, names, constants, xp, *tensors):
        kwargs, normalizer, reduction = _unpack(names, constants, tensors)
        xp = xp or _xp.namespace(*(kwargs[n] for n in loss.inputs))
        st = loss.prepare(xp, **kwargs)
        value, u = loss._value(xp, st, reduction, normalizer)
        ctx.save_for_backward(u, *tensors)
        ctx.meta = (loss, names, constants)
        return value

    @staticmethod
    def backward(ctx, upstream):
        u, *tensors = ctx.saved_tensors
        loss, names, constants = ctx.meta
        return _differentiable_backward(loss, names, constants, tensors, upstream, u)


class LosslabFusedFunction(torch.autograd.Function):
    """The fused engine's graph node: it holds the value and gradients that ``run`` computed before it; the backward
    rescales the gradient."""

    @staticmethod
    def forward(ctx, computed, *tensors):
        # computed: (the call, its value, the gradients of the tensor arguments), made by run before the node
        ctx.call, value, ctx.grads = computed
        ctx.save_for_backward(*tensors)  # only a second backward reads them (and checks they were not modified)
        return value

    @staticmethod
    def backward(ctx, upstream):
        grads, ctx.grads = ctx.grads, None
        if grads is None or torch.is_grad_enabled():  # a second backward, or create_graph=True
            loss, constants, reduction, normalizer, names = ctx.call
            constants = {**constants, "_reduction": reduction}
            if "_normalizer" not in names:
                constants["_normalizer"] = normalizer
            return (None, *_differentiable_backward(loss, names, constants, ctx.saved_tensors, upstream)[4:])
        # the gradient is ours alone: scale it in place (the reduction is mean or sum, so upstream is 0-d
        # and, as a 0-d tensor, keeps each gradient's dtype); on the CPU nothing when it is 1 (no sync)
        if not (upstream.is_cpu and upstream.item() == 1.0):
            for g in grads:
                if g is not None:
                    g.mul_(upstream)
        needs = ctx.needs_input_grad
        return (None, *[g if need else None for g, need in zip(grads, needs[1:])])


# Function.apply's Python wrapper (binding defaults for setup_context, then functorch's check) costs about 2 us of a
# small call's 40-50: without functorch transforms active (run makes sure) it ends in the C apply, which is called
# here directly (dead functorch wrappers unwrapped as the wrapper does). A torch without these takes apply.
try:
    _unwrap_if_dead = torch._C._functorch.unwrap_if_dead
    _fused_c_apply = super(torch.autograd.Function, LosslabFusedFunction).apply
except AttributeError:  # pragma: no cover - another torch version
    _fused_c_apply = None


def _apply_fused(computed: tuple, tensors: list):
    if _fused_c_apply is None:  # (run declines every call inside a functorch transform)
        return LosslabFusedFunction.apply(computed, *tensors)
    return _fused_c_apply(computed, *[_unwrap_if_dead(t) for t in tensors])
