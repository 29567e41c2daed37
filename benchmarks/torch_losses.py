"""PyTorch / JAX benchmark: losslab on framework arrays against the framework's own losses.

What a PyTorch or JAX user sees when calling losslab instead of the framework's loss, in one process,
side by side, float32 (the torch section: or --dtype bfloat16 / float16):

- torch tensors (``--device cpu``, or ``cuda``): forward + backward of the mean loss as a user writes
  it, ``loss = ll.<name>(x, t); loss.backward()``, against ``torch.nn.functional.<peer>`` (eager) and
  ``torch.compile`` of that same torch function; and ``ll.<name>.value_and_grad(x, t)`` on the same
  tensors (no autograd) as a second losslab row. The bound: ``torch.add(x, t)`` (reads the inputs once,
  writes one gradient-sized output: the least traffic of a fused value + gradient pass).
- JAX arrays (``--jax``, default on CPU): ``jax.jit(jax.value_and_grad(lambda x, t: ll.<name>(x, t)))``
  against the same of the Optax loss (``optax.losses.*(...).mean()``), and
  ``jax.jit(ll.<name>.value_and_grad)``.

Before timing, each peer's value and gradient are checked against the framework's (rtol 1e-4): a
WARNING row marks a pair that does not compute the same quantity. Protocol: the same thread count
everywhere; a warm-up (torch.compile / jax.jit compile there); then rounds in which every peer is timed
once (interleaved, so machine noise hits all alike), each timing a loop of calls of at least
``--target-ms`` (default 20 ms at the small size, 100 ms above: a longer loop averages out the
noise of a shared machine); the median per peer, and ratios taken per round then their median. On CUDA: CUDA
events, and peak extra memory (``torch.cuda.max_memory_allocated``).

    python benchmarks/torch_losses.py                       # CPU: small + large, torch and JAX (~3 min on 2 cores)
    python benchmarks/torch_losses.py --quick               # small size only, 2 rounds
    python benchmarks/torch_losses.py --device cuda         # + the "huge" size and peak memory
    python benchmarks/torch_losses.py --smoke --out /tmp/x  # tiny, 1 round, no torch.compile (CI)

Writes torch_losses-<device>-<date>.json and .md under --out (default benchmarks/results, or $OUT).
Needs: pip install -e ".[bench]"   (torch, jax, optax)
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
import traceback
from pathlib import Path

from _common import cpu_model, module_versions, peak_extra_bytes, seconds_per_call, set_threads

THREADS_DEFAULT = 2
RTOL = 1e-4  # float32: a pair that differs by more does not compute the same quantity
RTOL_OF = {"float32": RTOL, "float16": 5e-3, "bfloat16": 2e-2}  # the same, per --dtype
UNCHECKED = ("bound", "node floor")  # timed as reference points, they compute something else

TARGET_MS = {"smoke": 1.0, "small": 20.0, "large": 100.0, "huge": 100.0}  # least duration of one timed loop

# elements of the elementwise losses; (N, C) of the class-axis losses; (N, D) of each triplet input
SIZES = {
    "smoke": {"elements": 64, "classes": (8, 5), "embed": (8, 4)},
    "small": {"elements": 1024, "classes": (32, 10), "embed": (32, 32)},
    "large": {"elements": 1 << 22, "classes": (4096, 1024), "embed": (4096, 1024)},
    "huge": {"elements": 1 << 24, "classes": (8192, 32000), "embed": (8192, 2048)},  # CUDA only
}

MEMORY_NOTE_CPU = ("peak memory: reported on CUDA only (torch.cuda.max_memory_allocated); on the CPU no "
                   "reliable measure of torch's allocations exists here (tracemalloc does not see them; RSS "
                   "and the profiler's memory events are not reliable), so none is reported")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=THREADS_DEFAULT)
    parser.add_argument("--sizes", nargs="+", choices=("small", "large", "huge"),
                        help="default: small large (and huge on CUDA)")
    parser.add_argument("--losses", nargs="+", help="only these losslab losses or cases (e.g. mse cross_entropy)")
    parser.add_argument("--jax", action=argparse.BooleanOptionalAction, default=None,
                        help="the JAX/Optax section (default: on for --device cpu when jax and optax import)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--target-ms", type=float, help="least duration of one timed loop of calls "
                        "(default: 20 ms at the small size, 100 ms at the larger ones)")
    parser.add_argument("--quick", action="store_true", help="small size only, 2 rounds")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 1 round, no torch.compile: does it run?")
    parser.add_argument("--dtype", choices=tuple(RTOL_OF), default="float32",
                        help="the torch section's floating dtype (bfloat16: the path of mixed-precision training; "
                        "the JAX section stays float32 and is off unless --jax)")
    parser.add_argument("--no-compile", action="store_true",
                        help="skip the torch.compile peer (each point compiles afresh: seconds to a minute on a GPU)")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="wall-clock seconds for the whole run: once spent, the remaining points are skipped "
                        "(and marked so) and the results written, so a run on a lent GPU ends inside its lease")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or Path(__file__).parent / "results"))
    args = parser.parse_args()
    if args.smoke:
        args.sizes, args.rounds, args.target_ms = ["smoke"], 1, args.target_ms or 1.0
    elif args.quick:
        args.sizes, args.rounds = ["small"], min(args.rounds, 2)
    elif not args.sizes:
        args.sizes = ["small", "large", "huge"] if args.device == "cuda" else ["small", "large"]
    if "huge" in args.sizes and args.device != "cuda":
        parser.error("--sizes huge is for --device cuda")
    set_threads(args.threads, args.device)  # before numpy/torch/jax start their pools
    run(args)


# -- timing ----------------------------------------------------------------------------------------


class Timer:
    """Times a loop of ``k`` calls: perf_counter on the CPU, CUDA events on a GPU (as the anchor benchmark)."""

    def __init__(self, device: str, warmups: int, target_ms: float | None) -> None:
        self.cuda = device == "cuda"
        if self.cuda:
            import torch

            self.torch = torch
        self.warmups, self.fixed_target_ms, self.target_s = warmups, target_ms, 0.02

    def for_size(self, size_name: str) -> Timer:
        self.target_s = (self.fixed_target_ms or TARGET_MS[size_name]) / 1e3
        return self

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def loop(self, fn, k: int) -> float:
        """Seconds per call over a loop of k calls."""
        if self.cuda:
            start = self.torch.cuda.Event(enable_timing=True)
            end = self.torch.cuda.Event(enable_timing=True)
            self.torch.cuda.synchronize()
            start.record()
            for _ in range(k):
                fn()
            end.record()
            self.torch.cuda.synchronize()
            return start.elapsed_time(end) / 1e3 / k
        return seconds_per_call(fn, k)

    def calls_per_timing(self, fn) -> int:
        """Enough calls that one timed loop lasts at least target_s (the timer's resolution then vanishes)."""
        per_call = self.loop(fn, 1)
        if per_call >= self.target_s:
            return 1
        k = max(1, math.ceil(self.target_s / max(per_call, 1e-7)))
        k = min(k, 100_000)
        per_call = self.loop(fn, min(k, 1000)) if k > 1 else per_call  # a better estimate than one call
        return min(100_000, max(1, math.ceil(self.target_s / max(per_call, 1e-7))))


def _err(ex: BaseException) -> str:
    text = " ".join(str(ex).split())
    return f"{type(ex).__name__}: {text[:300]}"


def measure(peers: dict, timer: Timer, rounds: int, ratio_pairs: list[tuple[str, str]], reference: str,
            rtol: float = RTOL) -> dict:
    """One point: warm up every peer (compiles), check them against ``reference``, then interleaved rounds.

    ``peers``: name -> callable returning (value, [gradients]) (the framework's array types), or an error
    string (a peer that could not even be set up). Peers named in UNCHECKED (the bound) are timed, not checked.
    Returns per-peer results, ratios and the check."""
    out: dict = {name: ({"error": fn} if isinstance(fn, str) else {}) for name, fn in peers.items()}
    live = {name: fn for name, fn in peers.items() if not isinstance(fn, str)}
    results = {}
    for name, fn in list(live.items()):  # warm-up: compilation, allocator, caches
        try:
            t0 = time.perf_counter()
            results[name] = fn()
            timer.sync()
            first = time.perf_counter() - t0
            for _ in range(timer.warmups - 1):
                results[name] = fn()
            timer.sync()
            out[name]["first_call_s"] = round(first, 4)
        except Exception as ex:  # one peer failing must not hide the others
            out[name]["error"] = _err(ex)
            del live[name]
    try:
        check = _check({k: v for k, v in results.items() if k not in UNCHECKED}, reference, rtol)
    except Exception as ex:  # an output the check cannot read: say so, time anyway
        check = {"reference": reference, "ok": None, "note": f"check failed: {_err(ex)}"}
    results.clear()
    calls = {}
    for name, fn in list(live.items()):
        try:
            calls[name] = timer.calls_per_timing(fn)
        except Exception as ex:
            out[name]["error"] = _err(ex)
            del live[name]
    times: dict[str, list[float]] = {name: [] for name in live}
    names = list(live)
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)] if names else []  # rotate: no fixed position
        for name in order:
            if name not in live:
                continue
            try:
                times[name].append(timer.loop(live[name], calls[name]))
            except Exception as ex:
                out[name]["error"] = _err(ex)
                del live[name]
    for name, ts in times.items():
        if name in live and ts:
            out[name].update(ms=statistics.median(ts) * 1e3, ms_rounds=[t * 1e3 for t in ts],
                             calls_per_timing=calls[name])
    ratios = {}
    for a, b in ratio_pairs:
        if "ms" in out.get(a, {}) and "ms" in out.get(b, {}):
            per_round = [x / y for x, y in zip(times[a], times[b])]
            ratios[f"{a} / {b}"] = statistics.median(per_round)
    return {"peers": out, "ratios": ratios, "check": check}


