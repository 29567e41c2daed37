"""What the benchmark scripts share: thread settings, the machine record, CUDA peak memory.

The scripts run as ``python benchmarks/<script>.py``, so this folder is ``sys.path[0]`` and they
``import _common``. Nothing here imports NumPy, torch or JAX at import time: the thread variables
must be set before those start their pools.
"""

from __future__ import annotations

import argparse
import os
import platform
from collections.abc import Callable, Iterable
from pathlib import Path


def set_threads(n: int, device: str = "cpu") -> None:
    """Every library's thread count to ``n``; call before NumPy, torch or JAX is imported."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    os.environ["XLA_FLAGS"] = f"--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={n}"
    # PyTorch's and Numba's OpenMP threads spin-wait after each parallel region by default; on a machine
    # with few cores that spinning steals the next peer's cores. Passive waiting keeps peers from timing
    # each other.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if device == "cpu":
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    else:  # JAX on the GPU must not take 75 % of its memory before PyTorch runs
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


def interleaved_timing_parser(doc: str, rounds: int, calls: int) -> argparse.ArgumentParser:
    """A parser with the options of a script that times candidates interleaved in one process: ``--rounds``,
    ``--calls`` (per timed loop), ``--threads`` and ``--out`` (the results' folder); the script adds its own."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--calls", type=int, default=calls, help="calls per timed loop")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="folder for the results (default: print only)")
    return parser


def module_versions(known: dict[str, str], modules: Iterable[str]) -> dict[str, str]:
    """``known``, then each module's ``__version__`` ("not installed" where it does not import)."""
    versions = dict(known)
    for mod in modules:
        try:
            versions[mod] = __import__(mod).__version__
        except ImportError:
            versions[mod] = "not installed"
    return versions


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform.processor()`` says."""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return cpu


def peak_extra_bytes(fn: Callable[[], object]) -> int:
    """Bytes of CUDA memory ``fn()`` allocates at its peak beyond what was allocated before it."""
    import torch

    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


def start_explorer():
    """``losslab.web.server.serve`` in a child process on a free port: (the process, the port)."""
    import subprocess
    import sys

    code = ("from losslab.web.server import bind, serve; s = bind(); print(s.getsockname()[1], flush=True); "
            "serve(s)")
    server = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    return server, int(server.stdout.readline())


def write_results(folder, stem: str, result: dict, text: str):
    """results/STEM.json (the numbers) and STEM.md (the table); returns the .md path."""
    import json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.json").write_text(json.dumps(result, indent=1))
    (folder / f"{stem}.md").write_text(text)
    return folder / f"{stem}.md"


def seconds_per_call(fn: Callable[[], object], calls: int) -> float:
    """Seconds per call over a loop of ``calls`` calls of ``fn``, by perf_counter (CPU work: a GPU timer
    must synchronise, as torch_losses.Timer does)."""
    import time

    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def cuda_median_ms(fn: Callable[[], object], iters: int = 10, warm: int = 3) -> float:
    """Median ms of ``iters`` CUDA-event-timed runs of ``fn`` after ``warm`` warm-ups, as
    shared/bench/gpu_anchor_bench.py times its peers (one protocol for every GPU benchmark here)."""
    import torch

    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2]
