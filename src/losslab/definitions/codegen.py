"""Compiled kernels generated from the elementwise definitions (``pointwise.py``), never written by hand.

Each definition's ``value_and_grad`` is run once on symbols instead of arrays (``Symbol``, with the
namespace ``SymbolicOps``): that records the formula as a graph of operations, with shared
subexpressions merged. The graph is then written out as source code for two engines:

- **Numba** (``losslab/_numba_kernels.py``): a scalar function per loss and a parallel loop that
  computes value, gradient, weight and the mean's scale per element while it is in registers;
  ``cache=True``, so a new process loads the machine code from disk instead of compiling it again.
- **Triton** (``losslab/gpu/_pointwise_kernels.py``): one kernel per loss that reads predictions,
  targets (and weights) once, computes in float32, writes the gradient already scaled and one partial
  sum per block (Triton caches compiled kernels on disk itself).

Both files are checked in, so that importing them needs no generator, and ``tests/test_codegen.py``
fails when either differs from what this module writes now (a definition changed and the kernels
were not regenerated)::

    python -m losslab.definitions.codegen          # rewrite both files
    python -m losslab.definitions.codegen --check  # exit 1 if either is stale

A **variant** fixes what the kernels cannot take as a number: focal without ``alpha`` (None),
BCE with logits without ``pos_weight``, smooth L1 with beta > 0 (beta = 0 is L1: the caller runs
mae). Options declared ``positive`` fold comparisons with 0 away.
"""

from __future__ import annotations

import argparse
import math
import operator
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from .. import _numba
from . import pointwise

# -- the symbolic namespace ------------------------------------------------------------------------------


class Graph:
    """The operations recorded while a definition runs on symbols; equal operations are merged."""

    def __init__(self):
        self.nodes: list[Symbol] = []
        self._by_key: dict[tuple, Symbol] = {}

    def node(self, op: str, *args) -> Symbol | float | bool:
        inner = args[0] if args and isinstance(args[0], Symbol) else None
        if op == "abs" and inner is not None and inner.op in ("neg", "abs"):
            return self.node("abs", inner.args[0])  # |-a| = ||a|| = |a|: softplus(x) and softplus(-x) share e^-|x|
        if op == "neg" and inner is not None and inner.op == "neg":
            return inner.args[0]
        folded = _fold(op, args)
        if folded is not None:
            return folded
        key = (op, tuple(("symbol", a.index) if isinstance(a, Symbol) else a for a in args))
        found = self._by_key.get(key)
        if found is None:
            found = self._by_key[key] = Symbol(self, op, args, len(self.nodes))
            self.nodes.append(found)
        return found


_PYTHON = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv,
           "pow": operator.pow, "neg": operator.neg, "gt": operator.gt, "lt": operator.lt, "ge": operator.ge,
           "le": operator.le, "or": operator.or_, "abs": abs, "exp": math.exp, "log": math.log, "log1p": math.log1p, "tanh": math.tanh,
           "maximum": max, "minimum": min}


def _is_number(a) -> bool:
    return isinstance(a, (int, float)) and not isinstance(a, bool)


def _fold(op: str, args: tuple):
    """A constant (when every argument is one, or the operation is an identity), else None."""
    if op == "where":
        condition, a, b = args
        if isinstance(condition, bool):
            return a if condition else b
        return None
    if op == "or" and any(isinstance(a, bool) for a in args):  # a comparison folded to a constant
        constant, other = args if isinstance(args[0], bool) else args[::-1]
        return True if constant else other
    if all(_is_number(a) for a in args) and op in _PYTHON:
        return _PYTHON[op](*(float(a) for a in args))
    if op in ("gt", "ge", "lt", "le") and isinstance(args[0], Symbol) and args[0].positive and args[1] == 0:
        return op in ("gt", "ge")  # an option declared positive, compared with 0
    if op == "mul" and (1.0 in args and any(isinstance(a, Symbol) for a in args)):
        return args[0] if args[1] == 1.0 else args[1]
    if op in ("add", "sub") and _is_number(args[1]) and args[1] == 0:
        return args[0]
    if op == "add" and _is_number(args[0]) and args[0] == 0:
        return args[1]
    return None


