"""The explorer: one page (static files in ./static) over a JSON API on the registry and the losses.

    GET  /                      the explorer page
    GET  /api/losses            the registry's specs, a JSON list (plus the formulas as MathML and slider ranges)
    GET  /api/losses/{name}     one spec
    POST /api/loss              {"loss", "predictions" | "inputs", "targets", "options", "reduction"} -> {"value", "grad"}
    POST /api/curve             {"loss", "target", "options"} -> the landscape {"x", "values", "grads", "label"}
    POST /api/compare           {"losses": ["mse", "mae", "huber"] or ["binary_cross_entropy_with_logits", "mse:sigmoid"],
                                 "target"} -> {"label", "x", "curves": [{"loss", "values", "grads"}]}
    GET  /api/comparisons       the seeds' comparisons, {"MSE vs MAE vs Huber": ["mse", "mae", "huber"], ...}
    POST /api/playground        {"predictions", "targets", "options"} or {"logits", "target", "options"}
                                -> every applicable loss {"results", "not_applicable"} (as ``losslab compare``)
    POST /api/cross_entropy     {"logits", "target", "label_smoothing"} -> softmax, loss, gradient (as ``losslab ce``)
    GET  /api/scenarios         seed 002's confidence scenarios (logit vectors)
    GET  /api/examples          the seed documents' worked examples, recomputed
    GET  /api/quiz              the self-check questions, without their answers
    POST /api/quiz/answer       {"id", "choice"} -> {"correct", "answer", "explanation"}

Requests are data only: JSON numbers, lists and a few names, checked against limits; nothing a
client sends is evaluated as code. Bad requests get a 4xx with a message, never a 500.
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import playground, quiz
from .._spec import LossSpec
from ..registry import get, get_loss, losses

MAX_BODY_BYTES = 1 << 20  # 1 MiB
MAX_ELEMENTS = 100_000  # per array
MAX_CLASSES = 1_000  # logits of the confidence explorer and the class playground
MAX_COMPARED = 8  # losses on one comparison chart
STATIC = Path(__file__).parent / "static"
CLASS_INDEX_LOSSES = ("cross_entropy", "nll", "multiclass_hinge")


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _finite(value: Any) -> Any:
    """JSON cannot carry inf/NaN: send them as strings, so the client sees them plainly."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


@cache
def _mathml(latex: str) -> str:
    """LaTeX -> MathML on the server (Chromium, Firefox and Safari render MathML natively: no JS math library)."""
    from latex2mathml.converter import convert

    return convert(latex, display="block")


def _sliders(spec: LossSpec) -> list[dict[str, Any]]:
    """The numeric options with their slider range (from the spec) and default (from the signature)."""
    params = get_loss(spec.name).__signature__.parameters
    out = []
    for o in spec.options:
        if o.low is None or o.high is None:
            continue
        default = params[o.name].default
        out.append({"name": o.name, "description": o.description, "valid": o.valid, "low": o.low, "high": o.high,
                    "step": 1 if o.integer else 10 ** math.floor(math.log10((o.high - o.low) / 100)),  # a round step
                    "default": default})  # None (focal alpha): not sent until moved
    return out


@cache
def _explorer_spec(name: str) -> dict[str, Any]:
    spec = get(name)
    return _finite({**spec.to_dict(), "formula_mathml": _mathml(spec.formula_latex),
                    "gradient_mathml": _mathml(spec.gradient_latex), "sliders": _sliders(spec),
                    "target_slider": spec.family == "regression"})


def _array(field: str, value: Any, *, integers: bool = False) -> np.ndarray:
    if not isinstance(value, (list, int, float)) or isinstance(value, bool):
        raise BadRequest(f"{field} must be a number or a (nested) list of numbers")
    try:
        arr = np.asarray(value, dtype=np.int64 if integers else np.float64)
    except (TypeError, ValueError):
        raise BadRequest(f"{field} must be a number or a rectangular (nested) list of numbers") from None
    if arr.size > MAX_ELEMENTS:
        raise BadRequest(f"{field} has {arr.size} numbers; the limit is {MAX_ELEMENTS}", 413)
    return arr


