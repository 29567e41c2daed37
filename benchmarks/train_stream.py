"""The Train tab's stream, timed: time to the first streamed epoch and epochs per second.

    python benchmarks/train_stream.py              # every training experiment, writes results/
    python benchmarks/train_stream.py --out /tmp/t

Starts ``losslab.web.server.serve`` in a child process and reads GET /api/train as the page does.
For each experiment: its default race to the end, then a 100,000-epoch run of its first racer,
read until the first epoch arrives (the run is then dropped, which stops it on the server).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import date
from pathlib import Path

import _common

RESULTS = Path(__file__).parent / "results"


def read_stream(base: str, query: str, *, until_first_epoch: bool = False) -> dict:
    """Seconds to the start event and to the first epoch; for a full read, epochs and seconds in all."""
    import httpx

    start = time.perf_counter()
    out: dict = {"query": query}
    kind = None
    with httpx.stream("GET", f"{base}/api/train?{query}", timeout=300) as answer:
        answer.raise_for_status()
        for line in answer.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
                continue
            if not line.startswith("data: "):
                continue
            now = time.perf_counter() - start
            data = json.loads(line[6:])
            if kind == "start":
                out["start_ms"] = now * 1e3
            elif kind == "epochs":
                out.setdefault("first_epoch_ms", now * 1e3)
                out["events"] = out.get("events", 0) + 1
                if until_first_epoch:
                    return out
            elif kind == "end":
                out.update(epochs=data["epochs_run"], seconds=now, epochs_per_s=data["epochs_run"] / now,
                           claims_held=sum(data["result"]["claims"].values()), claims=len(data["result"]["claims"]))
    return out


def run() -> dict:
    from losslab.experiments import TRAININGS, describe

    server, port = _common.start_explorer()
    try:
        base = f"http://127.0.0.1:{port}"
        rows = []
        for name in TRAININGS:
            info = describe(name)
            full = read_stream(base, f"experiment={name}")
            first = read_stream(base, f"experiment={name}&losses={info['default_racers'][0]}&epochs=100000",
                                until_first_epoch=True)
            rows.append({"experiment": name, "racers": len(info["default_racers"]), **full,
                         "first_epoch_ms_100k": first["first_epoch_ms"]})
    finally:
        server.terminate()
        server.wait(timeout=10)
    import losslab

    meta = {"date": date.today().isoformat(), "machine": _common.cpu_model(), "python": platform.python_version(),
            "versions": _common.module_versions({"losslab": losslab.__version__}, ("numpy", "uvicorn", "starlette"))}
    return {"meta": meta, "rows": rows}


def markdown(result: dict) -> str:
    meta = result["meta"]
    lines = [f"# The Train tab's stream, {meta['date']}", "",
             f"{meta['machine']}; Python {meta['python']}; " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
             "", "| experiment (default race) | racers | epochs | seconds | epochs/s (all racers) | events | "
             "first epoch | first epoch of a 100,000-epoch run | claims held |", "|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['experiment']} | {r['racers']} | {r['epochs']:,} | {r['seconds']:.2f} | {r['epochs_per_s']:,.0f} | "
                     f"{r['events']} | {r['first_epoch_ms']:.0f} ms | {r['first_epoch_ms_100k']:.0f} ms | "
                     f"{r['claims_held']} of {r['claims']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for train_stream-DATE.json and .md")
    args = parser.parse_args(argv)
    result = run()
    text = markdown(result)
    print(text)
    _common.write_results(args.out, f"train_stream-{result['meta']['date']}", result, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
