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