def _options(loss_name: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest("options must be a JSON object of option names and values")
    allowed = {p for p in get_loss(loss_name).__signature__.parameters if p not in ("reduction", "normalizer")}
    out = {}
    for key, v in value.items():
        if key not in allowed or key in get(loss_name).inputs:
            raise BadRequest(f"{loss_name} has no option {key!r}")
        if isinstance(v, list):
            out[key] = _array(f"options.{key}", v)
        elif v is None or isinstance(v, (bool, int, float)):
            out[key] = v
        else:
            raise BadRequest(f"options.{key} must be a number, a boolean, null or a list of numbers")
    return out


async def _body(request: Request) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BadRequest(f"request body over {MAX_BODY_BYTES} bytes", 413)
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise BadRequest(f"request body over {MAX_BODY_BYTES} bytes", 413)
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("the request body must be JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object")
    return data


def _loss_name(data: dict[str, Any]) -> str:
    name = data.get("loss")
    if not isinstance(name, str):
        raise BadRequest('"loss" must name a loss (GET /api/losses lists them)')
    try:
        get(name)
    except KeyError as err:
        raise BadRequest(err.args[0], 404) from None
    return name


async def list_losses(request: Request) -> JSONResponse:
    return JSONResponse([_explorer_spec(spec.name) for spec in losses()])


async def one_loss(request: Request) -> JSONResponse:
    try:
        return JSONResponse(_explorer_spec(request.path_params["name"]))
    except KeyError as err:
        raise BadRequest(err.args[0], 404) from None


async def compute_loss(request: Request) -> JSONResponse:
    data = await _body(request)
    name = _loss_name(data)
    spec = get(name)
    if len(spec.inputs) > 2 or name in ("info_nce", "siglip", "contrastive", "triplet_margin"):
        n_inputs = len(get_loss(name).inputs)
        given = data.get("inputs")
        if not isinstance(given, list) or len(given) != n_inputs:
            raise BadRequest(f'{name} takes "inputs": a list of {n_inputs} arrays ({", ".join(get_loss(name).inputs)})')
        inputs = [_array(f"inputs[{k}]", v) for k, v in enumerate(given)]
    else:
        if "predictions" not in data:
            raise BadRequest('"predictions" is missing')
        inputs = [_array("predictions", data["predictions"])]
    args = list(inputs)
    if "targets" in data:
        args.append(_array("targets", data["targets"], integers=name in CLASS_INDEX_LOSSES and _whole(data["targets"])))
    reduction = data.get("reduction", "mean")
    if not isinstance(reduction, str):
        raise BadRequest('"reduction" must be a string')
    options = _options(name, data.get("options"))
    try:
        value, grad = get_loss(name).value_and_grad(*args, reduction=reduction, **options)
    except (ValueError, TypeError) as err:
        raise BadRequest(str(err)) from None
    grads = [g.tolist() for g in grad] if isinstance(grad, tuple) else np.asarray(grad).tolist()
    return JSONResponse({"loss": name, "value": _finite(np.asarray(value).tolist()), "grad": _finite(grads)})


def _whole(value: Any) -> bool:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return bool(np.all(arr == np.round(arr)))


async def curve(request: Request) -> JSONResponse:
    from ..plots import _axis

    data = await _body(request)
    name = _loss_name(data)
    target = _number(data, "target")
    try:
        axis = _axis(name, target, _options(name, data.get("options")), n=201)
    except (ValueError, TypeError) as err:
        raise BadRequest(str(err)) from None
    return JSONResponse({"loss": name, "label": axis.label, "x": axis.x.tolist(),
                         "values": _finite(axis.values.tolist()), "grads": _finite(axis.grads.tolist())})


def _number(data: dict[str, Any], key: str, default: float | None = None, range_hint: str = "") -> float | None:
    """data[key] as a JSON number; ``default`` when absent (and null allowed when the default is None)."""
    value = data.get(key, default)
    if (value is not None or default is not None) and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise BadRequest(f'"{key}" must be a number{range_hint}')
    return value


def _class_index(value: Any, field: str = "target") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f'"{field}" must be a class index (a whole number), got {json.dumps(value)}')
    return value


def _logits(data: dict[str, Any]) -> np.ndarray:
    z = _array("logits", data.get("logits"))
    if z.ndim != 1 or not 2 <= z.size <= MAX_CLASSES:
        raise BadRequest(f'"logits" must be a list of 2 to {MAX_CLASSES} numbers (one row), got shape {list(z.shape)}')
    return z


