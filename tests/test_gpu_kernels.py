"""The cross-entropy kernel's launch variants ("row", "persistent", "rows") and the launch table.

Each variant is forced with ``_config=`` and held to the original kernel ("row", the one measured
before the variants existed) and to ``ll.cross_entropy``'s reference path, for every option. Without a
GPU the kernels run in Triton's CPU interpreter (TRITON_INTERPRET=1, set by conftest.py) on small, odd
shapes; with CUDA the same tests run on the GPU.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from gpu_setup import kernels_or_skip

torch, CUDA, DEVICE = kernels_or_skip()

import losslab as ll  # noqa: E402
from losslab import gpu  # noqa: E402
from losslab.gpu import _cross_entropy as ce  # noqa: E402
from losslab.gpu._cross_entropy import LaunchConfig  # noqa: E402

BASELINE = LaunchConfig("row", 16)  # the original kernel, small blocks: rows take several steps
VARIANTS = {
    "persistent": LaunchConfig("persistent", 32, programs=2),
    "rows": LaunchConfig("rows", rows_per_program=4),  # block = next power of 2 >= C
    "rows-persistent": LaunchConfig("rows", 256, num_warps=4, rows_per_program=2, programs=2),
    "rows-1": LaunchConfig("rows", rows_per_program=1, programs_per_sm=0.5),
}
OPTIONS = [  # (options, reduction); "weight": True means class weights
    ({}, "mean"),
    ({"weight": True, "label_smoothing": 0.2}, "sum"),
    ({"lse_square_scale": 0.05, "softcap": 3.0}, "none"),
    ({"weight": True, "label_smoothing": 0.1, "lse_square_scale": 0.05, "softcap": 2.0, "ignore_index": 3}, "mean"),
    ({"label_smoothing": 0.3, "normalizer": 9.0, "softcap": 20.0}, "mean"),
]
SHAPES = [(1, 5), (3, 17), (7, 130)]


def data(n, c, dtype=torch.float32, seed=0, ignore_index=-100):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, c, generator=g, dtype=torch.float64) * 3).to(dtype)
    targets = torch.randint(0, c, (n,), generator=g)
    targets[torch.rand(n, generator=g) < 0.3] = ignore_index
    weight = torch.rand(c, generator=g, dtype=torch.float64) + 0.5
    return logits.to(DEVICE), targets.to(DEVICE), weight.to(DEVICE)


def run(config, logits, targets, upstream, **options):
    """loss, lse and the gradient of (loss * upstream).sum() through autograd."""
    x = logits.clone().requires_grad_()
    loss, lse = gpu.cross_entropy(x, targets, _config=config, return_lse=True, **options)
    (loss.double() * upstream).sum().backward()
    return loss.detach(), lse, x.grad


def options_for(options, weight):
    options = dict(options)
    if options.pop("weight", False):
        options["weight"] = weight.float()
    return options


@pytest.mark.parametrize("case", range(len(OPTIONS) * len(SHAPES)),
                         ids=lambda i: f"{'-'.join(OPTIONS[i % len(OPTIONS)][0]) or 'plain'}-"
                                       f"{OPTIONS[i % len(OPTIONS)][1]}-{SHAPES[i % len(SHAPES)]}")
@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_equals_the_original_kernel_and_the_reference(variant, case):
    (options, reduction), (n, c) = OPTIONS[case % len(OPTIONS)], SHAPES[case % len(SHAPES)]
    logits, targets, weight = data(n, c, seed=case, ignore_index=options.get("ignore_index", -100))
    options = {**options_for(options, weight), "reduction": reduction}
    g = torch.Generator().manual_seed(case)
    upstream = (torch.randn((n,) if reduction == "none" else (), generator=g, dtype=torch.float64)).to(DEVICE)
    loss, lse, grad = run(VARIANTS[variant], logits, targets, upstream, **options)
    loss0, lse0, grad0 = run(BASELINE, logits, targets, upstream, **options)
    torch.testing.assert_close(loss, loss0, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(lse, lse0, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, grad0, rtol=1e-5, atol=1e-6)
    xr = logits.double().requires_grad_()
    with ll.reference_path():
        ref = ll.cross_entropy(xr, targets, **{k: (v.double() if k == "weight" else v) for k, v in options.items()})
    (ref * upstream).sum().backward()
    torch.testing.assert_close(loss.double(), ref.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad.double(), xr.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_without_grad_inplace_and_value_and_grad(variant):
    config = VARIANTS[variant]
    logits, targets, weight = data(7, 130, seed=3)
    options = dict(weight=weight.float(), label_smoothing=0.1, lse_square_scale=0.01, softcap=4.0)
    # with_grad off: no gradient is computed, loss and lse as the original kernel's
    with torch.no_grad():
        loss, lse = gpu.cross_entropy(logits, targets, _config=config, return_lse=True, **options)
    loss0, lse0 = gpu.cross_entropy(logits, targets, _config=BASELINE, return_lse=True, **options)
    assert not loss.requires_grad
    torch.testing.assert_close(loss, loss0, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(lse, lse0, rtol=1e-5, atol=1e-6)
    # inplace: every element of the buffer is overwritten by the gradient (an unwritten one keeps its logit)
    x = logits.clone().requires_grad_()
    gpu.cross_entropy(x, targets, _config=BASELINE, **options).backward()
    buffer = logits.clone().requires_grad_()
    loss_inplace = gpu.cross_entropy(buffer, targets, _config=config, inplace=True, **options)
    torch.testing.assert_close(buffer.detach(), x.grad, rtol=1e-5, atol=1e-6)
    loss_inplace.backward()
    assert buffer.grad.data_ptr() == buffer.data_ptr()
    torch.testing.assert_close(loss_inplace, loss0, rtol=1e-5, atol=1e-6)
    value, grad = ce.value_and_grad(logits, targets, _config=config, **options)
    torch.testing.assert_close(value, loss0, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, x.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_in_bfloat16(variant):
    """bf16 logits: computed in float32, the gradient rounded to bf16 (a looser tolerance)."""
    logits, targets, weight = data(7, 130, torch.bfloat16, seed=5)
    options = dict(weight=weight.float(), label_smoothing=0.1, lse_square_scale=0.01, softcap=6.0, reduction="sum")
    upstream = torch.tensor(0.7, dtype=torch.float64, device=DEVICE)
    loss, _, grad = run(VARIANTS[variant], logits, targets, upstream, **options)
    loss0, _, grad0 = run(BASELINE, logits, targets, upstream, **options)
    assert grad.dtype == torch.bfloat16 and loss.dtype == torch.float32
    torch.testing.assert_close(loss, loss0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad, grad0, rtol=2e-2, atol=2e-3)
    xr = logits.double().requires_grad_()
    with ll.reference_path():
        ref = ll.cross_entropy(xr, targets, **{**options, "weight": weight})
    (ref * upstream).sum().backward()
    torch.testing.assert_close(loss.double(), ref.detach(), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(grad.double(), xr.grad, rtol=2e-2, atol=2e-3)


def test_all_rows_ignored_and_a_partial_last_group():
    logits, targets, _ = data(5, 17)
    targets[:] = -100
    for config in VARIANTS.values():
        x = logits.clone().requires_grad_()
        loss = gpu.cross_entropy(x, targets, _config=config, label_smoothing=0.2)
        loss.backward()
        assert float(loss.detach()) == 0.0 and torch.count_nonzero(x.grad) == 0


@pytest.mark.parametrize(("config", "message"), [
    (LaunchConfig("tiles"), "variant must be one of"),
    (LaunchConfig("rows", 64), "holds whole rows: block 64 < C = 130"),
    (LaunchConfig("row", 48), "power of 2"),
    (LaunchConfig("row", rows_per_program=4), "needs the 'rows' variant"),
    (LaunchConfig("row", programs=4), "one program per row"),
    (LaunchConfig("persistent", num_warps=3), "num_warps must be"),
    (LaunchConfig("persistent", programs=0), "programs must be a positive int"),
])
def test_bad_configs_are_refused(config, message):
    logits, targets, _ = data(3, 130)
    with pytest.raises(ValueError, match=message):
        gpu.cross_entropy(logits, targets, _config=config)
    with pytest.raises(ValueError, match="not both"):
        gpu.cross_entropy(logits, targets, _config=BASELINE, _block=64)


# -- the launch table --------------------------------------------------------------------------------


@pytest.fixture
def table(tmp_path, monkeypatch):
    """A launch-table path of its own (absent until written), and the environment override unset."""
    monkeypatch.delenv("LOSSLAB_CE_LAUNCH_TABLE", raising=False)
    path = tmp_path / "launch_table.json"
    monkeypatch.setattr(ce, "LAUNCH_TABLE", path)
    return path


def entry(**config):
    return {"dtype": "bfloat16", "v_min": 100, "v_max": 200, **config}


def write(path, entries, **meta):
    path.write_text(json.dumps({"format": ce.TABLE_FORMAT, "gpu": "", "date": "2000-01-01", **meta,
                                "entries": entries}))


def test_heuristic_default_without_a_table(table):
    dev = torch.device(DEVICE)
    small = ce.choose_config(130, torch.bfloat16, dev)
    assert small == ce.default_config(130, torch.bfloat16) and small.source == "heuristic"
    assert (small.variant, small.block) == ("row", 256)  # the measured kernel until a table says otherwise
    large = ce.choose_config(50304, torch.bfloat16, dev)
    assert (large.variant, large.block, large.num_warps) == ("row", 8192, 8)
    assert ce.resolve(large, 8192, 50304, dev)[4] == 8192  # one program per row


def test_a_rows_entry_is_not_stretched_past_the_register_tile_limit(table):
    # an entry measured at C = 50304 and stretched to 80000 would ask for a 131072-column tile: not used
    write(table, [{"dtype": "bfloat16", "v_min": 40000, "v_max": 90000, "variant": "rows", "rows_per_program": 1}])
    dev = torch.device(DEVICE)
    assert ce.choose_config(50304, torch.bfloat16, dev).variant == "rows"
    assert ce.choose_config(80000, torch.bfloat16, dev).source == "heuristic"
    with pytest.raises(ValueError, match="exceeds"):
        ce.validate(ce.LaunchConfig("rows", block=1 << 15, rows_per_program=4))


def test_a_measured_entry_is_used_when_the_table_has_one(table, monkeypatch):
    write(table, [entry(variant="persistent", block=32, num_warps=2, programs=3, measured={"ms": 1.0}),
                  entry(variant="rows", block=64, v_min=201, v_max=300)])  # too narrow for C > 64: skipped
    dev = torch.device(DEVICE)
    chosen = ce.choose_config(130, torch.bfloat16, dev)
    assert (chosen.variant, chosen.block, chosen.num_warps, chosen.programs) == ("persistent", 32, 2, 3)
    assert chosen.source == f"table:{table}"
    assert ce.choose_config(130, torch.float32, dev).source == "heuristic"  # another dtype
    assert ce.choose_config(250, torch.bfloat16, dev).source == "heuristic"  # the entry cannot hold C = 250
    assert ce.choose_config(1000, torch.bfloat16, dev).source == "heuristic"  # outside every range
    seen = []
    resolve = ce.resolve
    monkeypatch.setattr(ce, "resolve", lambda config, *a, **k: seen.append(config) or resolve(config, *a, **k))
    logits, targets, _ = data(5, 130, torch.bfloat16)
    x = logits.clone().requires_grad_()
    gpu.cross_entropy(x, targets).backward()  # no _config: the table's entry
    assert seen[-1] == chosen
    x0 = logits.clone().requires_grad_()
    gpu.cross_entropy(x0, targets, _config=BASELINE).backward()
    torch.testing.assert_close(x.grad, x0.grad, rtol=2e-2, atol=2e-3)
    other = table.parent / "other.json"  # the environment variable names another table
    write(other, [entry(variant="rows", rows_per_program=2)])
    monkeypatch.setenv("LOSSLAB_CE_LAUNCH_TABLE", str(other))
    assert ce.choose_config(130, torch.bfloat16, dev).variant == "rows"


@pytest.mark.parametrize(("text", "problem"), [
    ("{not json", "Expecting property name"),
    (json.dumps({"format": "something else", "entries": []}), "'format' must be"),
    (json.dumps({"format": ce.TABLE_FORMAT, "entries": {}}), "'entries' must be a list"),
    (json.dumps({"format": ce.TABLE_FORMAT, "entries": [entry(variant="tiles")]}), "entry 0: .*variant must be one of"),
    (json.dumps({"format": ce.TABLE_FORMAT, "entries": [{"dtype": "bfloat16", "variant": "row"}]}), "entry 0: KeyError"),
    (json.dumps({"format": ce.TABLE_FORMAT, "entries": [entry(variant="row", speed=3)]}), "unknown keys"),
    (json.dumps({"format": ce.TABLE_FORMAT, "entries": [entry(variant="row", v_min=300)]}), "v_min/v_max"),
])
def test_a_malformed_table_is_ignored_with_a_warning(table, text, problem):
    """Chosen behaviour: warn (LaunchTableWarning, naming the file and the problem) and use the heuristic,
    so that a bad table never stops a training run; the warning comes once per version of the file."""
    table.write_text(text)
    with pytest.warns(ce.LaunchTableWarning, match=problem):
        config = ce.choose_config(130, torch.bfloat16, torch.device(DEVICE))
    assert config == ce.default_config(130, torch.bfloat16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ce.choose_config(130, torch.bfloat16, torch.device(DEVICE))  # cached: no second warning


@pytest.mark.skipif(not CUDA, reason="the table's GPU is compared with the running one on CUDA only")
def test_a_table_from_another_gpu_is_not_used(table):
    write(table, [entry(variant="persistent", programs=3)], gpu="Some Other GPU")
    assert ce.choose_config(130, torch.bfloat16, torch.device("cuda")).source == "heuristic"


@pytest.mark.skipif(CUDA, reason="with a GPU, run the sweep itself; --smoke is the check for machines without one")
def test_the_sweep_script_smoke_run_writes_a_table_the_library_reads(tmp_path, table, monkeypatch):
    script = Path(__file__).parent.parent / "benchmarks" / "gpu_sweep.py"
    out = subprocess.run([sys.executable, str(script), "--smoke", "--out", str(tmp_path)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    written = tmp_path / "launch_table.json"
    raw = json.loads(written.read_text())
    assert raw["format"] == ce.TABLE_FORMAT and raw["entries"] and raw["gpu"] and raw["date"]
    results = json.loads(next(tmp_path.glob("gpu_sweep-*.json")).read_text())
    assert results["candidates"] and all("ms" in r or "error" in r or "skipped" in r for r in results["candidates"])
    assert next(tmp_path.glob("gpu_sweep-*.md")).read_text().startswith("# Cross-entropy launch sweep")
    monkeypatch.setattr(ce, "LAUNCH_TABLE", written)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = ce.load_launch_table()
    assert loaded is not None and loaded["entries"]
    dtype, v_min, v_max, config = loaded["entries"][0]
    assert dtype == "bfloat16" and v_min <= v_max and config.source.startswith("table:")
