"""Regression losses: one real prediction per element, e = predictions - targets.

``weight`` is a sample weight (broadcast to the predictions): ``mean`` is the weighted average
sum(w * l) / sum(w), as torch's ``mse_loss``/``l1_loss`` and scikit-learn's ``sample_weight``.
"""

from __future__ import annotations

from .._spec import Interval, LossSpec, OptionSpec
from ..definitions import pointwise
from ._elementwise import Elementwise

_REG_INPUTS = {"predictions": "real (any shape)", "targets": "real, same shape as predictions"}
_LINEAR = "linear (no activation): an unbounded real output"


class MSE(Elementwise):
    """Parameters: ``predictions``, ``targets`` (same shape), ``weight=None`` (sample weights)."""

    name = "mse"
    definition = pointwise.SquaredError
    spec = LossSpec(
        name="mse",
        family="regression",
        tasks=("regression",),
        summary="Mean squared error: the average squared difference between predictions and targets.",
        output_layer=_LINEAR,
        inputs=_REG_INPUTS,
        formula_latex=r"\ell = (\hat y - y)^2",
        formula_text="l = (p - t)^2",
        gradient_latex=r"\partial\ell/\partial\hat y = 2(\hat y - y)",
        gradient_text="dl/dp = 2 (p - t)",
        hessian_text="d2l/dp2 = 2",
        convex=True,
        smooth=True,
        lower_bound=0.0,
        robust_to_outliers=False,
        when_to_use="Regression with roughly Gaussian noise; estimates the conditional mean. "
        "One outlier dominates it (errors are squared).",
        peers={"pytorch": "torch.nn.functional.mse_loss", "optax": "optax.losses.squared_error",
               "keras": "keras.losses.MeanSquaredError"},
        torch_module="MSELoss",
    )

    def prepare(self, xp, predictions, targets, *, weight=None):
        return self.elementwise_state(xp, predictions, targets, weight)



class MAE(Elementwise):
    """Parameters: ``predictions``, ``targets`` (same shape), ``weight=None`` (sample weights)."""

    name = "mae"
    definition = pointwise.AbsoluteError
    spec = LossSpec(
        name="mae",
        family="regression",
        tasks=("regression",),
        summary="Mean absolute error (L1): the average absolute difference.",
        output_layer=_LINEAR,
        inputs=_REG_INPUTS,
        formula_latex=r"\ell = |\hat y - y|",
        formula_text="l = |p - t|",
        gradient_latex=r"\partial\ell/\partial\hat y = \operatorname{sign}(\hat y - y)",
        gradient_text="dl/dp = sign(p - t)   (0 at p = t)",
        hessian_text="d2l/dp2 = 0 (almost everywhere)",
        convex=True,
        smooth=False,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="Regression with outliers or heavy-tailed noise; estimates the conditional median. "
        "Its gradient never shrinks near the optimum, so training can jitter there.",
        peers={"pytorch": "torch.nn.functional.l1_loss", "optax": "optax.losses.l1_loss (absolute error)",
               "keras": "keras.losses.MeanAbsoluteError"},
        torch_module="MAELoss",
        conventions="At p = t the gradient is 0 (PyTorch's sign(0) = 0 subgradient).",
    )

    def prepare(self, xp, predictions, targets, *, weight=None):
        return self.elementwise_state(xp, predictions, targets, weight)




class Huber(Elementwise):
    """Parameters: ``predictions``, ``targets`` (same shape), ``delta=1.0`` (> 0, where the loss
    turns from quadratic to linear), ``weight=None`` (sample weights; ``mean`` is sum(w l)/sum(w),
    while torch's ``huber_loss`` divides a weighted sum by the element count)."""

    name = "huber"
    definition = pointwise.Huber
    spec = LossSpec(
        name="huber",
        family="regression",
        tasks=("regression",),
        summary="Huber loss: quadratic for small errors, linear (slope delta) beyond delta.",
        output_layer=_LINEAR,
        inputs=_REG_INPUTS,
        formula_latex=r"\ell = \begin{cases}\tfrac12 e^2 & |e|\le\delta\\ \delta(|e|-\tfrac12\delta) & |e|>\delta\end{cases},\quad e=\hat y-y",
        formula_text="l = 0.5 e^2             if |e| <= delta\n    delta (|e| - delta/2) otherwise,   e = p - t",
        gradient_latex=r"\partial\ell/\partial\hat y = \operatorname{clip}(e, -\delta, \delta)",
        gradient_text="dl/dp = clip(e, -delta, delta)",
        hessian_text="d2l/dp2 = 1 if |e| < delta else 0",
        convex=True,
        smooth=True,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="Regression with some outliers: MSE's smooth gradient near zero, MAE's bounded "
        "gradient for large errors. Set delta near the scale of normal residuals.",
        peers={"pytorch": "torch.nn.functional.huber_loss", "optax": "optax.losses.huber_loss",
               "keras": "keras.losses.Huber"},
        torch_module="HuberLoss",
        options=(OptionSpec("delta", "threshold between the quadratic and the linear part", Interval(0.0, None, closed="neither"),
                            0.05, 5.0),),
        conventions="Huber(delta) = delta * SmoothL1(beta=delta). Weighted mean divides by sum(weight) "
        "(torch.nn.functional.huber_loss divides by the element count).",
    )

    def prepare(self, xp, predictions, targets, *, delta=1.0, weight=None):
        return self.elementwise_state(xp, predictions, targets, weight, delta=delta)



