"""Every plot kind from the CLI and the API: files written, axes carry the losses' own numbers."""

from __future__ import annotations

import numpy as np
import pytest

import losslab as ll
import losslab.plots as lp
from losslab.cli import main


@pytest.mark.parametrize("spec", ll.losses(), ids=lambda s: s.name)
def test_landscape_of_every_loss_plots_its_own_values(spec):
    fig = lp.landscape(spec.name)
    loss_line = fig.axes[0].get_lines()[0]
    grad_line = fig.axes[1].get_lines()[0]
    x, y = loss_line.get_data()
    assert len(x) > 100 and np.all(np.isfinite(y)) and np.all(np.isfinite(grad_line.get_ydata()))
    axis = lp._axis(spec.name, None, {})
    np.testing.assert_allclose(y, axis.values)
    assert fig.axes[0].get_xlabel() == axis.label


def test_regression_landscape_matches_the_loss():
    fig = lp.landscape("huber", target=3.0, delta=0.5)
    x, y = fig.axes[0].get_lines()[0].get_data()
    np.testing.assert_allclose(y, ll.huber(x, np.full_like(x, 3.0), delta=0.5, reduction="none"))
    g = fig.axes[1].get_lines()[0].get_ydata()
    np.testing.assert_allclose(g, np.clip(x - 3.0, -0.5, 0.5))  # Huber's gradient: clip(e, -delta, delta)


def test_compare_bce_and_mse_on_sigmoid():
    fig = lp.compare(["binary_cross_entropy_with_logits", "mse:sigmoid"])
    top, bottom = fig.axes
    (z, bce), (_, mse_sig) = (line.get_data() for line in top.get_lines())
    p = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(bce, np.log1p(np.exp(-z)), rtol=1e-10)
    np.testing.assert_allclose(mse_sig, (p - 1) ** 2, rtol=1e-10)
    g_bce, g_mse = (line.get_ydata() for line in bottom.get_lines()[:2])  # (the third is the zero line)
    assert abs(g_bce[0]) > 0.99 and abs(g_mse[0]) < 1e-2  # confidently wrong (z = -8): only BCE pushes
    with pytest.raises(ValueError, match="do not share an axis"):
        lp.compare(["mse", "cross_entropy"])


def test_confidence_scenarios_bars_are_the_cross_entropies():
    fig = lp.confidence_scenarios()
    heights = [bar.get_height() for bar in fig.axes[0].patches]
    expected = [float(ll.cross_entropy(np.array(z), np.array(0))) for z in lp.SCENARIOS.values()]
    np.testing.assert_allclose(heights, expected)


def test_outlier_effect_and_gradient_and_accuracy():
    fig = lp.outlier_effect()
    bars = [b.get_height() for b in fig.axes[0].patches]
    assert bars[4] == pytest.approx(float(ll.mse([2.5, 0, 2, 50.0], [3, -0.5, 2, 7.0])))  # MSE with the outlier
    fig = lp.gradient_vs_wrongness()
    ce, _, mse_on_sigmoid = (line.get_ydata() for line in fig.axes[0].get_lines())
    assert ce[0] > 0.99 and mse_on_sigmoid[0] < 1e-5  # at p = 1e-6
    fig = lp.accuracy_vs_loss()
    acc = fig.axes[0].get_lines()[0].get_ydata()
    assert len(np.unique(acc)) < len(acc) / 2  # a staircase
    fig = lp.parameter_landscape()
    assert len(fig.axes) == 4  # two contour plots and their colour bars


@pytest.mark.parametrize(("args", "suffix"), [
    (["landscape", "--loss", "huber", "--option", "delta=0.5"], ".png"), (["compare", "--loss", "mse", "mae", "huber"], ".svg"),
    (["confidence"], ".png"), (["outlier"], ".png"), (["gradient"], ".png"), (["parameter-landscape"], ".png"),
    (["accuracy-vs-loss"], ".svg")])
def test_cli_writes_every_plot_kind(tmp_path, args, suffix, capsys):
    out = tmp_path / f"figure{suffix}"
    main(["plot", *args, "--out", str(out)])
    assert out.exists() and out.stat().st_size > 3000
    assert (out.read_bytes()[:4] == b"\x89PNG") if suffix == ".png" else b"<svg" in out.read_bytes()[:400]


def test_cli_plot_errors(tmp_path):
    with pytest.raises(SystemExit, match="no loss named"):
        main(["plot", "landscape", "--loss", "hubr", "--out", str(tmp_path / "x.png")])
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        main(["plot", "landscape", "--option", "delta", "--out", str(tmp_path / "x.png")])


def _assert_texts_inside_and_legend_clear(fig) -> None:
    """Every text inside the figure (no title cut on both sides), the legend on neither a curve nor a label."""
    from matplotlib.legend import Legend
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = fig.bbox
    ticks = {id(t) for ax in fig.axes for t in (*ax.get_xticklabels(), *ax.get_yticklabels())}  # off-view ticks exist
    for text in fig.findobj(Text):
        if text.get_text().strip() and text.get_visible() and id(text) not in ticks:
            box = text.get_window_extent(renderer)
            assert frame.x0 - 1 <= box.x0 and box.x1 <= frame.x1 + 1 and frame.y0 - 1 <= box.y0 and box.y1 <= frame.y1 + 1, (
                f"{text.get_text()[:40]!r} is cut: {box} outside {frame}")
    legends = fig.findobj(Legend)
    assert legends
    for legend in legends:
        area = legend.get_window_extent(renderer)
        for ax in fig.axes:
            assert not area.overlaps(ax.get_window_extent(renderer)), "the legend sits on the curves"
            for label in (ax.xaxis.label, ax.yaxis.label):
                if label.get_text():
                    assert not area.overlaps(label.get_window_extent(renderer)), f"the legend covers {label.get_text()!r}"


@pytest.mark.parametrize("name", [s.name for s in ll.losses()])
def test_landscape_titles_fit_and_legends_cover_nothing(name):
    fig = lp.landscape(name)
    _assert_texts_inside_and_legend_clear(fig)
    title = fig.axes[0].get_title(loc="left")
    assert len(title.splitlines()) >= 1 + len(ll.get(name).formula_text.splitlines())  # piecewise stays piecewise
    lp._pyplot().close(fig)


def test_accuracy_vs_loss_legend_leaves_the_axis_labels_alone():
    fig = lp.accuracy_vs_loss()
    _assert_texts_inside_and_legend_clear(fig)
    lp._pyplot().close(fig)
