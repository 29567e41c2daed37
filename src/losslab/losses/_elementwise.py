"""Shared frame for losses with one prediction per element (regression, BCE, hinge, focal).

A subclass names its ``definition`` (``losslab.definitions.pointwise``: the per-element value,
derivative and second derivative, written once for every engine) and validates its inputs in
``prepare``; weighting, the mean's divisor, reductions and the upstream gradient are handled here.
"""

from __future__ import annotations

import math

from .. import _checks as check
from .. import _xp
from .._loss import Loss, State, floating_input, option_array, without_batchmean
from .._reduce import number_coefficient, reduce
from ..definitions.pointwise import Pointwise


class Elementwise(Loss):
    # mean = sum(w * f) / sum(w) for sample weights (regression), / count for PyTorch's
    # "rescaling" weights (BCE)
    mean_divides_by_weight_sum = True
    definition: type[Pointwise]
    rows_are_items, min_row_ndim = True, 1  # every element is an item (a weighted mean's divisor is an array: no)

    def definition_options(self, st: State) -> dict:
        return {name: getattr(st, name) for name in self.definition.options}

    def f(self, xp, st: State):
        return self.definition.value(xp, st.x, st.t, **self.definition_options(st))

    def df(self, xp, st: State):
        return self.definition.grad(xp, st.x, st.t, **self.definition_options(st))

    def d2f(self, xp, st: State):
        if self.definition.second is None:
            return Loss.hessian_terms(self, xp, st, None)
        return self.definition.second(xp, st.x, st.t, **self.definition_options(st))

    def elementwise_state(self, xp, x, targets, weight, *, name: str = "predictions", **options) -> State:
        x, dtype = floating_input(xp, name, x)
        t = _xp.as_array(targets, xp, x)
        check.same_shape(name, x, "targets", t)
        w = option_array(xp, "weight", weight, x, "one weight per element, or broadcastable")
        if w is not None:
            check.broadcastable_to("weight", w, tuple(x.shape), name)
            w = xp.broadcast_to(w, tuple(x.shape))
        return State(x=x, t=t if t.dtype == x.dtype else xp.astype(t, x.dtype), w=w, input_dtypes=(dtype,), **options)

    def terms(self, xp, st: State):
        return self._weighted_terms(xp, st, self.f(xp, st))

    def divisor(self, xp, st: State):
        """The mean's divisor: the element count, or the weights' sum (``mean_divides_by_weight_sum``)."""
        if st.w is None or not self.mean_divides_by_weight_sum:
            return math.prod(st.x.shape)
        return xp.sum(st.w)

    def _weighted_terms(self, xp, st: State, f):
        return (f if st.w is None else st.w * f), self.divisor(xp, st)

    def value_and_grads(self, xp, st: State, reduction: str, normalizer, ops=None):
        # the definition's value_and_grad shares its intermediates (the error, the sigmoids)
        f, g = self.definition.value_and_grad(ops or xp, st.x, st.t, **self.definition_options(st))
        terms, divisor = self._weighted_terms(xp, st, f)
        reduction, divisor = without_batchmean(reduction, divisor, st)  # (kl_div's)
        u = number_coefficient(reduction, divisor, normalizer) if ops is not None else None
        if u is None:
            value, u = self._reduced(xp, terms, divisor, st, reduction, normalizer)
        else:  # an engine's call with a Python-number divisor: the coefficient stays a number
            value = reduce(xp, terms, divisor, reduction, normalizer)
        return value, (self._weighted(st, g, u),)

    def _weighted(self, st: State, g, u):
        g = g * u
        return g if st.w is None else g * st.w

    def grad_terms(self, xp, st: State, u):
        return (self._weighted(st, self.df(xp, st), u),)

    def hessian_terms(self, xp, st: State, u):
        return self._weighted(st, self.d2f(xp, st), u)
