"""Sweep the cross-entropy kernel's launch configurations on a GPU; write the measured launch table.

One call on the GPU machine does everything, within fixed time limits:

  (a) runs tests/test_gpu.py, tests/test_cuda.py and tests/test_gpu_kernels.py on CUDA (--tests-timeout-s);
  (b) for V in {32000, 50304, 128256, 151936, 256000} (N = 8192, or 16384 at V = 256000), bf16 logits,
      forward + backward, times each candidate configuration (variant x BLOCK x num_warps x rows per
      program x grid size) with and without z-loss + label smoothing: median of 10 CUDA-event-timed
      runs after 3 warm-ups, as shared/bench/gpu_anchor_bench.py does, against a same-size clone (one
      read + one write). Each candidate is first checked against the original kernel ("row", 8192
      columns, 8 warps) on the same inputs (loss, lse, gradient; the gradient buffer poisoned with NaN
      first). The sweep stops at --budget-s (split evenly over the shapes still to do) and keeps what it has;
  (c) writes the fastest configuration per V (the sum of both option sets' times; the original kernel
      is a candidate, so an entry is never slower than it was) into launch_table.json, and the results
      as gpu_sweep-DATE.json / .md (GPU, versions, date, every candidate) under --out (default $OUT);
  (d) --smoke: the same flow on the CPU under Triton's interpreter with tiny shapes, timing nothing
      meaningful (CI runs it: tests/test_gpu_kernels.py), the table write included.

    PYTHONPATH=src python3 benchmarks/gpu_sweep.py --tests-timeout-s 150 --budget-s 330   # the GPU machine
    python benchmarks/gpu_sweep.py --smoke --out /tmp/sweep_smoke                         # anywhere

To use the result, copy launch_table.json to src/losslab/gpu/launch_table.json (or point
LOSSLAB_CE_LAUNCH_TABLE at it); the library uses an entry only on the GPU model it was measured on.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHAPES = [(8192, 32000), (8192, 50304), (8192, 128256), (8192, 151936), (16384, 256000)]
SMOKE_SHAPES = [(9, 17), (5, 130)]
OPTION_SETS = {"plain": {}, "zloss+smoothing": {"lse_square_scale": 1e-4, "label_smoothing": 0.1}}
TEST_FILES = ["tests/test_gpu.py", "tests/test_cuda.py", "tests/test_gpu_kernels.py"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny shapes, Triton's interpreter: does it all run?")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default $OUT, else benchmarks/results)")
    parser.add_argument("--budget-s", type=float, default=330.0, help="time for the sweep itself (after the tests)")
    parser.add_argument("--tests-timeout-s", type=float, default=150.0, help="time limit of the test run (a)")
    parser.add_argument("--skip-tests", action="store_true", help="leave out (a)")
    parser.add_argument("--iters", type=int, default=10)
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = Path(os.environ.get("OUT") or ROOT / "benchmarks" / "results")
    return args


ARGS = parse_args()
if ARGS.smoke:
    os.environ["TRITON_INTERPRET"] = "1"  # before Triton is imported
try:
    import losslab  # noqa: F401
except ImportError:  # the GPU machine runs the working tree, not an installed package
    sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _common import cuda_median_ms, peak_extra_bytes  # noqa: E402

import losslab.gpu as lg  # noqa: E402
from losslab.gpu import _cross_entropy as ce  # noqa: E402
from losslab.gpu._cross_entropy import LaunchConfig  # noqa: E402

DEV = "cpu" if ARGS.smoke else "cuda"
BASELINE = LaunchConfig("row", 8192, 8)  # the original kernel and its launch, before the variants


def candidates(v: int) -> list[LaunchConfig]:
    """Most promising first: the budget may cut the tail."""
    if ARGS.smoke:
        return [LaunchConfig("persistent", 32, 2, programs=2),
                LaunchConfig("rows", None, 4, rows_per_program=4), LaunchConfig("rows", None, 4, programs_per_sm=0.5)]
    full = 1 << (v - 1).bit_length()
    out = [LaunchConfig("persistent", 8192, 8, programs_per_sm=k) for k in (2, 4, 1)]
    out.append(LaunchConfig("persistent", 8192, 8))  # programs from the L2 heuristic
    if full <= 65536:  # whole row in registers: one read of the logits
        out += [LaunchConfig("rows", full, w) for w in (16, 32)]
        out += [LaunchConfig("rows", full, 16, programs_per_sm=k) for k in (4, 2)]
        if full <= 32768:
            out.append(LaunchConfig("rows", full, 32, rows_per_program=2))
    out += [LaunchConfig("persistent", 16384, 16, programs_per_sm=k) for k in (1, 2)]
    out += [LaunchConfig("persistent", 4096, 8, programs_per_sm=k) for k in (4, 8)]
    out += [LaunchConfig("persistent", 4096, 4, programs_per_sm=8), LaunchConfig("persistent", 8192, 16, programs_per_sm=2)]
    out += [LaunchConfig("row", 16384, 16), LaunchConfig("row", 4096, 8), LaunchConfig("row", 8192, 16)]
    return out


def sync():
    if DEV == "cuda":
        torch.cuda.synchronize()


def bench(fn) -> float:
    """Median ms of ARGS.iters CUDA-event-timed runs after 3 warm-ups (--smoke: one wall-clock run)."""
    if DEV == "cpu":
        start = time.perf_counter()
        fn()
        return (time.perf_counter() - start) * 1e3
    return cuda_median_ms(fn, ARGS.iters, 3)


def peak_extra_gib(fn) -> float | None:
    if DEV != "cuda":
        return None
    return round(peak_extra_bytes(fn) / 2**30, 3)


def outputs(config, logits, target, options):
    logits.grad = None
    loss, lse = lg.cross_entropy(logits, target, _config=config, return_lse=True, **options)
    loss.backward()
    grad, logits.grad = logits.grad, None
    return loss.detach(), lse, grad


def check(config, logits, target, options, expected) -> str | None:
    """None when ``config`` gives the baseline's loss, lse and gradient; else what differs."""
    loss0, lse0, grad0 = expected
    poison = torch.full_like(logits, float("nan"))  # the caching allocator hands this block to the gradient
    del poison
    loss, lse, grad = outputs(config, logits, target, options)
    bad = []
    if not torch.isfinite(loss) or abs(float(loss) - float(loss0)) > 1e-4 * abs(float(loss0)) + 1e-6:
        bad.append(f"loss {float(loss)} vs {float(loss0)}")
    lse_err = float((lse - lse0).abs().max())
    if not lse_err <= 1e-3:
        bad.append(f"lse max error {lse_err}")
    scale = float(grad0.abs().max())
    grad_err = float((grad.float() - grad0.float()).abs().max())
    if not grad_err <= 2e-2 * scale:
        bad.append(f"gradient max error {grad_err} (max |gradient| {scale})")
    return "; ".join(bad) or None


