"""Where the engines register themselves, so that no loss imports an engine (the layers point down).

Two kinds of entries:

- a **fast path** for one loss and one array kind (``"numpy"``, ``"torch"``): a function
  ``(args, options, reduction, normalizer, with_grad)`` that takes the raw call and returns the
  result, or ``NotImplemented`` for anything it does not handle exactly like the reference path
  (the blocked NumPy paths of ``_fast``, the CUDA cross-entropy kernel of ``losslab.gpu``);
- an **engine** for one array kind, run after the call is bound and validated once:
  ``(loss, xp, bound, reduction, normalizer, with_grad)`` -> result or ``NotImplemented``
  (torch: ``losslab.torch._function.run``, fused value and gradient plus the autograd bridge);
- a **lane** for one array kind, tried first, before binding, for the plainest call (the arrays by position, no
  normalizer): ``(loss, args, options, reduction, with_grad)`` -> result or ``NotImplemented``; it validates each
  distinct set of options once, as binding would, and keeps what it learned (torch: the compiled lane of
  ``losslab.torch._function.lane``, whose per-call cost is most of a small call's);
- a **kernel** an engine may run on a prepared call (the loss's ``prepare`` has checked and
  converted the arrays): ``(loss, xp, state, reduction, normalizer, with_grad)`` -> result or
  ``NotImplemented`` (the generated Triton kernels of the elementwise losses, ``losslab.gpu.pointwise``).

An entry may be ``Deferred``: a function holding an import statement, run the first time an array of
that kind arrives, so ``import losslab`` imports neither torch nor Triton. It is an import statement,
not ``importlib``, because that first call may come inside ``torch.compile``, whose tracer runs an
import statement but refuses ``importlib.import_module`` (``fullgraph=True`` then fails). The wiring
itself is in ``losslab/__init__.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_fast_paths: dict[tuple[str, str], Any] = {}
_engines: dict[str, Any] = {}
_kernels: dict[tuple[str, str], Any] = {}
_lanes: dict[str, Any] = {}


class Deferred:
    """An entry loaded on first use: ``load()`` imports its module with an import statement and returns it;
    the entry is the module's ``attribute``."""

    def __init__(self, load: Callable[[], Any], attribute: str):
        self.load, self.attribute = load, attribute


def _loaded(table: dict, key: Any) -> Callable | None:
    """``table[key]``, a Deferred entry loaded (and kept) the first time it is asked for; None when absent."""
    entry = table.get(key)
    if isinstance(entry, Deferred):
        entry = table[key] = getattr(entry.load(), entry.attribute)
    return entry


def value_and_grad_result(value: Any, grads: tuple | list):
    """What ``value_and_grad`` returns for a value and the gradients of the loss's inputs (in their order): the
    gradient alone for a loss of one input, the tuple for several. Every engine and lane answers in this form."""
    return value, grads[0] if len(grads) == 1 else tuple(grads)


def register_fast_path(loss_name: str, kind: str, fn: Callable | Deferred) -> None:
    _fast_paths[(loss_name, kind)] = fn


def register_engine(kind: str, fn: Callable | Deferred) -> None:
    _engines[kind] = fn


def register_lane(kind: str, fn: Callable | Deferred) -> None:
    _lanes[kind] = fn


def register_kernel(loss_name: str, kind: str, fn: Callable | Deferred) -> None:
    _kernels[(loss_name, kind)] = fn


def kernel_of(loss_name: str, kind: str) -> Callable | None:
    """The kernel registered for a prepared call of this loss on ``kind`` arrays, or None."""
    return _loaded(_kernels, (loss_name, kind))


def fast_path_of(loss_name: str, kind: str) -> Callable | None:
    """The fast path registered for ``kind`` arrays (the torch engine runs NumPy's on CPU views)."""
    return _loaded(_fast_paths, (loss_name, kind))


def engine_of(kind: str) -> Callable | None:
    """The engine registered for ``kind`` arrays (``_xp.kind`` of a call's first input), or None."""
    return _loaded(_engines, kind)


def lane_of(kind: str) -> Callable | None:
    """The lane registered for ``kind`` arrays, or None."""
    return _loaded(_lanes, kind)
