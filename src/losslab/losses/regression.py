"""Regression losses: one real prediction per element, e = predictions - targets.

``weight`` is a sample weight (broadcast to the predictions): ``mean`` is the weighted average
sum(w * l) / sum(w), as torch's ``mse_loss``/``l1_loss`` and scikit-learn's ``sample_weight``.
"""

from __future__ import annotations

import math

from .. import _checks as check
from .. import _xp
from .._loss import Loss, State, floating_input
from .._spec import Choices, Interval, Intervals, LossSpec, OptionSpec
from ..definitions import pointwise
from ..definitions.pointwise import HALF_LOG_2PI
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



# -- counts and positive targets: scikit-learn's deviances, MSLE and MAPE -------------------------------

_MEAN_INPUTS = {"predictions": "the predicted mean, > 0", "targets": "observed values, same shape"}
_LOG_LINK = "exp of a linear output (log link): a positive predicted mean"
_SKLEARN_MEAN = ("Weighted mean divides by sum(weight), as scikit-learn's sample_weight. NaN in an input gives NaN; "
                 "values outside the domain are a ValueError naming them, as scikit-learn refuses them.")


def _positive(name: str, x) -> None:
    check.values_above(name, x, 0.0, "the predicted mean must be positive: use exp (a log link) on the model's output")


class PoissonDeviance(Elementwise):
    """Parameters: ``predictions`` (the predicted mean, > 0), ``targets`` (counts, >= 0), ``weight=None``."""

    name = "poisson_deviance"
    definition = pointwise.PoissonDeviance
    spec = LossSpec(
        name="poisson_deviance",
        family="regression",
        tasks=("regression",),
        summary="Poisson deviance: the loss for counts (events, clicks, claims), twice the Poisson NLL minus its minimum.",
        output_layer=_LOG_LINK,
        inputs={"predictions": "the predicted mean, > 0", "targets": "counts or rates, >= 0, same shape"},
        formula_latex=r"\ell = 2\big(y\log(y/\mu) - y + \mu\big)",
        formula_text="l = 2 (t log(t / p) - t + p)   (t log(t / p) = 0 at t = 0)",
        gradient_latex=r"\partial\ell/\partial\mu = 2(\mu - y)/\mu",
        gradient_text="dl/dp = 2 (p - t) / p",
        hessian_text="d2l/dp2 = 2 t / p^2",
        convex=True,
        smooth=True,
        lower_bound=0.0,
        robust_to_outliers=False,
        when_to_use="Counts and non-negative rates whose variance grows with the mean (insurance claim counts, "
        "web traffic). Predict log(mean) and exponentiate.",
        peers={"pytorch": "torch.nn.functional.poisson_nll_loss (the NLL: same gradient up to a factor 2, other constant)",
               "optax": "none", "keras": "keras.losses.Poisson (the NLL)",
               "sklearn": "sklearn.metrics.mean_poisson_deviance"},
        torch_module="PoissonDevianceLoss",
        prediction_low=0.0,
        conventions=_SKLEARN_MEAN,
    )

    def prepare(self, xp, predictions, targets, *, weight=None):
        st = self.elementwise_state(xp, predictions, targets, weight)
        _positive("predictions", st.x)
        check.values_above("targets", st.t, 0.0, "counts and rates are never negative", inclusive=True)
        return st


class GammaDeviance(Elementwise):
    """Parameters: ``predictions`` (the predicted mean, > 0), ``targets`` (> 0), ``weight=None``."""

    name = "gamma_deviance"
    definition = pointwise.GammaDeviance
    spec = LossSpec(
        name="gamma_deviance",
        family="regression",
        tasks=("regression",),
        summary="Gamma deviance: for positive, right-skewed amounts whose spread grows with the mean.",
        output_layer=_LOG_LINK,
        inputs={"predictions": "the predicted mean, > 0", "targets": "> 0, same shape"},
        formula_latex=r"\ell = 2\big(\log(\mu/y) + y/\mu - 1\big)",
        formula_text="l = 2 (log(p / t) + t / p - 1)",
        gradient_latex=r"\partial\ell/\partial\mu = 2(\mu - y)/\mu^2",
        gradient_text="dl/dp = 2 (p - t) / p^2",
        hessian_text="d2l/dp2 = 2 (2 t - p) / p^3",
        convex=False,
        smooth=True,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="Positive amounts with a constant coefficient of variation (claim sizes, durations, prices): "
        "errors count relative to the mean.",
        peers={"pytorch": "none", "optax": "none", "keras": "none", "sklearn": "sklearn.metrics.mean_gamma_deviance"},
        torch_module="GammaDevianceLoss",
        prediction_low=0.0,
        conventions="Convex in log(p) (the log link), not in p: the second derivative is negative for p > 2 t. "
        + _SKLEARN_MEAN,
    )

    def prepare(self, xp, predictions, targets, *, weight=None):
        st = self.elementwise_state(xp, predictions, targets, weight)
        _positive("predictions", st.x)
        check.values_above("targets", st.t, 0.0, "the gamma deviance needs positive targets")
        return st


