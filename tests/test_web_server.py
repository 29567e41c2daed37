"""The explorer's server under hostile input and load: numbers JSON cannot hold, deep nesting,
quadratic work, a full pool, stalled connections (a real uvicorn on loopback), and the load test
(benchmarks/web_load.py: thousands of requests at concurrency 16, none answered wrongly)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from starlette.testclient import TestClient

from losslab.web import create_app
from losslab.web.app import INLINE_WORK, MAX_PAIRS
from losslab.web.work import Busy, WorkPool

LOAD_SCRIPT = Path(__file__).parent.parent / "benchmarks" / "web_load.py"


@pytest.fixture(scope="module")
def client():
    return TestClient(create_app(), raise_server_exceptions=False)


def _embeddings(n: int, d: int = 1) -> list:
    return np.random.default_rng(0).normal(size=(n, d)).round(3).tolist()


HUGE = str(10**400)


def _put(template: str, value: object) -> str:
    return template.replace("$", str(value))
NESTED = "[" * 5000 + "1" + "]" * 5000


@pytest.mark.parametrize(("route", "body", "message"), [
    ("/api/loss", '{"loss": "cross_entropy", "predictions": [[1, 2, 3]], "targets": [1e30]}', "beyond int64"),
    ("/api/loss", _put('{"loss": "cross_entropy", "predictions": [[1, 2, 3]], "targets": [$]}', 2**63), "beyond int64"),
    ("/api/loss", _put('{"loss": "mse", "predictions": [$], "targets": [1]}', HUGE), "beyond int64"),
    ("/api/loss", _put('{"loss": "mse", "predictions": [$], "targets": [1]}', ("9" * 5000)), "(5000 characters)"),
    ("/api/loss", '{"loss": "mse", "predictions": [1e400], "targets": [1]}', "beyond float64"),
    ("/api/loss", '{"loss": "mse", "predictions": [NaN], "targets": [1]}', "NaN is not a JSON number"),
    ("/api/loss", _put('{"loss": "huber", "predictions": [1], "targets": [1], "options": {"delta": $}}', HUGE), "beyond int64"),
    ("/api/loss", NESTED, "nested too deeply"),
    ("/api/loss", _put('{"loss": "mse", "predictions": $, "targets": 1}', NESTED), "nested too deeply"),
    ("/api/loss", _put('{"loss": "mse", "predictions": $, "targets": 1}', ("[" * 200 + "1" + "]" * 200)), "rectangular"),
    ("/api/curve", '{"loss": "huber", "target": NaN}', "NaN is not a JSON number"),
    ("/api/curve", '{"loss": "huber", "target": Infinity}', "Infinity is not a JSON number"),
    ("/api/curve", '{"loss": "huber", "target": -Infinity}', "-Infinity is not a JSON number"),
    ("/api/curve", _put('{"loss": "huber", "target": $}', HUGE), "beyond int64"),
    ("/api/compare", _put('{"losses": ["mse"], "target": $}', HUGE), "beyond int64"),
    ("/api/compare", '{"losses": ["mse"], "target": NaN}', "NaN"),
    ("/api/playground", _put('{"logits": [1, 2], "target": $}', HUGE), "beyond int64"),
    ("/api/playground", _put('{"logits": [1, 2], "target": $}', 2**62), "out of range"),
    ("/api/cross_entropy", _put('{"logits": [1, 2], "target": $}', 2**70), "beyond int64"),
    ("/api/cross_entropy", '{"logits": [1, 2], "target": 0, "label_smoothing": NaN}', "NaN"),
    ("/api/quiz/answer", _put('{"id": "bce-p-0.05", "choice": $}', HUGE), "beyond int64"),
])
def test_numbers_json_cannot_hold_and_deep_nesting_get_400(client, route, body, message):
    response = client.post(route, content=body.encode(), headers={"content-type": "application/json"})
    assert response.status_code == 400 and message in response.json()["error"], response.text[:300]


def test_batch_pairwise_work_is_bounded(client):
    side = int(MAX_PAIRS**0.5)
    response = client.post("/api/loss", json={"loss": "info_nce", "inputs": [_embeddings(side + 1)] * 2})
    assert response.status_code == 413 and f"N <= {side:,}" in response.json()["error"]
    assert client.post("/api/loss", json={"loss": "siglip", "inputs": [_embeddings(side)] * 2}).status_code == 200


class CountingPool(WorkPool):
    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.jobs = 0

    def submit(self, job, *, long=False):
        self.jobs += 1
        return super().submit(job, long=long)


def test_heavy_work_runs_on_the_pool_and_small_work_on_the_loop():
    pool = CountingPool(workers=1, waiting=0, long_slots=0)
    with TestClient(create_app(pool), raise_server_exceptions=False) as c:
        assert c.post("/api/loss", json={"loss": "mse", "predictions": [1.0, 2.0], "targets": [0.0, 0.0]}).json()["value"] == 2.5
        assert pool.jobs == 0
        n = int(INLINE_WORK**0.5) + 1  # n * n pairs > INLINE_WORK
        heavy = c.post("/api/loss", json={"loss": "info_nce", "inputs": [_embeddings(n, 2)] * 2})
        assert heavy.status_code == 200 and pool.jobs == 1
        big_body = {"loss": "mse", "predictions": [0.5] * 20_000, "targets": [0.0] * 20_000}  # > 64 KiB: parsed there
        assert c.post("/api/loss", json=big_body).json()["value"] == 0.25 and pool.jobs == 2


def test_a_full_pool_answers_503_while_small_requests_are_still_answered():
    pool = WorkPool(workers=1, waiting=0, long_slots=0)
    release = threading.Event()

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=create_app(pool))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            blocker = asyncio.create_task(pool.run(lambda: release.wait(10)))
            await asyncio.sleep(0.05)
            assert pool.held == 1
            heavy = await c.post("/api/loss", json={"loss": "info_nce", "inputs": [_embeddings(600)] * 2})
            assert heavy.status_code == 503 and heavy.headers["retry-after"] == "1"
            assert "busy" in heavy.json()["error"]
            start = time.perf_counter()
            small = await c.post("/api/loss", json={"loss": "huber", "predictions": [3.0], "targets": [0.0]})
            assert small.status_code == 200 and time.perf_counter() - start < 5  # not queued behind the blocker
            release.set()
            assert await blocker is True
            await asyncio.sleep(0.05)
            assert pool.held == 0
            again = await c.post("/api/loss", json={"loss": "info_nce", "inputs": [_embeddings(600)] * 2})
            assert again.status_code == 200

    try:
        asyncio.run(scenario())
    finally:
        release.set()
        pool.close()


def test_the_pool_refuses_what_it_cannot_hold():
    with pytest.raises(ValueError, match="workers >= 1"):
        WorkPool(workers=0)
    with pytest.raises(ValueError, match="long_slots < workers"):
        WorkPool(workers=2, long_slots=2)  # runs must never take the last worker

    async def overfill() -> None:
        pool = WorkPool(workers=1, waiting=1, long_slots=0)
        gate = threading.Event()
        jobs = [asyncio.create_task(pool.run(lambda: gate.wait(10))) for _ in range(2)]
        await asyncio.sleep(0.05)
        with pytest.raises(Busy, match="busy with 2"):
            await pool.run(lambda: None)
        gate.set()
        assert await asyncio.gather(*jobs) == [True, True]
        pool.close()

    asyncio.run(overfill())


def test_training_runs_never_take_the_last_worker_nor_wait():
    async def scenario() -> None:
        pool = WorkPool(workers=2, waiting=0, long_slots=1)
        gate = threading.Event()
        run = pool.submit(lambda: gate.wait(10), long=True)
        with pytest.raises(Busy, match=r"every training slot is in use \(1 running\)"):
            pool.submit(lambda: None, long=True)  # a second run is refused at once, not queued
        assert await pool.run(lambda: "short") == "short"  # a short job still finds the free worker
        gate.set()
        assert await run is True
        await asyncio.sleep(0.05)
        assert pool.held == 0 and await pool.submit(lambda: "again", long=True) == "again"
        pool.close()

    asyncio.run(scenario())


DEADLINE = 0.3  # seconds
LIVE_POOL = WorkPool(workers=2, waiting=0, long_slots=1)  # the live server's: one training run at a time


@pytest.fixture(scope="module")
def live_server():
    """A real uvicorn on loopback with the explorer and the deadline protocol (DEADLINE s), plus /slow:
    an answer that takes twice the deadline to compute. Yields the port; uvicorn's errors are collected."""
    import logging

    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route

    from losslab.web.server import bind, deadline_protocol

    async def slow(request):
        await request.body()
        await asyncio.sleep(2 * DEADLINE)
        return PlainTextResponse("done")

    app = Starlette(routes=[Route("/slow", slow, methods=["POST"]), Mount("/", create_app(LIVE_POOL))])
    errors: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: errors.append(record.getMessage())
    logging.getLogger("uvicorn.error").addHandler(handler)
    sock = bind()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", http=deadline_protocol(DEADLINE)))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(10)
        logging.getLogger("uvicorn.error").removeHandler(handler)
    assert not errors, errors  # a stalled client must not raise inside the server


