"""Fuzz: every loss x backend x method (``__call__``, ``.grad``, ``.value_and_grad``) x a table of bad and
extreme inputs. Each call must end in one of the allowed outcomes:

- a ``TypeError``/``ValueError`` whose message names the argument that is wrong;
- or a result: for a NaN in the input, NaN in the value (never a finite number); for valid extremes
  (huge, tiny, lists), finite values and gradients where the loss is finite;

and no input array may be modified. Never any other exception type (a bare internal error)."""

from __future__ import annotations

import warnings

import jax.numpy as jnp
import numpy as np
import pytest
import torch

from losslab import registry

LOSSES = tuple(registry._LOSSES)
BACKENDS = ("numpy", "torch", "jax")
METHODS = ("__call__", "grad", "value_and_grad")


def base(name: str):
    """A small valid call of each loss: (positional args as NumPy, options, names of the positional args)."""
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    x = rng.standard_normal((4, 3))
    y = np.array([0, 2, 1, 2])
    fn = registry._LOSSES[name]
    names = list(fn._positional)
    if name in ("mse", "mae", "huber", "smooth_l1", "log_cosh", "quantile"):
        return [x, rng.standard_normal((4, 3))], {}, names
    if name in ("poisson_deviance", "gamma_deviance", "tweedie_deviance", "msle"):  # positive means
        t = rng.poisson(2.0, (4, 3)).astype(float) if name == "poisson_deviance" else rng.uniform(0.2, 3.0, (4, 3))
        return [rng.uniform(0.2, 3.0, (4, 3)), t], {}, names
    if name == "mape":
        return [x, rng.standard_normal((4, 3))], {}, names
    if name in ("cross_entropy", "multiclass_hinge"):
        return [x, y], {}, names
    if name == "nll":
        return [x - np.log(np.exp(x).sum(1, keepdims=True)), y], {}, names
    if name == "binary_cross_entropy":
        return [rng.uniform(0.05, 0.95, (4, 3)), rng.uniform(0, 1, (4, 3))], {}, names
    if name in ("binary_cross_entropy_with_logits", "focal"):
        return [x, rng.uniform(0, 1, (4, 3))], {}, names
    if name in ("hinge", "squared_hinge"):
        return [x, np.where(rng.standard_normal((4, 3)) > 0, 1.0, -1.0)], {}, names
    if name == "kl_div":
        t = rng.dirichlet(np.ones(3), 4)
        return [x - np.log(np.exp(x).sum(1, keepdims=True)), t], {}, names
    if name == "contrastive":
        return [x, rng.standard_normal((4, 3)), np.array([1.0, 0.0, 1.0, 0.0])], {}, names
    if name == "triplet_margin":
        return [x, rng.standard_normal((4, 3)), rng.standard_normal((4, 3))], {}, names
    if name in ("soft_margin", "hinge_embedding"):
        return [np.abs(x), np.where(rng.standard_normal((4, 3)) > 0, 1.0, -1.0)], {}, names
    if name == "margin_ranking":
        return [x, rng.standard_normal((4, 3)), np.where(rng.standard_normal((4, 3)) > 0, 1.0, -1.0)], {}, names
    if name == "cosine_embedding":
        return [x, rng.standard_normal((4, 3)), np.array([1.0, -1.0, 1.0, -1.0])], {}, names
    if name == "multilabel_soft_margin":
        return [x, rng.uniform(0, 1, (4, 3))], {}, names
    if name == "multilabel_margin":
        return [x, np.array([[0, -1, 2], [2, 1, -1], [-1, 0, 0], [1, 0, 2]])], {}, names
    if name == "poisson_nll":
        return [x, rng.poisson(2.0, (4, 3)).astype(float)], {}, names
    if name == "gaussian_nll":
        return [x, rng.standard_normal((4, 3)), rng.uniform(0.2, 2.0, (4, 3))], {}, names
    if name == "triplet_margin_with_distance":
        return [x, rng.standard_normal((4, 3)), rng.standard_normal((4, 3))], {}, names
    if name == "ctc":
        lp = np.log(rng.dirichlet(np.ones(3), (5, 2)))
        return [lp, np.array([[1, 2], [2, 0]]), np.array([5, 4]), np.array([2, 1])], {}, names
    if name in ("dice", "jaccard", "tversky", "focal_tversky"):
        return [rng.standard_normal((2, 3, 2, 2)), rng.integers(0, 3, (2, 2, 2))], {}, names
    if name == "lovasz_softmax":
        return [rng.dirichlet(np.ones(3), (2, 2, 2)).transpose(0, 3, 1, 2).copy(), rng.integers(0, 3, (2, 2, 2))], {}, names
    if name == "lovasz_hinge":
        return [rng.standard_normal((2, 2, 2)), rng.integers(0, 2, (2, 2, 2))], {}, names
    if name in ("arcface", "cosface"):
        return [x, rng.standard_normal((3, 3)), y], {}, names
    if name in ("ntxent", "supcon"):
        return [x, np.array([0, 0, 1, 1])], {}, names
    if name == "dpo":
        return [-rng.uniform(1, 9, 4) for _ in range(4)], {}, names
    if name in ("simpo", "orpo"):
        return [-rng.uniform(0.1, 3, 4), -rng.uniform(0.1, 3, 4)], {}, names
    return [x, rng.standard_normal((4, 3))], {}, names  # info_nce, siglip, distill_kl, jsd