def _check(results: dict, reference: str, rtol: float = RTOL) -> dict:
    """Every peer's value and gradient against the reference peer's: relative differences, ok or not."""
    import numpy as np

    if reference not in results:
        return {"reference": reference, "ok": None, "note": "reference peer failed: nothing to compare with"}
    ref_v, ref_g = _as_numpy(results[reference])
    check: dict = {"reference": reference, "rtol": rtol, "ok": True, "peers": {}}
    for name, res in results.items():
        if name == reference:
            continue
        v, g = _as_numpy(res)
        value_rel = abs(v - ref_v) / max(abs(ref_v), 1e-30)
        grad_rel = max((float(np.max(np.abs(a - b))) / max(float(np.max(np.abs(b))), 1e-30)
                        for a, b in zip(g, ref_g)), default=0.0) if len(g) == len(ref_g) else math.inf
        ok = bool(value_rel <= rtol or abs(v - ref_v) <= 1e-7) and grad_rel <= rtol
        check["peers"][name] = {"value": v, "reference_value": ref_v, "value_rel_diff": value_rel,
                                "grad_rel_diff": grad_rel, "ok": ok}
        check["ok"] = check["ok"] and ok
    return check


def _as_numpy(res):
    import numpy as np

    value, grads = res
    to = (lambda a: a.detach().cpu().numpy()) if hasattr(value, "detach") else np.asarray
    return float(to(value).astype(np.float64)), [to(g).astype(np.float64) for g in grads]


# -- the torch section -----------------------------------------------------------------------------


def _autograd_step(fn, diff: list, rest: list):
    """Forward + backward of the mean loss as a user writes it; returns (loss, gradients) for the check."""

    def step():
        for x in diff:
            x.grad = None
        loss = fn(*diff, *rest)
        loss.backward()
        return loss, [x.grad for x in diff]

    return step


def _node_floor(torch, n_inputs: int):
    """The least a loss computed outside autograd can cost as a graph node written in Python (a
    ``torch.autograd.Function``, as losslab's torch engine uses): a node that computes nothing, its forward making
    a 0-d value and one gradient buffer per differentiable input, its backward returning them. Timed like the
    losses, forward and backward; next to torch's whole call it is the per-call cost no such engine goes below."""

    class NodeFloor(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *tensors):
            ctx.grads = tuple(torch.empty_like(x) for x in tensors)
            return tensors[0].new_zeros(())

        @staticmethod
        def backward(ctx, upstream):
            return ctx.grads

    return lambda *args: NodeFloor.apply(*args[:n_inputs])


def _direct_call(fn, plain: list, rest: list, returns_grads: bool = True):
    """A call without autograd (losslab's value_and_grad, the bound) on tensors that do not require grad."""

    def call():
        out = fn(*plain, *rest)
        if not returns_grads:
            return out, []
        value, grads = out
        return value, list(grads) if isinstance(grads, tuple) else [grads]

    return call


def _jax_call(jax, f, inputs: tuple, n_grads: int):
    """A jitted value-and-gradient call, waited for (block_until_ready); returns (value, gradients)."""

    def call():
        value, grads = jax.block_until_ready(f(*inputs))
        return value, list(grads) if n_grads > 1 else [grads]

    return call