def sweep_shape(n, v, deadline, results, meta) -> dict | None:
    case = f"N={n} V={v} bf16"
    g = torch.Generator(device=DEV).manual_seed(0)
    logits = (torch.randn(n, v, device=DEV, generator=g) * 2).to(torch.bfloat16).requires_grad_(True)
    target = torch.randint(0, v, (n,), device=DEV, generator=g)
    target[::7] = -100
    clone_ms = bench(lambda: logits.detach().clone())
    print(json.dumps({"case": case, "clone_ms": round(clone_ms, 4)}), flush=True)
    baseline = BASELINE if not ARGS.smoke else LaunchConfig("row", 16, 1)
    expected = {name: outputs(baseline, logits, target, opts) for name, opts in OPTION_SETS.items()}
    summary = {}
    for config in [baseline, *candidates(v)]:
        row = {"case": case, "n": n, "v": v, "config": config.as_dict(), "clone_ms": round(clone_ms, 4)}
        if time.monotonic() > deadline:
            results.append({**row, "skipped": "time budget spent"})
            continue
        try:
            resolved = ce.resolve(config, n, v, logits.device, 2)
            row["resolved"] = dict(zip(("variant", "block", "num_warps", "rows_per_program", "programs"), resolved))
            for name, opts in OPTION_SETS.items():
                problem = check(config, logits, target, opts, expected[name])
                if problem:
                    raise AssertionError(f"{name}: differs from the original kernel: {problem}")

                def step(opts=opts, config=config):
                    logits.grad = None
                    lg.cross_entropy(logits, target, _config=config, **opts).backward()

                ms = bench(step)
                row[f"ms_{name}"] = round(ms, 4)
                row[f"pct_of_clone_{name}"] = round(100 * clone_ms / ms, 1)
            row["ms"] = round(row["ms_plain"] + row["ms_zloss+smoothing"], 4)
        except Exception as ex:  # one candidate failing (compile, resources) must not end the sweep
            row["error"] = f"{type(ex).__name__}: {str(ex)[:300]}"
        results.append(row)
        print(json.dumps(row), flush=True)
        if "ms" in row and ("best" not in summary or row["ms"] < summary["best"]["ms"]):
            summary["best"] = row
        if config is baseline and "ms" in row:
            summary["baseline"] = row
    best = summary.get("best")
    if best is not None:
        config = LaunchConfig(**best["config"])

        def plain():
            logits.grad = None
            lg.cross_entropy(logits, target, _config=config).backward()

        scratch = logits.detach().clone().requires_grad_(True)

        def inplace():
            scratch.grad = None
            lg.cross_entropy(scratch, target, _config=config, inplace=True).backward()

        best["peak_extra_gib"] = peak_extra_gib(plain)
        best["peak_extra_gib_inplace"] = peak_extra_gib(inplace)
        best["gradient_gib"] = round(logits.numel() * logits.element_size() / 2**30, 3)
        best["baseline_ms"] = summary.get("baseline", {}).get("ms")
    return best  # (the shape's tensors die with this frame; main empties the CUDA cache)


