"""The experiment runner: result object, progress reporting, plots."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ExperimentResult:
    name: str
    title: str
    table: list[dict[str, Any]]  # one row per model/loss compared
    histories: dict[str, dict[str, list[float]]]  # model -> metric -> values per epoch
    claims: dict[str, bool]  # each seed claim checked on this run -> whether it held
    notes: list[str] = field(default_factory=list)
    plots: list[Callable[[Any], None]] = field(default_factory=list, repr=False)  # each draws on a matplotlib Axes

    def __str__(self) -> str:
        if not self.table:
            return self.title
        columns = list(self.table[0])
        cells = [[_fmt(row.get(c)) for c in columns] for row in self.table]
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
        lines = [self.title, "", "  ".join(c.ljust(w) for c, w in zip(columns, widths)),
                 "  ".join("-" * w for w in widths)]
        lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in cells]
        lines += [""] + [f"[{'ok' if held else 'NOT MET'}] {claim}" for claim, held in self.claims.items()]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "table": self.table, "histories": self.histories,
                "claims": self.claims, "notes": self.notes}

    def save_plots(self, directory: str | Path, *, dpi: int = 110) -> list[Path]:
        """Draw each plot into DIRECTORY/NAME-k.png (matplotlib, headless; each file written atomically);
        the folder is created if needed. Returns the paths."""
        from .._files import output_folder
        from ..plots import _pyplot, save

        plt = _pyplot()
        out = output_folder(directory)
        paths = []
        for k, draw in enumerate(self.plots, start=1):
            fig, ax = plt.subplots(figsize=(6.4, 4.0))
            draw(ax)
            fig.tight_layout()
            paths.append(save(fig, out / f"{self.name}-{k}.png", dpi=dpi))
        return paths


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


class Progress:
    """A progress callback: ``progress(step, total, label)``; silent by default."""

    def __init__(self, show: bool) -> None:
        self.show, self._bar, self._task = show, None, None

    def __enter__(self) -> Progress:
        if self.show:
            try:
                from rich.progress import Progress as RichProgress

                self._bar = RichProgress(transient=True)
                self._bar.start()
            except ImportError:  # pragma: no cover - no rich: no bar
                self._bar = None
        return self

    def __call__(self, step: int, total: int, label: str) -> None:
        if self._bar is None:
            return
        if self._task is None or self._bar.tasks[self._task].description != label:
            self._task = self._bar.add_task(label, total=total)
        self._bar.update(self._task, completed=step)

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()


def check_name(name: str) -> str:
    """``name`` if it names an experiment, else a KeyError that lists them."""
    if name not in EXPERIMENTS:
        raise KeyError(f"no experiment named {name!r}; choose one of {', '.join(EXPERIMENTS)}")
    return name


def run(name: str, *, progress: bool = False, seed: int = 0, **settings: Any) -> ExperimentResult:
    """Run one experiment by name (see ``EXPERIMENTS``); deterministic for given settings.

    The training experiments (``TRAININGS``: outliers, sigmoid-trap, imbalance, overfitting) take the
    settings of the explorer's Train tab: ``losses`` (the racers, a list of names), ``lr``, ``epochs``
    and their loss options (``delta``, ``pos_weight``, ``alpha``, ``gamma``, ``label_smoothing``, ...);
    ``describe(name)`` lists them with their ranges and defaults."""
    from . import runs, training

    check_name(name)
    if name not in training.TRAININGS:
        if settings:
            raise TypeError(f"{name} does not train; it takes only seed, got {sorted(settings)}")
        with Progress(progress) as report:
            return getattr(runs, name.replace("-", "_"))(seed=seed, progress=report)
    prepared = training.prepare(name, seed=seed, **settings)
    epochs = prepared.config["epochs"]
    with Progress(progress) as report:
        for step in training.race(prepared):
            if isinstance(step, ExperimentResult):
                return step
            if step.epoch % 50 == 0 or step.epoch == epochs - 1:
                report(step.epoch + 1, epochs, name)
    raise AssertionError("a race ends with its result")  # pragma: no cover


EXPERIMENTS = {
    "outliers": "linear regression with corrupted targets: MSE vs MAE vs Huber, recovered slope and intercept",
    "sigmoid-trap": "a confidently wrong logistic model: MSE-on-sigmoid vs BCE, epochs to 90 % accuracy",
    "imbalance": "0.2 % positives: trivial model vs BCE vs pos_weight vs focal; the accuracy trap; 99 %-recall threshold",
    "overfitting": "a high-capacity model on little data: train vs validation loss, the early-stopping epoch",
    "convexity": "Hessian of logistic regression's log loss (PSD) vs MSE-on-sigmoid (negative curvature)",
    "mle": "cross-entropy is the categorical negative log-likelihood; a random binary classifier scores ln 2",
}