class Symbol:
    """A value in a traced formula: an input, an option or the result of an operation."""

    __array_priority__ = 1000  # never let another type's operator claim a Symbol

    def __init__(self, graph: Graph, op: str, args: tuple, index: int, positive: bool = False):
        self.graph, self.op, self.args, self.index, self.positive = graph, op, args, index, positive

    def _binary(self, op, other, reflected=False):
        return self.graph.node(op, other, self) if reflected else self.graph.node(op, self, other)

    def __add__(self, o): return self._binary("add", o)
    def __radd__(self, o): return self._binary("add", o, True)
    def __sub__(self, o): return self._binary("sub", o)
    def __rsub__(self, o): return self._binary("sub", o, True)
    def __mul__(self, o): return self._binary("mul", o)
    def __rmul__(self, o): return self._binary("mul", o, True)
    def __truediv__(self, o): return self._binary("div", o)
    def __rtruediv__(self, o): return self._binary("div", o, True)
    def __pow__(self, o): return self._binary("pow", o)
    def __neg__(self): return self.graph.node("neg", self)
    def __gt__(self, o): return self._binary("gt", o)
    def __lt__(self, o): return self._binary("lt", o)
    def __ge__(self, o): return self._binary("ge", o)
    def __le__(self, o): return self._binary("le", o)
    def __or__(self, o): return self._binary("or", o)  # of two conditions
    def __ror__(self, o): return self._binary("or", o, True)

    def __bool__(self):
        raise TypeError("a definition branched in Python on an array value; write it with ops.where")

    __hash__ = object.__hash__


class SymbolicOps:
    """The array namespace the definitions are written against, recording instead of computing."""

    def __init__(self, graph: Graph):
        self.graph = graph

    def _unary(op):  # a helper that builds the methods below
        return lambda self, a: self.graph.node(op, a)

    abs = _unary("abs")
    exp = _unary("exp")
    log = _unary("log")
    log1p = _unary("log1p")
    tanh = _unary("tanh")
    sign = _unary("sign")
    isnan = _unary("isnan")

    def where(self, condition, a, b):
        return self.graph.node("where", condition, a, b)

    def maximum(self, a, b):
        return self.graph.node("maximum", a, b)

    def minimum(self, a, b):
        return self.graph.node("minimum", a, b)

    def clip(self, a, low, high):
        return self.minimum(self.maximum(a, low), high)

    # scalars broadcast in every generated language: a filled array is its fill value
    def zeros_like(self, like):
        return 0.0

    def ones_like(self, like):
        return 1.0

    def full_like(self, like, value):
        return value


# -- what is generated ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One generated kernel: a definition with some options fixed (not arguments of the kernel)."""

    name: str  # the kernel's name
    definition: type[pointwise.Pointwise]
    fixed: dict = field(default_factory=dict)  # options held constant (None: "absent")
    positive: tuple[str, ...] = ()  # options the caller guarantees > 0

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(o for o in self.definition.options if o not in self.fixed)


VARIANTS = (
    Variant("mse", pointwise.SquaredError),
    Variant("mae", pointwise.AbsoluteError),
    Variant("huber", pointwise.Huber, positive=("delta",)),
    Variant("smooth_l1", pointwise.SmoothL1, positive=("beta",)),
    Variant("log_cosh", pointwise.LogCosh),
    Variant("quantile", pointwise.Pinball),
    Variant("binary_cross_entropy", pointwise.BinaryCrossEntropy),
    Variant("binary_cross_entropy_with_logits", pointwise.BinaryCrossEntropyWithLogits, fixed={"pos_weight": None}),
    Variant("hinge", pointwise.Hinge),
    Variant("squared_hinge", pointwise.SquaredHinge),
    Variant("focal", pointwise.Focal),
    Variant("focal_unweighted", pointwise.Focal, fixed={"alpha": None}),
    Variant("poisson_deviance", pointwise.PoissonDeviance),
    Variant("gamma_deviance", pointwise.GammaDeviance),
    Variant("msle", pointwise.SquaredLogError),
    Variant("mape", pointwise.AbsolutePercentageError),
    Variant("soft_margin", pointwise.SoftMargin),
    Variant("hinge_embedding", pointwise.HingeEmbedding),
    # torch's poisson_nll_loss on the log-rate (the default) or on the rate, with or without Stirling's term
    Variant("poisson_nll", pointwise.PoissonNLL, fixed={"log_input": True, "full": False}),
    Variant("poisson_nll_rate", pointwise.PoissonNLL, fixed={"log_input": False, "full": False}, positive=("eps",)),
    Variant("poisson_nll_full", pointwise.PoissonNLL, fixed={"log_input": True, "full": True}),
    Variant("poisson_nll_rate_full", pointwise.PoissonNLL, fixed={"log_input": False, "full": True}, positive=("eps",)),
    # torch's kl_div on probabilities or (log_target) on log-probabilities
    Variant("kl_div", pointwise.KLDivergence, fixed={"log_target": False}),
    Variant("kl_div_log_target", pointwise.KLDivergence, fixed={"log_target": True}),
)


