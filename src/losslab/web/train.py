"""The Train tab's stream: a race of ``losslab.experiments`` trained on the app's pool, each epoch
sent to the page as it is computed, as server-sent events.

    GET /api/experiments      the training experiments: racers, settings (ranges, defaults), claim, metric
    GET /api/train?experiment=outliers&losses=mse&losses=huber&delta=0.5&lr=0.5&epochs=3000&seed=0
                              text/event-stream: one "start" event (settings, racers, the scene: data points
                              and reference curve), "epochs" events (every epoch's metrics since the last
                              event and each model's current curve), one "end" event (the result: table,
                              claims with verdicts, notes; whether and why it stopped early)

Bad settings get 400 before any stream starts, a full pool 503. The race runs on a worker thread
and checks a stop flag before every epoch: the flag is set when the client goes away (the page's
Stop button closes the request) and when the run reaches MAX_SECONDS. Nothing is precomputed: each
event holds the epochs computed since the previous one, flushed at most every FLUSH_SECONDS.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse

from .._json import dumps
from ..experiments import ExperimentResult, describe, prepare, race
from ..experiments.training import TRAININGS, Epochs, Racer
from .work import _call_soon

MAX_SECONDS = 120.0  # a run's time on a worker; it stops there and says so
FLUSH_SECONDS = 0.1  # epochs are sent in batches at most this often (the first at once)


def experiments(request: Request) -> JSONResponse:
    return JSONResponse([describe(name) for name in TRAININGS])


def _settings(request: Request) -> tuple[str, dict[str, Any]]:
    from .app import BadRequest

    query = request.query_params
    name = query.get("experiment")
    if name not in TRAININGS:
        raise BadRequest(f'"experiment" must be one of {list(TRAININGS)}, got {name!r}')
    settings: dict[str, Any] = {}
    losses = query.getlist("losses")
    if losses:
        settings["losses"] = losses
    for key, text in query.multi_items():
        if key in ("experiment", "losses"):
            continue
        if len(query.getlist(key)) > 1:
            raise BadRequest(f"{key} is given {len(query.getlist(key))} times; give it once")
        try:
            value = float(text)
        except ValueError:
            raise BadRequest(f"{key} must be a number, got {text!r}") from None
        if not math.isfinite(value):
            raise BadRequest(f"{key} must be a finite number, got {text!r}")
        settings[key] = value  # its name and range are checked by prepare(), as for run()
    return name, settings


def _event(kind: str, data: dict[str, Any]) -> str:
    return f"event: {kind}\ndata: {dumps(data, compact=True)}\n\n"


async def train(request: Request) -> StreamingResponse:
    from .app import BadRequest, _on_pool_now

    name, settings = _settings(request)
    try:
        training = prepare(name, **settings)
    except (ValueError, TypeError) as err:
        raise BadRequest(str(err)) from None
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    stop = threading.Event()
    sent = threading.Event()  # the client has taken every event so far: the worker may send the next batch
    sent.set()

    def send(kind: str, data: dict[str, Any]) -> None:  # from the worker thread
        sent.clear()
        _call_soon(loop, queue.put_nowait, _event(kind, data))

    def job() -> None:
        try:
            _run(training, send, stop, sent)
        except Exception as err:  # the page must hear why its run ended
            send("error", {"error": f"{type(err).__name__}: {err}"})
        finally:
            _call_soon(loop, queue.put_nowait, None)

    running = _on_pool_now(request.app.state.pool, job, long=True)  # 503 now, before any stream, when no slot is free
    request.app.state.runs.add(stop)  # the server stops every run when it shuts down

    async def stream() -> AsyncIterator[str]:
        try:
            while (item := await queue.get()) is not None:
                yield item
                if queue.empty():
                    sent.set()
        finally:  # the client went away (Stop, a closed tab) or the run ended: stop the worker either way
            stop.set()
            request.app.state.runs.discard(stop)
            await asyncio.shield(running)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _run(training, send, stop: threading.Event, sent: threading.Event) -> None:
    """Drive the race on this (worker) thread, sending batches of epochs as they are computed. A batch
    goes out once the client has taken the previous one (``sent``): a client that reads slowly gets
    bigger batches, and the server never holds more than one unsent batch for it."""
    started = time.perf_counter()
    racers: list[Racer] = []
    reason = None

    def on_start(rs: list[Racer], scene: dict[str, Any]) -> None:
        racers.extend(rs)
        send("start", {"experiment": training.name, "title": training.title, "claim": training.claim,
                       "metric": training.metric, "settings": training.config, "scene": scene,
                       "curves": {r.name: r.curve() for r in rs}})

    def should_stop() -> bool:
        nonlocal reason
        if stop.is_set():
            reason = "stopped"
        elif time.perf_counter() - started > MAX_SECONDS:
            reason = f"time limit ({MAX_SECONDS:g} s)"
        return reason is not None

    batch: list[Epochs] = []
    last_flush = 0.0

    def flush() -> None:
        nonlocal batch, last_flush
        if batch:
            metrics: dict[str, dict[str, list[float]]] = {}
            for step in batch:
                for racer, values in step.metrics.items():
                    for key, value in values.items():
                        metrics.setdefault(racer, {}).setdefault(key, []).append(value)
            send("epochs", {"first": batch[0].epoch, "last": batch[-1].epoch, "metrics": metrics,
                            "curves": {r.name: r.curve() for r in racers},
                            "seconds": time.perf_counter() - started})
            batch = []
        last_flush = time.perf_counter()

    result: ExperimentResult | None = None
    epochs_run = 0
    for step in race(training, stop=should_stop, on_start=on_start):
        if isinstance(step, ExperimentResult):
            result = step
            break
        epochs_run = step.epoch + 1
        batch.append(step)
        if step.epoch == 0 or (time.perf_counter() - last_flush >= FLUSH_SECONDS and sent.is_set()):
            flush()
    flush()
    assert result is not None
    send("end", {"result": result.to_dict(), "stopped": reason, "epochs_run": epochs_run,
                 "seconds": time.perf_counter() - started})
