"""losslab.torch.distributed on real torch.distributed process groups: Gloo, 2-4 CPU processes
(torch.multiprocessing), float64, every rank checking its part against a single-process computation
of the whole batch."""

from __future__ import annotations

import gc

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available():
    pytest.skip("this torch has no torch.distributed", allow_module_level=True)

import torch.multiprocessing as mp  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import losslab as ll  # noqa: E402
from losslab.torch import distributed as ld  # noqa: E402
from reference import softmax_cross_entropy_torch  # noqa: E402

EXACT = dict(rtol=1e-12, atol=1e-13)


def _worker(rank, world, init_file, check, args):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        check(rank, world, *args)
        gc.collect()  # DDP's reducer sits in reference cycles: free it while its process group is alive
        dist.barrier()  # no rank tears down its connections while a peer may still be reading from them
    finally:
        dist.destroy_process_group()


def assert_on_ranks(world: int, tmp_path, check, *args) -> None:
    """Run check(rank, world, *args) on `world` Gloo processes; an assertion failing in one fails the test."""
    mp.spawn(_worker, args=(world, str(tmp_path / "rendezvous"), check, args), nprocs=world, join=True)


# -- exact normalisation under gradient accumulation and data parallelism ---------------------------------

def _micro_batches(rank: int):
    """Uneven micro-batches with uneven ignored counts; rank 1 has no valid token at all."""
    g = torch.Generator().manual_seed(100 + rank)
    out = []
    for size in (3 + rank, 5, 2 + 2 * rank):
        x = torch.randn(size, 4, generator=g, dtype=torch.float64)
        t = torch.randint(0, 6, (size,), generator=g)
        t[torch.rand(size, generator=g) < 0.4] = -100
        if rank == 1:
            t[:] = -100
        out.append((x, t))
    return out


def _check_normalizer(rank, world):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 6).double()
    reference = torch.nn.Linear(4, 6).double()
    reference.load_state_dict(model.state_dict())
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    micro = _micro_batches(rank)
    norm = ld.normalizer([t for _, t in micro])
    everything = [_micro_batches(r) for r in range(world)]
    count = sum(int((t != -100).sum()) for batches in everything for _, t in batches)
    assert float(ld.global_count([t for _, t in micro])) == count
    assert float(norm) == pytest.approx(count / world)
    for k, (x, t) in enumerate(micro):  # accumulate, synchronising on the last micro-batch only
        if k < len(micro) - 1:
            with ddp.no_sync():
                ll.cross_entropy(ddp(x), t, normalizer=norm).backward()
        else:
            ll.cross_entropy(ddp(x), t, normalizer=norm).backward()
    xs = torch.cat([x for batches in everything for x, _ in batches])
    ts = torch.cat([t for batches in everything for _, t in batches])
    F.cross_entropy(reference(xs), ts).backward()  # the full batch in one process
    for mine, full in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(mine.grad, full.grad, **EXACT)

    # the bug the normaliser prevents: the mean of per-micro-batch means is not the full-batch mean
    naive = torch.nn.Linear(4, 6).double()
    naive.load_state_dict(reference.state_dict())
    for x, t in micro:
        loss = ll.cross_entropy(naive(x), t) / len(micro)
        loss.backward()
    for p in naive.parameters():
        dist.all_reduce(p.grad)
        p.grad /= world
    assert not torch.allclose(naive.weight.grad, reference.weight.grad, rtol=1e-3)

    weight = torch.linspace(0.5, 2.0, 6, dtype=torch.float64)
    weighted = sum(float(weight[t[t != -100]].sum()) for batches in everything for _, t in batches)
    assert float(ld.global_count([t for _, t in micro], weight=weight)) == pytest.approx(weighted, rel=1e-12)


def test_normalizer_makes_accumulated_data_parallel_gradients_exact(tmp_path):
    assert_on_ranks(3, tmp_path, _check_normalizer)


def _check_normalizer_fsdp(rank, world):
    from torch.distributed.fsdp import fully_shard

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 6)).double()
    reference = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 6)).double()
    reference.load_state_dict(model.state_dict())
    fully_shard(model)  # FSDP2: parameters and gradients sharded, gradients reduce-scattered with averaging
    micro = _micro_batches(rank)
    norm = ld.normalizer([t for _, t in micro])
    for x, t in micro:
        ll.cross_entropy(model(x), t, normalizer=norm).backward()
    everything = [b for r in range(world) for b in _micro_batches(r)]
    F.cross_entropy(reference(torch.cat([x for x, _ in everything])), torch.cat([t for _, t in everything])).backward()
    for mine, full in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(mine.grad.full_tensor(), full.grad, **EXACT)


def test_normalizer_under_fsdp(tmp_path):
    fsdp = pytest.importorskip("torch.distributed.fsdp")
    if not hasattr(fsdp, "fully_shard"):
        pytest.skip("this torch has no FSDP2 (torch.distributed.fsdp.fully_shard)")
    assert_on_ranks(3, tmp_path, _check_normalizer_fsdp)


# -- vocabulary-parallel cross-entropy -----------------------------------------------------------------------

VOCAB_OPTIONS = [{}, {"label_smoothing": 0.1}, {"weight": True}, {"weight": True, "label_smoothing": 0.2, "lse_square_scale": 1e-2},
                 {"reduction": "none", "label_smoothing": 0.1}, {"reduction": "sum", "weight": True}, {"normalizer": 20.0}]


