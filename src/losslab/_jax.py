"""The JAX engine: JAX's autodiff takes losslab's analytic gradient instead of differentiating the formula.

Every ``ll.<loss>`` call on JAX arrays (concrete or traced, under ``jit``, ``grad``, ``vmap``) with a
``mean`` or ``sum`` reduction comes here after it is bound and validated once. The loss becomes a
``jax.custom_jvp`` function whose tangent rule is the analytic gradient: the value and the gradient
are computed together from the definitions, and ``jax.grad`` / ``value_and_grad`` then only scale
the gradient (the transpose of ``<grad, dx>``), as the torch engine's backward does. Under ``jit``
XLA fuses value and gradient into the same passes, where autodiff of the formula would trace the
stable forms (max shifts, ``where`` guards) and their derivatives separately.

Higher derivatives stay exact: the tangent rule is itself written in differentiable JAX operations,
so ``jax.hessian`` and ``jacfwd`` differentiate the analytic gradient. A tangent for anything but the
loss's inputs (targets, weights, an option passed as a traced number) is computed by differentiating
the reference formula instead (``jax.jvp``), so every derivative JAX can ask for is defined.
``reduction="none"`` and ``ll.reference_path()`` use plain autodiff of the reference path.
"""

from __future__ import annotations

from typing import Any

import jax
from jax.custom_derivatives import SymbolicZero

from . import _fast, _xp


def _is_jax_value(v: Any) -> bool:
    return isinstance(v, jax.Array) or isinstance(v, jax.core.Tracer)


def run(loss, xp, bound: dict, reduction: str, normalizer: Any, with_grad: bool):
    """The JAX engine's entry (registered in losslab/__init__.py for JAX arrays)."""
    if with_grad or reduction == "none" or not _fast.enabled():
        return NotImplemented  # value_and_grad is the analytic gradient already; none: per-item jvp by autodiff
    items = dict(bound)
    items["_normalizer"] = normalizer
    names = tuple(k for k, v in items.items() if _is_jax_value(v))
    if not any(isinstance(items[k], jax.core.Tracer) for k in names):
        return NotImplemented  # concrete arrays outside any transformation: nothing will differentiate this call
    static = tuple((k, v) for k, v in items.items() if k not in names)
    return _function(loss, names, static, reduction)(*(items[k] for k in names))


def _split(names, static, arrays):
    kwargs = dict(static)
    kwargs.update(zip(names, arrays))
    return kwargs, kwargs.pop("_normalizer")


def _function(loss, names: tuple, static: tuple, reduction: str):
    def reference(*arrays):
        kwargs, normalizer = _split(names, static, arrays)
        xp = _xp.namespace(*(kwargs[n] for n in loss.inputs))
        return loss._reference(xp, kwargs, reduction, normalizer, False)

    @jax.custom_jvp
    def value(*arrays):
        return reference(*arrays)

    def tangent_rule(primals, tangents):
        differentiated = [(n, t) for n, t in zip(names, tangents) if not isinstance(t, SymbolicZero)]
        if any(n not in loss.inputs for n, _ in differentiated):
            # a derivative with respect to targets, weights or an option: autodiff of the formula
            dense = tuple(jax.numpy.zeros(t.shape, t.dtype) if isinstance(t, SymbolicZero) else t for t in tangents)
            return jax.jvp(reference, primals, dense)
        kwargs, normalizer = _split(names, static, primals)
        xp = _xp.namespace(*(kwargs[n] for n in loss.inputs))
        out, grads = loss._reference(xp, kwargs, reduction, normalizer, True)
        by_name = dict(zip(loss.inputs, grads))
        tangent = sum(
            (xp.sum(xp.astype(by_name[n], out.dtype) * xp.astype(t, out.dtype)) for n, t in differentiated),
            xp.zeros((), dtype=out.dtype),
        )
        return out, tangent

    value.defjvp(tangent_rule, symbolic_zeros=True)
    return value
