"""Choosing a loss: ``recommend`` reads a task name or the targets themselves; ``lint`` and
``check_inputs`` catch an output layer that does not fit the loss."""

from .lint import Finding, check_inputs, lint
from .recommend import TASKS, Recommendation, detect_task, recommend

__all__ = ["TASKS", "Finding", "Recommendation", "check_inputs", "detect_task", "lint", "recommend"]
