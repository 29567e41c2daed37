"""Pairing lint: does the model's output layer match what the loss expects?

The classic bugs (design.md, pitfall 5): softmax before a cross-entropy that applies its own
(the loss then sees probabilities as logits, the gradient p - y shrinks and training stalls around
0.7+); sigmoid before BCE-with-logits; a bare linear output into BCE on probabilities; MSE on a
sigmoid/softmax output (its gradient carries p (1 - p), which vanishes exactly when the model is
confidently wrong); log-softmax into cross_entropy (harmless but redundant); class indices out of
range.

``check_inputs(loss_name, x, targets=None)`` looks at data; ``lint(model, loss_fn, example_input=None)``
looks at a PyTorch model's last operation (``nn.Sequential``'s last layer, else the torch.fx graph's
output node, else the last module a forward pass with ``example_input`` runs) and, given an
example input, at its actual outputs too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _xp
from ..registry import get_loss

LOGIT_LOSSES = ("cross_entropy",)
BINARY_LOGIT_LOSSES = ("binary_cross_entropy_with_logits", "focal")
REGRESSION = ("mse", "mae", "huber", "smooth_l1", "log_cosh", "quantile")


@dataclass(frozen=True)
class Finding:
    code: str
    message: str  # what is wrong and why it hurts (the gradient argument)
    fix: str

    def __str__(self) -> str:
        return f"[{self.code}] {self.message} Fix: {self.fix}"


_FINDINGS = {
    "softmax-before-cross-entropy": (
        "The model ends in softmax, but cross_entropy applies its own (log-)softmax: it treats probabilities as "
        "logits, so p = softmax(softmax(z)) stays close to uniform, the loss stalls near log(C), and the gradient "
        "p - y is squashed again by the first softmax's Jacobian.",
        "remove the final softmax and feed raw logits (apply softmax only to report probabilities)"),
    "log-softmax-into-cross-entropy": (
        "The model ends in log_softmax and the loss is cross_entropy: softmax(log_softmax(z)) = softmax(z), so the "
        "value is right but the normalisation is done twice.",
        "use nll on log-probabilities, or drop the log_softmax and keep cross_entropy"),
    "sigmoid-before-bce-with-logits": (
        "The model ends in sigmoid, but the loss applies its own: outputs in [0, 1] read as logits give "
        "sigmoid(p) in [0.5, 0.73], so the loss cannot go below ~0.31 for positives or ~0.69 for negatives and the "
        "gradient sigmoid(p) - y never reaches 0.",
        "remove the final sigmoid and feed raw logits to binary_cross_entropy_with_logits"),
    "linear-into-bce": (
        "binary_cross_entropy expects probabilities in [0, 1] but the model ends in an unbounded layer: values "
        "outside [0, 1] are invalid (PyTorch raises), and inside they are unconstrained.",
        "use binary_cross_entropy_with_logits on the raw output (stable, sigmoid fused in)"),
    "mse-on-probabilities": (
        "A regression loss on a sigmoid/softmax output: d/dz (p - y)^2 = 2 (p - y) p (1 - p) vanishes as p -> 0 or 1, "
        "so a confidently wrong prediction gets almost no gradient (the sigmoid trap).",
        "use binary_cross_entropy_with_logits (or cross_entropy) on the logits: its gradient p - y stays large"),
    "softmax-into-nll": (
        "nll expects log-probabilities, but the model ends in softmax: -p_y is not the negative log-likelihood, "
        "and its gradient -1 per item ignores how wrong the prediction is.",
        "end the model in log_softmax for nll, or drop the softmax and use cross_entropy"),
    "nll-without-log-softmax": (
        "nll expects log-probabilities (<= 0, log-sum-exp 0 per row), but the model's output is not normalised: "
        "the loss can decrease without bound by inflating one output.",
        "end the model in log_softmax, or use cross_entropy on the raw logits"),
    "probabilities-as-logits": (
        "The inputs look like probabilities (in [0, 1], rows summing to 1) where logits are expected: the loss "
        "applies softmax/sigmoid a second time and its gradient is squashed.",
        "pass the logits (the output before softmax/sigmoid)"),
    "class-index-out-of-range": (
        "Some class indices are outside [0, C): they select no logit (PyTorch raises, or reads garbage on a GPU).",
        "make the model output one logit per class, or remap the labels to 0 .. C-1 (use ignore_index for padding)"),
}


def _finding(code: str, detail: str = "") -> Finding:
    message, fix = _FINDINGS[code]
    return Finding(code, message + (f" ({detail})" if detail else ""), fix)


def _host(x: Any) -> np.ndarray | None:
    if x is None or (_xp.is_array(x) and not _xp.is_concrete(x)):
        return None
    arr = _xp.to_numpy(x) if _xp.is_array(x) else np.asarray(x)
    return arr.astype(np.float64) if arr.dtype.kind in "biuf" else None


def check_inputs(loss_name: str, x: Any, targets: Any = None) -> list[Finding]:
    """Findings about data ``x`` (and ``targets``) about to be fed to ``loss_name``; empty when they fit."""
    get_loss(loss_name)  # a clear KeyError for an unknown name
    v, t = _host(x), _host(targets)
    if v is None or v.size == 0:
        return []
    findings = []
    in_unit = bool(np.all((v >= 0) & (v <= 1)))
    if loss_name in ("cross_entropy", "nll") and v.ndim >= 1:
        axis = 0 if v.ndim == 1 else 1
        rows_sum_to_one = np.allclose(v.sum(axis=axis), 1.0, atol=1e-3)
        if loss_name == "cross_entropy":
            if in_unit and rows_sum_to_one:
                findings.append(_finding("probabilities-as-logits", "rows sum to 1"))
            elif np.all(v <= 1e-6) and np.allclose(np.log(np.exp(v).sum(axis=axis)), 0.0, atol=1e-3):
                findings.append(_finding("log-softmax-into-cross-entropy", "rows are log-probabilities"))
        else:
            if in_unit and rows_sum_to_one:
                findings.append(_finding("softmax-into-nll", "rows sum to 1"))
            elif np.any(v > 1e-6):
                findings.append(_finding("nll-without-log-softmax", f"largest value {v.max():.3g} > 0"))
        if t is not None and t.size:
            c = v.shape[axis]
            valid = t[t != -100]
            if valid.size and (valid.min() < 0 or valid.max() >= c):
                findings.append(_finding("class-index-out-of-range", f"C = {c}, indices seen from {valid.min():g} to {valid.max():g}"))
    elif loss_name in BINARY_LOGIT_LOSSES:
        if in_unit and v.size >= 8 and np.ptp(v) > 0:
            findings.append(_finding("sigmoid-before-bce-with-logits", "every value lies in [0, 1]"))
    elif loss_name == "binary_cross_entropy":
        if not in_unit:
            findings.append(_finding("linear-into-bce", f"values from {v.min():.3g} to {v.max():.3g}"))
    elif loss_name in REGRESSION and t is not None and in_unit and np.all(np.isin(t, (0.0, 1.0))) and v.size >= 8:
        findings.append(_finding("mse-on-probabilities", "outputs in [0, 1] against 0/1 targets"))
    return findings


# -- PyTorch models ---------------------------------------------------------------------------------

_TORCH_LOSSES = {
    "CrossEntropyLoss": "cross_entropy", "NLLLoss": "nll", "BCELoss": "binary_cross_entropy",
    "BCEWithLogitsLoss": "binary_cross_entropy_with_logits", "MSELoss": "mse", "L1Loss": "mae",
    "HuberLoss": "huber", "SmoothL1Loss": "smooth_l1", "KLDivLoss": "kl_div", "MultiMarginLoss": "multiclass_hinge",
}


def _loss_name(loss_fn: Any) -> str:
    name = getattr(loss_fn, "loss_name", None) or getattr(loss_fn, "name", None)  # losslab module / function
    if isinstance(name, str) and name:
        return name
    torch_name = _TORCH_LOSSES.get(type(loss_fn).__name__)
    if torch_name is None:
        raise TypeError(f"loss_fn must be a torch.nn loss module, a losslab.torch module or a losslab loss, got {loss_fn!r}")
    return torch_name


def _kind(obj: Any) -> str:
    """'softmax' | 'log_softmax' | 'sigmoid' | 'linear' | 'other' for a module, function or method name."""
    label = obj if isinstance(obj, str) else getattr(obj, "__name__", type(obj).__name__)
    label = label.lower()
    if "logsoftmax" in label or "log_softmax" in label:
        return "log_softmax"
    if "softmax" in label:
        return "softmax"
    if "sigmoid" in label or "hardsigmoid" in label:
        return "sigmoid"
    if label in ("linear", "bilinear", "lazylinear") or label.startswith("conv"):
        return "linear"
    return "other"


_SHAPE_ONLY = {"squeeze", "unsqueeze", "view", "reshape", "flatten", "contiguous", "getitem", "permute",
               "transpose", "float", "double", "to", "type_as", "clone", "detach"}


def _target_name(target: Any) -> str:
    return target if isinstance(target, str) else getattr(target, "__name__", "")


def _last_operation(model: Any, example_input: Any) -> str:
    import torch

    if isinstance(model, torch.nn.Sequential) and len(model):
        return _kind(type(model[-1]).__name__)
    try:
        graph = torch.fx.symbolic_trace(model).graph
        output = next(n for n in graph.nodes if n.op == "output")
        node = output.args[0]
        # look through operations that only move values around (squeeze, view, flatten, ...)
        while (isinstance(node, torch.fx.Node) and node.op in ("call_method", "call_function")
               and _target_name(node.target) in _SHAPE_ONLY and node.args):
            node = node.args[0]
        if isinstance(node, torch.fx.Node):
            if node.op == "call_module":
                return _kind(type(model.get_submodule(node.target)).__name__)
            if node.op in ("call_function", "call_method"):
                return _kind(node.target)
    except Exception:
        pass
    if example_input is None:
        return "other"
    order: list[str] = []
    hooks = [m.register_forward_hook(lambda mod, i, o: order.append(type(mod).__name__))
             for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model(example_input)
    finally:
        for h in hooks:
            h.remove()
    return _kind(order[-1]) if order else "other"


_RULES = {
    ("softmax", "cross_entropy"): "softmax-before-cross-entropy",
    ("log_softmax", "cross_entropy"): "log-softmax-into-cross-entropy",
    ("sigmoid", "binary_cross_entropy_with_logits"): "sigmoid-before-bce-with-logits",
    ("sigmoid", "focal"): "sigmoid-before-bce-with-logits",
    ("linear", "binary_cross_entropy"): "linear-into-bce",
    ("softmax", "nll"): "softmax-into-nll",
    ("linear", "nll"): "nll-without-log-softmax",
}


def lint(model: Any, loss_fn: Any, example_input: Any = None) -> list[Finding]:
    """Findings about pairing ``model``'s output with ``loss_fn``; empty when the pairing is right."""
    loss = _loss_name(loss_fn)
    last = _last_operation(model, example_input)
    findings = []
    code = _RULES.get((last, loss))
    if code is None and loss in REGRESSION and last in ("sigmoid", "softmax"):
        code = "mse-on-probabilities"
    if code is not None:
        findings.append(_finding(code, f"last operation: {last}; loss: {loss}"))
    if example_input is not None and not findings:
        import torch

        with torch.no_grad():
            out = model(example_input)
        findings += [f for f in check_inputs(loss, out) if f.code != "class-index-out-of-range"]
    return findings
