"""The machinery every loss shares: argument binding, reductions, ``.grad``, ``.value_and_grad``,
``.hessian`` and the PyTorch autograd bridge.

A loss is a subclass of :class:`Loss` that implements four small methods, value and gradient
side by side (micrograd style):

- ``prepare(xp, *inputs, targets, **options) -> State``: validate and cast (fp16/bf16 -> fp32);
- ``terms(xp, st) -> (L, divisor)``: the weighted per-item losses (what ``reduction="none"``
  returns) and the divisor PyTorch's ``"mean"`` uses;
- ``grad_terms(xp, st, u)``: the gradient of ``sum_i u_i L_i`` with respect to each prediction
  input, ``u`` broadcasting against ``L``. With ``u`` = d(reduced)/dL this is ``.grad``; with
  ``u`` = upstream gradient x that, it is the PyTorch backward pass, for any upstream gradient;
- ``hessian_terms(xp, st, u)`` where the loss has a Hessian.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np

from . import _checks as check
from . import _engines, _fast, _xp
from ._reduce import coefficient, reduce
from ._spec import LossSpec

_UNSET = object()


class State:
    """Validated, compute-dtype arrays and options of one call (a plain class: torch.compile traces it)."""

    def __init__(self, **fields: Any) -> None:
        for name, value in fields.items():
            setattr(self, name, value)


class Loss:
    name: str = ""
    inputs: tuple[str, ...] = ("predictions",)  # the differentiable (prediction) arguments
    reductions: tuple[str, ...] = check.REDUCTIONS
    spec: LossSpec
    # The call splits into blocks of rows (see ``splits_into_rows``); tests/test_row_blocks.py holds each
    # loss that says so to it.
    rows_are_items: bool = False
    min_row_ndim: int = 2  # a row loss's 1-D input is one item (an elementwise loss's, a row of items)

    # -- to implement ---------------------------------------------------------------------------
    def prepare(self, xp, *args, **options) -> State:  # pragma: no cover - abstract
        raise NotImplementedError

    def terms(self, xp, st: State):  # pragma: no cover - abstract
        raise NotImplementedError

    def grad_terms(self, xp, st: State, u) -> tuple:  # pragma: no cover - abstract
        raise NotImplementedError

    def hessian_terms(self, xp, st: State, u):
        raise NotImplementedError(
            f"{self.name} has no Hessian: it is not twice differentiable in a single prediction "
            "per element (losses with a Hessian: see losslab.losses() where spec.has_hessian)"
        )

    def splits_into_rows(self, bound: dict) -> bool:
        """Whether this call (its bound arguments) may be computed on blocks of rows and the blocks' results
        added: the loss's items are rows (``rows_are_items``: "mean" divides by a count proportional to them),
        every positional argument has the same leading axis of rows (batched: the first input has
        ``min_row_ndim`` axes or more), and no keyword array varies along the rows (a class weight applies to
        every row alike; a per-row weight would need slicing). The engines then evaluate the definitions block by block
        (``row_block``, ``rows_divisor``) where one pass would hold several input-sized temporaries."""
        if not self.rows_are_items:
            return False
        first = bound[self.inputs[0]]
        if not _xp.is_array(first) or first.ndim < self.min_row_ndim:
            return False
        n = first.shape[0]
        for name in self._positional:
            value = bound[name]
            if not _xp.is_array(value) or value.ndim < 1 or value.shape[0] != n:
                return False
        for name in self._keyword_defaults:
            value = bound[name]
            if isinstance(value, (list, tuple)):
                return False  # a nested list may be per row; the whole call's prepare reads it
            if _xp.is_array(value) and value.ndim >= first.ndim and value.shape[0] != 1:
                return False
        return True

    def row_elements(self, bound: dict) -> int:
        """The elements one row of a call that splits into rows brings to the definitions' largest temporary
        (the unit of an engine's block size): by default its widest positional argument's row."""
        return max(math.prod(bound[name].shape[1:]) for name in self._positional)

    def row_block(self, bound: dict, lo: int, hi: int) -> dict:
        """The bound arguments of rows [lo, hi) of a call that splits into rows."""
        block = dict(bound)
        for name in self._positional:
            block[name] = bound[name][lo:hi]
        return block

    def rows_divisor(self, xp, bound: dict) -> int | float | None:
        """The "mean" divisor of a whole call that splits into rows: one row's (from a one-row call) times
        the rows, so that each block can be divided by the batch's. None where it is not a Python number
        (reading a device array would sync)."""
        divisor = self.terms(xp, self.prepare(xp, **self.row_block(bound, 0, 1)))[1]
        if not isinstance(divisor, (int, float)):
            return None
        return divisor * bound[self.inputs[0]].shape[0]

    # -- public API -----------------------------------------------------------------------------
    def __init__(self) -> None:
        params = list(inspect.signature(self.prepare).parameters.values())[1:]  # drop xp
        self._signature = inspect.Signature(params)
        extra = [
            inspect.Parameter("reduction", inspect.Parameter.KEYWORD_ONLY, default="mean"),
            inspect.Parameter("normalizer", inspect.Parameter.KEYWORD_ONLY, default=None),
        ]
        self.__signature__ = inspect.Signature(params + extra)
        self._positional = tuple(p.name for p in params if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD)
        self._keyword_defaults = {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}
        self.__name__ = self.__qualname__ = self.name
        self.__doc__ = _docstring(self)

    def __repr__(self) -> str:
        return f"<losslab loss {self.name}{self.__signature__}>"

    def __call__(self, *args, reduction: str = "mean", normalizer: Any = None, **options):
        return self._run(args, options, reduction, normalizer, False)

    def value_and_grad(self, *args, reduction: str = "mean", normalizer: Any = None, **options):
        """``(value, gradient)`` in one pass; the gradient is shaped like the prediction input(s)."""
        return self._run(args, options, reduction, normalizer, True)

    def grad(self, *args, reduction: str = "mean", normalizer: Any = None, **options):
        """Analytic gradient of the reduced loss (of the sum for ``reduction="none"``)."""
        return self.value_and_grad(*args, reduction=reduction, normalizer=normalizer, **options)[1]

    def hessian(self, *args, reduction: str = "mean", normalizer: Any = None, **options):
        """Analytic second derivative, scaled like the gradient (see the loss's docs for its shape)."""
        xp, bound, normalizer = self._bind(args, options, reduction, normalizer)
        st = self.prepare(xp, **bound)
        _, u = self._value(xp, st, reduction, normalizer)
        h = self.hessian_terms(xp, st, u)
        return xp.astype(h, st.input_dtypes[0])

    # -- internals ------------------------------------------------------------------------------
    def _run(self, args, options, reduction, normalizer, with_grad: bool):
        """The one flow of every call: bind, and check every option against its declared domain, once;
        then a registered fast path that takes the raw arguments (NumPy blocks, the CUDA cross-entropy
        kernel), else the engine of the arrays' kind (torch: losslab.torch._function), else the
        reference path below. Array checks (shapes, dtypes, values) are the loss's ``prepare``; a fast
        path declines what it does not handle exactly like it. Before all that, the plainest call (its arrays by
        position, no normalizer) tries the lane of its arrays' kind, which checks the options as binding does, once
        per distinct set."""
        if normalizer is None and args:
            lane = _engines.lane_of(_xp.kind(args[0]))
            if lane is not None:
                out = lane(self, args, options, reduction, with_grad)
                if out is not NotImplemented:
                    return out
        xp, bound, normalizer = self._bind(args, options, reduction, normalizer)
        kind = _xp.kind(bound[self.inputs[0]])  # (the first positional argument, as an array)
        if args:
            # the options as _bind checked them: numbers, not 0-d arrays
            checked = {k: bound[k] for k in options} if options else options
            out = self._fast_path(kind, args, checked, reduction, normalizer, with_grad)
            if out is not NotImplemented:
                return out
        engine = _engines.engine_of(kind)
        if engine is not None:
            out = engine(self, xp, bound, reduction, normalizer, with_grad)
            if out is not NotImplemented:
                return out
        out = self._reference(xp, bound, reduction, normalizer, with_grad)
        if not with_grad:
            return out
        value, grads = out
        return _engines.value_and_grad_result(value, grads)

    def _fast_path(self, kind: str, args, options, reduction, normalizer, with_grad: bool):
        """The fast path registered for this loss and array kind, on raw arguments; NotImplemented when
        there is none, it is switched off, or it declines the call."""
        fast = _engines.fast_path_of(self.name, kind) if _fast.enabled() else None
        return NotImplemented if fast is None else fast(args, options, reduction, normalizer, with_grad)

    def _reference(self, xp, bound: dict, reduction, normalizer, with_grad: bool, ops=None):
        """The reference path on bound arguments: the value, or (value, gradients as a tuple in the
        inputs' dtypes). ``ops``: the namespace the formulas run in (see ``value_and_grads``)."""
        return self._reference_state(xp, self.prepare(xp, **bound), reduction, normalizer, with_grad, ops)

    def _reference_state(self, xp, st: State, reduction, normalizer, with_grad: bool, ops=None):
        """``_reference`` on a prepared call."""
        if not with_grad:
            return self._value(xp, st, reduction, normalizer)[0]
        value, grads = self.value_and_grads(xp, st, reduction, normalizer, ops)
        return value, tuple(astype(g, dt) for g, dt in zip(grads, st.input_dtypes))

    def value_and_grads(self, xp, st: State, reduction: str, normalizer: Any, ops=None):
        """The reduced value and the gradients (a tuple, compute dtype) of a prepared call; ``ops``
        is the namespace the formulas run in (default ``xp``; the torch engine passes ``torch``)."""
        value, u = self._value(xp, st, reduction, normalizer)
        return value, self.grad_terms(xp, st, u)

    def _bind(self, args, options, reduction, normalizer):
        normalizer = check.reduction(reduction, normalizer, self.reductions)
        arguments = self._quick_bind(args, options)
        if arguments is None:
            try:
                bound = self._signature.bind(*args, **options)
            except TypeError as err:
                raise TypeError(f"{self.name}{self._signature}: {err}") from None
            bound.apply_defaults()
            arguments = dict(bound.arguments)
        self._check_options(arguments)
        for name in self.inputs:
            value = arguments[name]
            if not _xp.is_array(value):  # lists and scalars become NumPy float64 arrays
                try:
                    arguments[name] = np.asarray(value, dtype=np.float64)
                except (TypeError, ValueError, OverflowError) as err:
                    raise TypeError(f"{name} must be an array or a list of numbers, "
                                    f"got {_xp.ragged(err) or type(value).__name__}") from None
        xp = _xp.namespace(*(arguments[n] for n in self.inputs), names=self.inputs)
        return xp, arguments, normalizer

    def _check_options(self, arguments: dict) -> None:
        """Each option in ``arguments`` (bound by name) against the domain its spec declares, in place: the one
        check of an option's value (numbers converted as ``check.option_in`` does)."""
        defaults = self._keyword_defaults
        for option in self.spec.options:
            if option.name not in arguments:
                continue
            value = arguments[option.name]
            if value is not defaults.get(option.name, _UNSET):  # defaults are valid (tests/test_registry.py)
                arguments[option.name] = check.option_in(option, value)

    def _quick_bind(self, args, options) -> dict | None:
        """The usual call (every positional argument given by position, only known keyword options),
        bound without inspect's general machinery; None for anything else, which inspect binds (or
        refuses with its message)."""
        if len(args) != len(self._positional) or not options.keys() <= self._keyword_defaults.keys():
            return None
        arguments = dict(zip(self._positional, args))
        arguments.update(self._keyword_defaults)
        arguments.update(options)
        return arguments

    def _value(self, xp, st: State, reduction: str, normalizer: Any):
        """The reduced value and u = d(value)/d(terms) (the reduction rule of ``_reduce``)."""
        terms, divisor = self.terms(xp, st)
        return self._reduced(xp, terms, divisor, st, reduction, normalizer)

    def _reduced(self, xp, terms, divisor, st: State, reduction: str, normalizer: Any):
        reduction, divisor = without_batchmean(reduction, divisor, st)
        if normalizer is not None and _xp.is_array(normalizer):
            normalizer = _xp.as_array(normalizer, xp, terms, name="normalizer")
        value = reduce(xp, terms, divisor, reduction, normalizer)
        return value, coefficient(xp, terms, divisor, reduction, normalizer)


def without_batchmean(reduction: str, divisor: Any, st: State):
    """(reduction, divisor) to compute with: "batchmean" is the mean divided by the first dimension's count
    (``st.batch_size``), not by the element count."""
    return ("mean", st.batch_size) if reduction == "batchmean" else (reduction, divisor)


def astype(x, dtype):
    return x if x.dtype == dtype else _xp.namespace(x).astype(x, dtype)


def floating_input(xp, name: str, x):
    """Check a prediction input is floating point; return it in the compute dtype and its dtype."""
    check.floating(xp, name, x)
    dtype = _xp.compute_dtype(xp, x.dtype)
    return (x if x.dtype == dtype else xp.astype(x, dtype)), x.dtype


def per_row(u):
    """A coefficient per term (an array shaped like the terms, or a Python number) that broadcasts over a last
    axis the terms summed (the classes of a row loss)."""
    return u[..., None] if _xp.is_array(u) else u


def option_array(xp, name: str, value, like, shape_hint: str):
    """An option array (``weight``, ``pos_weight``): any array kind or a list, in ``like``'s dtype."""
    if value is None:
        return None
    arr = _xp.as_array(value, xp, like, name=name, hint=f"an array or a list of numbers ({shape_hint})")
    return xp.astype(arr, like.dtype)


# -- docstrings from the spec (one source of truth for the formulas) ------------------------------


def _docstring(loss: Loss) -> str:
    spec = getattr(loss, "spec", None)
    own = inspect.cleandoc(type(loss).__doc__ or "")
    if spec is None:
        return own
    parts = [
        spec.summary,
        "",
        "Formula::",
        "",
        *("    " + line for line in spec.formula_text.splitlines()),
        "",
        "Gradient::",
        "",
        *("    " + line for line in spec.gradient_text.splitlines()),
    ]
    if spec.hessian_text:
        parts += ["", "Hessian::", "", *("    " + line for line in spec.hessian_text.splitlines())]
    parts += ["", own]
    if spec.conventions:
        parts += ["", "Conventions: " + spec.conventions]
    peers = ", ".join(f"{k}: {v}" for k, v in spec.peers.items())
    parts += [
        "",
        "Every loss also takes ``reduction`` ('none' | 'mean' | 'sum', default 'mean') and ``normalizer=K``",
        "(with 'mean', divide the weighted sum by K: the global count under gradient accumulation).",
        f"It has ``.grad``, ``.value_and_grad``{' and ``.hessian``' if spec.has_hessian else ''} with the same arguments.",
        "",
        f"Equivalents: {peers}.",
    ]
    return "\n".join(parts)
