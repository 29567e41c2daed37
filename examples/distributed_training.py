"""Exact token-level loss under data parallelism and gradient accumulation, with losslab.

Run on CPUs (Gloo) or GPUs (NCCL), e.g.

    torchrun --standalone --nproc-per-node 2 examples/distributed_training.py

Each rank trains a tiny next-token model on its own shard with 3 micro-batches per step whose
numbers of real (not padded) tokens differ. losslab.torch.distributed.normalizer gives every
micro-batch's loss the global token count of the step, so the accumulated, DDP-averaged gradient
is exactly the gradient of the mean over all tokens of all ranks. At the end rank 0 recomputes that
full-batch gradient in one process and prints the largest difference (float64: ~1e-16).
"""

from __future__ import annotations

import argparse
import gc
import os

import torch
import torch.distributed as dist

import losslab as ll
from losslab.torch.distributed import normalizer

VOCAB, WIDTH, PAD = 50, 16, -100


def micro_batches(rank: int, step: int, n: int = 3):
    """Sequences of different lengths padded to 12, so the count of real tokens varies per micro-batch."""
    g = torch.Generator().manual_seed(1000 * step + rank)
    out = []
    for _ in range(n):
        tokens = torch.randint(0, VOCAB, (4, 13), generator=g)
        labels = tokens[:, 1:].clone()
        lengths = torch.randint(1, 13, (4,), generator=g)
        labels[torch.arange(12)[None, :] >= lengths[:, None]] = PAD  # padding carries no loss
        out.append((tokens[:, :-1], labels))
    return out


def model_fn():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Embedding(VOCAB, WIDTH), torch.nn.Linear(WIDTH, VOCAB)).double()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if backend == "nccl" else torch.device("cpu")
    model = torch.nn.parallel.DistributedDataParallel(model_fn().to(device))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    for step in range(args.steps):
        batches = [(x.to(device), y.to(device)) for x, y in micro_batches(rank, step)]
        norm = normalizer([y for _, y in batches], ignore_index=PAD)  # one all-reduce, stays on the device
        optimizer.zero_grad()
        for k, (x, y) in enumerate(batches):
            logits = model(x).view(-1, VOCAB)
            loss = ll.cross_entropy(logits, y.view(-1), ignore_index=PAD, normalizer=norm)
            if k < len(batches) - 1:
                with model.no_sync():  # accumulate locally; DDP averages over ranks on the last one
                    loss.backward()
            else:
                loss.backward()
        if step < args.steps - 1:
            optimizer.step()

    # check the last step's gradient against one process seeing every rank's micro-batches at once
    if rank == 0:
        reference = model_fn().to(device)
        reference.load_state_dict(model.module.state_dict())
        everything = [b for r in range(world) for b in micro_batches(r, args.steps - 1)]
        x = torch.cat([x for x, _ in everything]).to(device)
        y = torch.cat([y for _, y in everything]).to(device)
        torch.nn.functional.cross_entropy(reference(x).view(-1, VOCAB), y.view(-1), ignore_index=PAD).backward()
        gap = max(float((p.grad - q.grad).abs().max()) for p, q in zip(model.module.parameters(), reference.parameters()))
        tokens = int((y != PAD).sum())
        print(f"{world} ranks x {len(everything) // world} micro-batches, {tokens} real tokens: "
              f"largest gradient difference from the full batch {gap:.1e}")
        if gap > 1e-10:
            raise SystemExit("the accumulated gradient differs from the full-batch gradient")
    del model, optimizer
    gc.collect()  # DDP's reducer sits in reference cycles: free it while its process group is alive
    dist.barrier()  # rank 0's check done before anyone tears down the process group
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