class TweedieDeviance(Elementwise):
    """Parameters: ``predictions`` (the predicted mean), ``targets``, ``power=1.5`` (in (-inf, 0] or
    [1, inf): 0 squared error, 1 Poisson, 2 gamma, 1 < p < 2 compound Poisson-gamma), ``weight=None``.
    scikit-learn's default power is 0, which is plain squared error; 1.5 is the case Tweedie is chosen for."""

    name = "tweedie_deviance"
    definition = pointwise.TweedieDeviance
    spec = LossSpec(
        name="tweedie_deviance",
        family="regression",
        tasks=("regression",),
        summary="Tweedie deviance with power p: squared error (0), Poisson (1), compound Poisson-gamma (1-2), gamma (2).",
        output_layer=_LOG_LINK + " (any real output for power 0)",
        inputs={"predictions": "the predicted mean (> 0 unless power = 0)",
                "targets": "power < 1: any real; 1 <= power < 2: >= 0; power >= 2: > 0"},
        formula_latex=r"\ell = 2\Big(\frac{\max(y,0)^{2-p}}{(1-p)(2-p)} - \frac{y\,\mu^{1-p}}{1-p} + \frac{\mu^{2-p}}{2-p}\Big)",
        formula_text="l = 2 (max(t, 0)^(2-p) / ((1-p)(2-p)) - t x^(1-p) / (1-p) + x^(2-p) / (2-p)),  x = predictions\n"
        "    p = 0: (x - t)^2;  p = 1: Poisson deviance;  p = 2: gamma deviance",
        gradient_latex=r"\partial\ell/\partial\mu = 2(\mu - y)\,\mu^{-p}",
        gradient_text="dl/dp = 2 (x - t) x^(-p)   (every power)",
        hessian_text="d2l/dp2 = 2 x^(-p-1) ((1 - p) x + p t)",
        convex=False,
        smooth=True,
        lower_bound=0.0,
        robust_to_outliers=False,
        when_to_use="Non-negative targets with exact zeros and a skewed positive part (insurance pure premium: "
        "power 1.5). Tune power between the Poisson (1) and gamma (2) cases.",
        peers={"pytorch": "none", "optax": "none", "keras": "none", "sklearn": "sklearn.metrics.mean_tweedie_deviance"},
        torch_module="TweedieDevianceLoss",
        prediction_low=0.0,
        options=(OptionSpec("power", "Tweedie power p: 0 normal, 1 Poisson, 2 gamma, 3 inverse Gaussian",
                            Intervals((Interval(None, 0.0), Interval(1.0, None))), 1.0, 3.0),),
        conventions="power selects the formula, as scikit-learn's mean_tweedie_deviance (so it must be a concrete "
        "number, not a traced one). Default power 1.5 (scikit-learn's default 0 is squared error). " + _SKLEARN_MEAN,
    )

    def prepare(self, xp, predictions, targets, *, power=1.5, weight=None):
        if not isinstance(power, (int, float)):  # option_in made concrete 0-d arrays numbers; what is left is traced
            raise TypeError(f"power must be a concrete number (it selects the formula), got {type(power).__name__}")
        st = self.elementwise_state(xp, predictions, targets, weight, power=float(power))
        if power != 0:
            _positive("predictions", st.x)
        if 1 <= power < 2:
            check.values_above("targets", st.t, 0.0, f"power {power:g} needs targets >= 0", inclusive=True)
        elif power >= 2:
            check.values_above("targets", st.t, 0.0, f"power {power:g} needs positive targets")
        return st