def variant_for(loss_name: str, options: dict) -> Variant | None:
    """The generated kernel computing loss ``loss_name`` with these option values (as the loss prepared
    them: None where absent), or None: every option the variant fixes (to None) must be None and every
    other one given. Smooth L1 with beta = 0 is exactly L1, so it runs mae's kernel."""
    if loss_name == "smooth_l1" and options.get("beta") == 0:
        loss_name, options = "mae", {}
    for variant in VARIANTS:
        if (variant.definition.name == loss_name and all(options.get(k) is v for k, v in variant.fixed.items())
                and all(options.get(p) is not None for p in variant.params)):
            return variant
    return None


def trace(variant: Variant):
    """(graph, value, gradient): the variant's value_and_grad recorded on symbols x, t and its options."""
    graph = Graph()
    x = graph.node("input", "x")
    t = graph.node("input", "t")
    options = dict(variant.fixed)
    for name in variant.params:
        options[name] = graph.node("param", name)
        options[name].positive = name in variant.positive
    value, grad = variant.definition.value_and_grad(SymbolicOps(graph), x, t, **options)
    return graph, value, grad


def _needed(graph: Graph, outputs) -> list[Symbol]:
    """The operations the outputs depend on, in the order they were recorded (a topological order)."""
    keep: set[int] = set()
    stack = [o for o in outputs if isinstance(o, Symbol)]
    while stack:
        s = stack.pop()
        if s.index in keep:
            continue
        keep.add(s.index)
        stack.extend(a for a in s.args if isinstance(a, Symbol))
    return [n for n in graph.nodes if n.index in keep and n.op not in ("input", "param")]


# -- writing source --------------------------------------------------------------------------------------


class Language:
    """How each operation is written; ``ref`` names a symbol or writes a constant."""

    infix: ClassVar[dict[str, str]] = {"add": "+", "sub": "-", "mul": "*", "div": "/", "gt": ">", "lt": "<", "ge": ">=", "le": "<=",
                                       "or": "|"}
    calls: ClassVar[dict[str, str]] = {}

    def ref(self, a) -> str:
        if isinstance(a, Symbol):
            return a.args[0] if a.op in ("input", "param") else f"v{a.index}"
        return repr(float(a))

    def expression(self, node: Symbol) -> str:
        r = [self.ref(a) for a in node.args]
        if node.op in self.infix:
            return f"{r[0]} {self.infix[node.op]} {r[1]}"
        if node.op == "neg":
            return f"-{r[0]}"
        return f"{self.calls[node.op]}({', '.join(r)})"

    def body(self, variant: Variant, indent: str) -> tuple[list[str], str, str]:
        graph, value, grad = trace(variant)
        lines = [f"{indent}v{n.index} = {self.expression(n)}" for n in _needed(graph, (value, grad))]
        return lines, self.ref(value), self.ref(grad)


class NumbaLanguage(Language):
    calls: ClassVar[dict[str, str]] = {"pow": "_power", "abs": "abs", "exp": "_exp", "log": "_log", "log1p": "_log1p",
             "tanh": "_tanh", "sign": "_sign", "isnan": "math.isnan", "maximum": "_maximum", "minimum": "_minimum"}
    # Numba types a Python float constant as float64, so an argument built with one (1 - x, a select with 1.0) is
    # float64 and the function would be libm's, one element at a time: the argument goes in x's float type first
    # (float32: the value NumPy's float32 evaluation of the definition gives, or closer), so _numba_math's vectorised
    # float32 functions run
    transcendental: ClassVar[frozenset] = frozenset({"exp", "log", "log1p", "tanh"})

    def expression(self, node):
        if node.op == "where":  # a scalar select: only the chosen side matters
            c, a, b = (self.ref(a) for a in node.args)
            return f"{a} if {c} else {b}"
        arg = node.args[0]
        if node.op in self.transcendental and not (isinstance(arg, Symbol) and arg.op == "input"):  # (inputs: x's type)
            return f"{self.calls[node.op]}(_like({self.ref(arg)}, x))"
        return super().expression(node)


