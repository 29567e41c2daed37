"""losslab: loss functions, exact and stable, with analytic gradients, on NumPy, PyTorch and JAX.

>>> import losslab as ll
>>> ll.huber([2.5, 0.0, 2.0, 8.0], [3.0, -0.5, 2.0, 7.0])
np.float64(0.1875)
"""

from . import _engines, metrics
from ._fast import get_num_threads, reference_path, set_num_threads
from ._xp import strict_checks
from .advisor import Recommendation, check_inputs, lint, recommend
from .losses.classification import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    focal,
    hinge,
    kl_div,
    multiclass_hinge,
    multilabel_margin,
    multilabel_soft_margin,
    nll,
    soft_margin,
    squared_hinge,
)
from .losses.metric_learning import arcface, cosface, ntxent, supcon
from .losses.preference import distill_kl, dpo, jsd, orpo, simpo
from .losses.ranking import (
    contrastive,
    cosine_embedding,
    hinge_embedding,
    info_nce,
    margin_ranking,
    siglip,
    triplet_margin,
    triplet_margin_with_distance,
)
from .losses.regression import (
    gamma_deviance,
    gaussian_nll,
    huber,
    log_cosh,
    mae,
    mape,
    mse,
    msle,
    poisson_deviance,
    poisson_nll,
    quantile,
    smooth_l1,
    tweedie_deviance,
)
from .losses.segmentation import dice, focal_tversky, jaccard, lovasz_hinge, lovasz_softmax, tversky
from .losses.sequence import ctc
from .registry import get, get_loss, losses


# The engines for other array kinds, imported when such an array first arrives (the NumPy blocks of
# _fast register themselves on import), each module by an import statement (see _engines.Deferred).
def _torch_function():
    from .torch import _function

    return _function


def _jax_engine():
    from . import _jax

    return _jax


def _gpu_dispatch():
    from .gpu import dispatch

    return dispatch


def _gpu_pointwise():
    from .gpu import pointwise

    return pointwise


_engines.register_engine("torch", _engines.Deferred(_torch_function, "run"))
_engines.register_lane("torch", _engines.Deferred(_torch_function, "lane"))
for _kind in ("jax", "jaxlib"):  # jax.Array's type lives in jaxlib; tracers in jax
    _engines.register_engine(_kind, _engines.Deferred(_jax_engine, "run"))
_engines.register_fast_path("cross_entropy", "torch", _engines.Deferred(_gpu_dispatch, "cross_entropy"))
for _loss in (binary_cross_entropy, binary_cross_entropy_with_logits, focal, hinge, squared_hinge, huber, log_cosh, mae,
              mse, quantile, smooth_l1, poisson_nll, poisson_deviance, gamma_deviance, msle, mape, soft_margin,
              hinge_embedding, kl_div):  # the generated Triton kernels
    _engines.register_kernel(_loss.name, "torch", _engines.Deferred(_gpu_pointwise, "run"))

__version__ = "0.1.0"
__all__ = [
    "Recommendation",
    "arcface",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "check_inputs",
    "contrastive",
    "cosface",
    "cosine_embedding",
    "cross_entropy",
    "ctc",
    "dice",
    "distill_kl",
    "dpo",
    "focal",
    "focal_tversky",
    "gamma_deviance",
    "gaussian_nll",
    "get",
    "get_loss",
    "get_num_threads",
    "hinge",
    "hinge_embedding",
    "huber",
    "info_nce",
    "jaccard",
    "jsd",
    "kl_div",
    "lint",
    "log_cosh",
    "losses",
    "lovasz_hinge",
    "lovasz_softmax",
    "mae",
    "mape",
    "margin_ranking",
    "metrics",
    "mse",
    "msle",
    "multiclass_hinge",
    "multilabel_margin",
    "multilabel_soft_margin",
    "nll",
    "ntxent",
    "orpo",
    "poisson_deviance",
    "poisson_nll",
    "quantile",
    "recommend",
    "reference_path",
    "set_num_threads",
    "siglip",
    "simpo",
    "smooth_l1",
    "soft_margin",
    "squared_hinge",
    "strict_checks",
    "supcon",
    "triplet_margin",
    "triplet_margin_with_distance",
    "tversky",
    "tweedie_deviance",
]