def table_entries(best: dict[int, dict]) -> list[dict]:
    """One entry per measured V, covering V up to the geometric midpoints with its neighbours."""
    vs = sorted(best)
    entries = []
    for i, v in enumerate(vs):
        v_min = max(1, v // 2) if i == 0 else math.isqrt(vs[i - 1] * v) + 1
        v_max = 2 * v if i == len(vs) - 1 else math.isqrt(v * vs[i + 1])
        b = best[v]
        config = dict(b["config"])
        if config["variant"] == "rows" and config["block"] == 1 << (v - 1).bit_length():
            config["block"] = None  # the whole row, whatever C in the entry's range: sized at launch
        measured = {k: b.get(k) for k in ("n", "v", "ms_plain", "ms_zloss+smoothing", "pct_of_clone_plain",
                                          "pct_of_clone_zloss+smoothing", "clone_ms", "baseline_ms",
                                          "peak_extra_gib", "peak_extra_gib_inplace", "gradient_gib", "resolved")}
        entries.append({"dtype": "bfloat16", "v_min": v_min, "v_max": v_max, **config, "measured": measured})
    return entries


def run_tests(out: Path) -> dict:
    """(a): the GPU test files under a time limit; the log goes to out/tests.log."""
    files = TEST_FILES if not ARGS.smoke else ["tests/test_gpu_kernels.py"]
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *files]
    if ARGS.smoke:  # the smoke run is itself run by that file: only the quick config checks, no recursion
        cmd += ["-k", "bad_configs"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=ARGS.tests_timeout_s)
        log, status = proc.stdout + proc.stderr, ("passed" if proc.returncode == 0 else f"failed (rc {proc.returncode})")
    except subprocess.TimeoutExpired as ex:
        log = (ex.stdout or b"").decode(errors="replace") if isinstance(ex.stdout, bytes) else (ex.stdout or "")
        status = f"timed out after {ARGS.tests_timeout_s:.0f} s"
    (out / "tests.log").write_text(log)
    lines = [line for line in log.splitlines() if line.strip()]
    result = {"command": " ".join(cmd[1:]), "status": status, "seconds": round(time.monotonic() - start, 1),
              "summary": lines[-1] if lines else ""}
    print(json.dumps({"tests": result}), flush=True)
    return result


