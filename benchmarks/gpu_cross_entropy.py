"""GPU benchmark: cross-entropy forward + backward, and linear + cross-entropy, peers side by side.

Follows the protocol of the reference anchor benchmark (shared/bench/gpu_anchor_bench.py): in one
process, per shape, the median of 10 timed runs after 3 warm-ups (CUDA events) and the peak extra
memory of loss + gradient, for PyTorch eager (bf16, and fp32 upcast), torch.compile, Liger-Kernel,
Cut Cross-Entropy, PyTorch's own linear_cross_entropy where the installed torch has one, and losslab.
The limits: a same-size clone of the logits (one read + one write, the least traffic a CE forward +
backward over materialised logits can do) and, for linear + CE, the three N x H x V matmuls.

    python benchmarks/gpu_cross_entropy.py [--quick] [--out DIR]
    python benchmarks/gpu_cross_entropy.py --smoke --out /tmp/x   # CPU, tiny shapes, Triton's interpreter:
                                                                  # checks the script runs (CI does), times nothing

The "losslab" row names the launch configuration the library chose for the shape (``launch``: the
measured table, src/losslab/gpu/launch_table.json, or the heuristic; see benchmarks/gpu_sweep.py).
Reports % of clone speed (clone ms / ms) or % of the matmul floor, and writes
gpu_cross_entropy-DATE.json and .md (GPU, versions, date) under --out (default: benchmarks/results,
or $OUT when set). Peers that are not importable are reported as such, not skipped silently.
Liger-Kernel and Cut Cross-Entropy are pure-Python wheels: pip install liger-kernel cut-cross-entropy.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _common import cuda_median_ms, peak_extra_bytes

DEV = "cuda"  # "cpu" with --smoke
CE_SHAPES = [(8192, 32000), (8192, 50304), (8192, 128256), (8192, 151936), (16384, 256000)]
LINEAR_SHAPES = [(8192, 4096, 128256), (16384, 2304, 256000)]
rows: list[dict] = []


def bench(fn, iters=10, warm=3) -> float:
    if DEV == "cpu":  # --smoke: one run, wall clock; the figure means nothing
        start = time.perf_counter()
        fn()
        return (time.perf_counter() - start) * 1e3
    return cuda_median_ms(fn, iters, warm)


def record(case: str, impl: str, fn, limit_ms: float | None = None, limit_name: str = "") -> float | None:
    try:
        ms = bench(fn)
        memory = None if DEV == "cpu" else peak_extra_bytes(fn) / 2**30
        row = dict(case=case, impl=impl, ms=round(ms, 3), peak_extra_gib=None if memory is None else round(memory, 3))
        if limit_ms:
            row[limit_name] = round(100 * limit_ms / ms, 1)
    except Exception as ex:  # one peer failing must not hide the others
        row, ms = dict(case=case, impl=impl, error=f"{type(ex).__name__}: {str(ex)[:200]}"), None
    rows.append(row)
    print(json.dumps(row), flush=True)
    return ms


def missing(case: str, impl: str, why: str) -> None:
    rows.append(dict(case=case, impl=impl, error=f"not importable: {why}"))
    print(json.dumps(rows[-1]), flush=True)


def ce_case(n: int, v: int) -> None:
    import losslab.gpu as lg

    case = f"ce N={n} V={v} bf16"
    g = torch.Generator(device=DEV).manual_seed(0)
    logits = (torch.randn(n, v, device=DEV, generator=g) * 2).to(torch.bfloat16).requires_grad_(True)
    target = torch.randint(0, v, (n,), device=DEV, generator=g)
    target[::7] = -100
    clone_ms = record(case, "limit: clone (1 read + 1 write)", lambda: logits.detach().clone())
    pct = dict(limit_ms=clone_ms, limit_name="pct_of_clone")

    def run(loss_fn):
        def step():
            logits.grad = None
            loss_fn().backward()
        return step

    record(case, "torch eager bf16", run(lambda: F.cross_entropy(logits, target)), **pct)
    record(case, "torch eager fp32 upcast", run(lambda: F.cross_entropy(logits.float(), target)), **pct)
    if DEV == "cuda":  # (inductor's CPU compile would dominate a smoke run)
        compiled = torch.compile(lambda x, t: F.cross_entropy(x.float(), t))
        record(case, "torch.compile fp32 upcast", run(lambda: compiled(logits, target)), **pct)
    try:
        from liger_kernel.transformers import LigerCrossEntropyLoss

        liger = LigerCrossEntropyLoss(ignore_index=-100)
        record(case, "liger CE", run(lambda: liger(logits, target)), **pct)
    except ImportError as ex:
        missing(case, "liger CE", str(ex))
    record(case, "losslab", run(lambda: lg.cross_entropy(logits, target)), **pct)
    rows[-1]["launch"] = launch_used(n, v, logits)
    record(case, "losslab z-loss + label smoothing", run(
        lambda: lg.cross_entropy(logits, target, lse_square_scale=1e-4, label_smoothing=0.1)), **pct)
    scratch = logits.detach().clone().requires_grad_(True)

    def inplace():  # the buffer then holds the gradient, and later runs compute on it: the same work
        scratch.grad = None
        lg.cross_entropy(scratch, target, inplace=True).backward()
    record(case, "losslab inplace=True", inplace, **pct)


def launch_used(n: int, v: int, logits) -> dict:
    """The launch configuration losslab chose for this shape, and where it came from (table or heuristic)."""
    from losslab.gpu import _cross_entropy as lce

    config = lce.choose_config(v, logits.dtype, logits.device)
    resolved = lce.resolve(config, n, v, logits.device, logits.element_size())
    return {**dict(zip(("variant", "block", "num_warps", "rows_per_program", "programs"), resolved)),
            "source": config.source}


def linear_case(n: int, h: int, v: int) -> None:
    import losslab.gpu as lg

    case = f"linear_ce N={n} H={h} V={v} bf16"
    g = torch.Generator(device=DEV).manual_seed(0)
    hidden = (torch.randn(n, h, device=DEV, generator=g) / h**0.25).to(torch.bfloat16).requires_grad_(True)
    weight = (torch.randn(v, h, device=DEV, generator=g) / h**0.25).to(torch.bfloat16).requires_grad_(True)
    target = torch.randint(0, v, (n,), device=DEV, generator=g)
    h0, w0 = hidden.detach(), weight.detach()
    logits = h0 @ w0.T
    floor_ms = record(case, "limit: 3 matmuls of NxHxV", lambda: (h0 @ w0.T, logits @ w0, logits.T @ h0))
    pct = dict(limit_ms=floor_ms, limit_name="pct_of_matmul_floor")

    def run(loss_fn):
        def step():
            hidden.grad = weight.grad = None
            loss_fn().backward()
        return step

    record(case, "torch eager linear+CE fp32", run(lambda: F.cross_entropy((hidden @ weight.T).float(), target)), **pct)
    if hasattr(F, "linear_cross_entropy"):
        record(case, "torch linear_cross_entropy", run(lambda: F.linear_cross_entropy(hidden, weight, target)), **pct)
    else:
        missing(case, "torch linear_cross_entropy", f"torch {torch.__version__} has no F.linear_cross_entropy")
    try:
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

        flce = LigerFusedLinearCrossEntropyLoss()
        record(case, "liger FLCE", run(lambda: flce(weight, hidden, target)), **pct)
    except ImportError as ex:
        missing(case, "liger FLCE", str(ex))
    try:
        from cut_cross_entropy import linear_cross_entropy as cce

        record(case, "cut cross-entropy", run(lambda: cce(hidden, weight, target)), **pct)
    except ImportError as ex:
        missing(case, "cut cross-entropy", str(ex))
    record(case, "losslab linear_cross_entropy", run(lambda: lg.linear_cross_entropy(hidden, weight, target)), **pct)


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0], "torch": torch.__version__}
    for name in ("triton", "liger-kernel", "cut-cross-entropy", "losslab"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def markdown(meta: dict) -> str:
    lines = [f"# GPU cross-entropy benchmark, {meta['date']}", "",
             f"{meta['gpu']}; " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()), "",
             "| case | implementation | median ms | % of limit | peak extra GiB |", "|---|---|---|---|---|"]
    for r in rows:
        limit = r.get("pct_of_clone", r.get("pct_of_matmul_floor", ""))
        if "error" in r:
            lines.append(f"| {r['case']} | {r['impl']} | {r['error']} | | |")
        else:
            impl = r["impl"] + (f" ({r['launch']})" if "launch" in r else "")
            lines.append(f"| {r['case']} | {impl} | {r['ms']} | {limit} | {r['peak_extra_gib']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the smallest shape of each kind only")
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny shapes, Triton's interpreter: does the script run?")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or Path(__file__).parent / "results"))
    args = parser.parse_args()
    global DEV, CE_SHAPES, LINEAR_SHAPES
    if args.smoke:
        os.environ["TRITON_INTERPRET"] = "1"  # before Triton is imported
        DEV, CE_SHAPES, LINEAR_SHAPES = "cpu", [(16, 300)], [(16, 8, 300)]
    elif not torch.cuda.is_available():
        sys.exit("this benchmark needs a CUDA GPU (or --smoke)")
    gpu = torch.cuda.get_device_name() if DEV == "cuda" else "none (--smoke: CPU, Triton interpreter, no timings)"
    meta = {"gpu": gpu, "date": dt.date.today().isoformat(), "versions": versions()}
    print(json.dumps(meta), flush=True)
    for n, v in CE_SHAPES[:1] if args.quick else CE_SHAPES:
        ce_case(n, v)
        if DEV == "cuda":
            torch.cuda.empty_cache()  # the case's tensors died with it
    for n, h, v in LINEAR_SHAPES[:1] if args.quick else LINEAR_SHAPES:
        linear_case(n, h, v)
        if DEV == "cuda":
            torch.cuda.empty_cache()
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"gpu_cross_entropy-{meta['date']}"
    stem.with_suffix(".json").write_text(json.dumps({**meta, "rows": rows}, indent=1))
    stem.with_suffix(".md").write_text(markdown(meta))
    print(f"wrote {stem}.json and .md")


if __name__ == "__main__":
    main()