class SmoothL1(Elementwise):
    """Parameters: ``predictions``, ``targets`` (same shape), ``beta=1.0`` (>= 0; 0 gives L1),
    ``weight=None`` (sample weights)."""

    name = "smooth_l1"
    definition = pointwise.SmoothL1
    spec = LossSpec(
        name="smooth_l1",
        family="regression",
        tasks=("regression",),
        summary="Smooth L1: Huber divided by beta, so the linear part has slope 1 (L1 at beta = 0).",
        output_layer=_LINEAR,
        inputs=_REG_INPUTS,
        formula_latex=r"\ell = \begin{cases}\tfrac{e^2}{2\beta} & |e|<\beta\\ |e|-\tfrac12\beta & \text{otherwise}\end{cases},\quad e=\hat y-y",
        formula_text="l = 0.5 e^2 / beta   if |e| < beta\n    |e| - beta/2       otherwise,   e = p - t   (|e| when beta = 0)",
        gradient_latex=r"\partial\ell/\partial\hat y = \operatorname{clip}(e/\beta, -1, 1)",
        gradient_text="dl/dp = clip(e / beta, -1, 1)   (sign(e) when beta = 0)",
        hessian_text="d2l/dp2 = 1/beta if |e| < beta else 0",
        convex=True,
        smooth=True,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="Box regression in detection (Fast R-CNN); same shape as Huber, gradient capped at 1.",
        peers={"pytorch": "torch.nn.functional.smooth_l1_loss", "optax": "none (huber_loss / delta)",
               "keras": "none (keras.losses.Huber / delta)"},
        torch_module="SmoothL1Loss",
        options=(OptionSpec("beta", "width of the quadratic zone (0 gives L1)", Interval(0.0, None), 0.0, 5.0),),
        conventions="SmoothL1(beta) = Huber(beta) / beta for beta > 0; beta = 0 is exactly L1 "
        "(not computed as Huber(0)/0). At beta = 0 the gradient at e = 0 is 0.",
    )

    def prepare(self, xp, predictions, targets, *, beta=1.0, weight=None):
        return self.elementwise_state(xp, predictions, targets, weight, beta=beta)




class LogCosh(Elementwise):
    """Parameters: ``predictions``, ``targets`` (same shape), ``weight=None`` (sample weights)."""

    name = "log_cosh"
    definition = pointwise.LogCosh
    spec = LossSpec(
        name="log_cosh",
        family="regression",
        tasks=("regression",),
        summary="Log-cosh: about e^2/2 for small errors and |e| - log 2 for large ones, smooth everywhere.",
        output_layer=_LINEAR,
        inputs=_REG_INPUTS,
        formula_latex=r"\ell = \log\cosh(\hat y - y)",
        formula_text="l = log(cosh(p - t))   (computed as |e| + softplus(-2|e|) - log 2)",
        gradient_latex=r"\partial\ell/\partial\hat y = \tanh(\hat y - y)",
        gradient_text="dl/dp = tanh(p - t)",
        hessian_text="d2l/dp2 = 1 - tanh(p - t)^2",
        convex=True,
        smooth=True,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="Regression with outliers when a twice-differentiable loss is needed (e.g. "
        "Newton-type boosting): Huber-like without a threshold to tune.",
        peers={"pytorch": "none", "optax": "optax.losses.log_cosh", "keras": "keras.losses.LogCosh"},
        torch_module="LogCoshLoss",
    )

    def prepare(self, xp, predictions, targets, *, weight=None):
        return self.elementwise_state(xp, predictions, targets, weight)



class Quantile(Elementwise):
    """Parameters: ``predictions``, ``targets`` (same shape), ``q=0.5`` (the quantile, in (0, 1)),
    ``weight=None`` (sample weights)."""

    name = "quantile"
    definition = pointwise.Pinball
    spec = LossSpec(
        name="quantile",
        family="regression",
        tasks=("regression",),
        summary="Quantile (pinball) loss: its minimiser is the q-quantile of the targets.",
        output_layer=_LINEAR,
        inputs=_REG_INPUTS,
        formula_latex=r"\ell = \max\big(q\,(y-\hat y),\ (q-1)(y-\hat y)\big)",
        formula_text="l = q (t - p)       if t >= p\n    (1 - q) (p - t) otherwise",
        gradient_latex=r"\partial\ell/\partial\hat y = \begin{cases}-q & y>\hat y\\ 1-q & y<\hat y\end{cases}",
        gradient_text="dl/dp = -q if t > p, 1 - q if t < p, 0 at t = p",
        hessian_text="d2l/dp2 = 0 (almost everywhere)",
        convex=True,
        smooth=False,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="Prediction intervals and asymmetric costs: q = 0.9 penalises under-prediction 9x "
        "more than over-prediction. q = 0.5 is half the MAE.",
        peers={"pytorch": "none", "optax": "none", "keras": "none (keras.losses.Quantile in keras-hub)"},
        torch_module="QuantileLoss",
        options=(OptionSpec("q", "the target quantile", Interval(0.0, 1.0, closed="neither"), 0.01, 0.99),),
        conventions="At p = t the gradient is 0 (a valid subgradient, as MAE's).",
    )

    def prepare(self, xp, predictions, targets, *, q=0.5, weight=None):
        return self.elementwise_state(xp, predictions, targets, weight, q=q)



mse, mae, huber, smooth_l1, log_cosh, quantile = MSE(), MAE(), Huber(), SmoothL1(), LogCosh(), Quantile()
LOSSES = (mse, mae, huber, smooth_l1, log_cosh, quantile)
