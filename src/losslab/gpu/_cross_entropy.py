"""Fused cross-entropy on the GPU: argument checks -> launcher -> autograd.Function.

The forward kernel writes the gradient while the row is at hand, so forward + backward read the
logits about once from memory and write the gradient once; the backward pass only rescales when the
upstream gradient is not 1, and finds that out on the device (no host synchronisation).

How rows are laid on programs (the kernel variant, columns per step, warps, rows per program, number
of programs) is a ``LaunchConfig``: from the measured table ``launch_table.json`` beside this file
(written by benchmarks/gpu_sweep.py on a GPU) where it has an entry for the dtype and C, else from
``default_config``'s heuristic; tests and the sweep force one with ``_config=``.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from .. import _checks as check
from ..registry import get
from ..torch._softmax_ce import mean_scale

MAX_BLOCK = 8192  # columns per step of the row loop (a power of 2)
HALF_AND_SINGLE = (torch.float16, torch.bfloat16, torch.float32)


def interpreting() -> bool:
    """Triton's CPU interpreter (TRITON_INTERPRET=1) runs the kernels on CPU tensors, for tests."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _on_kernel_device(name: str, x: torch.Tensor) -> None:
    if x.device.type != "cuda" and not interpreting():
        raise ValueError(f"{name} is on {x.device}; losslab.gpu kernels need CUDA tensors (or TRITON_INTERPRET=1 "
                         "to run them on the CPU for testing). ll.cross_entropy works on any device")


def check_arguments(logits, targets, weight, label_smoothing, reduction, normalizer, lse_square_scale, softcap):
    """Shape, dtype and option checks (always); class-index values only when checkable without a sync."""
    if not isinstance(logits, torch.Tensor) or not isinstance(targets, torch.Tensor):
        raise TypeError(f"logits and targets must be torch tensors, got {type(logits).__name__} and {type(targets).__name__}")
    if logits.dtype not in HALF_AND_SINGLE:
        raise TypeError(f"logits must be float16, bfloat16 or float32, got {logits.dtype}; the kernel computes in float32 "
                        "(use ll.cross_entropy for float64)")
    if logits.ndim != 2:
        raise ValueError(f"logits must be (N, C), got shape {tuple(logits.shape)}; flatten the leading axes "
                         "(logits.view(-1, C), targets.view(-1))")
    if targets.shape != logits.shape[:1]:
        raise ValueError(f"targets must have shape ({logits.shape[0]},) for logits {tuple(logits.shape)}, got {tuple(targets.shape)}")
    if targets.dtype.is_floating_point or targets.dtype == torch.bool:
        raise TypeError(f"targets must be integer class indices, got {targets.dtype} (probability targets: ll.cross_entropy)")
    _on_kernel_device("logits", logits)
    if targets.device != logits.device:
        raise ValueError(f"targets are on {targets.device} but logits on {logits.device}; move them to the logits' device")
    if weight is not None:
        if not isinstance(weight, torch.Tensor) or weight.shape != logits.shape[1:]:
            raise ValueError(f"weight must be a tensor of shape ({logits.shape[1]},), one weight per class, "
                             f"got {getattr(weight, 'shape', type(weight).__name__)}")
    check.options_in(get("cross_entropy"), label_smoothing=label_smoothing, lse_square_scale=lse_square_scale,
                     softcap=softcap)
    check.reduction(reduction, normalizer, ("none", "mean", "sum"))
    if logits.shape[1] == 0:
        raise ValueError("logits have no classes (shape (N, 0))")


def _launch_config(n_cols: int, block: int | None) -> tuple[int, int]:
    """Columns per step of the row loop (a power of 2, ``block`` if given) and warps per program."""
    from . import _kernels

    block = block or _kernels.block_size(n_cols, MAX_BLOCK)
    return block, 8 if block >= 4096 else 4


# -- launch configurations: variants, the heuristic default and the measured table ----------------------

VARIANTS = ("row", "persistent", "rows")
ROWS_TILE_LIMIT = 1 << 16  # the largest rows x BLOCK tile a "rows" launch may hold (64K float32 registers an SM)
LAUNCH_TABLE = Path(__file__).with_name("launch_table.json")  # LOSSLAB_CE_LAUNCH_TABLE=path overrides it
TABLE_FORMAT = "losslab-ce-launch-table/1"


