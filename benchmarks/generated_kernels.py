"""Which generated kernel each elementwise loss should run on the CPU, measured.

    python benchmarks/generated_kernels.py [--elements 4194304] [--rounds 5] [--threads 2] [--out benchmarks/results]

1. NumPy blocks: on one block (``_fast.ELEMENT_BLOCK`` float32 elements, value and gradient), the kernel
   generated from the definition (``_numpy_kernels.py``), the hand-fused ufunc chain of ``_fast`` where one
   exists, and the definition evaluated with NumPy as written (temporaries allocated). ``_fast`` uses a
   hand chain only where this shows it faster than the generated kernel.
2. Numba: for every elementwise loss, value and gradient of the mean on ``--elements`` float32 elements
   (``ll.<loss>.value_and_grad``, its checks included), the generated Numba loop against the NumPy block
   path (``_fast.numpy_only()``), each loop on the thread pool (the kernels outside ``losslab._numba.NAMES``,
   generated for the calling thread only, are compiled here in their thread-pool form). ``NAMES`` lists the losses
   where the loop wins (``python -m losslab.definitions.codegen`` after changing it).

Interleaved in one process; ratios per round, then the median (below 1: the first named is faster).
Writes ``generated_kernels-DATE.md`` with the machine and versions.
"""

from __future__ import annotations

import datetime as dt
import platform
import statistics
import sys

import _common

LOSSES = ("mse", "mae", "huber", "smooth_l1", "quantile", "hinge", "squared_hinge", "log_cosh",
          "binary_cross_entropy_with_logits", "focal", "binary_cross_entropy", "soft_margin", "hinge_embedding",
          "poisson_nll", "poisson_deviance", "gamma_deviance", "msle", "mape", "kl_div")


def _data(name, n, rng, np):
    x = rng.uniform(0, 1, n) if name == "binary_cross_entropy" else rng.standard_normal(n)
    if "hinge" in name or name == "soft_margin":
        t = np.sign(rng.standard_normal(n))
    elif name in ("binary_cross_entropy", "binary_cross_entropy_with_logits", "focal"):
        t = rng.uniform(0, 1, n)
    elif name in ("poisson_nll", "poisson_deviance", "gamma_deviance", "msle"):  # counts or positive targets
        t = rng.poisson(3.0, n) + (name == "gamma_deviance")
        if name != "poisson_nll":  # a positive mean (msle: above -1)
            x = rng.uniform(0.2, 5.0, n)
    elif name == "kl_div":  # log-probabilities (rows of 1,024 classes), probabilities with a tenth of them 0
        rows = x.reshape(-1, 1024) if n % 1024 == 0 else x.reshape(1, -1)
        x = (rows - np.log(np.exp(rows).sum(1, keepdims=True))).reshape(-1)
        t = rng.uniform(0, 1, n) * (rng.uniform(0, 1, n) > 0.1)
    else:
        t = rng.standard_normal(n)
    return x.astype(np.float32), t.astype(np.float32)


# the public calls timed: (label, loss, options); an option may pick another generated kernel
CALLS = (*[(name, name, {}) for name in LOSSES], ("kl_div(log_target)", "kl_div", {"log_target": True}))
HAND_CHAINS = {"mse": "_mse", "mae": "_mae", "huber": "_huber", "smooth_l1": "_smooth_l1", "log_cosh": "_log_cosh",
               "quantile": "_quantile", "binary_cross_entropy_with_logits": "_bce_logits", "focal": "_focal",
               "soft_margin": "_soft_margin", "kl_div": "_kl_div"}
OPTIONS = {"delta": 1.0, "beta": 1.0, "q": 0.5, "margin": 1.0, "alpha": 0.25, "gamma": 2.0, "pos_weight": None,
           "log_input": True, "full": False, "eps": 1e-8, "log_target": False}


def _ratio_rounds(first, second, rounds, calls):
    times = [(_timed(first, calls), _timed(second, calls)) for _ in range(rounds)]
    return (statistics.median(a for a, _ in times), statistics.median(b for _, b in times),
            statistics.median(a / b for a, b in times))


def _numpy_blocks(np, rng, rounds):
    """Per loss: (generated ms, hand chain ms or None, definition ms, generated/hand, generated/definition)."""
    from losslab import _fast, _numpy_kernels
    from losslab.definitions import pointwise

    n = _fast.ELEMENT_BLOCK
    rows = []
    for name in LOSSES:
        x, t = _data(name, n, rng, np)
        l, g = np.empty_like(x), np.empty_like(x)
        definition = pointwise.DEFINITIONS[name]
        o = {k: OPTIONS[k] for k in definition.options}
        generated = _numpy_kernels.KERNELS[name]

        def run_generated(x=x, t=t, l=l, g=g, o=o, generated=generated):
            generated(x, t, l, g, o)

        def run_definition(x=x, t=t, o=o, definition=definition):
            with np.errstate(all="ignore"):
                definition.value_and_grad(np, x, t, **o)

        hand = getattr(_fast, HAND_CHAINS[name]) if name in HAND_CHAINS else None
        if hand is not None:
            def run_hand(x=x, t=t, l=l, g=g, o=o, hand=hand):
                hand(x, t, l, g, o)

            gen_ms, hand_ms, vs_hand = _ratio_rounds(run_generated, run_hand, rounds, 20)
        else:
            gen_ms, hand_ms, vs_hand = _timed(run_generated, 20), None, None
        _, def_ms, vs_def = _ratio_rounds(run_generated, run_definition, rounds, 20)
        rows.append((name, gen_ms, hand_ms, def_ms, vs_hand, vs_def))
        hand_text = f"hand {hand_ms:7.3f} ms (generated/hand {vs_hand:5.2f})" if hand is not None else "no hand chain"
        print(f"{name:34s} generated {gen_ms:7.3f} ms   {hand_text}   definition {def_ms:7.3f} ms "
              f"(generated/definition {vs_def:5.2f})", flush=True)
    return rows


