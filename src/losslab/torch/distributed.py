"""Losses across processes, on torch.distributed (NCCL on GPUs, Gloo on CPUs). See docs/distributed.md.

- ``global_count`` / ``normalizer``: the exact divisor of a mean over every micro-batch of every rank
  (one all-reduce, no host sync), to pass as ``normalizer=`` so that accumulated, data-parallel
  gradients equal the full-batch gradient.
- ``vocab_parallel_cross_entropy``: logits sharded along the vocabulary (tensor parallelism, as in
  Megatron): all-reduces of the row max and of the row sums, every option of ``cross_entropy`` plus
  z-loss; the backward pass is local to each shard.
- ``info_nce`` and ``siglip`` over a global batch spread across ranks: InfoNCE gathers the embeddings
  with a gradient-carrying all-gather; SigLIP passes the other ranks' text embeddings around a ring,
  keeping one remote block in memory at a time.

Each rank's result is its share of the global loss: the shares add up to the global loss, and a
backward pass on every rank gives each rank the exact gradient of the global loss for its own inputs.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .. import _checks as check
from ..losses.classification import binary_cross_entropy_with_logits, cross_entropy
from ..registry import get
from ._softmax_ce import accumulate_in, logits_grad, mean_scale, row_losses, target_logit


def _group_size(group) -> tuple[int, int]:
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("torch.distributed is not initialised: call torch.distributed.init_process_group first")
    return dist.get_rank(group), dist.get_world_size(group)


# -- exact normalisation -------------------------------------------------------------------------------

def global_count(targets, *, ignore_index: int = -100, weight=None, group=None) -> torch.Tensor:
    """The number of items not ignored (or, with per-class ``weight``, the sum of ``weight[target]``: the
    weighted mean's divisor) in ``targets`` — one tensor, or the list of this step's micro-batches —
    summed over the ranks of ``group``. One all-reduce of one number; the result stays on the device."""
    batches = list(targets) if isinstance(targets, (list, tuple)) else [targets]
    if not batches or not all(isinstance(t, torch.Tensor) for t in batches):
        raise TypeError("targets must be a tensor or a non-empty list of tensors (this step's micro-batches)")
    total = None
    for t in batches:
        valid = t != ignore_index
        if weight is None:
            part = valid.sum(dtype=torch.float64)
        else:
            part = (weight.to(t.device, torch.float64)[torch.where(valid, t, 0)] * valid).sum()
        total = part if total is None else total + part
    _group_size(group)
    dist.all_reduce(total, group=group)
    return total


def normalizer(targets, *, ignore_index: int = -100, weight=None, group=None, averaged_gradients: bool = True):
    """``normalizer=`` for each micro-batch's loss so that the gradients add up to the full-batch mean's.

    DDP and FSDP average gradients over ranks (they divide the sum by the world size), so by default the
    global count is divided by the world size: sum over ranks and micro-batches of
    ``sum_of_losses / (count / W)``, averaged over the W ranks, is ``total / count``. Pass
    ``averaged_gradients=False`` when gradients are summed instead.
    """
    count = global_count(targets, ignore_index=ignore_index, weight=weight, group=group)
    return count / dist.get_world_size(group) if averaged_gradients else count


def _sizes(length: int, device, group) -> torch.Tensor:
    """Every rank's ``length``, in rank order (one all-reduce; the result stays on the device)."""
    rank, world = _group_size(group)
    sizes = torch.zeros(world, dtype=torch.int64, device=device)
    sizes[rank] = length
    dist.all_reduce(sizes, group=group)
    return sizes


# -- vocabulary-parallel cross-entropy --------------------------------------------------------------------

class _VocabParallelCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, targets, class_weight, scale, vocab_start, n_classes, opts):
        group, e, zs = opts["group"], opts["smoothing"], opts["z_scale"]
        z = logits.to(accumulate_in(logits.dtype))
        local = targets - vocab_start
        valid = targets != opts["ignore_index"]
        m = z.amax(1)
        dist.all_reduce(m, op=dist.ReduceOp.MAX, group=group)
        z_y, inside = target_logit(z, local)
        r = torch.where(inside & valid, class_weight[local.clamp(0, z.shape[1] - 1)], 0.0) if class_weight is not None \
            else torch.zeros_like(m)
        wz = (z.sum(1) if class_weight is None else z @ class_weight) if e else torch.zeros_like(m)
        w_sum = (class_weight.sum() if class_weight is not None else torch.zeros((), dtype=z.dtype, device=z.device))
        sums = torch.cat([torch.exp(z - m[:, None]).sum(1), z_y, r, wz, w_sum[None]])
        dist.all_reduce(sums, group=group)  # one all-reduce for every per-row sum
        n = z.shape[0]
        s, z_y, r, wz, w_sum = sums[:n], sums[n:2 * n], sums[2 * n:3 * n], sums[3 * n:4 * n], sums[4 * n]
        if class_weight is None:
            r, w_sum = valid.to(z.dtype), n_classes
        log_total = torch.log(s)
        rows = torch.where(valid, row_losses(m, log_total, z_y, wz, r, w_sum, n_classes, e, zs), 0.0)
        ctx.save_for_backward(logits, local, valid, class_weight, scale, m, log_total, r)
        ctx.n_classes, ctx.w_sum, ctx.opts = n_classes, w_sum, opts
        return rows if opts["reduction"] == "none" else rows.sum() * scale

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, upstream):  # local to the shard: no communication
        logits, local, valid, class_weight, scale, m, log_total, r = ctx.saved_tensors
        o = ctx.opts
        z = logits.to(m.dtype)
        row_scale = torch.where(valid, (upstream if upstream.ndim else upstream * scale).to(z.dtype), 0.0)
        g = logits_grad(z, m, log_total, local, r, ctx.w_sum, ctx.n_classes, o["smoothing"], o["z_scale"], row_scale,
                        class_weight)
        return g.to(logits.dtype), None, None, None, None, None, None


