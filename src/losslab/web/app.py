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
    GET  /api/experiments       the training experiments of the Train tab: racers, settings, claim
    GET  /api/train?experiment=...&losses=...&lr=...   a race streamed as server-sent events (train.py)

Requests are data only: standard JSON numbers (float64, int64), lists and a few names, checked
against limits; nothing a client sends is evaluated as code. Bad requests get a 4xx with a message,
never a 500. Large bodies and large work run on the app's bounded WorkPool, off the event loop.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import playground, quiz
from .._json import dumps, finite
from .._spec import Choices, LossSpec
from ..registry import get, get_loss, losses
from .work import Busy, WorkPool

MAX_BODY_BYTES = 1 << 20  # 1 MiB
MAX_ELEMENTS = 100_000  # per array
MAX_CLASSES = 1_000  # logits of the confidence explorer and the class playground
MAX_COMPARED = 8  # losses on one comparison chart
MAX_PAIRS = 2_000 ** 2  # a batch-pairwise loss's N x N similarities (InfoNCE, SigLIP): about 0.2 s, 32 MB each
INLINE_BYTES = 64 << 10  # larger bodies are parsed on the pool, not on the event loop
INLINE_WORK = 200_000  # numbers touched: more than this is computed on the pool
STATIC = Path(__file__).parent / "static"
CLASS_INDEX_LOSSES = ("cross_entropy", "nll", "multiclass_hinge")


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@cache
def _mathml(latex: str) -> str:
    """LaTeX -> MathML on the server (Chromium, Firefox and Safari render MathML natively: no JS math library).
    Accents get the modifier letters browsers draw as accents (U+02C6, U+02DC): latex2mathml writes the
    ASCII '^' and '~', which Chromium sets as full-size characters beside the letter."""
    from latex2mathml.converter import convert

    return (convert(latex, display="block")
            .replace("<mo>&#x0005E;</mo></mover>", '<mo stretchy="false">&#x002C6;</mo></mover>')
            .replace("<mo>&#x0007E;</mo></mover>", '<mo stretchy="false">&#x002DC;</mo></mover>'))


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


def _choices(spec: LossSpec) -> list[dict[str, Any]]:
    """The options with listed values (a loss type, a flag), each with its values and default."""
    params = get_loss(spec.name).__signature__.parameters
    return [{"name": o.name, "description": o.description, "values": list(o.domain.values),
             "default": params[o.name].default} for o in spec.options if isinstance(o.domain, Choices)]


@cache
def _explorer_spec(name: str) -> dict[str, Any]:
    spec = get(name)
    return finite({**spec.to_dict(), "formula_mathml": _mathml(spec.formula_latex),
                    "gradient_mathml": _mathml(spec.gradient_latex), "sliders": _sliders(spec),
                    "choices": _choices(spec), "target_slider": _target_slider(spec.name)})


def _target_slider(name: str) -> dict[str, Any] | None:
    """The landscape's target, where the loss has one to move: range, default and what it means (plots)."""
    from ..plots import target_range

    allowed = target_range(name)
    return None if allowed is None else {"low": allowed.low, "high": allowed.high, "default": allowed.default,
                                         "meaning": allowed.meaning}


def _array(field: str, value: Any, *, integers: bool = False) -> np.ndarray:
    if not isinstance(value, (list, int, float)) or isinstance(value, bool):
        raise BadRequest(f"{field} must be a number or a (nested) list of numbers")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise BadRequest(f"{field} must be a number or a rectangular (nested) list of numbers") from None
    if integers:  # whole numbers, possibly written 3.0 or 1e30: int64 must hold them exactly
        if arr.size and np.abs(arr).max() >= 2.0 ** 63:
            raise BadRequest(f"{field} holds {np.abs(arr).max():g}, beyond int64's range: class indices are small whole numbers")
        arr = np.asarray(value, dtype=np.int64)
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
        elif v is None or isinstance(v, (bool, int, float, str)):
            out[key] = v  # the loss checks it against the option's domain
        else:
            raise BadRequest(f"options.{key} must be a number, a string, a boolean, null or a list of numbers")
    return out


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BadRequest(f"request body over {MAX_BODY_BYTES} bytes", 413)
    raw = bytearray()
    try:
        async for chunk in request.stream():  # counted as it arrives: a chunked body has no declared length
            raw += chunk
            if len(raw) > MAX_BODY_BYTES:
                raise BadRequest(f"request body over {MAX_BODY_BYTES} bytes", 413)
    except ClientDisconnect:
        raise BadRequest("the client went away before its request was complete", 408) from None
    return bytes(raw)


