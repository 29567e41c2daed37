"""Linear + cross-entropy without the N x V logits: ``loss = CE(hidden @ weight.T + bias, targets)``.

Three matrix products of N x H x V, not four: the gradient is computed during the forward pass, one
chunk of **rows** at a time. For each chunk ``h_c`` (n_c x H)::

    logits_c = h_c @ weight.T + bias        n_c x V, in the input dtype (float32 accumulation inside the matmul)
    rows, lse, d loss / d logits_c          the CE kernel (``_cross_entropy.launch``, the gradient written in
                                            place into logits_c, already times the reduction's factor); on
                                            plain CPU the torch row algebra of ``torch._softmax_ce``
    grad_hidden[c]  = dlogits_c @ weight    written once per chunk
    grad_weight    += dlogits_c.T @ h_c     accumulated across chunks in the weight's dtype (addmm_: one
                                            rounding per chunk; the bf16 error this gives is in docs/gpu.md)
    grad_bias      += dlogits_c.sum(0)      float32

The backward pass only multiplies the stored gradients by the upstream gradient (a 0-d tensor; on the
kernel path ``scale_rows`` skips the pass when it is 1, found out on the device: no host sync).
``reduction="none"`` cannot know its per-row upstream gradient in the forward pass, and grad_weight
needs it inside the product, so there the forward pass keeps only the per-row losses (1 product) and the
backward pass recomputes each chunk of logits with its rows scaled by the upstream gradient (3 products).

Rows per chunk (``chunk_size``, default Liger-Kernel's rule): n_c = next_pow2(ceil(N / ceil(V / H))),
so a chunk of logits is about the size of ``hidden`` (at most twice). Extra memory, besides the
gradients themselves (held from the forward to the backward pass): one n_c x V logits buffer in the
input dtype, 4 V bytes for grad_bias and 8 N bytes of per-row loss and lse.
"""

from __future__ import annotations

import torch

from .. import _checks as check
from ..registry import get
from ..torch._softmax_ce import accumulate_in, logits_grad, max_and_log_total, mean_scale, row_losses, target_logit
from . import dispatch


