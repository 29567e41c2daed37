"""The seeds' playground: every loss that applies to the same numbers, with its gradient.

One source for the CLI (``losslab compare``, ``losslab ce``) and the web explorer, so both show
the same numbers. Which losses apply follows from the registry (family, task, first input) and
from the losses' own validation: a loss whose checks reject the data is listed with its message,
which is usually the lesson (hinge wants -1/+1 labels, BCE wants probabilities).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _stable
from .registry import get_loss, losses


@dataclass
class Playground:
    """``results``: loss name -> {"value", "grad", "options"}; ``not_applicable``: loss name -> why."""

    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    not_applicable: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"results": self.results, "not_applicable": self.not_applicable}


def _evaluate(names: list[str], x: np.ndarray, t: np.ndarray, options: dict[str, Any]) -> Playground:
    out = Playground()
    for name in names:
        loss = get_loss(name)
        own = {k: v for k, v in options.items() if k in loss.__signature__.parameters}
        try:
            value, grad = loss.value_and_grad(x, t, **own)
        except (ValueError, TypeError) as err:
            if str(err).startswith(tuple(own)):  # a bad option is the caller's error, not a misfit
                raise
            out.not_applicable[name] = str(err)
            continue
        out.results[name] = {"value": float(value), "grad": np.asarray(grad, dtype=float).tolist(), "options": own}
    return out


def compare(predictions, targets, **options) -> Playground:
    """Every elementwise loss (regression, binary, multi-label) on the same predictions and targets.

    Regression losses always apply; BCE needs probabilities, BCE-with-logits and focal 0/1 targets,
    hinge -1/+1 targets. ``options`` go to the losses that take them (delta, beta, q, margin, gamma ...).
    """
    x, t = np.asarray(predictions, dtype=np.float64), np.asarray(targets, dtype=np.float64)
    if x.shape != t.shape:
        raise ValueError(f"predictions has {x.size} numbers but targets has {t.size}; give one target per prediction")
    names = [s.name for s in losses() if len(s.inputs) == 2
             and (s.family == "regression" or s.task in ("binary", "multilabel"))]
    return _evaluate(names, x, t, options)


def compare_classes(logits, target: int, **options) -> Playground:
    """Every loss on one row of class scores (logits) and the index of the true class."""
    z = np.asarray(logits, dtype=np.float64)
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)):
        raise TypeError(f"target must be a class index (an int), got {target!r}")
    names = [s.name for s in losses(task="multiclass") if next(iter(s.inputs)) in ("logits", "scores")]
    return _evaluate(names, z, np.asarray(target, dtype=np.int64), options)


def cross_entropy_report(logits, target: int, label_smoothing: float = 0.0) -> dict[str, Any]:
    """Softmax probabilities, the cross-entropy and its gradient p - y for one row of logits."""
    z = np.asarray(logits, dtype=np.float64)
    value, grad = get_loss("cross_entropy").value_and_grad(z, np.asarray(target), label_smoothing=label_smoothing)
    return {"logits": z.tolist(), "target": int(target), "probabilities": _stable.softmax(np, z).tolist(),
            "loss": float(value), "grad": np.asarray(grad).tolist(), "label_smoothing": label_smoothing}