class LaunchTableWarning(UserWarning):
    """The launch table could not be used; the heuristic default is used instead."""


@dataclass(frozen=True)
class LaunchConfig:
    """How the cross-entropy kernel is launched. ``None`` fields are filled in by ``resolve``.

    variant: "row" (one program per row, two passes over it: the original kernel), "persistent" (the
    same two passes, ``programs`` programs each looping over rows, so that few rows are in flight and
    the second pass reads from L2) or "rows" (``rows_per_program`` whole rows per step, BLOCK >= C, one
    pass over memory; programs loop over groups of rows, one group each unless ``programs`` is set).
    programs: the grid size of "persistent"/"rows"; or ``programs_per_sm`` times the multiprocessors.
    """

    variant: str = "row"
    block: int | None = None
    num_warps: int | None = None
    rows_per_program: int = 1
    programs: int | None = None
    programs_per_sm: float | None = None
    source: str = "explicit"  # "explicit", "heuristic" or "table:<path>"

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "source"}


def _power_of_2(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0 and value & (value - 1) == 0


def validate(config: LaunchConfig, n_cols: int | None = None) -> None:
    """Raise ValueError when ``config`` cannot run (for C = ``n_cols`` when given)."""
    if config.variant not in VARIANTS:
        raise ValueError(f"launch variant must be one of {VARIANTS}, got {config.variant!r}")
    if config.block is not None and not (_power_of_2(config.block) and config.block >= 16):
        raise ValueError(f"launch block must be a power of 2 >= 16, got {config.block!r}")
    if config.num_warps is not None and not (_power_of_2(config.num_warps) and config.num_warps <= 32):
        raise ValueError(f"launch num_warps must be a power of 2 <= 32, got {config.num_warps!r}")
    if not _power_of_2(config.rows_per_program):
        raise ValueError(f"rows_per_program must be a power of 2, got {config.rows_per_program!r}")
    if config.rows_per_program > 1 and config.variant != "rows":
        raise ValueError(f"rows_per_program > 1 needs the 'rows' variant, not {config.variant!r}")
    if config.programs is not None and not (isinstance(config.programs, int) and config.programs > 0):
        raise ValueError(f"launch programs must be a positive int, got {config.programs!r}")
    if config.programs_per_sm is not None and not (isinstance(config.programs_per_sm, (int, float))
                                                   and config.programs_per_sm > 0):
        raise ValueError(f"programs_per_sm must be a positive number, got {config.programs_per_sm!r}")
    if config.variant == "row" and (config.programs is not None or config.programs_per_sm is not None):
        raise ValueError("the 'row' variant launches one program per row; programs are for 'persistent' and 'rows'")
    if config.variant == "rows" and n_cols is not None and config.block is not None and config.block < n_cols:
        raise ValueError(f"the 'rows' variant holds whole rows: block {config.block} < C = {n_cols}")
    if config.variant == "rows" and (config.block is not None or n_cols is not None):
        from . import _kernels

        tile = config.rows_per_program * (config.block or _kernels.block_size(n_cols, 1 << 30))
        if tile > ROWS_TILE_LIMIT:  # e.g. a table entry stretched to a C far wider than the one measured
            raise ValueError(f"the 'rows' variant's tile of {tile} elements exceeds {ROWS_TILE_LIMIT}")


def _device_facts(device: torch.device) -> tuple[int, int]:
    """(multiprocessors, L2 bytes) of a CUDA device; small stand-ins under the interpreter."""
    if device.type != "cuda":
        return 4, 1 << 16
    props = torch.cuda.get_device_properties(device)
    return props.multi_processor_count, int(getattr(props, "L2_cache_size", 0) or 50 << 20)


def default_config(n_cols: int, dtype: torch.dtype) -> LaunchConfig:
    """Used where the table has no measured entry: the original two-pass row kernel, the only variant
    measured on a GPU so far (docs/gpu.md). The other variants run where a measured table picks them."""
    block, warps = _launch_config(n_cols, None)
    return LaunchConfig("row", block, warps, source="heuristic")


_table_cache: dict[tuple, dict | None] = {}


def launch_table_path() -> Path:
    return Path(os.environ.get("LOSSLAB_CE_LAUNCH_TABLE") or LAUNCH_TABLE)


def _config_from_entry(entry: dict, where: str) -> LaunchConfig:
    names = {f.name for f in fields(LaunchConfig)} - {"source"}
    unknown = set(entry) - names - {"dtype", "v_min", "v_max", "measured"}
    if unknown:
        raise ValueError(f"unknown keys {sorted(unknown)}")
    config = LaunchConfig(**{k: v for k, v in entry.items() if k in names}, source=where)
    validate(config)
    return config


def load_launch_table(path: Path | None = None) -> dict | None:
    """The parsed table ({"gpu", "entries": [(dtype, v_min, v_max, LaunchConfig)], ...}) or None when
    the file does not exist. A malformed file is ignored with a LaunchTableWarning (once per version
    of the file), so a bad table never stops training: the heuristic default is used instead."""
    path = Path(path or launch_table_path())
    try:
        stat = path.stat()
    except OSError:
        return None
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key in _table_cache:
        return _table_cache[key]
    try:
        raw = json.loads(path.read_text())
        if not isinstance(raw, dict) or raw.get("format") != TABLE_FORMAT:
            raise ValueError(f"'format' must be {TABLE_FORMAT!r}")
        if not isinstance(raw.get("entries"), list):
            raise ValueError("'entries' must be a list")
        entries = []
        for i, entry in enumerate(raw["entries"]):
            try:
                if not isinstance(entry, dict):
                    raise ValueError("not an object")
                dtype, v_min, v_max = entry["dtype"], entry["v_min"], entry["v_max"]
                if dtype not in ("float16", "bfloat16", "float32"):
                    raise ValueError(f"dtype {dtype!r}")
                if not (isinstance(v_min, int) and isinstance(v_max, int) and 1 <= v_min <= v_max):
                    raise ValueError(f"v_min/v_max {v_min!r}/{v_max!r}")
                entries.append((dtype, v_min, v_max, _config_from_entry(entry, f"table:{path}")))
            except (KeyError, TypeError, ValueError) as ex:
                raise ValueError(f"entry {i}: {type(ex).__name__}: {ex}") from None
        table = {**{k: v for k, v in raw.items() if k != "entries"}, "entries": entries}
    except (OSError, ValueError) as ex:  # json.JSONDecodeError is a ValueError
        warnings.warn(f"losslab: ignoring the cross-entropy launch table {path} ({ex}); using the heuristic "
                      "default configuration", LaunchTableWarning, stacklevel=3)
        table = None
    _table_cache[key] = table
    return table


def choose_config(n_cols: int, dtype: torch.dtype, device: torch.device) -> LaunchConfig:
    """The table's entry for (dtype, C) where there is one that fits, else ``default_config``. A table
    measured on another GPU model is not used on this one."""
    table = load_launch_table()
    if table is not None:
        gpu = table.get("gpu")
        same_gpu = device.type != "cuda" or gpu == torch.cuda.get_device_name(device)  # unnamed: not used on CUDA
        name = str(dtype).removeprefix("torch.")
        for dtype_name, v_min, v_max, config in table["entries"] if same_gpu else ():
            if dtype_name == name and v_min <= n_cols <= v_max:
                try:
                    validate(config, n_cols)
                except ValueError:
                    continue  # e.g. a "rows" entry whose block is narrower than this C
                return config
    return default_config(n_cols, dtype)


def resolve(config: LaunchConfig, n_rows: int, n_cols: int, device: torch.device,
            elem_bytes: int = 2) -> tuple[str, int, int, int, int]:
    """(variant, block, num_warps, rows per program, programs) for these logits; None fields filled in."""
    from . import _kernels

    validate(config, n_cols)
    variant, rows = config.variant, config.rows_per_program
    if variant == "rows":
        block = config.block or _kernels.block_size(n_cols, 1 << 30)
        warps = config.num_warps or (8 if rows * block >= 4096 else 4)
    else:
        block, warps = _launch_config(n_cols, config.block)
        warps = config.num_warps or warps
    units = n_rows if variant != "rows" else -(-n_rows // rows)  # rows, or groups of rows
    if variant == "row":
        return variant, block, warps, 1, n_rows
    sms, l2 = _device_facts(device)
    if config.programs is not None:
        programs = config.programs
    elif config.programs_per_sm is not None:
        programs = max(1, round(config.programs_per_sm * sms))
    elif variant == "persistent":  # rows in flight x row bytes within half the L2, 1 to 8 programs per SM
        programs = min(8 * sms, max(sms, (l2 // 2) // max(1, n_cols * elem_bytes)))
    else:
        programs = units
    return variant, block, warps, rows, max(1, min(programs, units))


def launch(logits, targets, weight, scale, *, ignore_index, label_smoothing, lse_square_scale, softcap,
           with_grad: bool, inplace: bool, block: int | None = None, config: LaunchConfig | None = None):
    """Run the forward kernel: per-row losses, per-row log-sum-exp and (optionally) the gradient.

    ``config`` forces a launch configuration; ``block`` alone forces the "row" variant with that block
    (as before the variants); neither: ``choose_config`` (the measured table, else the heuristic)."""
    from . import _kernels

    if block is not None and config is not None:
        raise ValueError("give a block or a launch config, not both")
    if logits.stride(1) != 1:
        if inplace:
            raise ValueError("inplace=True needs logits whose class axis is contiguous (stride 1)")
        logits = logits.contiguous()
    n, c = logits.shape
    # inplace: a detached alias of the logits, so autograd can take it as .grad without a copy
    grad = (logits.detach() if inplace else torch.empty_like(logits)) if with_grad else None
    rows = torch.empty(n, dtype=torch.float32, device=logits.device)
    lse = torch.empty(n, dtype=torch.float32, device=logits.device)
    w = weight.to(device=logits.device, dtype=torch.float32).contiguous() if weight is not None else rows
    w_sum = w.sum() if weight is not None else rows
    if config is None:
        config = LaunchConfig("row", block, source="explicit") if block else choose_config(c, logits.dtype, logits.device)
    variant, block, warps, per_program, programs = resolve(config, n, c, logits.device, logits.element_size())
    if n:
        args = (logits, logits.stride(0), grad if with_grad else logits, grad.stride(0) if with_grad else 0,
                targets.contiguous(), w, w_sum, scale, rows, lse)
        options = (ignore_index, float(label_smoothing), float(lse_square_scale), float(softcap or 1.0))
        flags = dict(HAS_WEIGHT=weight is not None, SMOOTH=label_smoothing > 0, ZLOSS=lse_square_scale > 0,
                     SOFTCAP=softcap is not None, WITH_GRAD=with_grad, BLOCK=block, num_warps=warps)
        if variant == "row":
            _kernels.cross_entropy_kernel[(n,)](*args, c, *options, **flags)
        elif variant == "persistent":
            _kernels.cross_entropy_persistent_kernel[(programs,)](*args, n, c, *options, **flags)
        else:
            _kernels.cross_entropy_rows_kernel[(programs,)](*args, n, c, *options, ROWS=per_program, **flags)
    if inplace:
        # the kernel wrote behind autograd's back: bump the version counter, so that a backward which
        # saved these logits (e.g. tanh's, which keeps its output) raises instead of using the gradient
        torch.autograd.graph.increment_version(logits)
    return rows, lse, grad


def scale_rows(grad: torch.Tensor, upstream: torch.Tensor, block: int | None = None) -> torch.Tensor:
    from . import _kernels

    n, c = grad.shape
    upstream = upstream.to(torch.float32).contiguous()
    block, warps = _launch_config(c, block)
    if n:
        _kernels.scale_rows_kernel[(n,)](grad, grad.stride(0), upstream, c, PER_ROW=upstream.ndim == 1, BLOCK=block,
                                         num_warps=warps)
    return grad


def _reduce(rows: torch.Tensor, scale: torch.Tensor, reduction: str) -> torch.Tensor:
    return rows if reduction == "none" else rows.sum() * scale


class FusedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, targets, weight, scale, reduction, options: dict[str, Any]):
        with_grad = ctx.needs_input_grad[0]
        rows, lse, grad = launch(logits, targets, weight, scale, with_grad=with_grad, **options)
        ctx.grad, ctx.block = grad, options.get("block")
        ctx.mark_non_differentiable(lse)
        return _reduce(rows, scale, reduction), lse

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, upstream, _lse_upstream):
        if ctx.grad is None:
            raise RuntimeError("losslab.gpu.cross_entropy: backward ran twice through one forward (retain_graph=True); "
                               "the fused kernel keeps one gradient buffer: recompute the loss instead")
        grad, ctx.grad = ctx.grad, None
        return scale_rows(grad, upstream, ctx.block), None, None, None, None, None


def cross_entropy(logits, targets, *, weight=None, ignore_index: int = -100, label_smoothing: float = 0.0,
                  reduction: str = "mean", normalizer=None, lse_square_scale: float = 0.0, softcap: float | None = None,
                  return_lse: bool = False, inplace: bool = False, _block: int | None = None,
                  _config: LaunchConfig | None = None):
    r"""Softmax cross-entropy of (N, C) logits and integer targets, forward and backward in one Triton kernel.

    With z = softcap tanh(x / softcap) (or z = x), p = softmax(z), lse = log sum_c exp(z_c), class
    weights w (W = sum w), r = w[y], smoothing e and z-loss scale s, per row::

        loss = (1 - e) r (lse - z_y) + (e / C) (W lse - sum_c w_c z_c) + s r lse^2
        dloss/dz_c = p_c [(1 - e) r + e W / C + 2 s r lse] - (1 - e) r [c = y] - (e / C) w_c

    and dz/dx = 1 - (z / softcap)^2. ``reduction="mean"`` divides by sum of r over rows not ignored
    (or by ``normalizer``); 0 when there is none. The gradient is written during the forward pass (into
    the logits with ``inplace=True``); ``return_lse=True`` also returns the per-row lse (float32, no
    gradient). See docs/gpu.md. ``_block`` / ``_config`` (private, for tests and the sweep) force the
    launch configuration (``LaunchConfig``).
    """
    weight, scale = _prepare(logits, targets, weight, ignore_index, label_smoothing, reduction, normalizer,
                             lse_square_scale, softcap)
    if inplace and not logits.requires_grad:
        raise ValueError("inplace=True writes the gradient into the logits, so it needs logits that require grad")
    options = dict(ignore_index=int(ignore_index), label_smoothing=float(label_smoothing),
                   lse_square_scale=float(lse_square_scale), softcap=None if softcap is None else float(softcap),
                   inplace=inplace, block=_block, config=_config)
    if torch.is_grad_enabled() and logits.requires_grad:
        loss, lse = FusedCrossEntropy.apply(logits, targets, weight, scale, reduction, options)
    else:
        rows, lse, _ = launch(logits, targets, weight, scale, with_grad=False, **{**options, "inplace": False})
        loss = _reduce(rows, scale, reduction)
    return (loss, lse) if return_lse else loss


def value_and_grad(logits, targets, *, weight=None, ignore_index: int = -100, label_smoothing: float = 0.0,
                   reduction: str = "mean", normalizer=None, lse_square_scale: float = 0.0, softcap: float | None = None,
                   _config: LaunchConfig | None = None):
    """(loss, gradient) without autograd: one kernel launch, the gradient of the reduced loss."""
    weight, scale = _prepare(logits, targets, weight, ignore_index, label_smoothing, reduction, normalizer,
                             lse_square_scale, softcap)
    rows, _, grad = launch(logits.detach(), targets, weight, scale, ignore_index=int(ignore_index),
                           label_smoothing=float(label_smoothing), lse_square_scale=float(lse_square_scale),
                           softcap=None if softcap is None else float(softcap), with_grad=True, inplace=False,
                           config=_config)
    return _reduce(rows, scale, reduction), grad


def _prepare(logits, targets, weight, ignore_index, label_smoothing, reduction, normalizer, lse_square_scale, softcap):
    """Every check, then the class weights on the logits' device and the reduction's scale."""
    check_arguments(logits, targets, weight, label_smoothing, reduction, normalizer, lse_square_scale, softcap)
    check.class_indices("targets", targets, logits.shape[1], ignore_index)  # concrete (CPU/strict) only
    weight = weight.detach().to(device=logits.device, dtype=torch.float32) if weight is not None else None
    return weight, mean_scale(targets, weight, ignore_index, reduction, normalizer, logits.device)
