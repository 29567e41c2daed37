"""Every worked number of the seed documents (../shared/seeds): losslab's value (``losslab.examples``)
checked against an independent textbook computation, and compared with what the article printed.
Where an article printed a number its own formula does not give, the test asserts the computed
value, and both ``losslab examples`` and docs/seed-numbers.md say so."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import losslab as ll
from losslab import examples
from losslab.cli import main


def _softmax(z):
    e = np.exp(np.asarray(z, dtype=float) - np.max(z))
    return e / e.sum()


P4, A4, P4O = np.array([2.5, 0.0, 2.0, 8.0]), np.array([3.0, -0.5, 2.0, 7.0]), np.array([2.5, 0.0, 2.0, 50.0])
PP, PT = np.array([1.5, 2.5, 3.0]), np.array([1.0, 3.0, 3.0])


def _huber(p, t):
    e = np.abs(p - t)
    return np.mean(np.where(e <= 1, 0.5 * e**2, e - 0.5))


# the textbook computation of each example, written independently of losslab
INDEPENDENT = {
    "000-ce-right": lambda: -math.log(_softmax([2, 5, 1])[1]),
    "000-ce-wrong": lambda: -math.log(_softmax([5, 1, 2])[1]),
    "000-bce-pos": lambda: -math.log(0.01),
    "000-bce-neg": lambda: -math.log(1 - 0.99),
    "000-mse-grad": lambda: 2 * (0.0 - 1.0),
    "001-play-mse": lambda: np.mean((PP - PT) ** 2),
    "001-play-mae": lambda: np.mean(np.abs(PP - PT)),
    "001-play-huber": lambda: _huber(PP, PT),
    "001-ce-0.9": lambda: -math.log(0.9),
    "001-ce-0.1": lambda: -math.log(0.1),
    "001-ce-ratio": lambda: math.log(0.1) / math.log(0.9),
    "001-logloss-100x": lambda: math.log(0.01) / math.log(0.4),
    "001-random-ln2": lambda: math.log(2),
    "002-mse": lambda: np.mean((P4 - A4) ** 2),
    "002-mae": lambda: np.mean(np.abs(P4 - A4)),
    "002-huber": lambda: _huber(P4, A4),
    "002-mse-outlier": lambda: np.mean((P4O - A4) ** 2),
    "002-mae-outlier": lambda: np.mean(np.abs(P4O - A4)),
    "002-huber-outlier": lambda: _huber(P4O, A4),
    "002-mse-100k": lambda: 100.0,
    "002-ce-0.9": lambda: -math.log(0.9),
    "002-ce-0.01": lambda: -math.log(0.01),
    "002-softmax-0": lambda: _softmax([2, 1, 0.1])[0],
    "002-softmax-1": lambda: _softmax([2, 1, 0.1])[1],
    "002-softmax-2": lambda: _softmax([2, 1, 0.1])[2],
    "002-ce": lambda: -math.log(_softmax([2, 1, 0.1])[0]),
    "002-confident-right": lambda: -math.log(_softmax([5, 0.5, 0.5])[0]),
    "002-uncertain": lambda: -math.log(_softmax([1.2, 1.0, 0.8])[0]),
    "002-confident-wrong": lambda: -math.log(_softmax([0.5, 0.5, 5])[0]),
    "002-100x-worse": lambda: math.log(_softmax([0.5, 0.5, 5])[0]) / math.log(_softmax([5, 0.5, 0.5])[0]),
    "003-mse": lambda: (0.04 + 2.25 + 0.16) / 3,
    "003-four-times": lambda: 9 / 2.25,
    "003-bce-0.9": lambda: -math.log(0.9),
    "003-bce-0.1": lambda: -math.log(0.1),
    "003-quiz-0.05": lambda: -math.log(0.05),
    "004-mse-10": lambda: 100.0,
    "004-mse-2": lambda: 4.0,
    "004-bce-grad": lambda: -(1 / 0.2),
}
# the printed numbers that the articles' own inputs do not give (docs/seed-numbers.md)
ARTICLE_WRONG = {"001-logloss-100x", "002-mse", "002-mae", "002-huber", "002-mse-outlier", "002-mae-outlier",
                 "002-huber-outlier", "002-confident-right", "002-uncertain", "002-confident-wrong", "002-100x-worse"}
RESULTS = examples.check()


def test_every_example_has_an_independent_oracle():
    assert {r.example.id for r in RESULTS} == set(INDEPENDENT)
    assert {e.seed for e in examples.EXAMPLES} == {"000", "001", "002", "003", "004"}


@pytest.mark.parametrize("result", RESULTS, ids=[r.example.id for r in RESULTS])
def test_worked_number(result):
    assert result.computed == pytest.approx(INDEPENDENT[result.example.id](), rel=1e-9, abs=1e-12)
    if result.example.printed is not None:
        assert result.agrees == (result.example.id not in ARTICLE_WRONG), str(result)
        assert ("DIFFERS" in str(result)) == (result.example.id in ARTICLE_WRONG)


def test_seed_002_regression_outputs_are_what_pytorch_prints_too():
    """The seed's printed torch outputs do not match torch itself; losslab matches torch."""
    p, a = torch.tensor(P4), torch.tensor(A4)
    assert float(torch.nn.MSELoss()(p, a)) == float(ll.mse(P4, A4)) == 0.375
    assert float(torch.nn.L1Loss()(p, a)) == float(ll.mae(P4, A4)) == 0.5
    assert float(torch.nn.HuberLoss()(p, a)) == float(ll.huber(P4, A4)) == 0.1875