def torch_cases(ll, torch, F) -> list[dict]:
    """Each case: the inputs (differentiable, other), losslab's call, value_and_grad, the torch peer."""

    def reg(size, g, dev):
        n = size["elements"]
        return [torch.randn(n, generator=g, device=dev)], [torch.randn(n, generator=g, device=dev) * 1.5]

    def probs(size, g, dev):
        n = size["elements"]
        p = torch.sigmoid(torch.randn(n, generator=g, device=dev) * 1.5)
        return [p], [(torch.rand(n, generator=g, device=dev) < 0.3).float()]

    def logits_binary(size, g, dev):
        n = size["elements"]
        return [torch.randn(n, generator=g, device=dev) * 2], [(torch.rand(n, generator=g, device=dev) < 0.3).float()]

    def class_idx(size, g, dev):
        n, c = size["classes"]
        return [torch.randn(n, c, generator=g, device=dev) * 2], [torch.randint(0, c, (n,), generator=g, device=dev)]

    def class_probs(size, g, dev):
        n, c = size["classes"]
        t = torch.softmax(torch.randn(n, c, generator=g, device=dev) * 2, dim=1)
        return [torch.randn(n, c, generator=g, device=dev) * 2], [t]

    def log_probs_probs(size, g, dev):
        n, c = size["classes"]
        lp = torch.log_softmax(torch.randn(n, c, generator=g, device=dev) * 2, dim=1)
        return [lp], [torch.softmax(torch.randn(n, c, generator=g, device=dev) * 2, dim=1)]

    def log_probs_idx(size, g, dev):
        n, c = size["classes"]
        lp = torch.log_softmax(torch.randn(n, c, generator=g, device=dev) * 2, dim=1)
        return [lp], [torch.randint(0, c, (n,), generator=g, device=dev)]

    def teacher_student(size, g, dev):
        n, c = size["classes"]
        return [torch.randn(n, c, generator=g, device=dev) * 2], [torch.randn(n, c, generator=g, device=dev) * 2]

    def preference(size, g, dev):  # per-sequence log-probabilities: policy chosen, rejected; reference chosen, rejected
        n = size["elements"]
        logps = [-torch.rand(n, generator=g, device=dev) * 50 for _ in range(4)]
        return logps[:2], logps[2:]

    def signs(n, g, dev):
        return torch.where(torch.rand(n, generator=g, device=dev) < 0.5, -1.0, 1.0)

    def signed_scores(size, g, dev):
        n = size["elements"]
        return [torch.randn(n, generator=g, device=dev) * 2], [signs(n, g, dev)]

    def signed_distances(size, g, dev):
        n = size["elements"]
        return [torch.rand(n, generator=g, device=dev) * 2], [signs(n, g, dev)]

    def ranked_pairs(size, g, dev):
        n = size["elements"]
        return [torch.randn(n, generator=g, device=dev), torch.randn(n, generator=g, device=dev)], [signs(n, g, dev)]

    def embedding_pairs(size, g, dev):
        n, d = size["embed"]
        return [torch.randn(n, d, generator=g, device=dev), torch.randn(n, d, generator=g, device=dev)], [signs(n, g, dev)]

    def label_matrix(size, g, dev):
        n, c = size["classes"]
        return [torch.randn(n, c, generator=g, device=dev) * 2], [(torch.rand(n, c, generator=g, device=dev) < 0.2).float()]

    def label_lists(size, g, dev):  # multilabel_margin's targets: a few class indices per row, then -1
        n, c = size["classes"]
        c = min(c, 64)  # its work grows as C^2 in torch too
        t = torch.randint(0, c, (n, c), generator=g, device=dev)
        t[:, 3:] = -1
        return [torch.randn(n, c, generator=g, device=dev)], [t]

    def log_rates(size, g, dev):
        n = size["elements"]
        return [torch.randn(n, generator=g, device=dev)], [torch.poisson(torch.full((n,), 3.0, device=dev), generator=g)]

    def mean_and_variance(size, g, dev):
        n = size["elements"]
        return ([torch.randn(n, generator=g, device=dev), torch.rand(n, generator=g, device=dev) + 0.1],
                [torch.randn(n, generator=g, device=dev)])

    def speech(size, g, dev):  # CTC: T frames of (N, C) log-probabilities, targets of a quarter of T
        n, c = size["classes"]
        frames, batch, length = min(4 * max(n // 32, 2), 200), max(n // 64, 2), max(min(n // 128, 50), 1)
        lp = torch.randn(frames, batch, min(c, 64), generator=g, device=dev)  # logits: log_softmax is in each peer
        targets = torch.randint(1, min(c, 64), (batch, length), generator=g, device=dev)
        lengths = torch.full((batch,), frames, device=dev, dtype=torch.long)
        return [lp], [targets, lengths, torch.full((batch,), length, device=dev, dtype=torch.long)]

    def ctc_from_logits(z, *rest):  # value and gradient with respect to the logits, through log_softmax
        value, g = ll.ctc.value_and_grad(torch.log_softmax(z, -1), *rest)
        return value, g - torch.softmax(z, -1) * g.sum(-1, keepdim=True)

    def distill(s, t, temperature=2.0):  # Hinton's recipe as PyTorch users write it
        return F.kl_div(F.log_softmax(s / temperature, 1), F.log_softmax(t / temperature, 1), log_target=True,
                        reduction="batchmean") * temperature**2

    def trl_dpo(pc, pr, rc, rr, beta=0.1):  # TRL's DPOTrainer, loss_type="sigmoid"
        return -F.logsigmoid(beta * ((pc - pr) - (rc - rr))).mean()

    def triplet(size, g, dev):
        n, d = size["embed"]
        return [torch.randn(n, d, generator=g, device=dev) for _ in range(3)], []

    def tv_focal(x, t, alpha=0.25, gamma=2.0):  # torchvision.ops.sigmoid_focal_loss, reduction="mean"
        p = torch.sigmoid(x)
        ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
        p_t = p * t + (1 - p) * (1 - t)
        loss = ce * ((1 - p_t) ** gamma)
        alpha_t = alpha * t + (1 - alpha) * (1 - t)
        return (alpha_t * loss).mean()

    add = (lambda x, t: torch.add(x, t), "torch.add(x, t)")
    add_idx = (lambda x, t: torch.add(x, t[:, None]), "torch.add(x, t[:, None])")

    def case(key, loss, make, ours, vg, peer, peer_name, bound=add, note="", rtol=0.0):
        # rtol: the check's tolerance where a float32 computation is less exact than RTOL for everyone (the largest
        # of it and the dtype's)
        return dict(case=key, loss=loss, make=make, ours=ours, vg=vg, peer=peer, peer_name=peer_name,
                    bound=bound[0], bound_name=bound[1], note=note, rtol=rtol)

    return [
        case("mse", "mse", reg, ll.mse, ll.mse.value_and_grad, F.mse_loss, "F.mse_loss"),
        case("mae", "mae", reg, ll.mae, ll.mae.value_and_grad, F.l1_loss, "F.l1_loss"),
        case("huber", "huber", reg, lambda x, t: ll.huber(x, t, delta=1.0),
             lambda x, t: ll.huber.value_and_grad(x, t, delta=1.0),
             lambda x, t: F.huber_loss(x, t, delta=1.0), "F.huber_loss(delta=1)"),
        case("smooth_l1", "smooth_l1", reg, lambda x, t: ll.smooth_l1(x, t, beta=1.0),
             lambda x, t: ll.smooth_l1.value_and_grad(x, t, beta=1.0),
             lambda x, t: F.smooth_l1_loss(x, t, beta=1.0), "F.smooth_l1_loss(beta=1)"),
        case("binary_cross_entropy", "binary_cross_entropy", probs, ll.binary_cross_entropy,
             ll.binary_cross_entropy.value_and_grad, F.binary_cross_entropy, "F.binary_cross_entropy"),
        case("binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits", logits_binary,
             ll.binary_cross_entropy_with_logits, ll.binary_cross_entropy_with_logits.value_and_grad,
             F.binary_cross_entropy_with_logits, "F.binary_cross_entropy_with_logits"),
        case("focal", "focal", logits_binary, lambda x, t: ll.focal(x, t, alpha=0.25, gamma=2.0),
             lambda x, t: ll.focal.value_and_grad(x, t, alpha=0.25, gamma=2.0), tv_focal,
             "torchvision formula (sigmoid_focal_loss in torch ops, alpha .25, gamma 2, mean)"),
        case("kl_div", "kl_div", log_probs_probs, lambda x, t: ll.kl_div(x, t, reduction="batchmean"),
             lambda x, t: ll.kl_div.value_and_grad(x, t, reduction="batchmean"),
             lambda x, t: F.kl_div(x, t, reduction="batchmean"), 'F.kl_div(reduction="batchmean")'),
        case("cross_entropy", "cross_entropy", class_idx, ll.cross_entropy, ll.cross_entropy.value_and_grad,
             F.cross_entropy, "F.cross_entropy (int64 class indices)", bound=add_idx),
        case("cross_entropy(probs)", "cross_entropy", class_probs, ll.cross_entropy, ll.cross_entropy.value_and_grad,
             F.cross_entropy, "F.cross_entropy (probability targets)"),
        case("cross_entropy(ls=0.1)", "cross_entropy", class_idx, lambda x, t: ll.cross_entropy(x, t, label_smoothing=0.1),
             lambda x, t: ll.cross_entropy.value_and_grad(x, t, label_smoothing=0.1),
             lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1), "F.cross_entropy(label_smoothing=0.1)",
             bound=add_idx),
        case("nll", "nll", log_probs_idx, ll.nll, ll.nll.value_and_grad, F.nll_loss, "F.nll_loss (log_softmax inputs)",
             bound=add_idx),
        case("multiclass_hinge", "multiclass_hinge", class_idx, ll.multiclass_hinge, ll.multiclass_hinge.value_and_grad,
             F.multi_margin_loss, "F.multi_margin_loss", bound=add_idx),
        case("soft_margin", "soft_margin", signed_scores, ll.soft_margin, ll.soft_margin.value_and_grad,
             F.soft_margin_loss, "F.soft_margin_loss"),
        case("hinge_embedding", "hinge_embedding", signed_distances, ll.hinge_embedding, ll.hinge_embedding.value_and_grad,
             F.hinge_embedding_loss, "F.hinge_embedding_loss"),
        case("margin_ranking", "margin_ranking", ranked_pairs, lambda a, b, t: ll.margin_ranking(a, b, t, margin=0.1),
             lambda a, b, t: ll.margin_ranking.value_and_grad(a, b, t, margin=0.1),
             lambda a, b, t: F.margin_ranking_loss(a, b, t, margin=0.1), "F.margin_ranking_loss(margin=0.1)",
             bound=(lambda a, b, t: (a.clone(), b.clone()), "a.clone(), b.clone()")),
        case("cosine_embedding", "cosine_embedding", embedding_pairs, ll.cosine_embedding, ll.cosine_embedding.value_and_grad,
             F.cosine_embedding_loss, "F.cosine_embedding_loss",
             bound=(lambda a, b, t: (a.clone(), b.clone()), "a.clone(), b.clone()")),
        case("multilabel_soft_margin", "multilabel_soft_margin", label_matrix, ll.multilabel_soft_margin,
             ll.multilabel_soft_margin.value_and_grad, F.multilabel_soft_margin_loss, "F.multilabel_soft_margin_loss"),
        case("multilabel_margin", "multilabel_margin", label_lists, ll.multilabel_margin, ll.multilabel_margin.value_and_grad,
             F.multilabel_margin_loss, "F.multilabel_margin_loss (C capped at 64, 3 targets per row)",
             bound=(lambda x, t: x.clone(), "x.clone()")),
        case("poisson_nll", "poisson_nll", log_rates, ll.poisson_nll, ll.poisson_nll.value_and_grad, F.poisson_nll_loss,
             "F.poisson_nll_loss (log_input)"),
        case("gaussian_nll", "gaussian_nll", mean_and_variance, lambda m, v, t: ll.gaussian_nll(m, t, v),
             lambda m, v, t: ll.gaussian_nll.value_and_grad(m, t, v), lambda m, v, t: F.gaussian_nll_loss(m, t, v),
             "F.gaussian_nll_loss (gradients for the mean and the variance)",
             bound=(lambda m, v, t: (m.clone(), v.clone()), "m.clone(), v.clone()")),
        case("triplet_margin_with_distance(cosine)", "triplet_margin_with_distance", triplet,
             lambda a, p, n: ll.triplet_margin_with_distance(a, p, n, distance_function="cosine"),
             lambda a, p, n: ll.triplet_margin_with_distance.value_and_grad(a, p, n, distance_function="cosine"),
             lambda a, p, n: F.triplet_margin_with_distance_loss(a, p, n, distance_function=lambda x, y: 1 - F.cosine_similarity(x, y)),
             "F.triplet_margin_with_distance_loss(1 - cosine_similarity)",
             bound=(lambda a, p, n: (a.clone(), p.clone(), n.clone()), "a.clone(), p.clone(), n.clone()")),
        case("ctc", "ctc", speech, lambda z, *r: ll.ctc(torch.log_softmax(z, -1), *r), ctc_from_logits,
             lambda z, *r: F.ctc_loss(torch.log_softmax(z, -1), *r),
             "F.ctc_loss(log_softmax(logits)): a CTC step from logits (torch's gradient in log-probabilities is not the "
             "true derivative, so both go through log_softmax)",
             bound=(lambda lp, *rest: lp.clone(), "lp.clone()"),
             # 200 frames of float32 recursions: torch's and losslab's gradients both lie 1.5e-4 (relative norm) from
             # the float64 one at the large size, and 1.3e-4 from each other by the check's measure
             rtol=3e-4),
        case("distill_kl", "distill_kl", teacher_student, lambda s, t: ll.distill_kl(s, t, temperature=2.0),
             lambda s, t: ll.distill_kl.value_and_grad(s, t, temperature=2.0), distill,
             "F.kl_div(log_softmax(s/T), log_softmax(t/T), log_target=True, 'batchmean') * T^2, T = 2"),
        case("dpo", "dpo", preference, ll.dpo, ll.dpo.value_and_grad, trl_dpo,
             "TRL's sigmoid DPO in torch ops (-logsigmoid(beta D)).mean(), beta 0.1 (gradients for chosen, rejected)",
             bound=(lambda pc, pr, rc, rr: (pc.clone(), pr.clone()), "pc.clone(), pr.clone()")),
        case("triplet_margin", "triplet_margin", triplet, ll.triplet_margin, ll.triplet_margin.value_and_grad,
             F.triplet_margin_loss, "F.triplet_margin_loss (gradients for anchor, positive, negative)",
             bound=(lambda a, p, n: (a.clone(), p.clone(), n.clone()), "a.clone(), p.clone(), n.clone()")),
    ]


def run_torch(args, rows: list, timer: Timer) -> None:
    import torch
    import torch.nn.functional as F

    import losslab as ll

    dev = args.device
    cases = [c for c in torch_cases(ll, torch, F) if not args.losses or {c["case"], c["loss"]} & set(args.losses)]
    ratio_pairs = [("losslab", "torch eager"), ("losslab", "torch.compile"),
                   ("losslab value_and_grad", "torch eager"), ("losslab value_and_grad", "torch.compile"),
                   ("bound", "losslab"), ("bound", "losslab value_and_grad"), ("node floor", "torch eager"),
                   ("losslab", "node floor"),
                   ("losslab value_and_grad", TORCH_OPS_PEER)]
    print(f"\n== torch ({dev}): forward + backward of the mean loss, {args.dtype}; ms per call, median of "
          f"{args.rounds} round(s) ==", flush=True)
    for size_name in args.sizes:
        for c in cases:
            gc.collect()
            row = {"section": "torch", "device": dev, "case": c["case"], "loss": c["loss"], "size": size_name,
                   "peer": c["peer_name"], "bound_op": c["bound_name"]}
            if _over_budget(args, row):
                rows.append(row)
                continue
            try:
                row.update(_torch_point(args, c, size_name, timer.for_size(size_name), ratio_pairs))
            except Exception as ex:
                row["error"] = _err(ex)
                traceback.print_exc()
            if dev == "cuda":
                torch.cuda.empty_cache()  # the point's tensors died with _torch_point
            rows.append(row)
            _print_row(row)
    torch._dynamo.reset()


TORCH_OPS_PEER = "losslab value_and_grad, torch operations"


def _with_half_in_torch_ops(fn):
    """``fn`` with the torch engine's CPU_HALF_IN_NUMPY off: half-precision CPU tensors evaluated by the definitions
    in torch operations (the path of CUDA tensors) instead of the NumPy engine on float32 copies."""
    from losslab._xp import overriding
    from losslab.torch import _function

    def call(*args):
        with overriding(_function, "CPU_HALF_IN_NUMPY", False):
            return fn(*args)

    return call


def _over_budget(args, row: dict) -> bool:
    """True, with the row marked skipped, once the run's --budget-s is spent (the row is still reported)."""
    if args.deadline is None or time.perf_counter() < args.deadline:
        return False
    row["error"] = f"skipped: the run's --budget-s {args.budget_s:g} s was spent"
    print(f"{row['case']:34s} {row['size']:6s} {row['error']}", flush=True)
    return True


def _torch_point(args, c: dict, size_name: str, timer: Timer, ratio_pairs: list) -> dict:
    """One loss at one size: inputs, peers, the check, the timings and (CUDA) peak memory."""
    import torch

    dev = args.device
    g = torch.Generator(device=dev).manual_seed(0)
    diff, rest = c["make"](SIZES[size_name], g, dev)
    if args.dtype != "float32":  # the floating inputs only (class indices stay integers)
        diff, rest = ([x.to(getattr(torch, args.dtype)) if x.is_floating_point() else x for x in xs] for xs in (diff, rest))
    diff = [x.requires_grad_() for x in diff]
    plain = [x.detach() for x in diff]
    peers = {"torch eager": _autograd_step(c["peer"], diff, rest),
             "losslab": _autograd_step(c["ours"], diff, rest),
             "losslab value_and_grad": _direct_call(c["vg"], plain, rest),
             "bound": _direct_call(c["bound"], plain, rest, returns_grads=False),
             "node floor": _autograd_step(_node_floor(torch, len(diff)), diff, rest)}
    if dev == "cpu" and args.dtype != "float32":  # the engine's rule for half precision on the CPU, side by side
        peers[TORCH_OPS_PEER] = _direct_call(_with_half_in_torch_ops(c["vg"]), plain, rest)
    if args.smoke or args.no_compile:
        peers["torch.compile"] = f"skipped ({'--smoke' if args.smoke else '--no-compile'})"
    else:
        try:
            # a fresh start for each point: torch.compile wraps every torch function in the same code
            # object, whose recompile limit (8) would otherwise send the later cases to eager
            torch._dynamo.reset()
            peers["torch.compile"] = _autograd_step(torch.compile(c["peer"], dynamic=False), diff, rest)
        except Exception as ex:
            peers["torch.compile"] = _err(ex)
    point = {"shape": list(diff[0].shape), "elements": int(diff[0].numel())}
    point.update(measure(peers, timer, args.rounds, ratio_pairs, reference="torch eager",
                         rtol=max(RTOL_OF[args.dtype], c["rtol"])))
    ratios = point["ratios"]
    for name in ("losslab", "losslab value_and_grad"):  # bound ms / losslab ms, per round: 100 % = the least traffic
        if f"bound / {name}" in ratios:
            ratios[f"{name} % of bound"] = 100 * ratios.pop(f"bound / {name}")
    if dev == "cuda":
        mem = {}
        for name in ("losslab", "losslab value_and_grad", "torch eager", "torch.compile"):
            if callable(peers[name]) and "ms" in point["peers"][name]:
                for x in diff:
                    x.grad = None  # the gradient the call makes counts as extra memory
                try:
                    mem[name] = round(peak_extra_bytes(peers[name]) / 2**20, 2)
                except Exception as ex:
                    mem[name] = _err(ex)
        point["peak_extra_mib"] = mem
    return point


# -- the JAX section -------------------------------------------------------------------------------


def jax_cases(ll, jax, jnp, optax) -> tuple[list[dict], list[str]]:
    L = optax.losses

    def reg(key, size):
        n = size["elements"]
        k1, k2 = jax.random.split(key)
        return [jax.random.normal(k1, (n,))], [jax.random.normal(k2, (n,)) * 1.5]

    def binary(key, size):
        n = size["elements"]
        k1, k2 = jax.random.split(key)
        return [jax.random.normal(k1, (n,)) * 2], [(jax.random.uniform(k2, (n,)) < 0.3).astype(jnp.float32)]

    def signed(key, size):
        n = size["elements"]
        k1, k2 = jax.random.split(key)
        return [jax.random.normal(k1, (n,))], [jnp.where(jax.random.uniform(k2, (n,)) < 0.5, -1.0, 1.0)]

    def class_idx(key, size):
        n, c = size["classes"]
        k1, k2 = jax.random.split(key)
        return [jax.random.normal(k1, (n, c)) * 2], [jax.random.randint(k2, (n,), 0, c)]

    def class_probs(key, size):
        n, c = size["classes"]
        k1, k2 = jax.random.split(key)
        return [jax.random.normal(k1, (n, c)) * 2], [jax.nn.softmax(jax.random.normal(k2, (n, c)) * 2, axis=1)]

    def log_probs(key, size, log_target=False):
        n, c = size["classes"]
        k1, k2 = jax.random.split(key)
        t = jax.random.normal(k2, (n, c)) * 2
        t = jax.nn.log_softmax(t, axis=1) if log_target else jax.nn.softmax(t, axis=1)
        return [jax.nn.log_softmax(jax.random.normal(k1, (n, c)) * 2, axis=1)], [t]

    def triplet(key, size):
        n, d = size["embed"]
        return [jax.random.normal(k, (n, d)) for k in jax.random.split(key, 3)], []

    def views(key, size):  # NT-Xent: a batch of pairs of views (labels 0, 0, 1, 1, ...), at most 2048 (N^2 work)
        n, d = size["embed"]
        n = min(n, 2048)
        return [jax.random.normal(key, (n, d))], [jnp.arange(n) // 2]

    def case(key, loss, make, ours, vg, peer, peer_name, note=""):
        return dict(case=key, loss=loss, make=make, ours=ours, vg=vg, peer=peer, peer_name=peer_name, note=note)

    cases = [
        case("mse", "mse", reg, ll.mse, ll.mse.value_and_grad, lambda x, t: L.squared_error(x, t).mean(),
             "optax.losses.squared_error(x, t).mean()", "not l2_loss: that is half the squared error"),
        case("huber", "huber", reg, lambda x, t: ll.huber(x, t, delta=1.0),
             lambda x, t: ll.huber.value_and_grad(x, t, delta=1.0),
             lambda x, t: L.huber_loss(x, t, delta=1.0).mean(), "optax.losses.huber_loss(delta=1).mean()"),
        case("log_cosh", "log_cosh", reg, ll.log_cosh, ll.log_cosh.value_and_grad, lambda x, t: L.log_cosh(x, t).mean(),
             "optax.losses.log_cosh(x, t).mean()"),
        case("binary_cross_entropy_with_logits", "binary_cross_entropy_with_logits", binary,
             ll.binary_cross_entropy_with_logits, ll.binary_cross_entropy_with_logits.value_and_grad,
             lambda x, t: L.sigmoid_binary_cross_entropy(x, t).mean(), "optax.losses.sigmoid_binary_cross_entropy"),
        case("focal", "focal", binary, lambda x, t: ll.focal(x, t, alpha=0.25, gamma=2.0),
             lambda x, t: ll.focal.value_and_grad(x, t, alpha=0.25, gamma=2.0),
             lambda x, t: L.sigmoid_focal_loss(x, t, alpha=0.25, gamma=2.0).mean(),
             "optax.losses.sigmoid_focal_loss(alpha=.25, gamma=2)"),
        case("hinge", "hinge", signed, ll.hinge, ll.hinge.value_and_grad, lambda x, t: L.hinge_loss(x, t).mean(),
             "optax.losses.hinge_loss (targets -1/+1)"),
        case("cross_entropy", "cross_entropy", class_idx, ll.cross_entropy, ll.cross_entropy.value_and_grad,
             lambda x, t: L.softmax_cross_entropy_with_integer_labels(x, t).mean(),
             "optax.losses.softmax_cross_entropy_with_integer_labels (int class indices)"),
        case("cross_entropy(probs)", "cross_entropy", class_probs, ll.cross_entropy, ll.cross_entropy.value_and_grad,
             lambda x, t: L.softmax_cross_entropy(x, t).mean(), "optax.losses.softmax_cross_entropy (probability targets)"),
        case("cross_entropy(ls=0.1)", "cross_entropy", class_idx,
             lambda x, t: ll.cross_entropy(x, t, label_smoothing=0.1),
             lambda x, t: ll.cross_entropy.value_and_grad(x, t, label_smoothing=0.1),
             lambda x, t: L.softmax_cross_entropy(x, L.smooth_labels(jax.nn.one_hot(t, x.shape[-1]), 0.1)).mean(),
             "optax.losses.softmax_cross_entropy(x, optax.losses.smooth_labels(one_hot(t), 0.1))"),
        case("kl_div", "kl_div", log_probs, lambda x, t: ll.kl_div(x, t, reduction="batchmean"),
             lambda x, t: ll.kl_div.value_and_grad(x, t, reduction="batchmean"),
             lambda x, t: L.kl_divergence(x, t).mean(), "optax.losses.kl_divergence(log_probs, targets).mean()",
             "same argument order (log-probabilities, then target probabilities) and quantity KL(t || p); Optax "
             "sums over the class axis, so its .mean() over rows is losslab's reduction='batchmean' (the default "
             "'mean' would also divide by C)"),
        case("kl_div(log_target)", "kl_div", lambda key, size: log_probs(key, size, log_target=True),
             lambda x, t: ll.kl_div(x, t, log_target=True, reduction="batchmean"),
             lambda x, t: ll.kl_div.value_and_grad(x, t, log_target=True, reduction="batchmean"),
             lambda x, t: L.kl_divergence_with_log_targets(x, t).mean(),
             "optax.losses.kl_divergence_with_log_targets(log_probs, log_targets).mean()",
             "as kl_div, targets as log-probabilities (losslab log_target=True)"),
        case("triplet_margin", "triplet_margin", triplet, ll.triplet_margin, ll.triplet_margin.value_and_grad,
             lambda a, p, n: L.triplet_margin_loss(a, p, n).mean(),
             "optax.losses.triplet_margin_loss (gradients for anchor, positive, negative)",
             "eps enters differently: losslab/torch ||a - p + eps||_2, Optax (sum (a - p)^2 + eps)^(1/2), "
             "eps = 1e-6: the values agree to ~1e-6 (see the check column)"),
        case("ntxent", "ntxent", views, ll.ntxent, ll.ntxent.value_and_grad, L.ntxent,
             "optax.losses.ntxent (temperature 0.07, pairs of views)"),
    ]
    unpaired = [
        "optax.losses.l2_loss: 0.5 * squared error, half of mse: paired mse with squared_error instead",
        "optax.losses.multiclass_hinge_loss: Crammer-Singer max_j(s_j + [j != y]) - s_y; losslab's multiclass_hinge "
        "(torch's multi_margin_loss) sums the violations over classes / C: a different loss, not timed",
        "optax.losses.safe_softmax_cross_entropy: softmax_cross_entropy with 0 log 0 = 0 at -inf logits; "
        "the same value for finite logits, not timed separately",
        "optax.losses.generalized_kl_divergence / convex_kl_divergence: KL plus sum(exp(x) - t), not losslab's kl_div",
        "no Optax peer for mae, smooth_l1, quantile, binary_cross_entropy (on probabilities), nll, squared_hinge, "
        "contrastive, info_nce, siglip, multiclass_hinge",
    ]
    return cases, unpaired


def run_jax(args, rows: list, notes: list) -> None:
    import jax
    import jax.numpy as jnp
    import optax

    import losslab as ll

    jax.config.update("jax_enable_x64", False)
    cases, unpaired = jax_cases(ll, jax, jnp, optax)
    notes.extend(f"JAX, unpaired: {u}" for u in unpaired)
    cases = [c for c in cases if not args.losses or {c["case"], c["loss"]} & set(args.losses)]

    timer = Timer("host", warmups=1 if args.smoke else 2, target_ms=args.target_ms)  # calls end in block_until_ready
    ratio_pairs = [("losslab", "optax"), ("losslab value_and_grad", "optax")]
    backend = jax.default_backend()
    print(f"\n== JAX ({backend}): jit(value_and_grad(mean loss)), float32; ms per call, median of "
          f"{args.rounds} round(s) ==", flush=True)
    for size_name in [s for s in args.sizes if s != "huge" or backend == "gpu"]:
        for c in cases:
            gc.collect()
            row = {"section": "jax", "device": backend, "case": c["case"], "loss": c["loss"], "size": size_name,
                   "peer": c["peer_name"]}
            if c["note"]:
                row["note"] = c["note"]
            if _over_budget(args, row):
                rows.append(row)
                continue
            try:
                row.update(_jax_point(jax, c, size_name, timer.for_size(size_name), args.rounds, ratio_pairs))
            except Exception as ex:
                row["error"] = _err(ex)
                traceback.print_exc()
            rows.append(row)
            _print_row(row)


def _jax_point(jax, c: dict, size_name: str, timer: Timer, rounds: int, ratio_pairs: list) -> dict:
    """One loss at one size: jit(value_and_grad) of losslab's and of Optax's loss, jit(ll.value_and_grad)."""
    diff, rest = c["make"](jax.random.PRNGKey(0), SIZES[size_name])
    inputs, n = (*diff, *rest), len(diff)
    argnums = tuple(range(n)) if n > 1 else 0  # gradients for every embedding input of triplet_margin
    peers = {"optax": _jax_call(jax, jax.jit(jax.value_and_grad(c["peer"], argnums=argnums)), inputs, n),
             "losslab": _jax_call(jax, jax.jit(jax.value_and_grad(c["ours"], argnums=argnums)), inputs, n),
             "losslab value_and_grad": _jax_call(jax, jax.jit(c["vg"]), inputs, n)}
    point = {"shape": list(diff[0].shape), "elements": math.prod(diff[0].shape)}
    point.update(measure(peers, timer, rounds, ratio_pairs, reference="optax"))
    return point


# -- output ----------------------------------------------------------------------------------------


def _ms(peer: dict) -> str:
    if "ms" in peer:
        return f"{peer['ms']:.4g}"
    if "error" in peer:
        return "skipped" if peer["error"].startswith("skipped") else "error"
    return "-"


def _print_row(row: dict) -> None:
    if "error" in row:
        print(f"{row['case']:34s} {row['size']:6s} ERROR {row['error']}", flush=True)
        return
    p, r = row["peers"], row["ratios"]
    if row["section"] == "torch":
        line = (f"{row['case']:34s} {row['size']:6s} {row['elements']:>11,d}  losslab {_ms(p['losslab']):>9s}  "
                f"v&g {_ms(p['losslab value_and_grad']):>9s}  eager {_ms(p['torch eager']):>9s}  "
                f"compile {_ms(p['torch.compile']):>9s} ms   losslab/eager {r.get('losslab / torch eager', math.nan):5.2f}  "
                f"losslab/compile {r.get('losslab / torch.compile', math.nan):5.2f}  "
                f"v&g/eager {r.get('losslab value_and_grad / torch eager', math.nan):5.2f}  "
                f"floor/eager {r.get('node floor / torch eager', math.nan):5.2f}")
        if "peak_extra_mib" in row:
            line += f"  MiB {row['peak_extra_mib']}"
    else:
        line = (f"{row['case']:34s} {row['size']:6s} {row['elements']:>11,d}  losslab {_ms(p['losslab']):>9s}  "
                f"v&g {_ms(p['losslab value_and_grad']):>9s}  optax {_ms(p['optax']):>9s} ms   "
                f"losslab/optax {r.get('losslab / optax', math.nan):5.2f}  "
                f"v&g/optax {r.get('losslab value_and_grad / optax', math.nan):5.2f}")
    print(line, flush=True)
    for name, peer in p.items():
        if "error" in peer and not peer["error"].startswith("skipped"):
            print(f"    {name}: {peer['error']}", flush=True)
    check = row.get("check") or {}
    for name, c in (check.get("peers") or {}).items():
        if not c["ok"]:
            print(f"    WARNING: {name} does not compute what {check['reference']} does: value {c['value']:.8g} vs "
                  f"{c['reference_value']:.8g} (rel. diff {c['value_rel_diff']:.2e}), gradient rel. diff "
                  f"{c['grad_rel_diff']:.2e} (rtol {check['rtol']})", flush=True)


def environment(args) -> dict:
    import numpy as np
    import torch

    import losslab

    versions = module_versions({"python": platform.python_version(), "numpy": np.__version__,
                                "torch": torch.__version__, "losslab": losslab.__version__},
                               ("jax", "jaxlib", "optax", "numba", "triton"))
    meta = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "device": args.device,
            "cpu": cpu_model(), "cores": os.cpu_count(), "threads": args.threads, "machine": platform.machine(),
            "os": platform.platform(), "versions": versions, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "sizes": {s: SIZES[s] for s in args.sizes}, "rounds": args.rounds,
            "target_ms": {s: args.target_ms or TARGET_MS[s] for s in args.sizes},
            "mode": "smoke" if args.smoke else "quick" if args.quick else "full",
            "dtype": args.dtype,
            "what": f"mean loss + gradient w.r.t. the predictions, {args.dtype}; ms per call, median over rounds; "
                    "ratios per round, then median"}
    if args.device == "cuda":
        meta["gpu"] = torch.cuda.get_device_name()
    meta["git"] = _git_state()
    meta["load_average_start"] = _load_average()  # other work on the machine shows here: a run to repeat
    return meta


def _load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _git_state() -> dict | None:
    """The commit measured, and whether src/ had uncommitted changes (losslab is what is being timed)."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=root, capture_output=True,
                               text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if commit.returncode != 0:
        return None
    return {"commit": commit.stdout.strip(), "src_uncommitted_changes": bool(dirty.stdout.strip())}


def _clean(obj):
    """JSON without NaN/Infinity (not JSON): such numbers become null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def _fmt(v, digits=3) -> str:
    return "" if v is None else f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def _check_text(row: dict) -> str:
    check = row.get("check") or {}
    if check.get("ok") is None:
        return check.get("note", "")
    bad = [f"WARNING {n}: value rel. diff {c['value_rel_diff']:.1e}, grad {c['grad_rel_diff']:.1e}"
           for n, c in check["peers"].items() if not c["ok"]]
    return "; ".join(bad) if bad else "ok"


def _table_body(align: str, rows: list, line) -> list[str]:
    """A Markdown table's alignment line, then one line per point: ``line(r)`` where it was measured; where
    it failed, its error in the first timing column and the other cells empty."""
    empty = " |" * (align.count("|") - 5)  # the columns after the error's
    return [align] + [f"| {r['case']} | {r['size']} | | error: {r['error']} |{empty}" if "error" in r else line(r)
                      for r in rows]


def _torch_table_line(r: dict) -> str:
    p, q = r["peers"], r["ratios"]
    mem = r.get("peak_extra_mib")
    mem_text = " / ".join(_fmt(mem.get(n)) for n in ("losslab", "losslab value_and_grad", "torch eager",
                                                        "torch.compile")) if mem else "n/a (CUDA only)"
    return (f"| {r['case']} | {r['size']} | {'x'.join(map(str, r['shape']))} | {_ms(p['losslab'])} "
            f"| {_ms(p['losslab value_and_grad'])} | {_ms(p['torch eager'])} | {_ms(p['torch.compile'])} "
            f"| {_fmt(q.get('losslab / torch eager'))} | {_fmt(q.get('losslab / torch.compile'))} "
            f"| {_fmt(q.get('losslab value_and_grad / torch eager'))} "
            f"| {_fmt(q.get('losslab value_and_grad / torch.compile'))} | {_ms(p['bound'])} "
            f"| {_fmt(q.get('losslab % of bound'))} | {_fmt(q.get('node floor / torch eager'))} | {mem_text} "
            f"| {_check_text(r)} | {r['peer']} |")


def _jax_table_line(r: dict) -> str:
    p, q = r["peers"], r["ratios"]
    return (f"| {r['case']} | {r['size']} | {'x'.join(map(str, r['shape']))} | {_ms(p['losslab'])} "
            f"| {_ms(p['losslab value_and_grad'])} | {_ms(p['optax'])} | {_fmt(q.get('losslab / optax'))} "
            f"| {_fmt(q.get('losslab value_and_grad / optax'))} | {_check_text(r)} | {r['peer']} |")


def markdown(meta: dict, rows: list, notes: list) -> str:
    where = meta.get("gpu") or meta["cpu"]
    lines = [f"# losslab on framework arrays vs the frameworks' losses ({meta['device']}), {meta['date'][:10]}", "",
             f"{where}, {meta['cores']} cores, {meta['threads']} threads; "
             + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
             + (f"; losslab at {meta['git']['commit'][:10]}"
                + (" + uncommitted changes to src/" if meta["git"]["src_uncommitted_changes"] else "")
                if meta.get("git") else ""), "",
             f"Load average (1, 5, 15 min) at the start {meta['load_average_start']}, at the end "
             f"{meta.get('load_average_end')} (well above 0 at the start: other work shared the machine).", "",
             f"{meta['what']}; {meta['rounds']} round(s), each timing a loop of calls lasting at least "
             + ", ".join(f"{v:g} ms ({k})" for k, v in meta["target_ms"].items()) + ". "
             "Ratios < 1: losslab is faster.", ""]
    torch_rows = [r for r in rows if r["section"] == "torch"]
    if torch_rows:
        lines += ["## PyTorch: `loss = ll.<name>(x, t); loss.backward()` vs `torch.nn.functional`", "",
                  "| loss | size | shape | losslab ms | losslab value_and_grad ms | torch eager ms | torch.compile ms "
                  "| losslab / eager | losslab / compile | value_and_grad / eager | value_and_grad / compile "
                  "| bound ms | losslab % of bound | node floor / eager "
                  "| peak extra MiB (losslab / v&g / eager / compile) | check | torch peer |",
                  *_table_body("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---|",
                               torch_rows, _torch_table_line)]
        errors = {(r["case"], n, p["error"]) for r in torch_rows if "peers" in r for n, p in r["peers"].items()
                  if "error" in p and not p["error"].startswith("skipped")}
        if errors:
            lines += ["", "Errors:", ""] + [f"- {c}, {n}: {e}" for c, n, e in sorted(errors)]
        half = [r for r in torch_rows if f"losslab value_and_grad / {TORCH_OPS_PEER}" in r.get("ratios", {})]
        if half:
            lines += ["", "### Half precision on the CPU: the NumPy engine on float32 copies (the default) against the "
                      "definitions in torch operations (`CPU_HALF_IN_NUMPY` off), value_and_grad", "",
                      "| loss | size | NumPy engine, float32 ms | torch operations ms | ratio |", "|---|---|---:|---:|---:|"]
            lines += [f"| {r['case']} | {r['size']} | {_ms(r['peers']['losslab value_and_grad'])} "
                      f"| {_ms(r['peers'][TORCH_OPS_PEER])} "
                      f"| {_fmt(r['ratios'][f'losslab value_and_grad / {TORCH_OPS_PEER}'])} |" for r in half]
    jax_rows = [r for r in rows if r["section"] == "jax"]
    if jax_rows:
        lines += ["", "## JAX: `jax.jit(jax.value_and_grad(lambda x, t: ll.<name>(x, t)))` vs the same of Optax", "",
                  "| loss | size | shape | losslab ms | jit(ll.value_and_grad) ms | Optax ms | losslab / Optax "
                  "| value_and_grad / Optax | check | Optax peer |",
                  *_table_body("|---|---|---|---:|---:|---:|---:|---:|---|---|", jax_rows, _jax_table_line)]
        case_notes = {r["case"]: r["note"] for r in jax_rows if r.get("note")}
        lines += [""] + [f"- {c}: {n}" for c, n in case_notes.items()]
    lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def run(args) -> None:
    import numpy as np  # noqa: F401  (after the thread variables are set)
    import torch

    import losslab as ll

    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device")
    torch.set_num_threads(args.threads)
    ll.set_num_threads(args.threads)
    meta = environment(args)
    print(json.dumps({k: meta[k] for k in ("date", "device", "cpu", "threads", "versions")}), flush=True)
    rows: list[dict] = []
    notes = [
        "torch rows: `x.requires_grad_(); loss = fn(x, t); loss.backward()` with x.grad set to None before each "
        "call; losslab value_and_grad on the same tensors detached (no autograd); torch.compile(fn, dynamic=False) "
        "of the eager peer's function (static shapes, as a fixed batch gets), compiled afresh for each point in "
        "the warm-up (first_call_s in the JSON)",
        "bound: reads every input once and writes one gradient-sized output (torch.add(x, t); three clones for "
        "triplet_margin): the least memory traffic of a fused value + gradient pass; % of bound = bound ms / "
        "losslab ms",
        "node floor: a torch.autograd.Function that computes nothing (its forward makes a 0-d value and the "
        "gradient buffers, its backward returns them), timed like the losses: what a loss computed outside "
        "autograd and handed to it through a Python graph node (losslab's torch engine) cannot go below; "
        "node floor / eager is that cost over torch's whole call",
        f"check: before timing, each peer's value and gradient against the framework's (torch eager / Optax), "
        f"rtol {RTOL_OF[args.dtype]} ({args.dtype}; JAX: {RTOL}; ctc: 3e-4, its float32 gradients, torch's and "
        "losslab's alike, lying 1.5e-4 from the float64 one over 200 frames); a WARNING marks a pair that does not "
        "compute the same quantity",
        "JAX rows: targets are jit arguments (as in a training step), not closed-over constants",
    ]
    if args.device == "cpu":
        notes.append(MEMORY_NOTE_CPU)
    timer = Timer(args.device, warmups=1 if args.smoke else (3 if args.device == "cuda" else 2), target_ms=args.target_ms)
    start = time.perf_counter()
    args.deadline = None if args.budget_s is None else start + args.budget_s
    if args.budget_s is not None:
        meta["budget_s"] = args.budget_s
        notes.append(f"run with --budget-s {args.budget_s:g}: points reached after it was spent are marked skipped")
    if args.no_compile:
        notes.append("run with --no-compile: no torch.compile peer")
    run_torch(args, rows, timer)
    use_jax = args.jax
    if use_jax is None:
        use_jax = args.device == "cpu" and args.dtype == "float32"
    if use_jax:
        try:
            import jax  # noqa: F401
            import optax  # noqa: F401
        except ImportError as ex:
            notes.append(f"JAX section skipped: {_err(ex)}")
            print(notes[-1])
        else:
            run_jax(args, rows, notes)
    meta["duration_s"] = round(time.perf_counter() - start, 1)
    meta["load_average_end"] = _load_average()
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = {"smoke": "-smoke", "quick": "-quick"}.get(meta["mode"], "")
    if args.dtype != "float32":
        suffix = f"-{args.dtype}{suffix}"
    stem = args.out / f"torch_losses-{args.device}-{meta['date'][:10]}{suffix}"
    stem.with_suffix(".json").write_text(json.dumps(_clean({"meta": meta, "notes": notes, "rows": rows}), indent=1))
    stem.with_suffix(".md").write_text(markdown(meta, rows, notes))
    print(f"\nwrote {stem}.json and .md ({meta['duration_s']} s)")


if __name__ == "__main__":
    main()