def _json_constant(name: str) -> None:
    raise BadRequest(f"{name} is not a JSON number; send finite numbers only")


def _json_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise BadRequest(f"the number {_short(text)} is beyond float64's range (about 1.8e308)")
    return value


def _json_int(text: str) -> int:
    if len(text) > 20:  # before int(): a 5,000-digit number is refused, not converted
        raise BadRequest(f"the integer {_short(text)} is beyond int64's range (19 digits at most)")
    value = int(text)
    if not -(1 << 63) <= value < 1 << 63:
        raise BadRequest(f"the integer {text} is beyond int64's range [-2**63, 2**63)")
    return value


def _short(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:12]}...({len(text)} characters)"


def _parse(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object: standard JSON only (no NaN/Infinity), numbers in float64/int64 range."""
    try:
        data = json.loads(raw, parse_constant=_json_constant, parse_float=_json_float, parse_int=_json_int)
    except RecursionError:
        raise BadRequest("the request body's JSON is nested too deeply") from None
    except UnicodeDecodeError:
        raise BadRequest("the request body must be JSON in UTF-8") from None
    except ValueError as err:
        raise BadRequest(f"the request body must be JSON: {err}") from None
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object")
    return data


def _render(answer: Any) -> bytes:
    return dumps(answer, compact=True).encode()


@dataclass(frozen=True)
class Job:
    """Work that a handler has checked and sized, to run where its size says (the loop or the pool)."""

    work: int  # about how many numbers it touches
    compute: Callable[[], Any]


def _answer(outcome: Any) -> bytes:
    return _render(outcome.compute() if isinstance(outcome, Job) else outcome)


def _post(handler: Callable[[dict[str, Any]], Any]) -> Callable[[Request], Awaitable[Response]]:
    """A POST route: handler(data) returns the answer, or a Job. A small body and small work are
    handled on the event loop; a large body, or work over INLINE_WORK, on the app's pool."""

    async def endpoint(request: Request) -> Response:
        raw = await _read_body(request)
        pool: WorkPool = request.app.state.pool
        if len(raw) > INLINE_BYTES:
            body = await _on_pool_now(pool, lambda: _answer(handler(_parse(raw))))
        else:
            outcome = handler(_parse(raw))
            if isinstance(outcome, Job) and outcome.work > INLINE_WORK:
                body = await _on_pool_now(pool, lambda: _answer(outcome))
            else:
                body = _answer(outcome)
        return Response(body, media_type="application/json")

    return endpoint


def _on_pool_now(pool: WorkPool, job: Callable[[], Any], *, long: bool = False) -> asyncio.Future:
    """job started on the pool (a future), or 503 when the pool is full."""
    try:
        return pool.submit(job, long=long)
    except Busy as err:
        raise BadRequest(str(err), 503) from None


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


def compute_loss(data: dict[str, Any]) -> Job:
    name = _loss_name(data)
    spec = get(name)
    loss = get_loss(name)
    if len(loss.inputs) > 1 or len(spec.inputs) > 2:  # several arrays: "inputs", every one by position
        everything, predictions = list(spec.inputs), list(loss.inputs)
        given = data.get("inputs")
        if not isinstance(given, list) or len(given) not in (len(predictions), len(everything)):
            wanted = f"a list of {len(everything)} arrays ({', '.join(everything)})"
            if len(everything) > len(predictions):
                wanted += f', or of {len(predictions)} ({", ".join(predictions)}) and "targets"'
            raise BadRequest(f'{name} takes "inputs": {wanted}')
        inputs = [_array(f"inputs[{k}]", v) for k, v in enumerate(given)]
        if len(given) == len(everything) and "targets" in data:
            raise BadRequest(f'"inputs" already holds every argument of {name}; leave "targets" out')
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

    def compute() -> dict[str, Any]:
        try:
            value, grad = get_loss(name).value_and_grad(*args, reduction=reduction, **options)
        except (ValueError, TypeError) as err:
            raise BadRequest(str(err)) from None
        grads = [g.tolist() for g in grad] if isinstance(grad, tuple) else np.asarray(grad).tolist()
        return {"loss": name, "value": np.asarray(value).tolist(), "grad": grads}

    return Job(_work(spec, inputs, args), compute)


def _work(spec: LossSpec, inputs: list[np.ndarray], args: list[np.ndarray]) -> int:
    """About how many numbers a loss call touches; a batch-pairwise loss is refused beyond MAX_PAIRS."""
    work = sum(a.size for a in args)
    if spec.pairwise_batch and inputs[0].ndim >= 1:
        n = inputs[0].shape[0]
        if n * n > MAX_PAIRS:
            raise BadRequest(f"{spec.name} compares all N x N = {n * n:,} pairs of a batch of N = {n:,}; the limit is "
                             f"{MAX_PAIRS:,} pairs (N <= {math.isqrt(MAX_PAIRS):,}): send a smaller batch", 413)
        work += n * n
    return work


def _whole(value: Any) -> bool:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return bool(np.all(arr == np.round(arr)))


def curve(data: dict[str, Any]) -> dict[str, Any]:
    from ..plots import _axis

    name = _loss_name(data)
    target = _number(data, "target")
    try:
        axis = _axis(name, target, _options(name, data.get("options")), n=201)
    except (ValueError, TypeError) as err:
        raise BadRequest(str(err)) from None
    return {"loss": name, "label": axis.label, "grad_label": axis.grad_label, "x": axis.x.tolist(),
            "values": axis.values.tolist(), "grads": axis.grads.tolist()}


def _number(data: dict[str, Any], key: str, default: float | None = None, range_hint: str = "") -> float | None:
    """data[key] as a JSON number; ``default`` when absent (and null allowed when the default is None)."""
    value = data.get(key, default)
    if (value is not None or default is not None) and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise BadRequest(f'"{key}" must be a number{range_hint}')
    return value


def _class_index(value: Any, classes: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f'"target" must be a class index (a whole number), got {json.dumps(value)}')
    if not 0 <= value < classes:
        raise BadRequest(f'"target" is out of range: {value} is not a class index in [0, {classes - 1}]')
    return value


def _logits(data: dict[str, Any]) -> np.ndarray:
    z = _array("logits", data.get("logits"))
    if z.ndim != 1 or not 2 <= z.size <= MAX_CLASSES:
        raise BadRequest(f'"logits" must be a list of 2 to {MAX_CLASSES} numbers (one row), got shape {list(z.shape)}')
    return z


def compare_losses(data: dict[str, Any]) -> Job:
    options = data.get("options") or {}
    if not isinstance(options, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in options.values()):
        raise BadRequest("options must be a JSON object of option names and numbers")
    known = {o.name for s in losses() for o in s.options}
    unknown = sorted(set(options) - known)
    if unknown:
        raise BadRequest(f"no loss has the option {unknown[0]!r}; options are {sorted(known)}")
    if "logits" in data:
        logits = _logits(data)
        board_of, args = playground.compare_classes, (logits, _class_index(data.get("target"), logits.size))
    else:
        if "predictions" not in data or "targets" not in data:
            raise BadRequest('give "predictions" and "targets" (or "logits" and a class "target")')
        board_of, args = playground.compare, (_array("predictions", data["predictions"]), _array("targets", data["targets"]))

    def compute() -> dict[str, Any]:
        try:
            return board_of(*args, **options).to_dict()
        except (ValueError, TypeError) as err:
            raise BadRequest(str(err)) from None

    return Job(sum(a.size for a in args if isinstance(a, np.ndarray)) * len(losses()), compute)  # every loss that applies


def cross_entropy(data: dict[str, Any]) -> dict[str, Any]:
    smoothing = _number(data, "label_smoothing", 0.0, " in [0, 1]")
    try:
        logits = _logits(data)
        return playground.cross_entropy_report(logits, _class_index(data.get("target"), logits.size), float(smoothing))
    except (ValueError, TypeError) as err:
        raise BadRequest(str(err)) from None


async def scenarios(request: Request) -> JSONResponse:
    from ..plots import SCENARIOS

    return JSONResponse(SCENARIOS)


async def quiz_questions(request: Request) -> JSONResponse:
    return JSONResponse([q.public() for q in quiz.questions()])


def quiz_answer(data: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(data.get("id"), str):
        raise BadRequest('"id" must name a question (GET /api/quiz lists them)')
    try:
        return quiz.grade(data["id"], data.get("choice"))
    except KeyError as err:
        raise BadRequest(err.args[0], 404) from None
    except ValueError as err:
        raise BadRequest(str(err)) from None


async def page(request: Request) -> FileResponse:
    return FileResponse(STATIC / "index.html")



async def comparisons(request: Request) -> JSONResponse:
    from ..plots import COMPARISONS

    return JSONResponse({label: list(names) for label, names in COMPARISONS.items()})


def compare_curves(data: dict[str, Any]) -> dict[str, Any]:
    from ..plots import shared_axis

    names, target = data.get("losses"), _number(data, "target")
    if not isinstance(names, list) or not 1 <= len(names) <= MAX_COMPARED or not all(isinstance(n, str) for n in names):
        raise BadRequest(f'"losses" must be a list of 1 to {MAX_COMPARED} loss names (a name may end in ":sigmoid")')
    try:
        label, axes = shared_axis(names, target)
    except KeyError as err:
        raise BadRequest(err.args[0], 404) from None
    except (ValueError, TypeError) as err:
        raise BadRequest(str(err)) from None
    return {"label": label, "x": axes[0][1].x.tolist(), "curves": [
        {"loss": name, "values": a.values.tolist(), "grads": a.grads.tolist()} for name, a in axes]}


async def worked_examples(request: Request) -> JSONResponse:
    from ..examples import check

    return JSONResponse([r.to_dict() for r in check()])


async def _bad_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BadRequest)
    headers = {"Retry-After": "1"} if exc.status == 503 else None
    return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=headers)


