"""Pairing lint on PyTorch models (Sequential, fx-traceable, hook fallback) and data-level checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import losslab as ll
import losslab.torch as llt


class FunctionalSigmoid(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, x):
        return torch.sigmoid(self.linear(x)).squeeze(-1)


class MethodSoftmax(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 3)

    def forward(self, x):
        return self.linear(x).softmax(dim=-1)


class Untraceable(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it; the hooks see its last module."""

    def __init__(self):
        super().__init__()
        self.linear, self.act = nn.Linear(4, 3), nn.Softmax(dim=-1)

    def forward(self, x):
        if x.sum() > 1e9:
            return x
        return self.act(self.linear(x))


CASES = [
    (nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1)), nn.CrossEntropyLoss(), "softmax-before-cross-entropy"),
    (MethodSoftmax(), llt.CrossEntropyLoss(), "softmax-before-cross-entropy"),
    (MethodSoftmax(), ll.cross_entropy, "softmax-before-cross-entropy"),
    (nn.Sequential(nn.Linear(4, 3), nn.LogSoftmax(dim=1)), nn.CrossEntropyLoss(), "log-softmax-into-cross-entropy"),
    (FunctionalSigmoid(), nn.BCEWithLogitsLoss(), "sigmoid-before-bce-with-logits"),
    (FunctionalSigmoid(), ll.focal, "sigmoid-before-bce-with-logits"),
    (nn.Sequential(nn.Linear(4, 1)), nn.BCELoss(), "linear-into-bce"),
    (FunctionalSigmoid(), nn.MSELoss(), "mse-on-probabilities"),
    (MethodSoftmax(), llt.HuberLoss(), "mse-on-probabilities"),
    (MethodSoftmax(), nn.NLLLoss(), "softmax-into-nll"),
    (nn.Sequential(nn.Linear(4, 3)), nn.NLLLoss(), "nll-without-log-softmax"),
]


@pytest.mark.parametrize(("model", "loss_fn", "code"), CASES, ids=[c[2] + "-" + type(c[0]).__name__ for c in CASES])
def test_lint_catches_bad_pairings(model, loss_fn, code):
    findings = ll.lint(model, loss_fn)
    assert [f.code for f in findings] == [code]
    assert findings[0].message and findings[0].fix and code in str(findings[0])


GOOD = [
    (nn.Sequential(nn.Linear(4, 3)), nn.CrossEntropyLoss()),
    (nn.Sequential(nn.Linear(4, 3), nn.LogSoftmax(dim=1)), nn.NLLLoss()),
    (nn.Sequential(nn.Linear(4, 1)), ll.binary_cross_entropy_with_logits),
    (FunctionalSigmoid(), nn.BCELoss()),
    (nn.Sequential(nn.Linear(4, 1)), llt.MSELoss()),
]


@pytest.mark.parametrize(("model", "loss_fn"), GOOD, ids=[type(g[1]).__name__ for g in GOOD])
def test_lint_is_silent_on_right_pairings(model, loss_fn):
    # seeded: with 8 random rows, a random Linear(4, 1) gives outputs all in (0, 1) about 4 % of the time,
    # which the data-level check rightly reads as probabilities
    torch.manual_seed(0)
    for module in model.modules():
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    assert ll.lint(model, loss_fn, example_input=torch.randn(8, 4)) == []


def test_untraceable_model_uses_forward_hooks():
    assert ll.lint(Untraceable(), nn.CrossEntropyLoss()) == []  # no example: nothing to go on
    codes = [f.code for f in ll.lint(Untraceable(), nn.CrossEntropyLoss(), example_input=torch.randn(5, 4))]
    assert codes == ["softmax-before-cross-entropy"]


def test_lint_rejects_unknown_loss_objects():
    with pytest.raises(TypeError, match=r"loss_fn must be a torch\.nn loss module"):
        ll.lint(nn.Linear(2, 2), object())


def test_check_inputs_on_data():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(16, 5))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert ll.check_inputs("cross_entropy", logits, rng.integers(0, 5, 16)) == []
    assert [f.code for f in ll.check_inputs("cross_entropy", probs)] == ["probabilities-as-logits"]
    assert [f.code for f in ll.check_inputs("cross_entropy", np.log(probs))] == ["log-softmax-into-cross-entropy"]
    assert [f.code for f in ll.check_inputs("cross_entropy", logits, np.array([0, 5] * 8))] == ["class-index-out-of-range"]
    assert ll.check_inputs("cross_entropy", logits, np.array([0, -100] * 8)) == []  # ignore_index is not out of range
    assert [f.code for f in ll.check_inputs("nll", logits)] == ["nll-without-log-softmax"]
    assert [f.code for f in ll.check_inputs("binary_cross_entropy_with_logits", rng.uniform(size=32))] == ["sigmoid-before-bce-with-logits"]
    assert [f.code for f in ll.check_inputs("binary_cross_entropy", rng.normal(size=32))] == ["linear-into-bce"]
    assert [f.code for f in ll.check_inputs("mse", rng.uniform(size=32), rng.integers(0, 2, 32))] == ["mse-on-probabilities"]
    assert ll.check_inputs("mse", rng.normal(size=32), rng.normal(size=32)) == []
    assert ll.check_inputs("binary_cross_entropy_with_logits", torch.randn(32) * 3) == []
    with pytest.raises(KeyError, match="no loss named"):
        ll.check_inputs("crossentropy", logits)


def test_cli_check(tmp_path, capsys):
    from losslab.cli import main

    path = tmp_path / "out.csv"
    path.write_text("p0,p1,p2,y\n0.2,0.5,0.3,1\n0.1,0.1,0.8,2\n0.6,0.3,0.1,0\n")
    with pytest.raises(SystemExit) as found:  # a problem found: exit status 1, so a script can act on it
        main(["check", "cross_entropy", str(path), "--inputs", "p0", "p1", "p2", "--targets", "y"])
    assert found.value.code == 1
    assert "[probabilities-as-logits]" in capsys.readouterr().out
    with pytest.raises(SystemExit) as found:
        main(["check", "nll", str(path), "--inputs", "p0", "p1", "p2", "--json"])
    assert found.value.code == 1
    assert "softmax-into-nll" in capsys.readouterr().out
    fine = tmp_path / "fine.csv"
    fine.write_text("z0,z1,z2,y\n2.0,-1.0,0.5,0\n-0.3,1.2,0.1,1\n0.4,-2.0,3.0,2\n")
    main(["check", "cross_entropy", str(fine), "--inputs", "z0", "z1", "z2", "--targets", "y"])  # no exit: status 0
    assert "no problem found" in capsys.readouterr().out
    fractional = tmp_path / "fractional.csv"
    fractional.write_text("z0,z1,z2,y\n2.0,-1.0,0.5,1.7\n-0.3,1.2,0.1,-0.4\n")
    with pytest.raises(SystemExit, match=r"error: column 'y' holds values that are not class indices: \[-0.4, 1.7\]"):
        main(["check", "cross_entropy", str(fractional), "--inputs", "z0", "z1", "z2", "--targets", "y"])
