"""Choosing a loss: ``recommend`` reads a task name or the targets themselves."""

from .recommend import TASKS, Recommendation, detect_task, recommend

__all__ = ["TASKS", "Recommendation", "detect_task", "recommend"]
