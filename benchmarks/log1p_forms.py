"""The two forms of float32 log1p in losslab's NumPy blocks, side by side (losslab/_ufuncs.py).

    python benchmarks/log1p_forms.py [--elements 4194304] [--rounds 7] [--threads 2] [--out benchmarks/results]

NumPy's float32 log1p is a SIMD loop only on x86 CPUs with AVX-512 (Intel's SVML); elsewhere on x86 it is a scalar
libm loop, and losslab computes it as a corrected log instead (``_ufuncs.CORRECTED_LOG1P``, chosen from NumPy's CPU
features). This times both on this CPU: the ufunc alone on --elements float32 values, then value and gradient of
each loss whose NumPy blocks call log1p (``ll.<loss>.value_and_grad`` on NumPy arrays, float32), the two forms
interleaved in one process, ratios per round, then the median (below 1: the corrected form is faster).
Writes ``log1p_forms-DATE.md`` and ``.json`` with the machine and versions.
"""

from __future__ import annotations

import datetime as dt
import platform
import statistics

import _common


def _cases(n: int, rng, np, ll):
    x = rng.standard_normal(n).astype(np.float32)
    p = rng.uniform(0, 1, n).astype(np.float32)
    labels = (p > 0.5).astype(np.float32)
    signs = np.sign(rng.standard_normal(n)).astype(np.float32)
    rows = n // 1024
    z = rng.standard_normal((rows, 1024)).astype(np.float32)
    multilabel = (rng.uniform(0, 1, (rows, 1024)) > 0.5).astype(np.float32)
    u = np.exp(-np.abs(x))
    out = np.empty_like(u)
    from losslab import _ufuncs

    return {
        "log1p(exp(-abs(x))) alone (its buffers new each call)": lambda: _ufuncs.log1p(u, out=out),
        "binary_cross_entropy_with_logits": lambda: ll.binary_cross_entropy_with_logits.value_and_grad(x, p),
        "soft_margin": lambda: ll.soft_margin.value_and_grad(x, signs),
        "focal": lambda: ll.focal.value_and_grad(x, labels),
        "log_cosh": lambda: ll.log_cosh.value_and_grad(x, p),
        f"multilabel_soft_margin ({rows} x 1024)": lambda: ll.multilabel_soft_margin.value_and_grad(z, multilabel),
        "dpo": lambda: ll.dpo.value_and_grad(x, p, 0.5 * x, 0.5 * p),
    }


def main() -> None:
    parser = _common.interleaved_timing_parser(__doc__, rounds=7, calls=3)
    parser.add_argument("--elements", type=int, default=1 << 22)
    args = parser.parse_args()
    _common.set_threads(args.threads)

    import numpy as np

    import losslab as ll
    from losslab import _ufuncs

    ll.set_num_threads(args.threads)
    chosen = _ufuncs.CORRECTED_LOG1P
    cases = _cases(args.elements, np.random.default_rng(0), np, ll)
    forms = (False, True)  # NumPy's log1p, the corrected log
    times = {name: {form: [] for form in forms} for name in cases}
    ratios = {name: [] for name in cases}
    try:
        for fn in cases.values():  # warm-up: each form once (Numba compiles, buffers fault in)
            for form in forms:
                _ufuncs.CORRECTED_LOG1P = form
                fn()
        for r in range(args.rounds):
            for name, fn in cases.items():
                seen = {}
                for form in (forms if r % 2 else forms[::-1]):  # alternate which form goes first
                    _ufuncs.CORRECTED_LOG1P = form
                    seen[form] = _common.seconds_per_call(fn, args.calls) * 1e3
                    times[name][form].append(seen[form])
                ratios[name].append(seen[True] / seen[False])
    finally:
        _ufuncs.CORRECTED_LOG1P = chosen

    header = (f"# float32 log1p: NumPy's against the corrected log, {dt.date.today()}\n\n"
              f"{_common.cpu_model()}, {args.threads} threads; python {platform.python_version()}, numpy {np.__version__}, "
              f"losslab {ll.__version__}; NumPy's CPU features: AVX2 {bool(_ufuncs._CPU.get('AVX2'))}, AVX512_SKX "
              f"{bool(_ufuncs._CPU.get('AVX512_SKX'))}, so losslab uses {'the corrected log' if chosen else 'np.log1p'} "
              f"here. {args.elements} float32 elements, value and gradient, {args.calls} calls a loop, median of "
              f"{args.rounds} interleaved rounds. Ratio < 1: the corrected form is faster.\n\n")
    lines = ["| call | np.log1p ms | corrected log ms | ratio |", "|---|---:|---:|---:|"]
    result = {"date": str(dt.date.today()), "cpu": _common.cpu_model(), "threads": args.threads,
              "elements": args.elements, "corrected_here": chosen, "rows": []}
    for name in cases:
        numpy_ms, corrected_ms = (statistics.median(times[name][form]) for form in forms)
        ratio = statistics.median(ratios[name])
        lines.append(f"| {name} | {numpy_ms:.2f} | {corrected_ms:.2f} | {ratio:.2f} |")
        result["rows"].append({"call": name, "numpy_ms": numpy_ms, "corrected_ms": corrected_ms, "ratio": ratio})
    text = header + "\n".join(lines) + "\n"
    print(text)
    if args.out:
        path = _common.write_results(args.out, f"log1p_forms-{dt.date.today()}", result, text)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
