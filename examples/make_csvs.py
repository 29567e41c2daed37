"""Writes the small CSV files that the README's command-line examples read (deterministic, seed 0).

    python examples/make_csvs.py

- ``data.csv``: ``id,y``: 200 regression targets around 50 with 10 gross outliers (recommend finds Huber);
- ``out.csv``: ``p0,p1,p2,y``: a 3-class model's logits and the true classes (check finds no problem);
- ``probs.csv``: the same outputs after a softmax (check finds probabilities passed as logits);
- ``scores.csv``: ``y,p``: 400 binary labels, 5 % positives, and a model's probabilities (metrics).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def write(name: str, header: list[str], rows) -> None:
    with open(HERE / name, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(header)
        out.writerows(rows)


def main() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(50, 5, 200).round(2)
    y[rng.choice(200, 10, replace=False)] += rng.choice([-1, 1], 10) * rng.uniform(40, 80, 10).round(2)
    write("data.csv", ["id", "y"], ((i + 1, v) for i, v in enumerate(y)))

    classes = rng.integers(0, 3, 120)
    logits = rng.normal(0, 1, (120, 3)).round(3)
    logits[np.arange(120), classes] += 1.5
    logits = logits.round(3)
    write("out.csv", ["p0", "p1", "p2", "y"], ([*row, c] for row, c in zip(logits, classes)))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    write("probs.csv", ["p0", "p1", "p2", "y"], ([*row.round(4), c] for row, c in zip(probs, classes)))

    labels = (rng.uniform(size=400) < 0.05).astype(int)
    scores = 1 / (1 + np.exp(-(rng.normal(0, 1, 400) + 2.5 * labels - 2.0)))
    write("scores.csv", ["y", "p"], zip(labels, scores.round(4)))


if __name__ == "__main__":
    main()