class MSLE(Elementwise):
    """Parameters: ``predictions``, ``targets`` (both > -1), ``weight=None``."""

    name = "msle"
    definition = pointwise.SquaredLogError
    spec = LossSpec(
        name="msle",
        family="regression",
        tasks=("regression",),
        summary="Mean squared logarithmic error: squared error between log(1 + p) and log(1 + t), a relative error.",
        output_layer="a real output > -1 (softplus or exp for non-negative targets)",
        inputs={"predictions": "> -1", "targets": "> -1, same shape"},
        formula_latex=r"\ell = \big(\log(1 + \hat y) - \log(1 + y)\big)^2",
        formula_text="l = (log(1 + p) - log(1 + t))^2",
        gradient_latex=r"\partial\ell/\partial\hat y = 2\big(\log(1+\hat y) - \log(1+y)\big)/(1 + \hat y)",
        gradient_text="dl/dp = 2 (log(1 + p) - log(1 + t)) / (1 + p)",
        hessian_text="d2l/dp2 = 2 (1 - (log(1 + p) - log(1 + t))) / (1 + p)^2",
        convex=False,
        smooth=True,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="Targets spanning orders of magnitude (sales, populations) where under-prediction should cost "
        "more than the same over-prediction.",
        peers={"pytorch": "none", "optax": "none", "keras": "keras.losses.MeanSquaredLogarithmicError (clips at 0)",
               "sklearn": "sklearn.metrics.mean_squared_log_error"},
        torch_module="MSLELoss",
        prediction_low=-1.0,
        conventions="Values <= -1 are refused, as scikit-learn refuses them (Keras clips them to 0 instead). "
        + _SKLEARN_MEAN,
    )

    def prepare(self, xp, predictions, targets, *, weight=None):
        st = self.elementwise_state(xp, predictions, targets, weight)
        check.values_above("predictions", st.x, -1.0, "log(1 + p) needs p > -1")
        check.values_above("targets", st.t, -1.0, "log(1 + t) needs t > -1")
        return st


class MAPE(Elementwise):
    """Parameters: ``predictions``, ``targets``, ``weight=None``. A fraction, not a percentage."""

    name = "mape"
    definition = pointwise.AbsolutePercentageError
    spec = LossSpec(
        name="mape",
        family="regression",
        tasks=("regression",),
        summary="Mean absolute percentage error, as a fraction: |p - t| / |t| (|t| floored at float64's epsilon).",
        output_layer=_LINEAR,
        inputs=_REG_INPUTS,
        formula_latex=r"\ell = |\hat y - y| / \max(|y|, \epsilon)",
        formula_text="l = |p - t| / max(|t|, eps),   eps = 2.2e-16",
        gradient_latex=r"\partial\ell/\partial\hat y = \operatorname{sign}(\hat y - y) / \max(|y|, \epsilon)",
        gradient_text="dl/dp = sign(p - t) / max(|t|, eps)   (0 at p = t)",
        hessian_text="d2l/dp2 = 0 (almost everywhere)",
        convex=True,
        smooth=False,
        lower_bound=0.0,
        robust_to_outliers=True,
        when_to_use="Reporting or fitting relative error when targets are far from 0 (demand forecasts). Near t = 0 it "
        "explodes: eps only keeps it finite.",
        peers={"pytorch": "none", "optax": "none", "keras": "keras.losses.MeanAbsolutePercentageError (x 100, a percentage)",
               "sklearn": "sklearn.metrics.mean_absolute_percentage_error"},
        torch_module="MAPELoss",
        conventions="A fraction (0.1 = 10 %), as scikit-learn; Keras reports percent. eps is float64's machine epsilon "
        "for every dtype, as scikit-learn. At p = t the gradient is 0 (MAE's subgradient). " + _SKLEARN_MEAN,
    )

    def prepare(self, xp, predictions, targets, *, weight=None):
        return self.elementwise_state(xp, predictions, targets, weight)


# -- PyTorch's likelihood losses ---------------------------------------------------------------------