def _check(hidden, weight, targets, bias, class_weight, label_smoothing, reduction, normalizer, lse_square_scale, softcap):
    for name, x in (("hidden", hidden), ("weight", weight), ("targets", targets)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch tensor, got {type(x).__name__}")
    if hidden.ndim != 2 or weight.ndim != 2 or hidden.shape[1] != weight.shape[1]:
        raise ValueError(f"hidden must be (N, H) and weight (V, H) with the same H, got {tuple(hidden.shape)} and "
                         f"{tuple(weight.shape)} (the classifier's weight is (V, H), as nn.Linear(H, V).weight)")
    if not hidden.dtype.is_floating_point or weight.dtype != hidden.dtype:
        raise TypeError(f"hidden and weight must share one floating dtype, got {hidden.dtype} and {weight.dtype}")
    if targets.shape != hidden.shape[:1] or targets.dtype.is_floating_point or targets.dtype == torch.bool:
        raise ValueError(f"targets must be integer class indices of shape ({hidden.shape[0]},), got "
                         f"{targets.dtype} {tuple(targets.shape)}")
    for name, x in (("bias", bias), ("class_weight", class_weight)):
        if x is not None and (not isinstance(x, torch.Tensor) or x.shape != weight.shape[:1]):
            raise ValueError(f"{name} must be a tensor of shape ({weight.shape[0]},), got {getattr(x, 'shape', type(x).__name__)}")
    devices = {x.device for x in (hidden, weight, targets, bias) if x is not None}
    if len(devices) > 1:
        raise ValueError(f"hidden, weight, targets and bias must be on one device, got {sorted(map(str, devices))}")
    check.options_in(get("cross_entropy"), label_smoothing=label_smoothing, lse_square_scale=lse_square_scale,
                     softcap=softcap)
    check.reduction(reduction, normalizer, ("none", "mean", "sum"))


def rows_per_chunk(n_rows: int, hidden_size: int, n_classes: int) -> int:
    """Liger-Kernel's rule: next_pow2(ceil(N / ceil(V / H))), at most N, at least 1: one chunk of logits
    (n_c x V) is about the size of hidden (N x H), at most twice it."""
    per = -(-n_rows // max(1, -(-n_classes // max(hidden_size, 1))))
    return max(1, min(n_rows, 1 << max(per - 1, 0).bit_length()))


def _use_kernel(x: torch.Tensor) -> bool:
    from ._cross_entropy import HALF_AND_SINGLE, interpreting

    return (x.dtype in HALF_AND_SINGLE and (x.is_cuda or interpreting()) and dispatch.kernels_enabled()
            and not torch.compiler.is_compiling())


def _ce_rows(logits, targets, class_weight, scale, row_scale, opts, with_grad, kernel):
    """Per-row losses (0 on ignored rows), per-row lse, and with ``with_grad`` d loss / d logits times
    ``scale`` (0-d) and ``row_scale`` (per row, or None), written into ``logits`` (returned as the gradient)."""
    if kernel:
        from ._cross_entropy import launch, scale_rows

        rows, lse, grad = launch(logits, targets, class_weight, scale, ignore_index=opts["ignore_index"],
                                 label_smoothing=opts["label_smoothing"], lse_square_scale=opts["lse_square_scale"],
                                 softcap=opts["softcap"], with_grad=with_grad, inplace=with_grad, block=opts["block"])
        if with_grad and row_scale is not None:
            scale_rows(grad, row_scale, opts["block"])
        return rows, lse, grad
    n_classes, e, cap = logits.shape[1], opts["label_smoothing"], opts["softcap"]
    z = logits.to(accumulate_in(logits.dtype))
    if cap is not None:
        z = torch.tanh(z / cap).mul_(cap)
    m, log_total = max_and_log_total(z)
    lse = m + log_total
    valid = targets != opts["ignore_index"]
    r = torch.ones_like(lse) if class_weight is None else class_weight[torch.where(valid, targets, 0)]
    w_sum = n_classes if class_weight is None else class_weight.sum()
    wz = (z.sum(1) if class_weight is None else z @ class_weight) if e else torch.zeros_like(lse)
    rows = row_losses(m, log_total, target_logit(z, targets)[0], wz, r, w_sum, n_classes, e, opts["lse_square_scale"])
    rows = torch.where(valid, rows, 0.0)
    if not with_grad:
        return rows, lse, None
    row_scale = torch.where(valid, scale if row_scale is None else row_scale.to(z.dtype) * scale, 0.0)
    g = logits_grad(z, m, log_total, targets, r, w_sum, n_classes, e, opts["lse_square_scale"], row_scale,
                    class_weight)
    if cap is not None:
        g *= 1 - (z / cap) ** 2
    return rows, lse, logits.copy_(g)


def _chunked(hidden, weight, bias, targets, class_weight, scale, opts, needs, row_scale=None):
    """The chunk loop: per-row losses and lse (float32, float64 for float64 inputs) and the gradients
    in ``needs`` (hidden, weight, bias) of sum_i scale row_scale_i loss_i. Python ints only: no host sync."""
    n, v = hidden.shape[0], weight.shape[0]
    kernel = _use_kernel(hidden)
    with_grad = any(needs)
    acc = torch.float32 if kernel else accumulate_in(hidden.dtype)
    rows = torch.empty(n, dtype=acc, device=hidden.device)
    lse = torch.empty(n, dtype=acc, device=hidden.device)
    grad_h = torch.empty(hidden.shape, dtype=hidden.dtype, device=hidden.device) if needs[0] else None
    grad_w = torch.zeros(weight.shape, dtype=weight.dtype, device=weight.device) if needs[1] else None
    grad_b = torch.zeros(v, dtype=acc, device=hidden.device) if needs[2] else None
    low_bias = bias.detach().to(hidden.dtype) if bias is not None else None
    n_c = opts["chunk_size"] or rows_per_chunk(n, hidden.shape[1], v)
    buffer = torch.empty((min(n_c, n), v), dtype=hidden.dtype, device=hidden.device)
    for r0 in range(0, n, n_c):
        r1 = min(r0 + n_c, n)
        h_c, logits = hidden[r0:r1], buffer[: r1 - r0]
        if low_bias is None:
            torch.mm(h_c, weight.T, out=logits)
        else:
            torch.addmm(low_bias, h_c, weight.T, out=logits)
        rows[r0:r1], lse[r0:r1], g = _ce_rows(logits, targets[r0:r1], class_weight, scale,
                                              None if row_scale is None else row_scale[r0:r1], opts, with_grad, kernel)
        if needs[0]:
            torch.mm(g, weight, out=grad_h[r0:r1])
        if needs[1]:
            grad_w.addmm_(g.T, h_c)  # fp32 accumulation inside the product, one rounding to weight.dtype per chunk
        if needs[2]:
            grad_b += g.sum(0, dtype=acc)
    if grad_b is not None:
        grad_b = grad_b.to(bias.dtype)
    return rows, lse, (grad_h, grad_w, grad_b)


def _scaled(grad, upstream, kernel, block):
    if grad is None:
        return None
    if kernel and grad.ndim == 2 and grad.is_contiguous():
        from ._cross_entropy import scale_rows

        return scale_rows(grad, upstream, block)  # skips the pass when upstream == 1, read on the device
    return grad.mul_(upstream)


class LinearCrossEntropy(torch.autograd.Function):
    """mean / sum: the gradients computed in the forward pass, multiplied by the upstream gradient in the backward."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, class_weight, scale, opts):
        needs = tuple(ctx.needs_input_grad[:3])
        rows, lse, ctx.grads = _chunked(hidden, weight, bias, targets, class_weight, scale, opts, needs)
        ctx.kernel, ctx.block = _use_kernel(hidden), opts["block"]
        ctx.mark_non_differentiable(lse)
        return rows.sum() * scale, lse

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, upstream, _lse_upstream):
        if ctx.grads is None:
            raise RuntimeError("losslab.gpu.linear_cross_entropy: backward ran twice through one forward "
                               "(retain_graph=True); the gradients are computed in the forward pass and handed "
                               "over once: recompute the loss instead")
        grads, ctx.grads = ctx.grads, None
        grad_h, grad_w, grad_b = (_scaled(g, upstream, ctx.kernel, ctx.block) for g in grads)
        return grad_h, grad_w, grad_b, None, None, None, None


class LinearCrossEntropyRows(torch.autograd.Function):
    """reduction="none": the per-row upstream gradient goes inside grad_weight's product, so the
    forward pass keeps the inputs and the backward pass recomputes each chunk of logits (4 products)."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, class_weight, scale, opts):
        rows, lse, _ = _chunked(hidden, weight, bias, targets, class_weight, scale, opts, (False, False, False))
        ctx.save_for_backward(hidden, weight, bias, targets, class_weight, scale)
        ctx.opts = opts
        ctx.mark_non_differentiable(lse)
        return rows, lse

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, upstream, _lse_upstream):
        hidden, weight, bias, targets, class_weight, scale = ctx.saved_tensors
        _, _, grads = _chunked(hidden, weight, bias, targets, class_weight, scale, ctx.opts,
                               tuple(ctx.needs_input_grad[:3]), row_scale=upstream.contiguous())
        return (*grads, None, None, None, None)


def linear_cross_entropy(hidden, weight, targets, bias=None, *, class_weight=None, ignore_index: int = -100,
                         label_smoothing: float = 0.0, reduction: str = "mean", normalizer=None,
                         lse_square_scale: float = 0.0, softcap: float | None = None, return_lse: bool = False,
                         chunk_size: int | None = None, _block: int | None = None):
    """Cross-entropy of the logits ``hidden @ weight.T + bias`` without storing them (see module docs).

    ``weight`` is the classifier's (V, H) matrix (``nn.Linear(H, V).weight``); ``class_weight`` the
    per-class weights of ``cross_entropy``'s ``weight``. Every other option means what it means for
    ``losslab.gpu.cross_entropy``. ``chunk_size``: rows of ``hidden`` per chunk (default: a chunk of
    logits about the size of ``hidden``, Liger-Kernel's rule). With mean/sum and anything requiring
    grad, the gradients are computed in the forward pass (use ``torch.no_grad()`` for evaluation).
    """
    _check(hidden, weight, targets, bias, class_weight, label_smoothing, reduction, normalizer, lse_square_scale, softcap)
    check.class_indices("targets", targets, weight.shape[0], ignore_index)
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1):
        raise ValueError(f"chunk_size must be a positive int (rows of hidden per chunk), got {chunk_size!r}")
    acc = torch.float32 if _use_kernel(hidden) else accumulate_in(hidden.dtype)
    if class_weight is not None:
        class_weight = class_weight.detach().to(device=hidden.device, dtype=acc)
    scale = mean_scale(targets, class_weight, ignore_index, reduction, normalizer, hidden.device, acc)
    opts = dict(ignore_index=int(ignore_index), label_smoothing=float(label_smoothing),
                lse_square_scale=float(lse_square_scale), softcap=None if softcap is None else float(softcap),
                chunk_size=chunk_size, block=_block)
    if torch.is_grad_enabled() and any(x is not None and x.requires_grad for x in (hidden, weight, bias)):
        function = LinearCrossEntropyRows if reduction == "none" else LinearCrossEntropy
        loss, lse = function.apply(hidden, weight, bias, targets, class_weight, scale, opts)
    else:
        rows, lse, _ = _chunked(hidden, weight, bias, targets, class_weight, scale, opts, (False, False, False))
        loss = rows if reduction == "none" else rows.sum() * scale
    return (loss, lse) if return_lse else loss
