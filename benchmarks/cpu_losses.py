"""CPU benchmark: losslab's NumPy path vs PyTorch CPU vs JAX CPU (Optax) vs scikit-learn.

Every peer computes the same thing, the mean loss AND its gradient with respect to the
predictions (PyTorch: forward + autograd; JAX: jit(value_and_grad); losslab: value_and_grad),
in one process, at the same thread count, on the same float32 inputs. Reported: the median of
repeated runs, the ratio to PyTorch and to a same-size copy (one read + one write, the least
memory traffic possible), and losslab's peak extra memory (tracemalloc) in gradient buffers.

    python benchmarks/cpu_losses.py                 # full run, writes benchmarks/results/
    python benchmarks/cpu_losses.py --quick         # small sizes only, a smoke test

Needs: pip install -e ".[bench]"   (torch, jax, optax, scikit-learn, matplotlib)
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

from _common import cpu_model, module_versions, set_threads

THREADS_DEFAULT = os.cpu_count() or 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=THREADS_DEFAULT)
    parser.add_argument("--quick", action="store_true", help="sizes up to 32k elements only")
    parser.add_argument("--repeats", type=int, default=0, help="timed runs per point (default: by size)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--losses", nargs="*", help="only these losses")
    args = parser.parse_args()
    set_threads(args.threads)  # before numpy/torch/jax start their pools
    run(args)


def _median_time(fn, repeats: int, budget_s: float = 3.0) -> float:
    time.sleep(0.2)  # let the previous peer's worker threads go idle
    fn()  # warm-up (compilation, allocator)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats or (len(times) < 3):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start > budget_s and len(times) >= 3:
            break
    return statistics.median(times)


def _inner_loop(fn, elements: int):
    """Small inputs: time a loop of calls, so timer resolution does not dominate."""
    if elements >= 100_000:
        return fn, 1
    k = max(1, 200_000 // max(elements, 1) // 20)
    k = min(k, 200)

    def many():
        for _ in range(k):
            fn()

    return many, k


def run(args) -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    import torch
    import torch.nn.functional as F

    import losslab as ll

    jax.config.update("jax_enable_x64", False)
    torch.set_num_threads(args.threads)
    ll.set_num_threads(args.threads)
    try:
        from sklearn.metrics import log_loss
    except ImportError:  # pragma: no cover
        log_loss = None

    rng = np.random.default_rng(0)
    SIZES = [32, 1024, 32768] if args.quick else [32, 1024, 32768, 1 << 20, 1 << 24, 1 << 26]

    def ce_shape(n):
        c = {32: 8, 1024: 32, 32768: 1024}.get(n, 32768)
        return (n // c, c)

    def embed_shape(n):
        d = min(512, max(8, int(math.sqrt(n))))
        return (n // d, d)

    # name -> (make inputs(n), losslab call, torch fn(x, t) -> loss, jax fn(x, t) -> loss, sklearn fn or None, max size)
    def reg_inputs(n):
        p = rng.standard_normal(n, dtype=np.float32)
        return p, (p + rng.standard_normal(n, dtype=np.float32) * 2).astype(np.float32)

    def bin_inputs(n):
        return rng.standard_normal(n, dtype=np.float32) * 2, (rng.uniform(size=n) < 0.3).astype(np.float32)

    def ce_inputs(n):
        shape = ce_shape(n)
        return rng.standard_normal(shape, dtype=np.float32), rng.integers(0, shape[1], shape[0])

    def pair_inputs(n):
        shape = embed_shape(n)
        return rng.standard_normal(shape, dtype=np.float32), rng.standard_normal(shape, dtype=np.float32)

    def t_log_cosh(p, t):
        e = (p - t).abs()
        return (e + F.softplus(-2 * e) - math.log(2)).mean()

    def t_quantile(p, t, q=0.9):
        r = t - p
        return torch.maximum(q * r, (q - 1) * r).mean()

    def t_focal(x, t, alpha=0.25, gamma=2.0):  # torchvision.ops.sigmoid_focal_loss, mean
        p = torch.sigmoid(x)
        ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
        p_t = p * t + (1 - p) * (1 - t)
        return ((alpha * t + (1 - alpha) * (1 - t)) * ce * (1 - p_t) ** gamma).mean()

    def t_info_nce(a, b, temperature=0.07):
        s = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / temperature
        labels = torch.arange(s.shape[0])
        return (F.cross_entropy(s, labels) + F.cross_entropy(s.T, labels)) / 2

    def t_siglip(a, b, scale=10.0, bias=-10.0):
        s = scale * F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T + bias
        z = 2 * torch.eye(s.shape[0]) - 1
        return -F.logsigmoid(z * s).sum(1).mean()

    def j_normalize(x):
        return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)

    def j_info_nce(a, b, temperature=0.07):
        s = j_normalize(a) @ j_normalize(b).T / temperature
        labels = jnp.arange(s.shape[0])
        ce = optax.losses.softmax_cross_entropy_with_integer_labels
        return (ce(s, labels).mean() + ce(s.T, labels).mean()) / 2

    def j_siglip(a, b, scale=10.0, bias=-10.0):
        s = scale * j_normalize(a) @ j_normalize(b).T + bias
        z = 2 * jnp.eye(s.shape[0]) - 1
        return -jax.nn.log_sigmoid(z * s).sum(1).mean()

    CASES = {
        "cross_entropy": (ce_inputs, lambda x, t: ll.cross_entropy.value_and_grad(x, t),
                          lambda x, t: F.cross_entropy(x, t),
                          lambda x, t: optax.losses.softmax_cross_entropy_with_integer_labels(x, t).mean(),
                          (lambda x, t: log_loss(t, _softmax(x), labels=np.arange(x.shape[1]))) if log_loss else None, 1 << 26),
        "cross_entropy(ls=0.1)": (ce_inputs, lambda x, t: ll.cross_entropy.value_and_grad(x, t, label_smoothing=0.1),
                                  lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1),
                                  lambda x, t: optax.losses.softmax_cross_entropy(x, optax.smooth_labels(jax.nn.one_hot(t, x.shape[1]), 0.1)).mean(),
                                  None, 1 << 24),
        "mse": (reg_inputs, ll.mse.value_and_grad, F.mse_loss, lambda p, t: optax.losses.squared_error(p, t).mean(), None, 1 << 26),
        "mae": (reg_inputs, ll.mae.value_and_grad, F.l1_loss, lambda p, t: jnp.abs(p - t).mean(), None, 1 << 24),
        "huber": (reg_inputs, ll.huber.value_and_grad, F.huber_loss, lambda p, t: optax.losses.huber_loss(p, t, delta=1.0).mean(), None, 1 << 24),
        "smooth_l1": (reg_inputs, lambda p, t: ll.smooth_l1.value_and_grad(p, t, beta=0.5), lambda p, t: F.smooth_l1_loss(p, t, beta=0.5),
                      lambda p, t: (optax.losses.huber_loss(p, t, delta=0.5) / 0.5).mean(), None, 1 << 24),
        "log_cosh": (reg_inputs, ll.log_cosh.value_and_grad, t_log_cosh, lambda p, t: optax.losses.log_cosh(p, t).mean(), None, 1 << 24),
        "quantile": (reg_inputs, lambda p, t: ll.quantile.value_and_grad(p, t, q=0.9), t_quantile,
                     lambda p, t: jnp.maximum(0.9 * (t - p), -0.1 * (t - p)).mean(), None, 1 << 24),
        "binary_cross_entropy_with_logits": (bin_inputs, ll.binary_cross_entropy_with_logits.value_and_grad, F.binary_cross_entropy_with_logits,
                                             lambda x, t: optax.losses.sigmoid_binary_cross_entropy(x, t).mean(),
                                             (lambda x, t: log_loss(t, 1 / (1 + np.exp(-x.astype(np.float64))))) if log_loss else None, 1 << 26),
        "focal": (bin_inputs, ll.focal.value_and_grad, t_focal, lambda x, t: optax.losses.sigmoid_focal_loss(x, t, alpha=0.25, gamma=2.0).mean(), None, 1 << 24),
        "info_nce": (pair_inputs, ll.info_nce.value_and_grad, t_info_nce, j_info_nce, None, 1 << 20),
        "siglip": (pair_inputs, ll.siglip.value_and_grad, t_siglip, j_siglip, None, 1 << 20),
    }
    if args.losses:
        CASES = {k: v for k, v in CASES.items() if k in args.losses}

    def _softmax(x):
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    rows = []
    sizes_for = {name: [s for s in SIZES if s <= case[5]] for name, case in CASES.items()}
    if not args.quick and "cross_entropy" in CASES:
        sizes_for["cross_entropy"] = sizes_for["cross_entropy"] + [4096 * 32000]
    def measure(name, x, t, ours, t_fn, j_fn, sk_fn) -> dict:
        """One loss at one size: every peer's median time for value + gradient."""
        elements = x.size
        repeats = args.repeats or (25 if elements <= 1 << 20 else 7)
        timings = {}

        fn, k = _inner_loop(lambda: x.copy(), elements)
        timings["copy"] = _median_time(fn, repeats) / k

        fn, k = _inner_loop(lambda: ours(x, t), elements)
        timings["losslab"] = _median_time(fn, repeats) / k
        with ll.reference_path():
            fn, k = _inner_loop(lambda: ours(x, t), elements)
            timings["losslab (reference path)"] = _median_time(fn, 3 if elements >= 1 << 24 else repeats) / k

        pair = name in ("info_nce", "siglip")  # two embedding inputs, both differentiated
        xt, tt = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(t)
        if pair:
            tt.requires_grad_(True)
        wrt = (xt, tt) if pair else (xt,)

        def torch_vg():
            loss = t_fn(xt, tt)
            return loss, torch.autograd.grad(loss, wrt)

        fn, k = _inner_loop(torch_vg, elements)
        timings["pytorch"] = _median_time(fn, repeats) / k

        xj, tj = jnp.asarray(x), jnp.asarray(t)
        j_vg = jax.jit(jax.value_and_grad(j_fn, argnums=(0, 1) if pair else 0))
        fn, k = _inner_loop(lambda: jax.block_until_ready(j_vg(xj, tj)), elements)
        timings["jax (optax)"] = _median_time(fn, repeats) / k

        if sk_fn is not None and elements <= 1 << 24:
            fn, k = _inner_loop(lambda: sk_fn(x, t), elements)
            timings["scikit-learn (value only)"] = _median_time(fn, 5) / k

        gc.collect()
        tracemalloc.start()
        ours(x, t)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        grad_bytes = x.nbytes * (2 if pair else 1)
        return {"loss": name, "elements": int(elements), "shape": list(x.shape),
                "ms": {k2: v * 1e3 for k2, v in timings.items()},
                "ratio_to_pytorch": timings["losslab"] / timings["pytorch"],
                "ratio_to_copy": timings["losslab"] / timings["copy"],
                "losslab_peak_extra_in_grad_buffers": peak / grad_bytes}

    for name, (make, ours, t_fn, j_fn, sk_fn, _) in CASES.items():
        for n in sizes_for[name]:
            if name == "cross_entropy" and n == 4096 * 32000:
                x = rng.standard_normal((4096, 32000), dtype=np.float32)
                t = rng.integers(0, 32000, 4096)
            else:
                x, t = make(n)
            row = measure(name, x, t, ours, t_fn, j_fn, sk_fn)
            rows.append(row)
            print(f"{name:34s} {row['elements']:>11,d}  losslab {row['ms']['losslab']:10.3f} ms  "
                  f"torch {row['ms']['pytorch']:10.3f} ms  jax {row['ms']['jax (optax)']:10.3f} ms  "
                  f"ratio {row['ratio_to_pytorch']:5.2f}x torch  {row['ratio_to_copy']:6.2f}x copy  "
                  f"mem {row['losslab_peak_extra_in_grad_buffers']:.2f} grads", flush=True)

    meta = _environment(args.threads)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "-quick" if args.quick else ""
    path = args.out / f"cpu_losses-{stamp}{suffix}.json"
    path.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(f"\nwrote {path}")
    _table(rows, args.out / f"cpu_losses-{stamp}{suffix}.md", meta)
    _plot(rows, args.out / f"cpu_losses-{stamp}{suffix}.png")


