import os
import sys

import numpy as np
import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


# Without a GPU, losslab.gpu's Triton kernels run in Triton's CPU interpreter. It must be chosen
# before Triton is first imported (Triton compiles its own standard library at import).
if "triton" not in sys.modules and not _cuda():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import jax  # noqa: E402 - after the environment above

jax.config.update("jax_enable_x64", True)

BACKENDS = ["numpy", "torch", "jax"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def to_numpy(x):
    if hasattr(x, "detach"):
        x = x.detach()
        if "bfloat16" in str(x.dtype):
            x = x.float()
        return x.cpu().numpy()
    x = np.asarray(x)
    return x.astype(np.float32) if "bfloat16" in str(x.dtype) else x  # ml_dtypes' bf16 is not kind "f"


@pytest.fixture
def two_row_blocks(monkeypatch):
    """The torch engine's row blocks (``losslab.torch._function._in_row_blocks``) made two rows each (one for
    batches of up to three; odd batches end with a short block); the fixture's value lists whether each call took
    them."""
    from losslab.torch import _function

    real, calls = _function._in_row_blocks, []

    def two_rows(loss, xp, bound, reduction, normalizer, with_grad, evaluate):
        rows = 2 if bound[loss.inputs[0]].shape[0] > 3 else 1
        monkeypatch.setitem(_function.ROW_BLOCK_ELEMENTS, "cpu", rows * loss.row_elements(bound))
        out = real(loss, xp, bound, reduction, normalizer, with_grad, evaluate)
        calls.append(out is not NotImplemented)
        return out

    monkeypatch.setattr(_function, "_in_row_blocks", two_rows)
    return calls


@pytest.fixture
def off_numpy_engine(monkeypatch):
    """float32/float64 CPU tensors kept off the NumPy engine (its zero-copy views and the compiled lane of small
    elementwise calls): the torch engine evaluates the definitions in torch operations, as for CUDA tensors."""
    from losslab import _engines
    from losslab.torch import _function

    monkeypatch.setattr(_function, "_numpy_views", lambda *args: None)
    monkeypatch.setitem(_engines._lanes, "torch", lambda *args: NotImplemented)
