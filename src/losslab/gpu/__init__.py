"""GPU kernels (Triton) where memory traffic is the cost: softmax cross-entropy over large
vocabularies, and the classifier projection fused with it. See docs/gpu.md.

    losslab.gpu.cross_entropy(logits, targets, ...)            fused forward + backward kernel
    losslab.gpu.linear_cross_entropy(hidden, weight, targets)  never materialises the logits

``ll.cross_entropy`` uses the kernel by itself for CUDA tensors (``LOSSLAB_TRITON=0`` turns that off).
Importing this package imports neither torch nor Triton; the functions do, on first use.
"""

from __future__ import annotations

from typing import Any

from .dispatch import kernels_enabled, triton_available

__all__ = ["cross_entropy", "kernels_enabled", "linear_cross_entropy", "triton_available"]


def __getattr__(name: str) -> Any:
    if name == "cross_entropy":
        from ._cross_entropy import cross_entropy

        return cross_entropy
    if name == "linear_cross_entropy":
        from ._linear import linear_cross_entropy

        return linear_cross_entropy
    raise AttributeError(f"module 'losslab.gpu' has no attribute {name!r}")