def _environment(threads: int) -> dict:
    import jax
    import numpy as np
    import torch

    import losslab

    versions = module_versions({"python": platform.python_version(), "numpy": np.__version__,
                                "torch": torch.__version__, "jax": jax.__version__, "losslab": losslab.__version__},
                               ("optax", "sklearn", "matplotlib"))
    return {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "machine": platform.machine(),
            "cpu": cpu_model(), "cores": os.cpu_count(), "threads": threads, "os": platform.platform(), "versions": versions,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "what": "mean loss + gradient w.r.t. predictions, float32, median of repeated runs"}


def _table(rows, path: Path, meta: dict) -> None:
    lines = [f"CPU, {meta['cpu']}, {meta['threads']} threads, {meta['date'][:10]}; "
             + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()), "",
             "| loss | elements | losslab ms | PyTorch ms | JAX/Optax ms | losslab / PyTorch | losslab / copy | losslab ref. path ms | peak extra memory (grad buffers) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        ms = r["ms"]
        lines.append(f"| {r['loss']} | {r['elements']:,} | {ms['losslab']:.3f} | {ms['pytorch']:.3f} | {ms['jax (optax)']:.3f} | "
                     f"{r['ratio_to_pytorch']:.2f} | {r['ratio_to_copy']:.2f} | {ms['losslab (reference path)']:.3f} | "
                     f"{r['losslab_peak_extra_in_grad_buffers']:.2f} |")
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


def _plot(rows, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    names = sorted({r["loss"] for r in rows}, key=[r["loss"] for r in rows].index)
    cols = 4
    fig, axes = plt.subplots(math.ceil(len(names) / cols), cols, figsize=(4 * cols, 3.2 * math.ceil(len(names) / cols)), squeeze=False)
    for ax, name in zip(axes.flat, names):
        sel = [r for r in rows if r["loss"] == name]
        for peer, style in (("losslab", "o-"), ("pytorch", "s--"), ("jax (optax)", "^:"), ("copy", "k-")):
            ax.loglog([r["elements"] for r in sel], [r["ms"][peer] for r in sel], style, label=peer, lw=1, ms=3)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("elements", fontsize=8)
        ax.set_ylabel("ms (value + gradient)", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