def _timed(fn, calls):
    return _common.seconds_per_call(fn, calls) * 1e3


def main(argv=None) -> int:
    parser = _common.interleaved_timing_parser(__doc__, rounds=5, calls=5)
    parser.add_argument("--elements", type=int, default=1 << 22)
    args = parser.parse_args(argv)
    _common.set_threads(args.threads)
    import numba
    import numpy as np

    import losslab as ll
    from losslab import _fast, _numba

    if not _numba.AVAILABLE:
        print("Numba is not installed (pip install 'losslab[fast]')", file=sys.stderr)
        return 1
    ll.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print("NumPy block kernels (one block, value and gradient):")
    block_rows = _numpy_blocks(np, rng, args.rounds)
    print("Numba loops vs NumPy blocks (the public call):")
    rows = []
    from losslab import _numba_kernels
    from losslab.definitions import codegen

    # each call's generated kernel, as the fast path finds it
    kernels = {label: codegen.variant_for(name, {**OPTIONS, **options}).name for label, name, options in CALLS}
    chosen = _numba.NAMES
    _numba.NAMES = tuple(kernels.values())  # every loop may run: the public call with the loop, then with NumPy alone
    kept_for_blocks, _numba.BLOCKS_WITH_SVML_LOG1P = _numba.BLOCKS_WITH_SVML_LOG1P, ()
    # the kernels outside NAMES are generated for the calling thread only (they serve the small lane): here each gets
    # its thread-pool form, compiled from the same source, so the comparison is the one NAMES would make
    for variant in codegen.VARIANTS:
        if variant.name not in chosen:
            serial = _numba_kernels.KERNELS[variant.name]
            _numba_kernels.KERNELS[variant.name] = numba.njit(
                parallel=True, nogil=True, fastmath=_numba_kernels._FASTMATH, error_model="numpy")(serial.py_func)
    for label, name, options in CALLS:
        x, t = _data(name, args.elements, rng, np)
        if options:  # kl_div's log targets: the log of positive probabilities
            t = np.log(np.maximum(t, np.float32(1e-3)))
        fn = ll.get_loss(name)

        def compiled(x=x, t=t, fn=fn, options=options):
            return fn.value_and_grad(x, t, **options)

        def blocks(x=x, t=t, fn=fn, options=options):
            with _fast.numpy_only():
                return fn.value_and_grad(x, t, **options)

        (v1, g1), (v2, g2) = compiled(), blocks()
        np.testing.assert_allclose(v1, v2, rtol=1e-4)
        np.testing.assert_allclose(g1, g2, rtol=1e-4, atol=1e-9)
        times = [(_timed(compiled, args.calls), _timed(blocks, args.calls)) for _ in range(args.rounds)]
        ratio = statistics.median(a / b for a, b in times)
        rows.append((label, statistics.median(a for a, _ in times), statistics.median(b for _, b in times), ratio, kernels[label]))
        print(f"{label:34s} numba {rows[-1][1]:8.2f} ms   numpy blocks {rows[-1][2]:8.2f} ms   ratio {ratio:5.2f}",
              flush=True)
    _numba.NAMES, _numba.BLOCKS_WITH_SVML_LOG1P = chosen, kept_for_blocks
    today = dt.date.today().isoformat()
    lines = [f"# Generated kernels on the CPU, {today}", "",
             f"{_common.cpu_model()}, {args.threads} threads; python {platform.python_version()}, numpy {np.__version__}, "
             f"numba {numba.__version__}, losslab {ll.__version__}; value and gradient, float32; NumPy blocks of "
             f"{_fast.ELEMENT_BLOCK} elements (20 calls a round), the public call on {args.elements} elements ({args.calls} "
             f"calls a round); median of {args.rounds} interleaved rounds. Ratio < 1: the first kernel named is faster.",
             "", "## NumPy block kernels: one block, value and gradient", "",
             "| loss | generated ms | hand chain ms | definition as written ms | generated / hand | generated / definition | _fast uses |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for n, gen_ms, hand_ms, def_ms, vs_hand, vs_def in block_rows:
        hand_cells = f"{hand_ms:.3f} | {def_ms:.3f} | {vs_hand:.2f}" if hand_ms is not None else f"– | {def_ms:.3f} | –"
        lines.append(f"| {n} | {gen_ms:.3f} | {hand_cells} | {vs_def:.2f} | {'hand chain' if n in HAND_CHAINS else 'generated'} |")
    lines += ["", "## Numba loops vs NumPy blocks: the public call", "",
              "| loss | Numba loop ms | NumPy blocks ms | ratio | loop at every size here (_numba.at_every_size) |", "|---|---:|---:|---:|---|"]
    lines += [f"| {n} | {a:.2f} | {b:.2f} | {r:.2f} | {'yes' if _numba.at_every_size(k) else 'no'} |" for n, a, b, r, k in rows]
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / f"generated_kernels-{today}.md"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