def test_seed_claims_about_gradients():
    # seed 000/004: softmax + CE gradient is p - y
    z = np.array([2.0, 5.0, 1.0])
    np.testing.assert_allclose(ll.cross_entropy.grad(z, np.array(1)), _softmax(z) - np.eye(3)[1])
    # seed 000: CE's gradient in p, -1/p, grows without bound; MSE's stays bounded by 2
    for p in (1e-2, 1e-4, 1e-8):
        assert ll.nll.grad(np.log([p, 1 - p]), np.array(0))[0] == -1  # in log-space: d/dx (-x) = -1
        assert float(ll.binary_cross_entropy.grad(np.array([p]), np.array([1.0]))[0]) == pytest.approx(-1 / p, rel=1e-6)
        assert abs(float(ll.mse.grad(np.array([p]), np.array([1.0]))[0])) <= 2
    # seed 004: MAE's gradient is +-1 whatever the error
    assert ll.mae.grad(np.array([100.0, -0.01]), np.zeros(2), reduction="sum").tolist() == [1.0, -1.0]
    # seed 001: the Hessian of logistic regression's log loss is PSD (convex surface)
    assert (ll.binary_cross_entropy_with_logits.hessian(np.linspace(-30, 30, 61), np.full(61, 1.0)) >= 0).all()


def test_docs_record_every_wrong_seed_number():
    text = (Path(__file__).resolve().parents[1] / "docs" / "seed-numbers.md").read_text(encoding="utf-8")
    for r in RESULTS:
        if r.agrees is False:
            assert repr(r.example.printed).removesuffix(".0") in text, f"docs/seed-numbers.md does not mention {r.example.printed}"
            assert f"{r.computed:.4f}" in text, f"docs/seed-numbers.md does not give the computed {r.computed:.4f}"


def test_cli_examples(capsys):
    main(["examples", "--seed", "002", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert {r["id"] for r in rows} == {e.id for e in examples.EXAMPLES if e.seed == "002"}
    assert next(r for r in rows if r["id"] == "002-mse")["agrees"] is False
    main(["examples"])
    out = capsys.readouterr().out
    assert "DIFFERS" in out and "11 printed numbers differ" in out
    with pytest.raises(KeyError, match="no worked example"):
        examples.get("002-nope")
    assert examples.get("002-ce").value() == pytest.approx(0.417, abs=5e-4)
