"""Gradient accumulation: micro-batches with uneven numbers of ignored targets, each with
normalizer= the global count (or weight sum), sum to the full-batch loss and gradient.
(A mean of micro-batch means does not: the pitfall Hugging Face fixed in 2024.)"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import losslab as ll


def _split(n_parts, *arrays):
    cuts = [0, 1, 5, 6, 12][: n_parts + 1]
    return [[a[i:j] for a in arrays] for i, j in itertools.pairwise(cuts)]


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_micro_batches_sum_to_full_batch(weighted, smoothing):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(12, 7))
    y = rng.integers(0, 7, size=12)
    y[[0, 2, 3, 4, 7]] = -100  # uneven: micro-batches hold 1, 3, 0 and 1 ignored items
    weight = rng.uniform(0.5, 2.0, size=7) if weighted else None
    full, full_grad = ll.cross_entropy.value_and_grad(z, y, weight=weight, label_smoothing=smoothing)
    valid = y != -100
    global_count = weight[y[valid]].sum() if weighted else valid.sum()
    total, grads = 0.0, []
    for zb, yb in _split(4, z, y):
        v, g = ll.cross_entropy.value_and_grad(zb, yb, weight=weight, label_smoothing=smoothing, normalizer=global_count)
        total += v
        grads.append(g)
    np.testing.assert_allclose(total, full, rtol=1e-12)
    np.testing.assert_allclose(np.concatenate(grads), full_grad, rtol=1e-12, atol=1e-15)
    naive = np.mean([ll.cross_entropy(zb, yb, weight=weight, label_smoothing=smoothing) for zb, yb in _split(4, z, y)])
    assert abs(naive - full) > 1e-3  # the mean of means is wrong here


def test_torch_backward_accumulates_to_the_full_batch_gradient():
    g = torch.Generator().manual_seed(0)
    model = torch.nn.Linear(5, 4).double()
    x, y = torch.randn(12, 5, generator=g, dtype=torch.float64), torch.randint(0, 4, (12,), generator=g)
    y[[1, 2, 3]] = -100
    ll.cross_entropy(model(x), y).backward()
    expected = model.weight.grad.clone()
    model.zero_grad()
    count = torch.count_nonzero(y != -100)  # a device tensor: no host sync needed
    for xb, yb in _split(4, x, y):
        ll.cross_entropy(model(xb), yb, normalizer=count).backward()
    torch.testing.assert_close(model.weight.grad, expected)


@pytest.mark.parametrize("loss", [ll.mse, ll.huber, ll.binary_cross_entropy_with_logits], ids=lambda f: f.name)
def test_weighted_elementwise_losses_accumulate(loss):
    rng = np.random.default_rng(1)
    p, t = rng.normal(size=12), rng.uniform(0, 1, size=12)
    w = rng.uniform(0, 3, size=12)
    full, full_grad = loss.value_and_grad(p, t, weight=w)
    divisor = w.sum() if loss.spec.family == "regression" else p.size  # sample weights vs rescaling weights
    parts = [loss.value_and_grad(pb, tb, weight=wb, normalizer=divisor) for pb, tb, wb in _split(4, p, t, w)]
    np.testing.assert_allclose(sum(v for v, _ in parts), full, rtol=1e-12)
    np.testing.assert_allclose(np.concatenate([g for _, g in parts]), full_grad, rtol=1e-12)