def _open(port: int, data: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(data)
    sock.settimeout(5)
    return sock


@pytest.mark.parametrize("sent", [
    b"",  # connects, sends nothing
    b"POST /api/loss HTTP/1.1\r\nHost: x\r\n",  # headers never finished
    b'POST /api/loss HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"loss":',  # body never finished
], ids=["nothing", "slow headers", "partial body"])
def test_stalled_connections_are_closed_after_the_deadline(live_server, sent):
    sock = _open(live_server, sent)
    start = time.perf_counter()
    assert sock.recv(1000) == b""  # closed by the server, without an answer
    assert 0.8 * DEADLINE < time.perf_counter() - start < 4
    sock.close()


def test_a_slow_answer_is_not_cut_by_the_deadline_and_the_connection_lives_on(live_server):
    with httpx.Client(base_url=f"http://127.0.0.1:{live_server}", timeout=30) as c:
        start = time.perf_counter()
        assert c.post("/slow", content=b"x").text == "done"  # the request was in: the deadline does not apply
        assert time.perf_counter() - start >= 2 * DEADLINE
        answer = c.post("/api/loss", json={"loss": "mse", "predictions": [1.0], "targets": [0.0]})  # same connection
        assert answer.json()["value"] == 1.0


def test_a_chunked_body_over_the_limit_is_refused(live_server):
    def chunks():
        for _ in range(20):
            yield b" " * 65536  # 1.25 MiB of whitespace, no length declared

    answer = httpx.post(f"http://127.0.0.1:{live_server}/api/loss", content=chunks(), timeout=30)
    assert answer.status_code == 413


def test_load_thousands_of_requests_at_concurrency_16_without_an_error(tmp_path):
    out = subprocess.run([sys.executable, str(LOAD_SCRIPT), "--requests", "1500", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    result = json.loads(next(tmp_path.glob("web_load-*.json")).read_text())
    mixed, beside = result["phases"]["mixed"], result["phases"]["beside heavy"]
    assert mixed["requests"] == beside["requests"] == 1500 and mixed["errors"] == beside["errors"] == 0
    assert beside["heavy_done"] >= 1  # the heavy requests really ran beside the small ones
    for phase in (mixed, beside):  # figures are reported, not judged: they depend on the machine
        assert 0 < phase["p50_ms"] <= phase["p99_ms"] <= phase["max_ms"]
    print("\n" + (tmp_path / f"web_load-{result['meta']['date']}.md").read_text())


def _events(lines) -> list[tuple[str, dict]]:
    events, kind = [], None
    for line in lines:
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            events.append((kind, json.loads(line[6:])))
    return events


def test_a_training_run_streams_every_epoch_then_its_result(live_server):
    import losslab.experiments as lx

    url = f"http://127.0.0.1:{live_server}/api/train?experiment=sigmoid-trap&epochs=120&label_smoothing=0.1&seed=4"
    with httpx.stream("GET", url, timeout=60) as answer:
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
        events = _events(answer.iter_lines())
    kinds = [k for k, _ in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and set(kinds[1:-1]) == {"epochs"}
    start, end = events[0][1], events[-1][1]
    assert start["settings"]["label_smoothing"] == 0.1 and len(start["scene"]["points"]["x"]) == 400
    streamed = {}
    for _, batch in events[1:-1]:
        for racer, values in batch["metrics"].items():
            for key, series in values.items():
                streamed.setdefault(racer, {}).setdefault(key, []).extend(series)
    expected = lx.run("sigmoid-trap", epochs=120, label_smoothing=0.1, seed=4)
    assert streamed == expected.histories and end["result"]["claims"] == expected.claims
    assert end["stopped"] is None and end["epochs_run"] == 120


@pytest.mark.parametrize(("query", "message"), [
    ("experiment=nope", '"experiment" must be one of'),
    ("experiment=outliers&gamma=2", "outliers has no setting 'gamma'"),
    ("experiment=outliers&lr=abc", "lr must be a number, got 'abc'"),
    ("experiment=outliers&lr=nan", "lr must be a finite number"),
    ("experiment=outliers&epochs=1000000", "epochs must be an int in [1, 100000]"),
    ("experiment=outliers&losses=mse&losses=hinge", "losses must be 1 to 5 different names"),
    ("experiment=outliers&losses=mse&delta=0.2", "delta changes only huber, which is not racing"),
    ("experiment=outliers&lr=0.1&lr=0.7", "lr is given 2 times; give it once"),
])
def test_bad_training_settings_get_400_before_any_stream(client, query, message):
    answer = client.get(f"/api/train?{query}")
    assert answer.status_code == 400 and message in answer.json()["error"], answer.text


def test_closing_the_stream_stops_the_run_and_frees_its_worker(live_server):
    url = f"http://127.0.0.1:{live_server}/api/train?experiment=overfitting&epochs=100000"
    start = time.perf_counter()
    with httpx.stream("GET", url, timeout=60) as answer:
        for line in answer.iter_lines():
            if line.startswith("event: epochs"):
                break  # the first epoch arrived: leave
    first = time.perf_counter() - start
    assert first < 10  # streamed as computed, not after the 100,000 epochs
    with httpx.stream("GET", url, timeout=30) as busy:  # the only worker may still be stopping the first run
        status = busy.status_code
        if status == 503:
            busy.read()
            assert "busy" in busy.json()["error"] and busy.headers["retry-after"] == "1"
    assert status in (200, 503)
    deadline = time.perf_counter() + 10
    while LIVE_POOL.held and time.perf_counter() < deadline:  # closed streams stop their runs
        time.sleep(0.05)
    assert LIVE_POOL.held == 0, "a run went on after its client left"


def test_a_client_that_stops_reading_gets_bigger_batches_not_a_growing_buffer():
    import threading as th

    from losslab.experiments import prepare
    from losslab.web.train import _run

    events, sent, stop = [], th.Event(), th.Event()

    def send(kind, data):
        sent.clear()
        events.append((kind, data))

    sent.set()  # the start event and epoch 0 go out; the client then never takes another one
    _run(prepare("overfitting", epochs=3000), send, stop, sent)
    kinds = [k for k, _ in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("epochs") == 2  # epoch 0, then the rest at once
    assert events[-2][1]["first"] == 1 and events[-2][1]["last"] == 2999


def test_ctrl_c_ends_open_training_streams_and_the_server_cleanly():
    import signal

    server = subprocess.Popen([sys.executable, "-m", "losslab.cli", "explore"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().split()[2]
        with httpx.stream("GET", f"{url}api/train?experiment=imbalance&epochs=100000", timeout=60) as answer:
            lines = answer.iter_lines()
            next(line for line in lines if line.startswith("event: epochs"))
            server.send_signal(signal.SIGINT)
            start = time.perf_counter()
            events = _events(lines)
        assert events[-1][0] == "end" and events[-1][1]["stopped"] == "stopped"  # the run ended and said so
        server.wait(timeout=15)
        assert time.perf_counter() - start < 10
    finally:
        server.kill()
    assert "Traceback" not in server.stderr.read()
