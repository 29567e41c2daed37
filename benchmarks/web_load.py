"""Load on the explorer's server, over loopback: requests per second and latency percentiles.

    python benchmarks/web_load.py                       # 4,000 requests, concurrency 16, writes results/
    python benchmarks/web_load.py --requests 2000 --out /tmp/load

Starts ``losslab.web.server.serve`` in a child process (a free port) and drives it from
this one, so client and server share the machine's cores: the figures are what one machine
serving itself gets. Two phases, each ``--requests`` requests at ``--concurrency``:

1. mixed: small requests of every route (value and gradient, landscape, playground, softmax
   cross-entropy, one spec, quiz answer) and bad ones, each of which must get its expected status;
2. beside heavy: the same small requests while ``--heavy`` clients keep sending InfoNCE on a batch of
   2,000 (the largest the server accepts; about 0.2 s of work each, run on the server's pool).

Any answer with another status than expected counts as an error; the script exits 1 when there is one.
Timings are reported, never asserted: they depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import time
from datetime import date
from pathlib import Path

import _common
import numpy as np

RESULTS = Path(__file__).parent / "results"


def small_requests() -> list[tuple[str, str, dict | None, int]]:
    """(method, path, body, expected status): what the page sends, and mistakes it must refuse."""
    return [
        ("POST", "/api/loss", {"loss": "huber", "predictions": [1.5, 2.5, 3.0, 0.1], "targets": [1.0, 3.0, 3.0, 0.0],
                               "options": {"delta": 1.0}}, 200),
        ("POST", "/api/loss", {"loss": "cross_entropy", "predictions": [[2, 1, 0.1], [0, 1, 3]], "targets": [0, 2]}, 200),
        ("POST", "/api/curve", {"loss": "huber", "target": 0.5, "options": {"delta": 0.5}}, 200),
        ("POST", "/api/playground", {"predictions": [1.5, 2.5, 3.0], "targets": [1.0, 3.0, 3.0]}, 200),
        ("POST", "/api/cross_entropy", {"logits": [2.0, 1.0, 0.1], "target": 0}, 200),
        ("GET", "/api/losses/focal", None, 200),
        ("POST", "/api/quiz/answer", {"id": "bce-p-0.05", "choice": 0}, 200),
        ("POST", "/api/loss", {"loss": "huber", "predictions": [1.0], "targets": [1.0], "options": {"delta": -1}}, 400),
        ("POST", "/api/loss", {"loss": "nope", "predictions": [1.0]}, 404),
    ]


def heavy_request(n: int = 2_000, d: int = 16, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"loss": "info_nce", "inputs": [rng.normal(size=(n, d)).round(4).tolist(),
                                           rng.normal(size=(n, d)).round(4).tolist()]}


class Connection:
    """One keep-alive HTTP/1.1 connection, spoken with h11 (uvicorn's own parser) over asyncio streams.
    A general client (httpx) spends about 3.5x the server's CPU time per request, and on a small
    machine the client then measures itself."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader = self.writer = None

    async def request(self, method: str, path: str, body: bytes | None) -> int:
        import h11

        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            self.conn = h11.Connection(h11.CLIENT)
        elif self.conn.our_state is h11.DONE:
            self.conn.start_next_cycle()
        headers = [("host", "127.0.0.1"), ("content-length", str(len(body or b"")))]
        if body is not None:
            headers.append(("content-type", "application/json"))
        self.writer.write(self.conn.send(h11.Request(method=method, target=path, headers=headers))
                          + (self.conn.send(h11.Data(data=body)) if body else b"") + self.conn.send(h11.EndOfMessage()))
        status = 0
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(await self.reader.read(1 << 16))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                break
        if self.conn.their_state is not h11.DONE or self.conn.our_state is not h11.DONE:
            self.close()  # the server closed it: open a new one next time
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def _send(connection: Connection, method: str, path: str, body: dict | bytes | None) -> tuple[int, float]:
    start = time.perf_counter()
    # the heavy body is encoded once: 0.6 MB of JSON per request would load the client, not the server
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    status = await connection.request(method, path, data)
    return status, time.perf_counter() - start


async def _phase(port: int, requests: int, concurrency: int, heavy_clients: int) -> dict:
    plan = small_requests()
    latencies: list[float] = []
    errors: list[str] = []
    heavy_times: list[float] = []
    done = asyncio.Event()
    heavy_body = json.dumps(heavy_request()).encode()

    async def heavy_loop() -> None:
        client = Connection(port)
        while not done.is_set():
            status, seconds = await _send(client, "POST", "/api/loss", heavy_body)
            if status == 200:
                heavy_times.append(seconds)
            elif status != 503:  # 503: the pool is full, a documented answer, not an error
                errors.append(f"heavy: {status}")
        client.close()

    async def small_loop(worker: int) -> None:
        client = Connection(port)
        for i in range(worker, requests, concurrency):
            method, path, body, expected = plan[i % len(plan)]
            status, seconds = await _send(client, method, path, body)
            latencies.append(seconds)
            if status != expected:
                errors.append(f"{method} {path}: {status}, expected {expected}")
        client.close()

    heavies = [asyncio.create_task(heavy_loop()) for _ in range(heavy_clients)]
    if heavy_clients:  # the small requests start once the heavy ones are on the server
        await asyncio.sleep(0.5)
    start = time.perf_counter()
    await asyncio.gather(*(small_loop(w) for w in range(concurrency)))
    elapsed = time.perf_counter() - start
    done.set()
    await asyncio.gather(*heavies)
    ms = np.array(latencies) * 1e3
    return {"requests": len(latencies), "concurrency": concurrency, "heavy_clients": heavy_clients,
            "errors": len(errors), "first_errors": errors[:5], "seconds": elapsed,
            "requests_per_s": len(latencies) / elapsed, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max()),
            "heavy_done": len(heavy_times), "heavy_mean_ms": float(np.mean(heavy_times) * 1e3) if heavy_times else None}


