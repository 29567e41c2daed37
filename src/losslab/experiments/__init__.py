"""Small, deterministic training runs that prove the seed documents' claims on real numbers.

Each experiment trains with plain NumPy gradient descent through losslab's own analytic gradients
(``.grad`` / ``.hessian``; no autodiff), returns an :class:`ExperimentResult` (a table, the training
histories, the claims it checked) and can save its plots. ``losslab experiment NAME`` runs one from
the command line with a progress bar.

    >>> import losslab.experiments as lx
    >>> result = lx.run("outliers")
    >>> print(result)                  # the summary table and the checked claims
    >>> result.save_plots("plots/")    # PNG files (needs matplotlib)
    >>> lx.run("outliers", losses=["mse", "huber"], delta=0.5, lr=0.3, epochs=2000, seed=1)  # the Train tab's settings
    >>> lx.describe("imbalance")       # its racers and settings, with ranges and defaults
"""

from ._core import EXPERIMENTS, ExperimentResult, run
from .training import TRAININGS, describe, prepare, race

__all__ = ["EXPERIMENTS", "TRAININGS", "ExperimentResult", "describe", "prepare", "race", "run"]