async def compare_losses(request: Request) -> JSONResponse:
    data = await _body(request)
    options = data.get("options") or {}
    if not isinstance(options, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in options.values()):
        raise BadRequest("options must be a JSON object of option names and numbers")
    known = {o.name for s in losses() for o in s.options}
    unknown = sorted(set(options) - known)
    if unknown:
        raise BadRequest(f"no loss has the option {unknown[0]!r}; options are {sorted(known)}")
    try:
        if "logits" in data:
            board = playground.compare_classes(_logits(data), _class_index(data.get("target")), **options)
        else:
            if "predictions" not in data or "targets" not in data:
                raise BadRequest('give "predictions" and "targets" (or "logits" and a class "target")')
            board = playground.compare(_array("predictions", data["predictions"]), _array("targets", data["targets"]), **options)
    except (ValueError, TypeError) as err:
        raise BadRequest(str(err)) from None
    return JSONResponse(_finite(board.to_dict()))


async def cross_entropy(request: Request) -> JSONResponse:
    data = await _body(request)
    smoothing = _number(data, "label_smoothing", 0.0, " in [0, 1]")
    try:
        report = playground.cross_entropy_report(_logits(data), _class_index(data.get("target")), float(smoothing))
    except (ValueError, TypeError) as err:
        raise BadRequest(str(err)) from None
    return JSONResponse(_finite(report))


async def scenarios(request: Request) -> JSONResponse:
    from ..plots import SCENARIOS

    return JSONResponse(SCENARIOS)


async def quiz_questions(request: Request) -> JSONResponse:
    return JSONResponse([q.public() for q in quiz.questions()])


async def quiz_answer(request: Request) -> JSONResponse:
    data = await _body(request)
    if not isinstance(data.get("id"), str):
        raise BadRequest('"id" must name a question (GET /api/quiz lists them)')
    try:
        return JSONResponse(quiz.grade(data["id"], data.get("choice")))
    except KeyError as err:
        raise BadRequest(err.args[0], 404) from None
    except ValueError as err:
        raise BadRequest(str(err)) from None


async def page(request: Request) -> FileResponse:
    return FileResponse(STATIC / "index.html")



async def comparisons(request: Request) -> JSONResponse:
    from ..plots import COMPARISONS

    return JSONResponse({label: list(names) for label, names in COMPARISONS.items()})


async def compare_curves(request: Request) -> JSONResponse:
    from ..plots import shared_axis

    data = await _body(request)
    names, target = data.get("losses"), _number(data, "target")
    if not isinstance(names, list) or not 1 <= len(names) <= MAX_COMPARED or not all(isinstance(n, str) for n in names):
        raise BadRequest(f'"losses" must be a list of 1 to {MAX_COMPARED} loss names (a name may end in ":sigmoid")')
    try:
        label, axes = shared_axis(names, target)
    except KeyError as err:
        raise BadRequest(err.args[0], 404) from None
    except (ValueError, TypeError) as err:
        raise BadRequest(str(err)) from None
    return JSONResponse({"label": label, "x": axes[0][1].x.tolist(), "curves": [
        {"loss": name, "values": _finite(a.values.tolist()), "grads": _finite(a.grads.tolist())} for name, a in axes]})


async def worked_examples(request: Request) -> JSONResponse:
    from ..examples import check

    return JSONResponse([r.to_dict() for r in check()])


async def _bad_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BadRequest)
    return JSONResponse({"error": str(exc)}, status_code=exc.status)


def create_app() -> Starlette:
    routes = [Route("/", page), Mount("/static", StaticFiles(directory=STATIC), name="static"),
              Route("/api/losses", list_losses), Route("/api/losses/{name}", one_loss),
              Route("/api/loss", compute_loss, methods=["POST"]), Route("/api/curve", curve, methods=["POST"]),
              Route("/api/compare", compare_curves, methods=["POST"]), Route("/api/comparisons", comparisons),
              Route("/api/playground", compare_losses, methods=["POST"]),
              Route("/api/cross_entropy", cross_entropy, methods=["POST"]), Route("/api/scenarios", scenarios),
              Route("/api/examples", worked_examples), Route("/api/quiz", quiz_questions),
              Route("/api/quiz/answer", quiz_answer, methods=["POST"])]
    return Starlette(routes=routes, exception_handlers={BadRequest: _bad_request})
