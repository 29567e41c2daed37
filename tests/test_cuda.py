"""On a CUDA GPU (skipped without one): every loss and option set on CUDA tensors equals the
float64 CPU result, forward + backward never synchronises the device, a CUDA graph can capture
it, and value checks run only under ll.strict_checks()."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import losslab as ll
from cases import CASES, convert_case

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _on_cuda(case, dtype):
    args, options = convert_case(case, "torch", dtype)
    move = lambda v: v.cuda() if isinstance(v, torch.Tensor) else v  # noqa: E731
    return tuple(move(a) for a in args), {k: move(v) for k, v in options.items()}


def _grads(g):
    return g if isinstance(g, tuple) else (g,)


@pytest.mark.parametrize("dtype", ["float64", "float32", "bfloat16"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cuda_matches_cpu_float64(case, dtype):
    args, options = _on_cuda(case, dtype)
    inputs = [a.clone().requires_grad_(True) for a in case.inputs_of(args)]
    value = case.fn(*case.call_with(inputs, args), **options)
    value.backward()
    assert value.device.type == "cuda"
    ref_value, ref_grad = case.fn.value_and_grad(*case.args, **case.options)
    tol = {"float64": 1e-10, "float32": 2e-5, "bfloat16": 3e-2}[dtype]
    if dtype == "bfloat16":  # compare with the float64 loss of the bf16-rounded inputs
        rounded = [a.float().cpu().double().numpy() if a.is_floating_point() else a.cpu().numpy() for a in args]
        ref_value, ref_grad = case.fn.value_and_grad(*rounded, **{k: (v.cpu().double().numpy() if isinstance(v, torch.Tensor) else v) for k, v in options.items()})
    np.testing.assert_allclose(value.item(), float(ref_value), rtol=tol, atol=tol)
    for x, g in zip(inputs, _grads(ref_grad)):
        assert x.grad.dtype == x.dtype
        np.testing.assert_allclose(x.grad.double().cpu().numpy(), g, rtol=max(tol, 1e-9) * 10, atol=tol * 10)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_forward_and_backward_never_sync_the_gpu(case):
    args, options = _on_cuda(case, "float32")
    inputs = [a.clone().requires_grad_(True) for a in case.inputs_of(args)]
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        value = case.fn(*case.call_with(inputs, args), **options)
        value.backward()
        case.fn.value_and_grad(*args, **options)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(x.grad is not None for x in inputs)


def test_cuda_graph_captures_cross_entropy_forward_and_backward():
    logits = torch.randn(64, 1000, device="cuda", requires_grad=True)
    targets = torch.randint(0, 1000, (64,), device="cuda")
    count = torch.tensor(64.0, device="cuda")
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # warm up on a side stream, as CUDA graphs require
        for _ in range(2):
            logits.grad = None
            ll.cross_entropy(logits, targets, label_smoothing=0.1, normalizer=count).backward()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    logits.grad = None
    with torch.cuda.graph(graph):
        loss = ll.cross_entropy(logits, targets, label_smoothing=0.1, normalizer=count)
        loss.backward()
    with torch.no_grad():
        logits.copy_(torch.randn_like(logits))
    graph.replay()
    expected = torch.nn.functional.cross_entropy(logits.detach().double(), targets, label_smoothing=0.1)
    torch.testing.assert_close(loss.double(), expected, rtol=1e-5, atol=1e-6)


def test_cpu_option_arrays_and_targets_follow_the_logits_to_the_gpu():
    logits = torch.randn(5, 3, device="cuda", dtype=torch.float64)
    weight, targets = torch.tensor([1.0, 2.0, 0.5]), torch.tensor([0, 2, 1, 1, 0])  # both on the CPU
    expected = torch.nn.functional.cross_entropy(logits, targets.cuda(), weight=weight.cuda().double())
    torch.testing.assert_close(ll.cross_entropy(logits, targets, weight=weight), expected)


def test_value_checks_on_cuda_only_under_strict_checks():
    logits = torch.randn(4, 3, device="cuda")
    bad = torch.tensor([0, 1, 7, 2], device="cuda")
    ll.cross_entropy(logits, bad)  # unchecked: no sync, no error (the bad row is undefined)
    with ll.strict_checks(), pytest.raises(ValueError, match=r"out of range \[0, 2\].*\[7\]"):
        ll.cross_entropy(logits, bad)
    with pytest.raises(ValueError, match="targets must have shape"):  # shape checks always run
        ll.cross_entropy(logits, bad[:3])
