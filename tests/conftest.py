import os

import numpy as np
import pytest

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax

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