def vocab_parallel_cross_entropy(logits, targets, *, vocab_start=None, group=None, weight=None, ignore_index: int = -100,
                                 label_smoothing: float = 0.0, lse_square_scale: float = 0.0, reduction: str = "mean",
                                 normalizer=None):
    """Cross-entropy of logits split along the class axis across the ranks of ``group``.

    ``logits``: this rank's (N, V_local) columns, ``vocab_start`` the global index of its first column
    (default: the ranks hold consecutive blocks in rank order; found with one all-reduce of the widths);
    ``targets``: (N,) global class indices, the same on every rank; ``weight``: this rank's (V_local,)
    slice of the class weights. Every rank returns the same loss (the full loss, not a share), and its
    gradient block of the full gradient. ``lse_square_scale`` adds the z-loss s * w[y] * lse^2.
    """
    rank, _ = _group_size(group)  # first: a clear error without a process group
    if not isinstance(logits, torch.Tensor) or logits.ndim != 2:
        raise ValueError(f"logits must be this rank's (N, V_local) block, got {getattr(logits, 'shape', type(logits).__name__)}")
    if not isinstance(targets, torch.Tensor) or targets.shape != logits.shape[:1] or targets.dtype.is_floating_point:
        raise ValueError(f"targets must be integer class indices of shape ({logits.shape[0]},) (global indices, the same "
                         f"on every rank), got {getattr(targets, 'dtype', '')} {tuple(getattr(targets, 'shape', ()))}")
    if weight is not None and (not isinstance(weight, torch.Tensor) or weight.shape != logits.shape[1:]):
        raise ValueError(f"weight must be this rank's slice of the class weights, shape ({logits.shape[1]},), "
                         f"got {getattr(weight, 'shape', type(weight).__name__)}")
    check.options_in(get("cross_entropy"), label_smoothing=label_smoothing, lse_square_scale=lse_square_scale)
    check.reduction(reduction, normalizer, ("none", "mean", "sum"))
    sizes = _sizes(logits.shape[1], logits.device, group)  # every shard's width: the vocabulary size, the offsets
    n_classes = sizes.sum().to(accumulate_in(logits.dtype))
    if vocab_start is None:
        vocab_start = sizes[:rank].sum()
    acc = accumulate_in(logits.dtype)
    class_weight = weight.detach().to(logits.device, acc) if weight is not None else None
    scale = _mean_scale(targets, ignore_index, reduction, normalizer, class_weight, vocab_start, logits.shape[1], group, acc)
    opts = dict(group=group, ignore_index=int(ignore_index), smoothing=float(label_smoothing),
                z_scale=float(lse_square_scale), reduction=reduction)
    return _VocabParallelCE.apply(logits, targets, class_weight, scale, vocab_start, n_classes, opts)