def _check_vocab_parallel(rank, world):
    g = torch.Generator().manual_seed(7)
    n, vocab = 9, 37
    full = torch.randn(n, vocab, generator=g, dtype=torch.float64) * 3
    targets = torch.randint(0, vocab, (n,), generator=g)
    targets[[1, 4]] = -100
    class_weight = torch.rand(vocab, generator=g, dtype=torch.float64) + 0.5
    upstream = torch.randn(n, generator=g, dtype=torch.float64)
    widths = [vocab // world + (1 if r < vocab % world else 0) for r in range(world)]
    start = sum(widths[:rank])
    columns = slice(start, start + widths[rank])
    for options in VOCAB_OPTIONS:
        options = dict(options)
        use_weight = options.pop("weight", False)
        shard = full[:, columns].clone().requires_grad_()
        loss = ld.vocab_parallel_cross_entropy(shard, targets, weight=class_weight[columns] if use_weight else None, **options)
        whole = full.clone().requires_grad_()
        ref, _ = softmax_cross_entropy_torch(whole, targets, weight=class_weight if use_weight else None, **options)
        u = upstream if loss.ndim else upstream[0]
        (loss * u).sum().backward()
        (ref * u).sum().backward()
        torch.testing.assert_close(loss, ref, **EXACT)
        torch.testing.assert_close(shard.grad, whole.grad[:, columns], **EXACT)
    # explicit offsets, and the core loss as the reference
    shard = full[:, columns].clone().requires_grad_()
    loss = ld.vocab_parallel_cross_entropy(shard, targets, vocab_start=start)
    torch.testing.assert_close(loss, ll.cross_entropy(full, targets), **EXACT)
    ignored = torch.full_like(targets, -100)  # every row ignored: 0, not NaN
    assert float(ld.vocab_parallel_cross_entropy(full[:, columns], ignored)) == 0.0


def test_vocab_parallel_cross_entropy_equals_the_unsharded_loss(tmp_path):
    assert_on_ranks(3, tmp_path, _check_vocab_parallel)


# -- contrastive losses over a global batch --------------------------------------------------------------------

def _embeddings(sizes, seed=3):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(sum(sizes), 5, generator=g, dtype=torch.float64), torch.randn(sum(sizes), 5, generator=g, dtype=torch.float64)


def _check_contrastive(rank, world):
    uneven = [2 + r for r in range(world)]  # info_nce: batches of different sizes per rank
    a_all, b_all = _embeddings(uneven)
    rows = slice(sum(uneven[:rank]), sum(uneven[: rank + 1]))
    for reduction in ("mean", "sum"):
        a, b = a_all[rows].clone().requires_grad_(), b_all[rows].clone().requires_grad_()
        share = ld.info_nce(a, b, temperature=0.3, reduction=reduction)
        share.backward()
        total = share.detach().clone()
        dist.all_reduce(total)
        ra, rb = a_all.clone().requires_grad_(), b_all.clone().requires_grad_()
        ref = ll.info_nce(ra, rb, temperature=0.3, reduction=reduction)
        ref.backward()
        torch.testing.assert_close(total, ref.detach(), **EXACT)
        torch.testing.assert_close(a.grad, ra.grad[rows], **EXACT)
        torch.testing.assert_close(b.grad, rb.grad[rows], **EXACT)
    per_pair = ld.info_nce(a_all[rows], b_all[rows], reduction="none", normalize=False)
    torch.testing.assert_close(per_pair, ll.info_nce(a_all, b_all, reduction="none", normalize=False)[rows], **EXACT)

    even = [3] * world  # siglip's ring: the same number of pairs on every rank
    a_all, b_all = _embeddings(even, seed=4)
    rows = slice(3 * rank, 3 * rank + 3)
    for reduction, options in (("mean", {}), ("sum", {"t": 2.0, "bias": -1.0, "normalize": False})):
        a, b = a_all[rows].clone().requires_grad_(), b_all[rows].clone().requires_grad_()
        share = ld.siglip(a, b, reduction=reduction, **options)
        share.backward()
        total = share.detach().clone()
        dist.all_reduce(total)
        ra, rb = a_all.clone().requires_grad_(), b_all.clone().requires_grad_()
        ref = ll.siglip(ra, rb, reduction=reduction, **options)
        ref.backward()
        torch.testing.assert_close(total, ref.detach(), **EXACT)
        torch.testing.assert_close(a.grad, ra.grad[rows], **EXACT)
        torch.testing.assert_close(b.grad, rb.grad[rows], **EXACT)
    with pytest.raises(ValueError, match="same number of pairs on every rank"):
        ld.siglip(a_all[: 2 + rank], b_all[: 2 + rank])


@pytest.mark.parametrize("world", [2, 4])
def test_contrastive_losses_over_the_global_batch(tmp_path, world):
    assert_on_ranks(world, tmp_path, _check_contrastive)


def test_clear_errors_without_a_process_group():
    with pytest.raises(RuntimeError, match="init_process_group"):
        ld.global_count(torch.zeros(3, dtype=torch.int64))
    with pytest.raises(TypeError, match="non-empty list of tensors"):
        ld.global_count([])


def test_the_example_training_script_runs_under_torchrun():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).parent.parent / "examples" / "distributed_training.py"
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "3", str(script),
                          "--steps", "2"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "3 ranks x 3 micro-batches" in out.stdout and "largest gradient difference from the full batch" in out.stdout