class TritonLanguage(Language):
    calls: ClassVar[dict[str, str]] = {"pow": "_power", "abs": "tl.abs", "exp": "tl.exp", "log": "tl.log", "log1p": "_log1p", "tanh": "_tanh",
             "sign": "_sign", "isnan": "_isnan", "maximum": "_maximum", "minimum": "_minimum", "where": "tl.where"}


class NumpyLanguage(Language):
    """Whole-block NumPy: each operation one ufunc call writing into a preallocated buffer, buffers
    reused once their value is dead, the loss written straight into ``l`` and the gradient into ``g``;
    operations on options and constants alone stay Python scalars."""

    ufuncs: ClassVar[dict[str, str]] = {
        "add": "np.add", "sub": "np.subtract", "mul": "np.multiply", "div": "np.divide", "pow": "np.power",
        "neg": "np.negative", "gt": "np.greater", "lt": "np.less", "ge": "np.greater_equal", "le": "np.less_equal",
        "abs": "np.abs", "exp": "np.exp", "log": "np.log", "log1p": "_log1p", "tanh": "np.tanh", "sign": "np.sign",
        "isnan": "np.isnan", "maximum": "np.maximum", "minimum": "np.minimum", "or": "np.logical_or"}
    boolean: ClassVar[frozenset] = frozenset({"gt", "lt", "ge", "le", "isnan", "or"})

    def lines(self, graph: Graph, outputs: dict, indent: str) -> list[str]:
        """Source lines computing ``outputs`` ({symbol of ``graph``: buffer name}) into their buffers."""
        targets = [o for o in outputs if isinstance(o, Symbol)]
        nodes = _needed(graph, targets)
        array = {}  # node index -> does it hold an array (else a Python scalar)
        for n in nodes:
            array[n.index] = any(isinstance(a, Symbol) and (a.op == "input" or array.get(a.index, False))
                                 for a in n.args)
        last_use: dict[int, int] = {}
        for position, n in enumerate(nodes):
            for a in n.args:
                if isinstance(a, Symbol):
                    last_use[a.index] = position
        for o in targets:
            last_use[o.index] = len(nodes)  # outputs live to the end
        free: dict[str, list[str]] = {"f": [], "b": []}
        buffer: dict[int, str] = {}
        out, count = [], {"f": 0, "b": 0}

        def take(kind: str) -> str:
            if free[kind]:
                return free[kind].pop()
            count[kind] += 1
            name = f"{kind}{count[kind]}"
            out.append(f"{indent}{name} = np.empty(x.shape, {'bool' if kind == 'b' else 'x.dtype'})")
            return name

        def release(position: int, n: Symbol):
            for a in n.args:
                if isinstance(a, Symbol) and a.index in buffer and last_use[a.index] == position:
                    name = buffer.pop(a.index)
                    if name not in outputs.values():
                        free[name[0]].append(name)

        def ref(a) -> str:
            if isinstance(a, Symbol) and a.index in buffer:
                return buffer[a.index]
            return self.ref(a)

        for position, n in enumerate(nodes):
            if not array[n.index]:
                out.append(f"{indent}v{n.index} = {self.expression(n)}")
                continue
            args = [ref(a) for a in n.args]
            kind = "b" if n.op in self.boolean else "f"
            named = outputs.get(n)
            if n.op == "where":  # a bitwise select (_select): np.where branches per element
                release(position, n)
                target = named or take(kind)
                out.append(f"{indent}_select({', '.join(args)}, {target})")
            else:  # a ufunc may write over an operand that dies here
                release(position, n)
                target = named or take(kind)
                out.append(f"{indent}{self.ufuncs[n.op]}({', '.join(args)}, out={target})")
            buffer[n.index] = target
        for symbol, name in outputs.items():  # an output that is an input, an option or a constant
            if not (isinstance(symbol, Symbol) and symbol.index in buffer and buffer[symbol.index] == name):
                out.append(f"{indent}np.copyto({name}, {ref(symbol)})")
        return out