def versions() -> dict[str, str]:
    out = {"python": sys.version.split()[0], "torch": torch.__version__}
    for name in ("triton", "losslab"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed (working tree)"
    return out


def markdown(meta: dict, tests: dict | None, best: dict, results: list[dict]) -> str:
    lines = [f"# Cross-entropy launch sweep, {meta['date']}", "", f"{meta['gpu']}; " +
             ", ".join(f"{k} {v}" for k, v in meta["versions"].items()), "",
             f"Command: `{meta['command']}`; budget {meta['budget_s']} s, used {meta['sweep_seconds']} s.", ""]
    if tests:
        lines += [f"Tests: {tests['status']} in {tests['seconds']} s: {tests['summary']}", ""]
    lines += ["## Best per shape (forward + backward, % of a same-size clone)", "",
              "| shape | config | plain ms | % clone | z-loss+smoothing ms | % clone | original kernel ms (sum) "
              "| best ms (sum) | peak extra GiB (inplace) | gradient GiB |", "|---|---|---|---|---|---|---|---|---|---|"]
    for _v, b in sorted(best.items()):
        lines.append(f"| {b['case']} | {b['resolved']} | {b['ms_plain']} | {b['pct_of_clone_plain']} | "
                     f"{b['ms_zloss+smoothing']} | {b['pct_of_clone_zloss+smoothing']} | {b.get('baseline_ms')} | "
                     f"{b['ms']} | {b.get('peak_extra_gib')} ({b.get('peak_extra_gib_inplace')}) | {b.get('gradient_gib')} |")
    lines += ["", "## Every candidate", "", "| shape | config | plain ms | % clone | zs ms | % clone | note |",
              "|---|---|---|---|---|---|---|"]
    for r in results:
        note = r.get("error") or r.get("skipped") or ""
        lines.append(f"| {r['case']} | {r.get('resolved', r['config'])} | {r.get('ms_plain', '')} | "
                     f"{r.get('pct_of_clone_plain', '')} | {r.get('ms_zloss+smoothing', '')} | "
                     f"{r.get('pct_of_clone_zloss+smoothing', '')} | {note} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    if not ARGS.smoke and not torch.cuda.is_available():
        sys.exit("the sweep needs a CUDA GPU (or --smoke)")
    out = ARGS.out
    out.mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.get_device_name() if DEV == "cuda" else "none (--smoke: CPU, Triton interpreter, no timings)"
    sms, l2 = ce._device_facts(torch.device(DEV))
    meta = {"gpu": gpu, "multiprocessors": sms, "l2_bytes": l2, "date": dt.date.today().isoformat(),
            "versions": versions(), "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "budget_s": ARGS.budget_s}
    print(json.dumps(meta), flush=True)
    tests = None if ARGS.skip_tests else run_tests(out)
    start = time.monotonic()
    shapes = SMOKE_SHAPES if ARGS.smoke else SHAPES
    results: list[dict] = []
    best: dict[int, dict] = {}
    for i, (n, v) in enumerate(shapes):
        left = ARGS.budget_s - (time.monotonic() - start)
        deadline = time.monotonic() + max(0.0, left) / (len(shapes) - i)
        try:
            b = sweep_shape(n, v, deadline, results, meta)
        except Exception as ex:  # e.g. out of memory: keep the other shapes
            results.append({"case": f"N={n} V={v} bf16", "config": {}, "error": f"{type(ex).__name__}: {str(ex)[:300]}"})
            b = None
        if b is not None:
            best[v] = b
        if DEV == "cuda":
            torch.cuda.empty_cache()
    meta["sweep_seconds"] = round(time.monotonic() - start, 1)
    table = {"format": ce.TABLE_FORMAT, "gpu": gpu, "date": meta["date"], "versions": meta["versions"],
             "source": f"benchmarks/gpu_sweep.py ({meta['command']}): bf16, forward + backward, the fastest of the "
                       "candidates by the sum of the plain and z-loss + label smoothing times",
             "tests": tests and tests["status"], "entries": table_entries(best)}
    (out / "launch_table.json").write_text(json.dumps(table, indent=1))
    stem = out / f"gpu_sweep-{meta['date']}"
    stem.with_suffix(".json").write_text(json.dumps({**meta, "tests": tests, "best": best, "candidates": results}, indent=1))
    stem.with_suffix(".md").write_text(markdown(meta, tests, best, results))
    print(f"\nwrote {out / 'launch_table.json'}, {stem}.json and .md")
    print(f"tests: {tests['status'] if tests else 'skipped'}")
    for _v, b in sorted(best.items()):
        print(f"{b['case']:>22}  {b['resolved']}  plain {b['pct_of_clone_plain']}% of clone, "
              f"z+s {b['pct_of_clone_zloss+smoothing']}%  (original kernel {b.get('baseline_ms')} ms, best {b['ms']} ms)")


if __name__ == "__main__":
    main()
