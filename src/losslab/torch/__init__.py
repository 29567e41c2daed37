"""``torch.nn.Module`` drop-ins for every losslab loss, generated from the registry.

>>> import losslab.torch as llt
>>> criterion = llt.CrossEntropyLoss(label_smoothing=0.1)      # like torch.nn.CrossEntropyLoss
>>> loss = criterion(logits, targets)                            # doctest: +SKIP
>>> loss = criterion(logits, targets, normalizer=global_count)   # exact mean under accumulation

Options are keyword-only and named as in the functional API; array options (``weight``,
``pos_weight``) are registered as buffers, so ``.to(device)`` moves them with the module.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from ..registry import get_loss, losses
from ._function import LosslabFunction

_ARRAY_OPTIONS = ("weight", "pos_weight")


class LosslabLoss(nn.Module):
    """Base of the generated modules: holds the options, calls the functional loss."""

    loss_name: str = ""

    def __init__(self, *, reduction: str = "mean", **options) -> None:
        super().__init__()
        loss = get_loss(self.loss_name)
        allowed = [p.name for p in loss.__signature__.parameters.values()
                   if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in ("reduction", "normalizer")]
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise TypeError(f"{type(self).__name__} got unknown option(s) {unknown}; its options are {allowed}")
        if reduction not in loss.reductions:
            raise ValueError(f"reduction must be one of {loss.reductions}, got {reduction!r}")
        self.reduction = reduction
        self.options = {}
        for name, value in options.items():
            if name in _ARRAY_OPTIONS and value is not None:
                self.register_buffer(name, torch.as_tensor(value))
            else:
                self.options[name] = value

    def forward(self, *args, normalizer=None):
        buffers = {name: buf for name, buf in self.named_buffers(recurse=False)}
        return get_loss(self.loss_name)(*args, reduction=self.reduction, normalizer=normalizer, **self.options, **buffers)

    def extra_repr(self) -> str:
        shown = [f"{k}={v!r}" for k, v in self.options.items()] + [f"reduction={self.reduction!r}"]
        return ", ".join(shown)


def _make_module(spec) -> type[LosslabLoss]:
    loss = get_loss(spec.name)
    doc = f"nn.Module form of :func:`losslab.{spec.name}`. {spec.summary}\n\n{loss.__doc__}"
    return type(spec.torch_module, (LosslabLoss,), {"loss_name": spec.name, "__doc__": doc, "__module__": __name__})


_modules = {spec.torch_module: _make_module(spec) for spec in losses()}
globals().update(_modules)
L1Loss = _modules["MAELoss"]  # PyTorch's name for the same loss

__all__ = ["L1Loss", "LosslabFunction", "LosslabLoss", *sorted(_modules)]