def run(requests: int, concurrency: int, heavy_clients: int) -> dict:
    server, port = _common.start_explorer()
    try:
        phases = {"mixed": asyncio.run(_phase(port, requests, concurrency, 0)),
                  "beside heavy": asyncio.run(_phase(port, requests, concurrency, heavy_clients))}
    finally:
        server.terminate()
        server.wait(timeout=10)
    import h11

    import losslab

    meta = {"date": date.today().isoformat(), "machine": f"{_common.cpu_model()}, {_os_cores()} cores",
            "python": platform.python_version(),
            "versions": _common.module_versions({"losslab": losslab.__version__, "h11": h11.__version__},
                                                ("uvicorn", "starlette", "numpy"))}
    return {"meta": meta, "phases": phases}


def _os_cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def markdown(result: dict) -> str:
    meta = result["meta"]
    lines = [f"# Explorer server under load, {meta['date']}", "",
             f"{meta['machine']}; Python {meta['python']}; "
             + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()), "",
             "| phase | requests | concurrency | errors | requests/s | p50 | p99 | max | heavy requests done (mean) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, p in result["phases"].items():
        heavy = f"{p['heavy_done']} ({p['heavy_mean_ms']:.0f} ms)" if p["heavy_clients"] else "-"
        lines.append(f"| {name} | {p['requests']:,} | {p['concurrency']} | {p['errors']} | {p['requests_per_s']:,.0f} | "
                     f"{p['p50_ms']:.1f} ms | {p['p99_ms']:.1f} ms | {p['max_ms']:.1f} ms | {heavy} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=4_000, help="small requests per phase (default 4000)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--heavy", type=int, default=1, help="clients sending InfoNCE N = 2,000 in phase 2 (default 1)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for web_load-DATE.json and .md")
    args = parser.parse_args(argv)
    result = run(args.requests, args.concurrency, args.heavy)
    text = markdown(result)
    print(text)
    _common.write_results(args.out, f"web_load-{result['meta']['date']}", result, text)
    errors = sum(p["errors"] for p in result["phases"].values())
    for p in result["phases"].values():
        for e in p["first_errors"]:
            print("error:", e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
