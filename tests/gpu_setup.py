"""The preamble of the GPU kernel test modules: torch and Triton importable, and either CUDA or Triton's
CPU interpreter (conftest.py sets TRITON_INTERPRET=1 before Triton is imported when there is no GPU)."""

from __future__ import annotations

import os

import pytest


def kernels_or_skip():
    """(torch, whether CUDA is present, the device the kernels run on); skips the calling module otherwise."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("triton")
    cuda = torch.cuda.is_available()
    if not cuda and os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("no GPU and Triton's interpreter is off (TRITON_INTERPRET=1)", allow_module_level=True)
    return torch, cuda, "cuda" if cuda else "cpu"
