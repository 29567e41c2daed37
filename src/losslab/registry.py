"""The loss registry: every loss's spec, the single source for the CLI, the docs (and later the
web explorer and the advisor)."""

from __future__ import annotations

from ._loss import Loss
from ._spec import TASKS, LossSpec, OptionSpec
from .losses import classification, metric_learning, preference, ranking, regression, segmentation, sequence

_LOSSES: dict[str, Loss] = {loss.name: loss for module in (regression, classification, sequence, segmentation, ranking, metric_learning, preference) for loss in module.LOSSES}
FAMILIES = ("regression", "classification", "segmentation", "ranking", "post-training")

__all__ = ["FAMILIES", "TASKS", "LossSpec", "OptionSpec", "get", "get_loss", "losses"]


def losses(family: str | None = None, task: str | None = None) -> list[LossSpec]:
    """The specs of all losses, optionally only those of one family or suited to one task."""
    if family is not None and family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    return [
        loss.spec
        for loss in _LOSSES.values()
        if (family is None or loss.spec.family == family) and (task is None or task in loss.spec.tasks)
    ]


def get(name: str) -> LossSpec:
    """The spec of one loss, by name (e.g. ``ll.get("huber").formula_text``)."""
    return get_loss(name).spec


def get_loss(name: str) -> Loss:
    """The callable loss itself, by name (``ll.get_loss("huber")(p, t, delta=2.0)``)."""
    try:
        return _LOSSES[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(str(name), _LOSSES, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"no loss named {name!r}{hint} (all: {', '.join(_LOSSES)})") from None