def _mean_scale(targets, ignore_index, reduction, normalizer, class_weight, vocab_start, width, group, dtype):
    if reduction != "mean" or normalizer is not None or class_weight is None:
        return mean_scale(targets, None, ignore_index, reduction, normalizer, targets.device, dtype)
    # the weighted mean's divisor, sum of w[y] over valid rows: each rank holds some of the weights
    valid, local = targets != ignore_index, targets - vocab_start
    inside = valid & (local >= 0) & (local < width)
    k = torch.where(inside, class_weight[local.clamp(0, width - 1)], 0.0).sum()
    dist.all_reduce(k, group=group)
    return torch.where(k > 0, 1.0 / k, torch.zeros_like(k))


# -- contrastive losses over a global batch -----------------------------------------------------------------

class _GatherRows(torch.autograd.Function):
    """All-gather along the rows, with a backward that hands each rank the gradient of its rows summed
    over every rank's use of them (an all-reduce, which Gloo supports; NCCL would allow a reduce-scatter)."""

    @staticmethod
    def forward(ctx, x, sizes: list[int], rank: int, group):
        width = max(sizes)
        padded = F.pad(x, (0, 0, 0, width - x.shape[0]))
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded.contiguous(), group=group)
        ctx.sizes, ctx.rank, ctx.group = sizes, rank, group
        return torch.cat([p[:n] for p, n in zip(parts, sizes)])

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        dist.all_reduce(grad, group=ctx.group)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start:start + ctx.sizes[ctx.rank]], None, None, None


def _row_sizes(x: torch.Tensor, group) -> tuple[list[int], int]:
    # a host sync on GPUs: the shapes of the gathered batch depend on it
    return _sizes(x.shape[0], x.device, group).tolist(), dist.get_rank(group)