def create_app(pool: WorkPool | None = None) -> Starlette:
    """The explorer's app. ``pool`` runs its heavy work and training runs (default: WorkPool(): 3 workers, 8 waiting, 2 runs)."""
    from . import train as train_routes

    pool = pool or WorkPool()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        for stop in app.state.runs:  # training runs still streaming end at their next epoch
            stop.set()
        pool.close()

    routes = [Route("/", page), Mount("/static", StaticFiles(directory=STATIC), name="static"),
              Route("/api/losses", list_losses), Route("/api/losses/{name}", one_loss),
              Route("/api/loss", _post(compute_loss), methods=["POST"]),
              Route("/api/curve", _post(curve), methods=["POST"]),
              Route("/api/compare", _post(compare_curves), methods=["POST"]), Route("/api/comparisons", comparisons),
              Route("/api/playground", _post(compare_losses), methods=["POST"]),
              Route("/api/cross_entropy", _post(cross_entropy), methods=["POST"]), Route("/api/scenarios", scenarios),
              Route("/api/examples", worked_examples), Route("/api/quiz", quiz_questions),
              Route("/api/quiz/answer", _post(quiz_answer), methods=["POST"]),
              Route("/api/experiments", train_routes.experiments), Route("/api/train", train_routes.train)]
    app = Starlette(routes=routes, exception_handlers={BadRequest: _bad_request}, lifespan=lifespan)
    app.state.pool = pool
    app.state.runs = set()  # the stop flags of the training runs in progress
    return app