def convert(a, backend):
    if not isinstance(a, np.ndarray):
        return a
    if backend == "torch":
        return torch.tensor(a)
    if backend == "jax":
        return jnp.asarray(a)
    return a.copy()


def snapshot(values):
    return [np.array(v.detach().numpy() if isinstance(v, torch.Tensor) else v, copy=True)
            if isinstance(v, (np.ndarray, torch.Tensor, jnp.ndarray)) else None for v in values]


def call(fn, method, args, options):
    target = fn if method == "__call__" else getattr(fn, method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return target(*args, **options)


def value_of(out, method):
    value = out[0] if method == "value_and_grad" else out
    return value


def as_float_array(out):
    if isinstance(out, tuple):
        return [as_float_array(o) for o in out]
    if isinstance(out, torch.Tensor):
        return out.detach().double().numpy()
    return np.asarray(out, dtype=np.float64)


def outcome(fn, method, args, options, names_wrong):
    """Run the call; return the result, or the error after checking it is a clear one."""
    before = snapshot(args)
    try:
        out = call(fn, method, args, options)
    except (TypeError, ValueError) as err:
        out = err
    except Exception as err:  # the point of the test: no other kind of exception
        pytest.fail(f"bare {type(err).__name__} from {fn.name}.{method}: {err}")
    if isinstance(out, Exception) and not any(n in str(out) for n in names_wrong):
        pytest.fail(f"{type(out).__name__} does not name {names_wrong}: {out}")
    after = snapshot(args)
    for b, a in zip(before, after):
        if b is not None:
            np.testing.assert_array_equal(a, b, err_msg="an input was modified")
    return out


def _first_input_cases(name):
    """(label, function that edits the NumPy args) for the first positional input (ORPO's are < 0)."""
    sign = -1.0 if name == "orpo" else 1.0
    return [
        ("nan", lambda a: np.put(a, 0, np.nan)),
        ("huge", lambda a: np.put(a, 0, sign * 1e30 if name not in ("binary_cross_entropy", "lovasz_softmax") else 0.5)),
        ("tiny", lambda a: np.put(a, 0, sign * 1e-300)),
    ]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", LOSSES)
def test_extreme_values(name, backend, method):
    fn = registry._LOSSES[name]
    for label, edit in _first_input_cases(name):
        args, options, names = base(name)
        edit(args[0])
        out = outcome(fn, method, [convert(a, backend) for a in args], options, names)
        if isinstance(out, Exception):
            assert label == "nan", f"{name} refused a valid {label} input: {out}"
            continue
        values = as_float_array(out)
        value = values[0] if method == "value_and_grad" else values
        if label == "nan" and method != "grad":
            assert np.isnan(value).any(), f"{name}: a NaN input gave the finite value {value}"
        if label == "tiny" and method != "grad":
            assert np.isfinite(value).all(), f"{name}: a tiny input gave {value}"


BAD_INPUTS = [
    ("strings", lambda a: np.full(a.shape, "a")),
    ("complex", lambda a: a + 1j),
    ("ragged list", lambda a: [[0.0], [0.0, 1.0]]),
    ("wrong shape", lambda a: a[..., :-1]),
    ("scalar string", lambda a: "x"),
    ("dict", lambda a: {"x": 1}),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", LOSSES)
def test_bad_inputs_are_named(name, backend):
    fn = registry._LOSSES[name]
    for position in range(len(base(name)[0])):
        for label, make in BAD_INPUTS:
            if label in ("wrong shape",) and position == 0 and len(base(name)[0]) == 2 and name in ("cross_entropy", "nll", "multiclass_hinge"):
                continue  # (4, 2) logits with classes 0-2: the class index message names targets, checked below
            args, options, names = base(name)
            bad = make(args[position])
            args = [convert(a, backend) for a in args]
            args[position] = convert(bad, backend) if isinstance(bad, np.ndarray) and bad.dtype.kind in "fc" else bad
            for method in METHODS:
                out = outcome(fn, method, args, options, [names[position], *names])
                if label != "wrong shape" or isinstance(out, Exception):
                    assert isinstance(out, Exception), f"{name} accepted {label} as {names[position]}"


def _option_values(spec):
    if spec.domain is None:  # an array option (weight, pos_weight): lists and arrays of numbers are fine
        return [("1", TypeError), (["a", "b", "c"], TypeError), (1 + 1j, TypeError), (object(), TypeError),
                ([[1.0], [1.0, 2.0]], TypeError)]
    return [("1", TypeError), ([1.0], TypeError), (1 + 1j, TypeError), (object(), TypeError),
            (float("nan"), ValueError), (float("inf"), ValueError), (10**400, ValueError)]


@pytest.mark.parametrize("name", LOSSES)
def test_bad_options_are_named(name):
    fn = registry._LOSSES[name]
    for spec in fn.spec.options:
        for value, _ in _option_values(spec):
            if spec.domain is not None and hasattr(spec.domain, "values"):
                if value in (float("nan"), float("inf"), 10**400):
                    continue  # a choice: only listed values
            args, options, _ = base(name)
            for backend in BACKENDS:
                for method in METHODS:
                    out = outcome(fn, method, [convert(a, backend) for a in args], {**options, spec.name: value},
                                  [spec.name])
                    assert isinstance(out, Exception), f"{name} accepted {spec.name}={value!r}"


@pytest.mark.parametrize("name", LOSSES)
def test_bad_reductions_and_normalizers_are_named(name):
    fn = registry._LOSSES[name]
    args, options, _ = base(name)
    for backend in BACKENDS:
        a = [convert(v, backend) for v in args]
        for kwargs, word in [({"reduction": "avg"}, "reduction"), ({"reduction": None}, "reduction"),
                             ({"normalizer": "4"}, "normalizer"), ({"normalizer": [4.0]}, "normalizer"),
                             ({"normalizer": -1.0}, "normalizer"), ({"normalizer": float("nan")}, "normalizer"),
                             ({"normalizer": 2.0, "reduction": "sum"}, "normalizer")]:
            for method in METHODS:
                out = outcome(fn, method, a, {**options, **kwargs}, [word])
                assert isinstance(out, Exception), f"{name} accepted {kwargs}"


@pytest.mark.parametrize("name", LOSSES)
def test_lists_give_the_array_result(name):
    fn = registry._LOSSES[name]
    args, options, _ = base(name)
    expected = call(fn, "value_and_grad", args, options)
    out = call(fn, "value_and_grad", [a.tolist() for a in args], options)
    np.testing.assert_allclose(float(out[0]), float(expected[0]), rtol=1e-12)
