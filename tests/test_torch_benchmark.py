"""benchmarks/torch_losses.py --smoke: every step of the PyTorch / JAX benchmark end to end on tiny inputs
(timings meaningless), so the script stays ready for the next real run."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

SCRIPT = Path(__file__).parent.parent / "benchmarks" / "torch_losses.py"
TORCH_CASES = ("mse", "mae", "huber", "smooth_l1", "binary_cross_entropy", "binary_cross_entropy_with_logits", "focal",
               "kl_div", "cross_entropy", "cross_entropy(probs)", "cross_entropy(ls=0.1)", "nll", "multiclass_hinge",
               "triplet_margin", "distill_kl", "dpo", "soft_margin", "hinge_embedding", "margin_ranking", "cosine_embedding",
               "multilabel_soft_margin", "multilabel_margin", "poisson_nll", "gaussian_nll",
               "triplet_margin_with_distance(cosine)", "ctc")
JAX_CASES = ("mse", "huber", "log_cosh", "binary_cross_entropy_with_logits", "focal", "hinge", "cross_entropy",
             "cross_entropy(probs)", "cross_entropy(ls=0.1)", "kl_div", "triplet_margin", "ntxent")


def _positive(peer: dict) -> bool:
    return "ms" in peer and math.isfinite(peer["ms"]) and peer["ms"] > 0


def test_the_torch_benchmark_script_runs(tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--out", str(tmp_path)], capture_output=True,
                         text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(next(tmp_path.glob("torch_losses-cpu-*.json")).read_text(),
                        parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
    assert result["meta"]["versions"]["losslab"] and result["meta"]["threads"] >= 1
    torch_rows = {r["case"]: r for r in result["rows"] if r["section"] == "torch"}
    assert set(TORCH_CASES) <= set(torch_rows), sorted(set(TORCH_CASES) - set(torch_rows))
    for case in TORCH_CASES:
        peers = torch_rows[case]["peers"]
        for name in ("losslab", "losslab value_and_grad", "torch eager", "node floor"):
            assert _positive(peers[name]), (case, name, peers[name])
        assert torch_rows[case]["ratios"]["node floor / torch eager"] > 0
        assert torch_rows[case]["check"]["ok"], (case, torch_rows[case]["check"])  # the same quantity as torch
    try:
        import jax  # noqa: F401
        import optax  # noqa: F401
    except ImportError:
        return
    jax_rows = {r["case"]: r for r in result["rows"] if r["section"] == "jax"}
    assert set(JAX_CASES) <= set(jax_rows), sorted(set(JAX_CASES) - set(jax_rows))
    for case in JAX_CASES:
        for name in ("losslab", "optax"):
            assert _positive(jax_rows[case]["peers"][name]), (case, name, jax_rows[case]["peers"][name])
        assert jax_rows[case]["check"]["ok"], (case, jax_rows[case]["check"])
    assert next(tmp_path.glob("torch_losses-cpu-*.md")).read_text().startswith("# losslab on framework arrays")


def test_a_spent_budget_skips_the_remaining_points_and_still_writes_the_results(tmp_path):
    # a lent GPU's lease is short: the run must end inside it and say which points it did not reach
    out = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--no-compile", "--budget-s", "0",
                          "--losses", "mse", "huber", "--out", str(tmp_path)], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(next(tmp_path.glob("torch_losses-cpu-*.json")).read_text())
    assert result["meta"]["budget_s"] == 0
    rows = result["rows"]
    assert {(r["section"], r["case"]) for r in rows} >= {("torch", "mse"), ("torch", "huber")}
    assert all(r["error"].startswith("skipped: the run's --budget-s 0 s was spent") for r in rows), rows
    table = next(tmp_path.glob("torch_losses-cpu-*.md")).read_text()
    assert "| mse | smoke | | error: skipped: the run's --budget-s 0 s was spent |" in table


def test_no_compile_leaves_out_the_compile_peer(tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--rounds", "1", "--target-ms", "1", "--no-compile",
                          "--no-jax", "--losses", "mse", "--out", str(tmp_path)], capture_output=True, text=True,
                         timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    (row,) = json.loads(next(tmp_path.glob("torch_losses-cpu-*.json")).read_text())["rows"]
    assert row["peers"]["torch.compile"] == {"error": "skipped (--no-compile)"}
    assert _positive(row["peers"]["losslab"]) and _positive(row["peers"]["torch eager"])