_HEADER = '''"""GENERATED by ``python -m losslab.definitions.codegen`` from losslab/definitions/pointwise.py: do not edit.

{purpose}
"""

# fmt: off
# ruff: noqa
'''

_NUMBA_PRELUDE = '''
import math

from numba import njit, prange

from ._numba_math import exp as _exp, like as _like, log as _log, log1p as _log1p, tanh as _tanh  # float32: SIMD (libm: scalar)

# reassociation lets LLVM vectorise the sum; contraction allows FMA. No NaN/inf assumptions: a
# non-finite input still gives a non-finite total, and the caller then runs the reference path.
_FASTMATH = {"reassoc", "contract"}

# Every function here uses NumPy's error model: a float division by zero gives inf or NaN (which the caller sees in
# the total and hands to the reference path), not Python's ZeroDivisionError.
# Below this many elements a kernel loops on the calling thread: waking the thread pool costs more than the loop
# (a kernel call on 1,024 elements: 4.6 us with the pool's threads spinning, 21.5 us when they sleep, as they do
# under OMP_WAIT_POLICY=PASSIVE or after a pause; losslab's NumPy blocks use threads from the same size up).
_SERIAL_BELOW = 1 << 18
# Only the kernels that run at every size (losslab._numba.NAMES) are compiled for the thread pool (parallel=True); in
# the others, which serve the compiled lane's small calls alone, prange is a plain range (and compiles 3x faster).
# The plain call (no weight, no per-item losses: a mean or a sum, with its gradient or the value alone) has loops of
# its own with no branch on those flags: LLVM vectorises the shared loop for some losses only (mse), so on 16M float32
# elements mae, huber, hinge and quantile took 30-40 ms there and 9-11 here (huber's value alone at 4M: 17 -> ~1 ms).


@njit(inline="always", cache=True, error_model="numpy")
def _maximum(a, b):  # NumPy's: NaN if either is NaN
    return a if (a > b or a != a) else b


@njit(inline="always", cache=True, error_model="numpy")
def _minimum(a, b):
    return a if (a < b or a != a) else b


@njit(inline="always", cache=True, error_model="numpy")
def _sign(a):  # 0 at 0 and NaN at NaN, as np.sign
    return 1.0 if a > 0 else (-1.0 if a < 0 else a)


@njit(inline="always", cache=True, error_model="numpy")
def _power(a, b):
    return a ** b
'''

_NUMBA_LOSS = '''

@njit(inline="always", cache=True, error_model="numpy")
def {name}_element(x, t{params}):
{body}
    return {value}, {grad}


@njit(inline="always", cache=True, error_model="numpy")
def {name}_plain(x, t, u, g, i{params}):
    li, gi = {name}_element(x[i], t[i]{params})
    g[i] = gi * u
    return li


@njit(inline="always", cache=True, error_model="numpy")
def {name}_item(x, t, w, u, l, g, i, has_w, want_l, want_g{params}):
    li, gi = {name}_element(x[i], t[i]{params})
    if has_w:
        li *= w[i]
        gi *= w[i]
    if want_l:
        l[i] = li
    if want_g:
        g[i] = gi * u
    return li


@njit(parallel={parallel}, nogil=True, fastmath=_FASTMATH, cache=True, error_model="numpy")
def {name}(x, t, w, u, l, g{params}):
    """{name}: the sum of the (weighted) losses; per-item losses into l, the gradient times u into g
    (each only when its length is x's: pass an empty array otherwise). x, t, w: 1-D, contiguous."""
    n = x.shape[0]
    has_w, want_l, want_g = w.shape[0] == n, l.shape[0] == n, g.shape[0] == n
    total = 0.0  # float64 accumulator
    if not (has_w or want_l):  # the plain call: its own loops, with no branch on the flags
        if want_g:
            if n < _SERIAL_BELOW:
                for i in range(n):
                    total += {name}_plain(x, t, u, g, i{params})
                return total
            for i in prange(n):
                total += {name}_plain(x, t, u, g, i{params})
            return total
        if n < _SERIAL_BELOW:  # the value alone
            for i in range(n):
                total += {name}_element(x[i], t[i]{params})[0]
            return total
        for i in prange(n):
            total += {name}_element(x[i], t[i]{params})[0]
        return total
    if n < _SERIAL_BELOW:
        for i in range(n):
            total += {name}_item(x, t, w, u, l, g, i, has_w, want_l, want_g{params})
        return total
    for i in prange(n):
        total += {name}_item(x, t, w, u, l, g, i, has_w, want_l, want_g{params})
    return total
'''

