"""LossSpec: what the registry knows about a loss. Data only, no behaviour.

Each loss class carries its spec next to its formulas; ``losslab.registry`` collects them and
feeds the CLI, the docs, and later the web explorer and the advisor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TASKS = ("regression", "binary", "multiclass", "multilabel", "ranking", "distribution")


@dataclass(frozen=True)
class OptionSpec:
    name: str
    description: str
    valid: str  # the accepted values, in words, e.g. "> 0" or "[0, 1]"
    # a range for sliders (the web explorer), both ends valid; None for non-numeric options
    low: float | None = None
    high: float | None = None
    integer: bool = False  # only whole numbers in [low, high]


@dataclass(frozen=True)
class LossSpec:
    name: str
    family: str  # "regression" | "classification" | "ranking"
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
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str:
        return self.tasks[0]

    @property
    def has_hessian(self) -> bool:
        return self.hessian_text is not None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (used by the CLI and the docs generator)."""
        from dataclasses import asdict

        d = asdict(self)
        d["task"] = self.task
        d["has_hessian"] = self.has_hessian
        return d
