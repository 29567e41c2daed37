"""Small NumPy calls with and without the NumPy lane, side by side (losslab._fast.numpy_lane).

    python benchmarks/numpy_lane.py [--rounds 15] [--calls 300] [--threads 2] [--out benchmarks/results]

A plain call on small NumPy arrays goes to the loss's compiled loop before binding (the lane); without it, the usual
flow binds, checks and runs the fast path's NumPy blocks. This times ``ll.<loss>.value_and_grad`` (float32) at the
sizes of ``cpu_losses.py``'s small points and at 4,096 elements, the lane on and off interleaved in one process,
ratios per round, then the median (below 1: the lane is faster). Writes ``numpy_lane-DATE.md`` and ``.json`` with
the machine and versions.
"""

from __future__ import annotations

import datetime as dt
import functools
import platform
import statistics

import _common


def _cases(rng, np, ll):
    def regression(n):
        return rng.standard_normal(n, dtype=np.float32), rng.standard_normal(n, dtype=np.float32)

    def binary(n):
        return rng.standard_normal(n, dtype=np.float32), (rng.random(n) < 0.5).astype(np.float32)

    def probabilities(n):
        return 1 / (1 + np.exp(-rng.standard_normal(n, dtype=np.float32))), (rng.random(n) < 0.5).astype(np.float32)

    def counts(n):
        return rng.random(n, dtype=np.float32) * 4 + 0.2, rng.poisson(3.0, n).astype(np.float32)

    def classes(n):  # cpu_losses.py's shapes: 32 -> 4 x 8, 1,024 -> 32 x 32, 4,096 -> 128 x 32
        c = 8 if n <= 32 else 32
        return rng.standard_normal((n // c, c), dtype=np.float32), rng.integers(0, c, n // c)

    def distributions(n):
        z = rng.standard_normal((n // 32, 32)).astype(np.float32)
        q = np.exp(rng.standard_normal((n // 32, 32))).astype(np.float32)
        return z - np.log(np.exp(z).sum(1, keepdims=True)), q / q.sum(1, keepdims=True)

    return {
        "mse": (regression, ll.mse.value_and_grad, {}),
        "mae": (regression, ll.mae.value_and_grad, {}),
        "huber": (regression, ll.huber.value_and_grad, {}),
        "smooth_l1": (regression, ll.smooth_l1.value_and_grad, {}),
        "log_cosh": (regression, ll.log_cosh.value_and_grad, {}),
        "quantile(q=0.7)": (regression, ll.quantile.value_and_grad, {"q": 0.7}),
        "binary_cross_entropy_with_logits": (binary, ll.binary_cross_entropy_with_logits.value_and_grad, {}),
        "binary_cross_entropy": (probabilities, ll.binary_cross_entropy.value_and_grad, {}),
        "poisson_deviance": (counts, ll.poisson_deviance.value_and_grad, {}),
        "kl_div(batchmean)": (distributions, ll.kl_div.value_and_grad, {"reduction": "batchmean"}),
        "cross_entropy": (classes, ll.cross_entropy.value_and_grad, {}),
        "cross_entropy(ls=0.1)": (classes, ll.cross_entropy.value_and_grad, {"label_smoothing": 0.1}),
        "nll": (classes, ll.nll.value_and_grad, {}),
    }


def main() -> None:
    parser = _common.interleaved_timing_parser(__doc__, rounds=15, calls=300)
    args = parser.parse_args()
    _common.set_threads(args.threads)

    import numpy as np

    import losslab as ll
    from losslab import _engines

    ll.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    lane = _engines.lane_of("numpy")
    rows, lines = [], ["| loss | elements | usual flow us | lane us | lane / usual |", "|---|---:|---:|---:|---:|"]
    for name, (make, fn, options) in _cases(rng, np, ll).items():
        for n in (32, 1024, 4096):
            x, t = make(n)
            call = functools.partial(fn, x, t, **options)
            times = {True: [], False: []}
            ratios = []
            try:
                for on in (True, False):  # warm-up: compiles, plans
                    _engines.register_lane("numpy", lane if on else None)
                    call()
                for r in range(args.rounds):
                    seen = {}
                    for on in ((True, False) if r % 2 else (False, True)):  # alternate which goes first
                        _engines.register_lane("numpy", lane if on else None)
                        seen[on] = _common.seconds_per_call(call, args.calls) * 1e6
                        times[on].append(seen[on])
                    ratios.append(seen[True] / seen[False])
            finally:
                _engines.register_lane("numpy", lane)
            usual, laned, ratio = statistics.median(times[False]), statistics.median(times[True]), statistics.median(ratios)
            lines.append(f"| {name} | {n:,} | {usual:.1f} | {laned:.1f} | {ratio:.2f} |")
            rows.append({"loss": name, "elements": n, "usual_us": usual, "lane_us": laned, "ratio": ratio})
            print(lines[-1], flush=True)
    header = (f"# Small NumPy calls: the NumPy lane against the usual flow, {dt.date.today()}\n\n"
              f"{_common.cpu_model()}, {args.threads} threads; python {platform.python_version()}, numpy "
              f"{np.__version__}, losslab {ll.__version__}. `ll.<loss>.value_and_grad` on float32 NumPy arrays, "
              f"{args.calls} calls a loop, median of {args.rounds} interleaved rounds. Ratio < 1: the lane is faster.\n\n")
    text = header + "\n".join(lines) + "\n"
    print(text)
    if args.out:
        result = {"date": str(dt.date.today()), "cpu": _common.cpu_model(), "threads": args.threads, "rows": rows}
        path = _common.write_results(args.out, f"numpy_lane-{dt.date.today()}", result, text)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