def _pairs(a, b, normalize: bool):
    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or not x.dtype.is_floating_point:
            raise ValueError(f"{name} must be this rank's (n, D) floating-point embeddings, got "
                             f"{getattr(x, 'dtype', type(x).__name__)} {tuple(getattr(x, 'shape', ()))}")
    if a.shape != b.shape:
        raise ValueError(f"a and b must be paired rows of the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if not isinstance(normalize, bool):
        raise TypeError(f"normalize must be True or False, got {normalize!r}")
    if normalize:  # as the core losses: torch's F.normalize, norm floored at 1e-12
        a, b = F.normalize(a, dim=1, eps=1e-12), F.normalize(b, dim=1, eps=1e-12)
    return a, b


def info_nce(a, b, *, temperature: float = 0.07, normalize: bool = True, reduction: str = "mean", group=None):
    """``ll.info_nce`` over the global batch (every rank's pairs are negatives for every other rank's).

    ``a``, ``b``: this rank's (n, D) paired rows (n may differ between ranks). Returns this rank's share:
    ``"mean"`` the sum of its pairs' losses divided by the global batch size (the shares add up to the
    global mean), ``"sum"`` the sum, ``"none"`` its n per-pair losses. Memory: the gathered (N, D)
    embeddings and an (n, N) block of similarities.
    """
    check.options_in(get("info_nce"), temperature=temperature, normalize=normalize)
    check.reduction(reduction, None, ("none", "mean", "sum"))
    sizes, rank = _row_sizes(a, group)
    a_hat, b_hat = _pairs(a, b, normalize)
    all_a, all_b = _GatherRows.apply(a_hat, sizes, rank, group), _GatherRows.apply(b_hat, sizes, rank, group)
    mine = torch.arange(a.shape[0], device=a.device) + sum(sizes[:rank])
    rows = cross_entropy(a_hat @ all_b.T / temperature, mine, reduction="none")  # a_i against every b
    cols = cross_entropy(b_hat @ all_a.T / temperature, mine, reduction="none")  # b_i against every a
    per_pair = 0.5 * (rows + cols)
    if reduction == "none":
        return per_pair
    return per_pair.sum() / (sum(sizes) if reduction == "mean" else 1)


class _SigLIPRing(torch.autograd.Function):
    """Each rank keeps its a rows; the b blocks travel around the ring, each with the gradient that the
    ranks it visited added to it, and come home after world-size hops with their complete gradient."""

    @staticmethod
    def forward(ctx, a_hat, b_hat, t, bias, rank, world, group):
        loss = torch.zeros((), dtype=torch.float64, device=a_hat.device)
        grad_a = torch.zeros_like(a_hat)
        block, grad_block = b_hat.detach().clone(), torch.zeros_like(b_hat)
        nxt, prv = (rank + 1) % world, (rank - 1) % world
        for step in range(world):
            owner = (rank - step) % world
            s = t * (a_hat @ block.T) + bias
            labels = torch.eye(*s.shape, dtype=s.dtype, device=s.device) if owner == rank else torch.zeros_like(s)
            value, g = binary_cross_entropy_with_logits.value_and_grad(s, labels, reduction="sum")  # softplus(-z S)
            loss += value
            grad_a += t * (g @ block)
            grad_block += t * (g.T @ a_hat)
            if world > 1:  # pass the block and its gradient on; the last hop only brings the gradient home
                outgoing = [grad_block] if step == world - 1 else [block, grad_block]
                incoming = [torch.empty_like(x) for x in outgoing]
                ops = [dist.P2POp(dist.isend, x, nxt, group) for x in outgoing]
                ops += [dist.P2POp(dist.irecv, x, prv, group) for x in incoming]
                for request in dist.batch_isend_irecv(ops):
                    request.wait()
                if step == world - 1:
                    grad_block = incoming[0]
                else:
                    block, grad_block = incoming
        ctx.save_for_backward(grad_a, grad_block)
        return loss.to(a_hat.dtype)

    @staticmethod
    def backward(ctx, upstream):
        grad_a, grad_b = ctx.saved_tensors
        return upstream * grad_a, upstream * grad_b, None, None, None, None, None


def siglip(a, b, *, t: float = 10.0, bias: float = -10.0, normalize: bool = True, reduction: str = "mean", group=None):
    """``ll.siglip`` over the global batch, with the ring exchange of the SigLIP paper: memory stays at
    one remote block of b. Every rank must hold the same number of pairs. Returns this rank's share of
    the global loss (``"mean"``: divided by the global batch size, the paper's normalisation; ``"sum"``).
    The b gradients gather every rank's contribution, so every rank must backpropagate its share with
    the same upstream gradient (``loss.backward()`` on each rank, or the same scaling everywhere).
    """
    check.options_in(get("siglip"), t=t, bias=bias, normalize=normalize)
    check.reduction(reduction, None, ("mean", "sum"))
    sizes, rank = _row_sizes(a, group)
    if len(set(sizes)) != 1:
        raise ValueError(f"siglip's ring needs the same number of pairs on every rank, got {sizes}; use info_nce "
                         "(which gathers) or pad the batches")
    a_hat, b_hat = _pairs(a, b, normalize)
    total = _SigLIPRing.apply(a_hat, b_hat, float(t), float(bias), rank, len(sizes), group)
    return total / (sum(sizes) if reduction == "mean" else 1)