class PoissonNLL(Elementwise):
    """Parameters: ``predictions`` (the log-rate with ``log_input=True``, else the rate, > -eps),
    ``targets`` (counts, >= 0, same shape); ``log_input=True``; ``full=False`` (add Stirling's
    approximation of log(t!) where t > 1, as torch); ``eps=1e-8``. PyTorch's poisson_nll_loss."""

    name = "poisson_nll"
    definition = pointwise.PoissonNLL
    spec = LossSpec(
        name="poisson_nll",
        family="regression",
        tasks=("regression",),
        summary="Poisson negative log-likelihood (PyTorch's poisson_nll_loss), on the log-rate by default, without "
        "the constant log(t!) unless full=True.",
        output_layer="linear: the log-rate (log_input=True); or a positive rate (log_input=False)",
        inputs={"predictions": "the log-rate (log_input=True) or the rate, > -eps", "targets": "counts, >= 0, same shape"},
        formula_latex=r"\ell = e^{x} - y\,x\ \ (\text{log\_input}),\qquad \ell = x - y\log(x + \epsilon)\ \ (\text{otherwise})",
        formula_text="log_input: l = exp(x) - t x\notherwise: l = x - t log(x + eps)\n"
        "full: + t log t - t + log(2 pi t) / 2 where t > 1 (Stirling's log t!)",
        gradient_latex=r"\partial\ell/\partial x = e^{x} - y\ \ (\text{log\_input}),\qquad 1 - y/(x+\epsilon)",
        gradient_text="log_input: dl/dx = exp(x) - t\notherwise: dl/dx = 1 - t / (x + eps)",
        hessian_text="log_input: d2l/dx2 = exp(x)\notherwise: d2l/dx2 = t / (x + eps)^2",
        convex=True,
        smooth=True,
        lower_bound=-math.inf,
        robust_to_outliers=False,
        when_to_use="Counts with a log link, as PyTorch users write it (the same minimiser and gradient as "
        "poisson_deviance, whose values are comparable across datasets); full=True gives the true NLL.",
        peers={"pytorch": "torch.nn.functional.poisson_nll_loss", "optax": "none", "keras": "keras.losses.Poisson "
               "(on the rate: p - t log(p + 1e-7))"},
        torch_module="PoissonNLLLoss",
        options=(
            OptionSpec("log_input", "predictions are log-rates (else rates)", Choices((True, False))),
            OptionSpec("full", "add Stirling's log(t!) term (the true NLL, for t > 1)", Choices((False, True))),
            OptionSpec("eps", "keeps log(x + eps) finite at a rate of 0 (log_input=False)",
                       Interval(0.0, None, closed="neither")),
        ),
        target_low=0.0,
        conventions="Without full=True the loss omits log(t!), so it is negative where t > e and not bounded below "
        "over the targets. exp(x) overflows beyond x = 88 (float32) or 709 (float64), as in torch. Negative targets "
        "and rates at or below -eps are refused (torch computes NaN there).",
    )

    def prepare(self, xp, predictions, targets, *, log_input=True, full=False, eps=1e-8):
        st = self.elementwise_state(xp, predictions, targets, None, log_input=log_input, full=full, eps=eps)
        check.values_above("targets", st.t, 0.0, "Poisson targets are counts", inclusive=True)
        if not log_input:
            check.values_above("predictions", st.x, -eps, "with log_input=False the predictions are rates (>= 0): "
                               "use exp or softplus on the output, or log_input=True on a log-rate")
        return st


