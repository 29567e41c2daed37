"""Small, deterministic training runs that prove the seed documents' claims on real numbers.

Each experiment trains with plain NumPy gradient descent through losslab's own analytic gradients
(``.grad`` / ``.hessian``; no autodiff), returns an :class:`ExperimentResult` (a table, the training
histories, the claims it checked) and can save its plots. ``losslab experiment NAME`` runs one from
the command line with a progress bar.

    >>> import losslab.experiments as lx
    >>> result = lx.run("outliers")
    >>> print(result)                  # the summary table and the checked claims
    >>> result.save_plots("plots/")    # PNG files (needs matplotlib)
"""

from ._core import EXPERIMENTS, ExperimentResult, run

__all__ = ["EXPERIMENTS", "ExperimentResult", "run"]
