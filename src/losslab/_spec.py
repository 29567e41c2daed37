"""LossSpec: what the registry knows about a loss. Data only, no behaviour.

Each loss class carries its spec next to its formulas; ``losslab.registry`` collects them and
feeds the CLI, the docs, and later the web explorer and the advisor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

TASKS = ("regression", "binary", "multiclass", "multilabel", "segmentation", "ranking", "distribution", "preference")


@dataclass(frozen=True)
class Interval:
    """A domain of real numbers (finite always), as scikit-learn's ``Interval``: ``closed`` says which
    ends belong to it ("both", "left", "right", "neither"); ``integer`` asks for whole numbers."""

    low: float | None = None
    high: float | None = None
    closed: str = "both"
    integer: bool = False

    def contains(self, v: float) -> bool:
        # (an int of any size compares exactly with the bounds; math.isfinite would overflow on it)
        if (not isinstance(v, int) and not math.isfinite(v)) or (self.integer and v != int(v)):
            return False
        if self.low is not None and (v < self.low or (v == self.low and self.closed in ("right", "neither"))):
            return False
        return not (self.high is not None and (v > self.high or (v == self.high and self.closed in ("left", "neither"))))

    def describe(self) -> str:
        kind = "an int" if self.integer else "a finite number"
        if self.low is None and self.high is None:
            return kind
        bound = (lambda v: str(int(v))) if self.integer else (lambda v: f"{v:g}")
        left = "(-inf" if self.low is None else ("[" if self.closed in ("both", "left") else "(") + bound(self.low)
        right = "inf)" if self.high is None else bound(self.high) + ("]" if self.closed in ("both", "right") else ")")
        return f"{kind} in {left}, {right}"


@dataclass(frozen=True)
class Intervals:
    """A union of disjoint Intervals (Tweedie's power: (-inf, 0] or [1, inf))."""

    parts: tuple[Interval, ...]
    integer: bool = False

    def contains(self, v: float) -> bool:
        return any(part.contains(v) for part in self.parts)

    def describe(self) -> str:
        first, *rest = [part.describe() for part in self.parts]
        return " or ".join([first, *(r.removeprefix("a finite number ") for r in rest)])


@dataclass(frozen=True)
class Choices:
    """A domain of listed values (compared with ==, bools only with bools)."""

    values: tuple

    def describe(self) -> str:
        shown = [repr(v) for v in self.values]
        return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]


@dataclass(frozen=True)
class OptionSpec:
    """One option of a loss. Its ``domain`` is the single declaration of what the option accepts: the
    losses validate against it (``_checks.option_in``), the fast paths rely on that validation, and the
    docs and the explorer show it. ``low``/``high`` are the explorer's slider range (inside the domain)."""

    name: str
    description: str
    domain: Interval | Intervals | Choices | None  # None: an array option (weight, pos_weight), checked by the loss
    low: float | None = None
    high: float | None = None
    integer: bool = False  # only whole numbers in [low, high]
    none_means: str = ""  # where None is accepted: what it means (e.g. "no cap")
    callable_means: str = ""  # where a Python function is accepted: what it is
    negative_means: str = ""  # where any negative value is accepted in place of None: what it means
    array_shape: str = ""  # for array options: the expected shape, in words

    @property
    def valid(self) -> str:
        """The accepted values, in words (docs, explorer, error messages)."""
        text = self.array_shape if self.domain is None else self.domain.describe()
        if self.none_means:
            text += f", or None ({self.none_means})"
        if self.callable_means:
            text += f", or {self.callable_means}"
        if self.negative_means:
            text += f"; None or a negative value: {self.negative_means}"
        return text


@dataclass(frozen=True)
class LossSpec:
    name: str
    family: str  # one of registry.FAMILIES
    tasks: tuple[str, ...]  # the first is the main task
    summary: str
    output_layer: str  # what the model's last layer must produce for this loss
    inputs: dict[str, str]  # argument -> valid range, for every positional argument
    formula_latex: str
    formula_text: str
    gradient_latex: str
    gradient_text: str
    convex: bool  # convex in the prediction input(s)
    smooth: bool  # continuously differentiable everywhere
    lower_bound: float
    # the gradient w.r.t. the prediction stays bounded however far the prediction moves from its
    # target, so a single extreme example cannot dominate an update
    robust_to_outliers: bool
    when_to_use: str
    peers: dict[str, str]  # "pytorch" / "optax" / "keras" -> equivalent, or "none"
    torch_module: str  # class name in losslab.torch
    options: tuple[OptionSpec, ...] = ()
    hessian_text: str | None = None
    conventions: str = ""  # kinks, clamps, deliberate differences from PyTorch
    # compares every item of the batch with every other (InfoNCE, SigLIP): work and memory grow as N²
    pairwise_batch: bool = False
    # regression losses defined only for predictions above this (a positive mean: 0; MSLE: -1)
    prediction_low: float | None = None
    # regression losses defined only for targets at or above this (counts: 0)
    target_low: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str:
        return self.tasks[0]

    def option(self, name: str) -> OptionSpec:
        for o in self.options:
            if o.name == name:
                return o
        raise KeyError(f"{self.name} has no option {name!r}")

    @property
    def has_hessian(self) -> bool:
        return self.hessian_text is not None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (used by the CLI and the docs generator)."""
        from dataclasses import asdict

        d = asdict(self)
        for option, data in zip(self.options, d["options"]):  # the domain in words, as the docs show it
            data["valid"] = option.valid
            data["domain"] = None if option.domain is None else option.domain.describe()
        d["task"] = self.task
        d["has_hessian"] = self.has_hessian
        return d
