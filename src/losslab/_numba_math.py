"""exp, log, log1p and tanh for the generated Numba kernels: in float32 as arithmetic that LLVM vectorises.

Numba calls libm for ``math.exp``, ``math.log``, ``math.log1p`` and ``math.tanh``, one element at a time (its SVML route needs an
SVML-patched llvmlite, which PyPI's is not), so a compiled loop with a transcendental ran at scalar speed and lost
to NumPy's SIMD ufuncs: the losses with exp or log1p stayed on the NumPy blocks at large sizes (``_numba.NAMES``).
Here a float32 argument is computed in float64 by range reduction and a polynomial (multiplies, adds, a division,
bit operations) and rounded once to float32. float64 carries about 1e-10 relative error, so the float32 result is
the correctly rounded one or, rarely, its neighbour: within 0.51 ulp of float64 libm over float32's whole range,
with libm's values at 0, inf, NaN and the ends of the domain (tests/test_codegen.py). A float64 argument (a float64
call, or a float32 value that a float64 constant promoted) keeps libm: float64 results need libm's accuracy.

Each function is a Numba intrinsic that writes its float32 arithmetic as LLVM instructions straight into the
calling function, so nothing is left for an inliner to decide: the caller's loop vectorises. (Tried first and
measured: inlining Python implementations at Numba's IR level, ``overload(inline="always")``, made a kernel's compile
4x slower on the calling thread and 30x in its thread-pool form; ``context.compile_internal`` left a call that LLVM
stopped inlining once a kernel held its eight loops, 45 ns an element.) No instruction carries fastmath flags and
nothing relies on the exact rounding of an intermediate, so the kernels' flags (reassociation, contraction) cannot
change the result beyond that rounding. Numba's disk cache keys a kernel on its own file: after changing this one,
clear the cache (``src/losslab/__pycache__/*.nb*``).
"""

from __future__ import annotations

import math

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

_F32, _F64, _I32, _I64 = ir.FloatType(), ir.DoubleType(), ir.IntType(32), ir.IntType(64)
_LOG2E = 1.4426950408889634
_LN2 = 0.6931471805599453
_SQRT2 = 1.4142135623730951
_MANTISSA = 0x000FFFFFFFFFFFFF
_ONE_BITS = 0x3FF0000000000000  # the bits of 1.0
# e^r for |r| <= ln2 / 2: the Taylor series to r^8 / 8!, within 3e-10
_EXP_TAYLOR = tuple(1.0 / math.factorial(k) for k in range(9))
# log(1 + f) = 2 atanh(s) = 2 s (1 + s^2 / 3 + s^4 / 5 + ...), s = f / (2 + f), |s| <= 0.172: to s^11, within 1e-12
_ATANH_SERIES = tuple(1.0 / (2 * k + 1) for k in range(6))
# log1p(d) for |d| < 1e-4: d (1 - d / 2 + d^2 / 3 - d^3 / 4), its rest below 2e-17 relative (d times the
# polynomial, so log1p(-0.0) keeps its sign)
_LOG1P_SERIES = (1.0, -0.5, 1.0 / 3.0, -0.25)
# tanh(x) for |x| < 0.05: x (1 - x^2 / 3 + 2 x^4 / 15 - 17 x^6 / 315 + 62 x^8 / 2835), its rest below 1e-15
# relative; above, (1 - e) / (1 + e) with e = e^-2|x|, where the exp's 3e-10 grows by at most 2 / (1 - e^2) < 11
_TANH_SERIES = (1.0, -1.0 / 3.0, 2.0 / 15.0, -17.0 / 315.0, 62.0 / 2835.0)
_TANH_SERIES_BELOW = 0.05


def _double(value: float):
    return ir.Constant(_F64, value)


def _polynomial(builder, x, coefficients):
    """sum_k c_k x^k by Horner's rule (coefficients from the constant term up)."""
    total = _double(coefficients[-1])
    for c in reversed(coefficients[:-1]):
        total = builder.fadd(builder.fmul(total, x), _double(c))
    return total


def _exp_wide(builder, d):
    """e^d in float64 for d in [-104, 89] (float32's whole range: e^-104 rounds to float32 0, e^89 to inf)."""
    floor = builder.module.declare_intrinsic("llvm.floor", [_F64])
    k = builder.call(floor, [builder.fadd(builder.fmul(d, _double(_LOG2E)), _double(0.5))])
    r = builder.fsub(d, builder.fmul(k, _double(_LN2)))
    # 2^k from its bits, k through int32 (AVX2 converts no int64 to or from float)
    exponent = builder.add(builder.sext(builder.fptosi(k, _I32), _I64), ir.Constant(_I64, 1023))
    scale = builder.bitcast(builder.shl(exponent, ir.Constant(_I64, 52)), _F64)
    return builder.fmul(_polynomial(builder, r, _EXP_TAYLOR), scale)


