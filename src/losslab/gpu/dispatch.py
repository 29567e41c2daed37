"""Which ``ll.cross_entropy`` calls the Triton kernel takes: CUDA tensors, (N, C) logits with integer
targets, float16/bfloat16/float32, Triton importable, not inside torch.compile, and not switched off
(``LOSSLAB_TRITON=0``, or ``ll.reference_path()`` which turns off every second implementation).
Everything else returns NotImplemented and runs on the array-API path. Cheap for non-torch inputs:
nothing is imported for them."""

from __future__ import annotations

import importlib.util
import os
from functools import cache

CE_OPTIONS = {"weight", "ignore_index", "label_smoothing", "lse_square_scale", "softcap"}


@cache
def triton_available() -> bool:
    return importlib.util.find_spec("triton") is not None


def kernels_enabled() -> bool:
    return os.environ.get("LOSSLAB_TRITON", "1") not in ("0", "false", "False") and triton_available()


def _kernel_device(x) -> bool:
    if x.is_cuda:
        return True
    # CPU tensors go to the kernels only under Triton's interpreter and on explicit request (tests; a small plain
    # call without a class weight still takes the compiled lane first, unless compiled loops are off)
    return os.environ.get("TRITON_INTERPRET") == "1" and os.environ.get("LOSSLAB_TRITON") == "1"


def cross_entropy(args, options, reduction, normalizer, with_grad):
    logits = args[0]
    if not type(logits).__module__.startswith("torch") or len(args) != 2 or not _kernel_device(logits):
        return NotImplemented  # the device first: a CPU call (the usual one here) declines at once
    if not options.keys() <= CE_OPTIONS:
        return NotImplemented
    import torch

    targets = args[1]
    if (not isinstance(targets, torch.Tensor) or logits.ndim != 2 or targets.ndim != 1
            or targets.device != logits.device  # the array-API path moves them, as it does for weights
            or logits.dtype not in (torch.float16, torch.bfloat16, torch.float32)
            or targets.dtype.is_floating_point or targets.dtype == torch.bool
            or not kernels_enabled() or torch.compiler.is_compiling()):
        return NotImplemented
    weight = options.get("weight")
    if weight is not None and not isinstance(weight, torch.Tensor):
        return NotImplemented
    if any(isinstance(options.get(k), torch.Tensor) for k in ("ignore_index", "label_smoothing", "lse_square_scale", "softcap")):
        return NotImplemented
    if normalizer is not None and not isinstance(normalizer, (int, float, torch.Tensor)):
        return NotImplemented
    from . import _cross_entropy

    if with_grad:
        return _cross_entropy.value_and_grad(logits, targets, reduction=reduction, normalizer=normalizer, **options)
    return _cross_entropy.cross_entropy(logits, targets, reduction=reduction, normalizer=normalizer, **options)