_TRITON_PRELUDE = '''
import triton
import triton.language as tl


@triton.jit
def _maximum(a, b):  # NaN if either is NaN, as NumPy and torch (the hardware max drops a NaN)
    return tl.where((a > b) | (a != a), a, b)


@triton.jit
def _minimum(a, b):
    return tl.where((a < b) | (a != a), a, b)


@triton.jit
def _sign(a):
    return tl.where(a > 0, 1.0, tl.where(a < 0, -1.0, a))


@triton.jit
def _isnan(a):
    return a != a


@triton.jit
def _log1p(u):
    # log(1 + u) with the rounding of 1 + u corrected (Goldberg): exact to float32 for tiny u too
    w = 1.0 + u
    return tl.where(w == 1.0, u, tl.log(w) * (u / (w - 1.0)))


@triton.jit
def _tanh(a):
    # 1 - 2 / (e^2a + 1): exact at +-inf; near 0 its odd series, which that form would round to 0
    small = a * (1.0 - a * a * (1.0 / 3.0 - a * a * (2.0 / 15.0)))
    return tl.where(tl.abs(a) < 0.0625, small, 1.0 - 2.0 / (tl.exp(2.0 * a) + 1.0))


@triton.jit
def _power(a, b):
    # a^b for a >= 0 (the definitions' only use): 0^0 = 1, 0^b = 0
    return tl.where(b == 0, 1.0, tl.where(a == 0, 0.0, tl.exp(b * tl.log(a))))
'''

_TRITON_LOSS = '''

@triton.jit
def {name}_kernel(X, T, W, G, L, PARTIAL, SCALE, n{params}, HAS_WEIGHT: tl.constexpr, WITH_GRAD: tl.constexpr,
{pad}KEEP: tl.constexpr, BLOCK: tl.constexpr):
    """{name}: per block, the sum of the (weighted) losses into PARTIAL; the gradient times SCALE[0]
    into G, the per-item losses into L (when asked). Computed in float32."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(X + offs, mask=mask, other=0.0).to(tl.float32)
    t = tl.load(T + offs, mask=mask, other=0.0).to(tl.float32)
{body}
    value = {value} + tl.zeros_like(x)
    if HAS_WEIGHT:
        w = tl.load(W + offs, mask=mask, other=0.0).to(tl.float32)
        value = value * w
    if KEEP:
        tl.store(L + offs, value.to(L.dtype.element_ty), mask=mask)
    tl.store(PARTIAL + tl.program_id(0), tl.sum(tl.where(mask, value, 0.0), 0))
    if WITH_GRAD:
        grad = ({grad}) * tl.load(SCALE)
        if HAS_WEIGHT:
            grad = grad * w
        tl.store(G + offs, grad.to(G.dtype.element_ty), mask=mask)
'''


def _params(variant: Variant) -> str:
    return "".join(f", {p}" for p in variant.params)


def numba_source() -> str:
    language = NumbaLanguage()
    parts = [_HEADER.format(purpose="Numba kernels of the elementwise losses (see losslab/_numba.py)."), _NUMBA_PRELUDE]
    for variant in VARIANTS:
        lines, value, grad = language.body(variant, "    ")
        # the thread pool only for the kernels that run at every size (_numba.NAMES): the others serve the compiled
        # lane's small calls alone, and a parallel loop triples a kernel's compile time
        parts.append(_NUMBA_LOSS.format(name=variant.name, params=_params(variant), body="\n".join(lines) or "    pass",
                                        value=value, grad=grad, parallel=variant.name in _numba.NAMES))
    parts.append(f"\n\nKERNELS = {{{', '.join(f'{v.name!r}: {v.name}' for v in VARIANTS)}}}\n")
    return "".join(parts)


