"""Every worked example of the seed documents, as data: inputs, formula, the value losslab computes,
and the number the article printed. Where the two differ, ``check()`` says so plainly (the articles
are in ../shared/seeds/; docs/seed-numbers.md discusses the differences).

    >>> import losslab.examples as lx
    >>> for r in lx.check():           # one row per example
    ...     print(r)                   # e.g. "002 MSELoss ... printed 0.1875, computed 0.375: DIFFERS"
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .losses.classification import binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, nll
from .losses.regression import huber, mae, mse

__all__ = ["EXAMPLES", "Check", "Example", "check", "get"]


@dataclass(frozen=True)
class Example:
    id: str  # "SEED-slug"
    seed: str  # the seed document's number
    title: str
    inputs: dict[str, Any]
    formula: str
    compute: Callable[..., float]  # losslab's computation, called with **inputs
    printed: float | None  # what the article printed (None: a claim or a step without a number)
    decimals: int  # the article's precision (negative: rounded to tens, hundreds)

    def value(self) -> float:
        return float(self.compute(**self.inputs))


@dataclass(frozen=True)
class Check:
    example: Example
    computed: float
    agrees: bool | None  # None when the article printed no number

    def to_dict(self) -> dict[str, Any]:
        e = self.example
        return {"id": e.id, "seed": e.seed, "title": e.title, "inputs": e.inputs, "formula": e.formula,
                "printed": e.printed, "computed": self.computed, "agrees": self.agrees}

    def __str__(self) -> str:
        e = self.example
        shown = f"{self.computed:.4f}" if abs(self.computed) < 1e4 else f"{self.computed:.1f}"
        if self.agrees is None:
            verdict = f"computed {shown} (the article prints no number)"
        elif self.agrees:
            verdict = f"printed {e.printed:.10g}, computed {shown}: matches"
        else:
            verdict = f"printed {e.printed:.10g}, but its own inputs give {shown}: DIFFERS"
        return f"{e.seed} {e.title}: {verdict}"


def _ce(logits, target):
    return cross_entropy(np.asarray(logits, dtype=float), np.asarray(target))


def _ce_prob(p, target):  # cross-entropy when the model gave probability p to the true class
    return nll(np.log(np.asarray([p, 1 - p])), np.asarray(0)) if target == 0 else None


def _bce(p, y):
    return binary_cross_entropy(np.asarray([p], dtype=float), np.asarray([y], dtype=float))


def _softmax_p(logits, k):  # softmax(logits)[k] = exp(-CE(logits, k))
    return math.exp(-float(_ce(logits, k)))


P4, A4 = [2.5, 0.0, 2.0, 8.0], [3.0, -0.5, 2.0, 7.0]
P4_OUTLIER = [2.5, 0.0, 2.0, 50.0]
PLAY = {"predictions": [1.5, 2.5, 3.0], "targets": [1.0, 3.0, 3.0]}


def _reg(loss, **options):
    return lambda predictions, targets: loss(np.asarray(predictions), np.asarray(targets), **options)


def _ratio(f, a, b):
    return lambda **kw: float(f(*a)) / float(f(*b))


EXAMPLES: tuple[Example, ...] = (
    Example("000-ce-right", "000", "CE, logits [2, 5, 1], true class 1", {"logits": [2, 5, 1], "target": 1},
            "-log softmax(z)[y]", _ce, None, 4),
    Example("000-ce-wrong", "000", "CE, confidently wrong logits [5, 1, 2], true class 1", {"logits": [5, 1, 2], "target": 1},
            "-log softmax(z)[y]", _ce, None, 4),
    Example("000-bce-pos", "000", "BCE, y = 1, p = 0.01", {"p": 0.01, "y": 1.0}, "-[y log p + (1-y) log(1-p)]", _bce, 4.6, 1),
    Example("000-bce-neg", "000", "BCE, y = 0, p = 0.99", {"p": 0.99, "y": 0.0}, "-[y log p + (1-y) log(1-p)]", _bce, 4.6, 1),
    Example("000-mse-grad", "000", "MSE gradient for p = 0 when y = 1 (bounded: magnitude 2)", {"p": 0.0, "y": 1.0}, "2 (p - y)",
            lambda p, y: mse.grad(np.asarray([p]), np.asarray([y]))[0], -2.0, 0),
    Example("001-play-mse", "001", "playground MSE, errors (0.5, -0.5, 0)", PLAY, "mean (p - t)^2", _reg(mse), 0.1667, 4),
    Example("001-play-mae", "001", "playground MAE, errors (0.5, -0.5, 0)", PLAY, "mean |p - t|", _reg(mae), 0.3333, 4),
    Example("001-play-huber", "001", "playground Huber(1), errors (0.5, -0.5, 0)", PLAY, "mean huber_1(p - t)", _reg(huber), 0.0833, 4),
    Example("001-ce-0.9", "001", "CE at p = 0.90", {"p": 0.9, "target": 0}, "-log p", _ce_prob, 0.1054, 4),
    Example("001-ce-0.1", "001", "CE at p = 0.10", {"p": 0.1, "target": 0}, "-log p", _ce_prob, 2.3026, 4),
    Example("001-ce-ratio", "001", "confident-wrong penalty ratio CE(0.10) / CE(0.90)", {}, "log 0.1 / log 0.9",
            _ratio(_ce_prob, (0.1, 0), (0.9, 0)), 21.9, 1),
    Example("001-logloss-100x", "001", "log loss: 0.99 on the wrong class vs 0.6 on the wrong class ('roughly 100x')", {},
            "log(1 - 0.99) / log(1 - 0.6)", _ratio(_bce, (0.99, 0.0), (0.6, 0.0)), 100.0, -1),
    Example("001-random-ln2", "001", "a random binary classifier's log loss (p = 0.5)", {"n": 8}, "-log 0.5 = ln 2",
            lambda n: binary_cross_entropy_with_logits(np.zeros(n), np.array([0.0, 1.0] * (n // 2))), 0.693, 3),
    Example("002-mse", "002", "MSELoss([2.5, 0, 2, 8], [3, -0.5, 2, 7])", {"predictions": P4, "targets": A4}, "mean (p - t)^2",
            _reg(mse), 0.1875, 4),
    Example("002-mae", "002", "L1Loss([2.5, 0, 2, 8], [3, -0.5, 2, 7])", {"predictions": P4, "targets": A4}, "mean |p - t|",
            _reg(mae), 0.375, 3),
    Example("002-huber", "002", "HuberLoss(delta=1)([2.5, 0, 2, 8], [3, -0.5, 2, 7])", {"predictions": P4, "targets": A4},
            "mean huber_1(p - t)", _reg(huber), 0.125, 3),
    Example("002-mse-outlier", "002", "MSELoss with the outlier 50", {"predictions": P4_OUTLIER, "targets": A4}, "mean (p - t)^2",
            _reg(mse), 395.1875, 4),
    Example("002-mae-outlier", "002", "L1Loss with the outlier 50", {"predictions": P4_OUTLIER, "targets": A4}, "mean |p - t|",
            _reg(mae), 10.875, 3),
    Example("002-huber-outlier", "002", "HuberLoss with the outlier 50", {"predictions": P4_OUTLIER, "targets": A4},
            "mean huber_1(p - t)", _reg(huber), 42.625, 3),
    Example("002-mse-100k", "002", "MSE: a 100k error vs a 10k error", {}, "100000^2 / 10000^2",
            _ratio(lambda e: mse(np.asarray([e]), np.zeros(1)), (100e3,), (10e3,)), 100.0, 0),
    Example("002-ce-0.9", "002", "CE, p = 0.9 ('about 0.1')", {"p": 0.9, "target": 0}, "-log p", _ce_prob, 0.1, 1),
    Example("002-ce-0.01", "002", "CE, p = 0.01 ('about 4.6')", {"p": 0.01, "target": 0}, "-log p", _ce_prob, 4.6, 1),
    Example("002-softmax-0", "002", "softmax([2, 1, 0.1])[0]", {"logits": [2, 1, 0.1], "k": 0}, "exp(z_k) / sum exp(z)", _softmax_p, 0.659, 3),
    Example("002-softmax-1", "002", "softmax([2, 1, 0.1])[1]", {"logits": [2, 1, 0.1], "k": 1}, "exp(z_k) / sum exp(z)", _softmax_p, 0.242, 3),
    Example("002-softmax-2", "002", "softmax([2, 1, 0.1])[2]", {"logits": [2, 1, 0.1], "k": 2}, "exp(z_k) / sum exp(z)", _softmax_p, 0.099, 3),
    Example("002-ce", "002", "CE, logits [2, 1, 0.1], class 0", {"logits": [2, 1, 0.1], "target": 0}, "-log softmax(z)[y]", _ce, 0.417, 3),
    Example("002-confident-right", "002", "CE scenario 'confident & correct' [5, 0.5, 0.5], class 0",
            {"logits": [5, 0.5, 0.5], "target": 0}, "-log softmax(z)[y]", _ce, 0.04, 2),
    Example("002-uncertain", "002", "CE scenario 'uncertain' [1.2, 1.0, 0.8], class 0",
            {"logits": [1.2, 1.0, 0.8], "target": 0}, "-log softmax(z)[y]", _ce, 1.10, 2),
    Example("002-confident-wrong", "002", "CE scenario 'confident & wrong' [0.5, 0.5, 5], class 0",
            {"logits": [0.5, 0.5, 5], "target": 0}, "-log softmax(z)[y]", _ce, 4.56, 2),
    Example("002-100x-worse", "002", "confident-wrong vs confident-right ('~100x worse')", {}, "CE(wrong) / CE(right)",
            _ratio(_ce, ([0.5, 0.5, 5], 0), ([5, 0.5, 0.5], 0)), 100.0, -2),
    Example("003-mse", "003", "MSE of (4.2, 4.0), (7.5, 6.0), (3.1, 3.5)", {"predictions": [4.2, 7.5, 3.1], "targets": [4.0, 6.0, 3.5]},
            "(0.04 + 2.25 + 0.16) / 3", _reg(mse), 0.817, 3),
    Example("003-four-times", "003", "off by 3 vs off by 1.5: four times the loss", {}, "3^2 / 1.5^2",
            _ratio(lambda e: mse(np.asarray([e]), np.zeros(1)), (3.0,), (1.5,)), 4.0, 0),
    Example("003-bce-0.9", "003", "BCE case 1: y = 1, p = 0.9", {"p": 0.9, "y": 1.0}, "-log p", _bce, 0.105, 3),
    Example("003-bce-0.1", "003", "BCE case 2: y = 1, p = 0.1", {"p": 0.1, "y": 1.0}, "-log p", _bce, 2.303, 3),
    Example("003-quiz-0.05", "003", "quiz: BCE for p = 0.05, y = 1", {"p": 0.05, "y": 1.0}, "-log p", _bce, None, 3),
    Example("004-mse-10", "004", "MSE: an error of 10 contributes 100", {"predictions": [10.0], "targets": [0.0]}, "e^2", _reg(mse), 100.0, 0),
    Example("004-mse-2", "004", "MSE: an error of 2 contributes 4", {"predictions": [2.0], "targets": [0.0]}, "e^2", _reg(mse), 4.0, 0),
    Example("004-bce-grad", "004", "BCE gradient -(y/p) + (1-y)/(1-p) at p = 0.2, y = 1", {"p": 0.2, "y": 1.0},
            "-(y/p) + (1-y)/(1-p)", lambda p, y: binary_cross_entropy.grad(np.asarray([p]), np.asarray([y]))[0], -5.0, 0),
)


def get(example_id: str) -> Example:
    for e in EXAMPLES:
        if e.id == example_id:
            return e
    raise KeyError(f"no worked example {example_id!r}; ids: {', '.join(e.id for e in EXAMPLES)}")


def check(seed: str | None = None) -> list[Check]:
    """Compute every example (of one seed document, if given) and compare with the printed number."""
    out = []
    for e in EXAMPLES:
        if seed is not None and e.seed != seed:
            continue
        value = e.value()
        agrees = None if e.printed is None else math.isclose(round(value, e.decimals), e.printed, abs_tol=10.0 ** -(e.decimals + 3))
        out.append(Check(e, value, agrees))
    return out