def _log_wide(builder, d):
    """log(d) in float64 for d > 0 normal in float64 (every positive finite float32 is)."""
    bits = builder.bitcast(d, _I64)
    e = builder.fsub(builder.sitofp(builder.trunc(builder.lshr(bits, ir.Constant(_I64, 52)), _I32), _F64),
                     _double(1023.0))
    mantissa = builder.or_(builder.and_(bits, ir.Constant(_I64, _MANTISSA)), ir.Constant(_I64, _ONE_BITS))
    m = builder.bitcast(mantissa, _F64)  # d = m 2^e, m in [1, 2)
    high = builder.fcmp_ordered(">", m, _double(_SQRT2))
    m = builder.select(high, builder.fmul(m, _double(0.5)), m)
    e = builder.select(high, builder.fadd(e, _double(1.0)), e)  # m in (0.707, 1.414]
    f = builder.fsub(m, _double(1.0))
    s = builder.fdiv(f, builder.fadd(f, _double(2.0)))
    series = _polynomial(builder, builder.fmul(s, s), _ATANH_SERIES)
    return builder.fadd(builder.fmul(e, _double(_LN2)), builder.fmul(builder.fmul(s, _double(2.0)), series))


def _float32_constant(value: float):
    return ir.Constant(_F32, value)


def _exp32(builder, x):
    d = builder.fpext(x, _F64)
    c = builder.select(builder.fcmp_ordered(">", d, _double(-104.0)), d, _double(-104.0))  # (NaN: -104, then x)
    c = builder.select(builder.fcmp_ordered("<", c, _double(89.0)), c, _double(89.0))
    y = builder.fptrunc(_exp_wide(builder, c), _F32)
    return builder.select(builder.fcmp_unordered("uno", x, x), x, y)


def _odd_or(builder, x, y, low: float):
    """y where x is in (low, inf), else libm's value at the domain's edges: -inf at low, inf at inf, NaN below
    low or at NaN (log: low = 0; log1p: low = -1)."""
    ordinary = builder.and_(builder.fcmp_ordered(">", x, _float32_constant(low)),
                            builder.fcmp_ordered("<", x, _float32_constant(math.inf)))
    above = builder.select(builder.fcmp_ordered(">", x, _float32_constant(low)), x, _float32_constant(math.nan))
    odd = builder.select(builder.fcmp_ordered("==", x, _float32_constant(low)), _float32_constant(-math.inf), above)
    return builder.select(ordinary, y, odd)


def _log32(builder, x):
    return _odd_or(builder, x, builder.fptrunc(_log_wide(builder, builder.fpext(x, _F64)), _F32), 0.0)


def _log1p32(builder, x):
    d = builder.fpext(x, _F64)
    w = builder.fadd(d, _double(1.0))  # rounds by at most 1.1e-16: below 1.1e-12 of log1p where |d| >= 1e-4
    logged = _log_wide(builder, builder.select(builder.fcmp_ordered(">", w, _double(0.0)), w, _double(1.0)))
    small = builder.and_(builder.fcmp_ordered("<", d, _double(1e-4)), builder.fcmp_ordered(">", d, _double(-1e-4)))
    y = builder.select(small, builder.fmul(d, _polynomial(builder, d, _LOG1P_SERIES)), logged)
    return _odd_or(builder, x, builder.fptrunc(y, _F32), -1.0)


def _tanh32(builder, x):
    d = builder.fpext(x, _F64)
    fabs = builder.module.declare_intrinsic("llvm.fabs", [_F64], ir.FunctionType(_F64, [_F64]))
    copysign = builder.module.declare_intrinsic("llvm.copysign", [_F64], ir.FunctionType(_F64, [_F64, _F64]))
    a = builder.call(fabs, [d])
    # tanh(20) is 1 - 8e-18: 1 in float32, as for every larger |x| and inf (NaN: 20 here, x at the end)
    c = builder.select(builder.fcmp_ordered("<", a, _double(20.0)), a, _double(20.0))
    e = _exp_wide(builder, builder.fmul(c, _double(-2.0)))
    wide = builder.call(copysign, [builder.fdiv(builder.fsub(_double(1.0), e), builder.fadd(_double(1.0), e)), d])
    series = builder.fmul(d, _polynomial(builder, builder.fmul(d, d), _TANH_SERIES))  # (keeps -0.0)
    y = builder.select(builder.fcmp_ordered("<", a, _double(_TANH_SERIES_BELOW)), series, wide)
    return builder.select(builder.fcmp_unordered("uno", x, x), x, builder.fptrunc(y, _F32))


def _function(float32_ir, float64_python):
    """An intrinsic of one float: float32 as the instructions ``float32_ir(builder, x)`` writes into the caller,
    float64 as ``float64_python`` (libm) compiled by Numba."""

    @intrinsic
    def function(typingctx, x):
        if x == types.float32:
            def codegen(context, builder, signature, args):
                return float32_ir(builder, args[0])
        elif x == types.float64:
            def codegen(context, builder, signature, args):
                return context.compile_internal(builder, float64_python, signature, args)
        else:
            return None
        return x(x), codegen

    return function


@intrinsic
def like(typingctx, value, reference):
    """``value`` in ``reference``'s float type (a float64 value next to float32 inputs: rounded once to float32)."""
    if not (isinstance(value, types.Float) and isinstance(reference, types.Float)):
        return None

    def codegen(context, builder, signature, args):
        return context.cast(builder, args[0], signature.args[0], signature.return_type)

    return reference(value, reference), codegen


exp = _function(_exp32, lambda x: math.exp(x))
log = _function(_log32, lambda x: math.log(x))
log1p = _function(_log1p32, lambda x: math.log1p(x))
tanh = _function(_tanh32, lambda x: math.tanh(x))