class GaussianNLL(Loss):
    """Parameters: ``predictions`` (the mean), ``targets`` (same shape), ``var`` (the predicted variance,
    >= 0: same shape, one dimension short (one variance per row), a single size-1 dimension
    (homoscedastic along it), or a number); ``full=False`` (add log(2 pi) / 2); ``eps=1e-6``. PyTorch's
    gaussian_nll_loss: gradients for ``predictions`` and ``var`` (a tuple), none for the targets."""

    name = "gaussian_nll"
    inputs = ("predictions", "var")
    spec = LossSpec(
        name="gaussian_nll",
        family="regression",
        tasks=("regression",),
        summary="Gaussian negative log-likelihood with a predicted variance (PyTorch's gaussian_nll_loss): the model "
        "learns its own uncertainty (heteroscedastic regression).",
        output_layer="two linear heads: the mean, and a positive variance (softplus or exp of a linear output)",
        inputs={"predictions": "the predicted mean (any shape)", "targets": "real, same shape",
                "var": "the predicted variance, >= 0: same shape, one dimension short, one size-1 dimension, or a number"},
        formula_latex=r"\ell = \tfrac12\big(\log v + (x - y)^2 / v\big),\quad v = \max(\mathrm{var}, \epsilon)",
        formula_text="v = max(var, eps);  l = 0.5 (log v + (x - t)^2 / v)   (+ 0.5 log(2 pi) with full=True)",
        gradient_latex=r"\partial\ell/\partial x = (x - y)/v,\quad \partial\ell/\partial\,\mathrm{var} = \tfrac12\big(1/v - (x-y)^2/v^2\big)",
        gradient_text="dl/dx = (x - t) / v,   dl/dvar = 0.5 (1 / v - (x - t)^2 / v^2)   (summed over broadcast axes)",
        convex=False,
        smooth=True,
        lower_bound=0.5 * math.log(1e-6),
        robust_to_outliers=False,
        when_to_use="Regression that should also say how sure it is: the variance head grows where the noise is "
        "large, which down-weights those errors. Keep eps: a variance collapsing to 0 makes the loss explode.",
        peers={"pytorch": "torch.nn.functional.gaussian_nll_loss", "optax": "none",
               "keras": "none (tfp.distributions.Normal.log_prob)"},
        torch_module="GaussianNLLLoss",
        options=(
            OptionSpec("full", "add the constant log(2 pi) / 2 (the true NLL)", Choices((False, True))),
            OptionSpec("eps", "floor of the variance", Interval(0.0, None, closed="neither")),
        ),
        conventions="As PyTorch, the variance is clamped at eps without a gradient through the clamp: where var < eps "
        "the gradient is 0.5 (1/eps - (x - t)^2 / eps^2), the derivative at eps passed on as if unclamped (torch clamps "
        "under no_grad), not 0. The lower bound 0.5 log(eps) is for the default eps. Not convex in the variance. "
        "Negative variances are refused, as torch does.",
    )

    def prepare(self, xp, predictions, targets, var, *, full=False, eps=1e-6):
        x, x_dtype = floating_input(xp, "predictions", predictions)
        t = _xp.as_array(targets, xp, x)
        check.same_shape("predictions", x, "targets", t)
        v, v_dtype = floating_input(xp, "var", var)
        shape, v_shape = tuple(x.shape), tuple(v.shape)
        if v_shape == shape[:-1] and v_shape != shape:  # one variance per row
            v = xp.expand_dims(v, axis=-1)
        elif v_shape != shape and v.ndim != 0 and not (
                v.ndim == len(shape) and sum(b for a, b in zip(shape, v_shape) if a != b) == 1):
            raise ValueError(f"var must have the predictions' shape {shape}, that shape without its last axis "
                             f"{shape[:-1]}, one size-1 axis in place of one of its axes, or be a number; got {v_shape}")
        check.values_above("var", v, 0.0, "a variance cannot be negative: use softplus or exp on the variance head",
                           inclusive=True)
        v = xp.astype(v, x.dtype) if v.dtype != x.dtype else v
        clamped = xp.maximum(v, xp.full_like(v, eps))
        return State(e=x - (t if t.dtype == x.dtype else xp.astype(t, x.dtype)), v=clamped, v_shape=v_shape,
                     full=full, input_dtypes=(x_dtype, v_dtype))

    def terms(self, xp, st):
        out = 0.5 * (xp.log(st.v) + st.e * st.e / st.v)
        if st.full:
            out = out + HALF_LOG_2PI
        return out, math.prod(st.e.shape)

    def grad_terms(self, xp, st, u):
        g_x = st.e / st.v * u
        g_v = 0.5 * (1.0 / st.v - st.e * st.e / (st.v * st.v)) * u
        g_v = xp.broadcast_to(g_v, tuple(st.e.shape))
        axes = tuple(k for k, n in enumerate(st.v.shape) if n == 1 and st.e.shape[k] != 1) if st.v.ndim else None
        g_v = xp.sum(g_v, axis=axes, keepdims=True) if axes is None or axes else g_v
        return g_x, xp.reshape(g_v, st.v_shape)


mse, mae, huber, smooth_l1, log_cosh, quantile = MSE(), MAE(), Huber(), SmoothL1(), LogCosh(), Quantile()
poisson_deviance, gamma_deviance, tweedie_deviance = PoissonDeviance(), GammaDeviance(), TweedieDeviance()
msle, mape = MSLE(), MAPE()
poisson_nll, gaussian_nll = PoissonNLL(), GaussianNLL()
LOSSES = (mse, mae, huber, smooth_l1, log_cosh, quantile, poisson_deviance, gamma_deviance, tweedie_deviance, msle, mape,
          poisson_nll, gaussian_nll)