def triton_source() -> str:
    language = TritonLanguage()
    parts = [_HEADER.format(purpose="Triton kernels of the elementwise losses (see losslab/gpu/pointwise.py)."),
             _TRITON_PRELUDE]
    for variant in VARIANTS:
        lines, value, grad = language.body(variant, "    ")
        head = f"def {variant.name}_kernel("
        parts.append(_TRITON_LOSS.format(name=variant.name, params=_params(variant), body="\n".join(lines) or "    pass",
                                         value=value, grad=grad, pad=" " * len(head)))
    parts.append(f"\n\nKERNELS = {{{', '.join(f'{v.name!r}: {v.name}_kernel' for v in VARIANTS)}}}\n")
    return "".join(parts)


_NUMPY_PRELUDE = '''
import numpy as np

from ._ufuncs import log1p as _log1p  # np.log1p, or a corrected log where NumPy's log1p is a scalar loop

def _select(c, a, b, out):
    """np.where(c, a, b) into out, bit for bit (NaN, inf and -0.0 included); in float32 as four bitwise passes:
    np.where branches per element, about 5 ns an element on a random mask (the hinges' active set), these take
    0.8 ns (hinge_embedding's kernel: 0.32x its time, quantile 0.41x, hinge 0.58x, focal 0.87x). In float64
    they take 2.6 ns, which measured no better than np.where, so float64 keeps it. ``out`` may be a's or b's
    buffer."""
    if out.dtype != np.float32 or a is b:  # (a is b: the choice is no choice; and out may be both)
        np.copyto(out, np.where(c, a, b))
        return
    bits = np.uint32
    b_is_out = b is out
    mask = np.negative(c, dtype=bits)  # all ones where c holds
    a = np.asarray(a, out.dtype).view(bits)
    b = np.asarray(b, out.dtype).view(bits)
    o = out.view(bits)
    base, other = b, a
    if b_is_out:  # b's buffer is the output and is written first: keep a, take b where c does not hold
        base, other = a, b
        np.invert(mask, out=mask)
    np.bitwise_xor(base, other, out=o)  # o = base ^ ((base ^ other) & mask): other where mask, else base
    np.bitwise_and(o, mask, out=o)
    np.bitwise_xor(o, base, out=o)
'''

_NUMPY_LOSS = '''

def {name}(x, t, l, g, o):
    """{name} on one block: the per-element losses into l, their gradient into g (None: not wanted);
    ``o`` maps option names to Python numbers."""
{options}    with np.errstate(all="ignore"):  # both sides of a where are computed; only the chosen one is kept
        if g is None:
{value_only}
            return
{both}
'''


def numpy_source() -> str:
    language = NumpyLanguage()
    parts = [_HEADER.format(purpose="NumPy block kernels of the elementwise losses (see losslab/_fast.py)."), _NUMPY_PRELUDE]
    for variant in VARIANTS:
        graph, value, grad = trace(variant)
        options = "".join(f"    {p} = o[{p!r}]\n" for p in variant.params)
        value_only = language.lines(graph, {value: "l"}, " " * 12)
        both = language.lines(graph, {value: "l", grad: "g"}, " " * 8)
        parts.append(_NUMPY_LOSS.format(name=variant.name, options=options, value_only="\n".join(value_only),
                                        both="\n".join(both)))
    parts.append(f"\n\nKERNELS = {{{', '.join(f'{v.name!r}: {v.name}' for v in VARIANTS)}}}\n")
    return "".join(parts)


_PACKAGE = Path(__file__).resolve().parents[1]
TARGETS = {_PACKAGE / "_numba_kernels.py": numba_source, _PACKAGE / "gpu" / "_pointwise_kernels.py": triton_source,
           _PACKAGE / "_numpy_kernels.py": numpy_source}


def stale() -> list[Path]:
    return [path for path, source in TARGETS.items() if not path.exists() or path.read_text() != source()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m losslab.definitions.codegen", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a generated file differs, writing nothing")
    args = parser.parse_args(argv)
    if args.check:
        for path in stale():
            print(f"stale: {path} (run python -m losslab.definitions.codegen)", file=sys.stderr)
        return 1 if stale() else 0
    for path, source in TARGETS.items():
        tmp = path.with_suffix(".py.tmp")
        tmp.write_text(source())
        tmp.replace(path)  # atomic: an import never sees half a file
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
