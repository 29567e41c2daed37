"""The explorer end to end: ``losslab explore`` in a subprocess, driven by a real headless Chromium
(Debian's /usr/bin/chromium through Playwright's Python API). Every request the page makes is
checked to go to the local server (the page must work offline), and the numbers on the page are
compared with the library's.

Without Chromium or Playwright these tests skip, unless LOSSLAB_REQUIRE_BROWSER=1 (set by .ci/run),
where they fail instead: CI must run them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import losslab as ll
from losslab._spec import TASKS
from losslab.playground import cross_entropy_report
from losslab.plots import _axis

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]
STATIC = Path(ll.__file__).parent / "web" / "static"
ARTIFACTS = Path(os.environ.get("LOSSLAB_ARTIFACTS", Path(__file__).parent.parent / "build" / "test-artifacts"))
VENDORED = {"uPlot.iife.min.js": "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f",
            "uPlot.min.css": "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04"}


def _browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[test]')"
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    return None


@pytest.fixture(scope="module")
def server():
    proc = subprocess.Popen([sys.executable, "-m", "losslab.cli", "explore"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+/", line)
    if not match:
        proc.kill()
        pytest.fail(f"losslab explore printed {line!r}; stderr: {proc.stderr.read()}")
    yield match.group(0)
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    missing = _browser_missing()
    if missing:
        if os.environ.get("LOSSLAB_REQUIRE_BROWSER") == "1":
            pytest.fail(missing)
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    outside, problems = [], []

    def only_local(route):  # the offline guarantee: anything not on our server is refused and recorded
        if route.request.url.startswith(server) or route.request.url.startswith("data:"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    page.goto(server)
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    page.problems = problems  # a test that provokes an error on purpose removes it from here
    yield page
    assert outside == [], f"the page asked for non-local resources: {outside}"
    assert problems == []
    page.close()


def settle(page) -> None:
    """Wait until no API request is in flight (sliders and inputs send one request at a time)."""
    page.wait_for_function("window.explorer.busy === 0")
    page.wait_for_timeout(50)
    page.wait_for_function("window.explorer.busy === 0")


def move_slider(page, selector: str, value: float) -> None:
    page.eval_on_selector(selector, "(el, v) => { el.value = v; el.dispatchEvent(new Event('input', {bubbles: true})); }", value)
    settle(page)


def plotted(page) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    data = page.evaluate("window.explorer.chart.data")
    return tuple(np.array([np.nan if v is None else v for v in series], dtype=float) for series in data)


def test_the_page_lists_every_loss_by_task_with_rendered_formulas(page):
    buttons = page.eval_on_selector_all("#picker button", "els => els.map(e => e.dataset.loss)")
    assert sorted(buttons) == sorted(s.name for s in ll.losses())
    groups = page.eval_on_selector_all("#picker h3", "els => els.map(e => e.textContent)")
    assert groups == [t for t in TASKS if any(s.task == t for s in ll.losses())]
    page.click("#picker button[data-loss=focal]")
    settle(page)
    assert page.text_content("#loss-name") == "focal"
    for box in ("#loss-formula math", "#loss-gradient math"):  # MathML laid out by the browser, not raw text
        size = page.eval_on_selector(box, "el => el.getBoundingClientRect().toJSON()")
        assert size["height"] > 15 and size["width"] > 100, (box, size)
    facts = page.text_content("#loss-facts")
    assert ll.get("focal").output_layer in facts and "gamma" in facts
    peers = page.text_content("#loss-peers")
    assert all(eq in peers for eq in ll.get("focal").peers.values())


def test_menus_switch_listed_options_and_the_curve_follows(page):
    """DPO's loss_type is a menu; each choice redraws the library's curve (ipo: a parabola at 1 / (2 beta))."""
    page.click("#picker button[data-loss=dpo]")
    settle(page)
    assert page.eval_on_selector_all("#choice-loss_type option", "els => els.map(e => e.textContent)") == [
        "sigmoid", "hinge", "ipo", "robust"]
    _, sigmoid, _ = plotted(page)
    np.testing.assert_allclose(sigmoid, _axis("dpo", None, {"beta": 0.1}, n=201).values)
    page.select_option("#choice-loss_type", label="ipo")
    settle(page)
    x, ipo, grads = plotted(page)
    np.testing.assert_allclose(ipo, (x - 5.0) ** 2)
    np.testing.assert_allclose(grads, _axis("dpo", None, {"beta": 0.1, "loss_type": "ipo"}, n=201).grads)
    page.click("#picker button[data-loss=distill_kl]")
    settle(page)
    page.select_option("#choice-reverse", label="true")
    settle(page)
    _, reverse, _ = plotted(page)
    np.testing.assert_allclose(reverse, _axis("distill_kl", 0.8, {"temperature": 1.0, "reverse": True}, n=201).values)


def test_sliders_redraw_the_landscape_with_the_librarys_values(page):
    page.click("#picker button[data-loss=huber]")
    settle(page)
    x, values, grads = plotted(page)
    expected = _axis("huber", 3.0, {"delta": 1.0}, n=201)
    np.testing.assert_allclose(x, expected.x)
    np.testing.assert_allclose(values, expected.values)
    np.testing.assert_allclose(grads, expected.grads)
    move_slider(page, "#slider-delta", 0.3)
    move_slider(page, "#slider-target", -1.5)
    x2, values2, grads2 = plotted(page)
    expected = _axis("huber", -1.5, {"delta": 0.3}, n=201)
    assert not np.allclose(values2, values)
    np.testing.assert_allclose(x2, expected.x)
    np.testing.assert_allclose(values2, expected.values)
    np.testing.assert_allclose(grads2, expected.grads)
    assert abs(np.nanmax(grads2)) == pytest.approx(0.3)  # the gradient is clipped at delta
    assert page.text_content("#value-delta") == "0.30"

    page.click("#picker button[data-loss=focal]")
    settle(page)
    move_slider(page, "#slider-gamma", 0)  # gamma = 0 with alpha: an alpha-weighted BCE with logits
    _, focal, _ = plotted(page)
    z = _axis("focal", None, {"alpha": 0.25, "gamma": 0.0}, n=201)
    np.testing.assert_allclose(focal, z.values)
    np.testing.assert_allclose(focal, 0.25 * ll.binary_cross_entropy_with_logits(z.x, np.ones_like(z.x), reduction="none"))


def test_compare_overlays_the_seeds_comparisons(page):
    from losslab.plots import shared_axis

    page.click("#tabs button[data-tab=compare]")
    settle(page)
    page.click("#cmp-presets button[data-preset='BCE vs MSE on a sigmoid']")
    settle(page)
    curves = page.evaluate("window.explorer.compare")
    _, axes = shared_axis(["binary_cross_entropy_with_logits", "mse:sigmoid"])
    assert [c["loss"] for c in curves["curves"]] == ["binary_cross_entropy_with_logits", "mse:sigmoid"]
    for curve, (_, axis) in zip(curves["curves"], axes):
        np.testing.assert_allclose(curve["grads"], axis.grads)
    legend = page.text_content("#cmp-grads .u-legend")  # one entry per loss, named, without a hover value
    assert "binary_cross_entropy_with_logits" in legend and "mse:sigmoid" in legend and "--" not in legend
    assert page.is_hidden("#cmp-target-box")  # logits have no target to slide

    page.click("#cmp-presets button[data-preset='MSE vs MAE vs Huber']")
    settle(page)
    assert page.is_visible("#cmp-target-box")
    move_slider(page, "#slider-cmp-target", 1.0)
    curves = page.evaluate("window.explorer.compare")
    for curve, (_, axis) in zip(curves["curves"], shared_axis(["mse", "mae", "huber"], 1.0)[1]):
        np.testing.assert_allclose(curve["values"], axis.values)
    page.check("#cmp-choices input[value=cross_entropy]")  # not on the same axis: the server says so
    page.wait_for_selector("#error:not([hidden])")
    assert "do not share an axis" in page.text_content("#error")
    expected = [p for p in page.problems if "status of 400" in p]
    assert len(expected) == 1
    page.problems.remove(expected[0])


def _table(page, selector: str) -> list[list[str]]:
    return page.eval_on_selector_all(f"{selector} tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))")


def test_the_playground_shows_the_clis_numbers(page, capsys):
    from losslab.cli import main

    page.click("#tabs button[data-tab=playground]")
    page.fill("#pg-pred", "0.9, 0.1, 0.6")
    page.fill("#pg-target", "1, 0, 1")
    settle(page)
    rows = {r[0].split(" (")[0]: r for r in _table(page, "#pg-results")}
    main(["compare", "--pred", "0.9", "0.1", "0.6", "--target", "1", "0", "1", "--json"])
    cli = json.loads(capsys.readouterr().out)
    assert set(rows) == set(cli) and {"mse", "binary_cross_entropy", "focal"} <= set(rows)
    for name, r in cli.items():
        assert rows[name][1] == f"{r['value']:.4f}"
        assert rows[name][2] == "[" + ", ".join(f"{g:.4f}" for g in r["grad"]) + "]"
    assert "hinge" in page.text_content("#pg-skipped")

    page.fill("#pg-pred", "1.5, two")
    page.wait_for_selector("#error:not([hidden])")
    assert '"two" is not a number' in page.text_content("#error")

    page.check("input[name=pg-mode][value=classes]")
    settle(page)
    rows = {r[0].split(" (")[0]: r for r in _table(page, "#pg-results")}
    assert rows["cross_entropy"][1] == f"{cross_entropy_report([2, 1, 0.1], 0)['loss']:.4f}" == "0.4170"
    assert rows["multiclass_hinge"][1] == f"{float(ll.multiclass_hinge(np.array([2, 1, 0.1]), np.array(0))):.4f}"
    assert page.is_hidden("#error")


def test_the_confidence_explorer_follows_the_dragged_logits(page):
    page.click("#tabs button[data-tab=confidence]")
    move_slider(page, "#ce-table input[data-class='2']", 5)
    report = cross_entropy_report([2, 1, 5], 0)
    assert page.text_content("#ce-loss") == f"{report['loss']:.4f}"
    cells = _table(page, "#ce-table")
    assert [c[3] for c in cells] == [f"{p:.4f}" for p in report["probabilities"]]
    assert [c[4] for c in cells] == [f"{g:+.4f}" for g in report["grad"]]

    page.click("#ce-table input[name=ce-target][value='2']")  # now class 2 is the truth
    settle(page)
    assert page.text_content("#ce-loss") == f"{cross_entropy_report([2, 1, 5], 2)['loss']:.4f}"
    page.click("#ce-presets button:has-text('confident & wrong')")
    settle(page)
    assert page.text_content("#ce-loss") == "4.5220"  # seed 002's scenario (it printed 4.56)
    page.click("#ce-add")
    settle(page)
    assert len(_table(page, "#ce-table")) == 4
    assert page.text_content("#ce-loss") == f"{cross_entropy_report([0.5, 0.5, 5, 0], 0)['loss']:.4f}"


def test_worked_examples_and_the_quiz(page):
    page.click("#tabs button[data-tab=examples]")
    rows = _table(page, "#examples-table")
    assert len(rows) == 38 and sum(r[5] == "DIFFERS" for r in rows) == 11

    page.click("#tabs button[data-tab=quiz]")
    item = "#quiz-list li[data-question='bce-p-0.05']"
    page.check(f"{item} input[value='1']")
    page.click(f"{item} button")
    page.wait_for_selector(f"{item} .result.wrong")
    assert page.text_content(f"{item} .result").startswith("Not quite.")
    assert "right" in page.get_attribute(f"{item} label.choice >> nth=0", "class")  # the right answer is shown
    page.check(f"{item} input[value='0']")
    page.click(f"{item} button")
    page.wait_for_selector(f"{item} .result.ok")
    assert "2.996" in page.text_content(f"{item} .result")
    assert page.text_content("#quiz-score").startswith("1 of 1 answered correctly")
    page.click("#quiz-list li[data-question='design-a-loss'] button")
    page.wait_for_selector("#quiz-list li[data-question='design-a-loss'] .result b")
    assert "threshold_for" in page.text_content("#quiz-list li[data-question='design-a-loss'] .result")


def test_screenshot(page):
    page.click("#picker button[data-loss=huber]")
    settle(page)
    move_slider(page, "#slider-delta", 0.5)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "explorer.png"
    page.screenshot(path=str(path), full_page=False)
    assert path.stat().st_size > 20_000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("width", [1400, 420])
def test_no_loss_and_no_tab_makes_the_page_wider_than_the_window(page, server, width):
    page.set_viewport_size({"width": width, "height": 900})
    wider = {}
    for spec in ll.losses():  # focal's formula made the page 1619 px wide at 1400
        page.click(f"#picker button[data-loss={spec.name}]")
        settle(page)
        scroll = page.evaluate("document.documentElement.scrollWidth")
        if scroll > width:
            wider[spec.name] = scroll
    for tab in ("compare", "playground", "confidence", "examples", "quiz", "train"):
        page.click(f"#tabs button[data-tab={tab}]")
        settle(page)
        scroll = page.evaluate("document.documentElement.scrollWidth")
        if scroll > width:
            wider[tab] = scroll
    assert wider == {}


@pytest.mark.parametrize(("loss", "target"), [("binary_cross_entropy_with_logits", 0.3), ("kl_div", 0.5),
                                              ("cross_entropy", 0.6), ("binary_cross_entropy", 0.0)])
def test_classification_losses_have_a_target_slider(page, loss, target):
    page.click(f"#picker button[data-loss={loss}]")
    settle(page)
    move_slider(page, "#slider-target", target)
    x, values, grads = plotted(page)
    np.testing.assert_allclose(x, _axis(loss, target, {}, n=201).x)
    expected = _axis(loss, target, {}, n=201)
    np.testing.assert_allclose(values, expected.values)
    np.testing.assert_allclose(grads, expected.grads)
    assert page.text_content("#grad-legend").startswith(expected.grad_label)


def test_what_the_gradient_curve_is_is_labelled(page):
    page.click("#picker button[data-loss=info_nce]")
    settle(page)
    assert "norm of the gradient" in page.text_content("#grad-legend")  # not dL/dS, which the formula shows
    page.click("#picker button[data-loss=nll]")
    settle(page)
    assert "nothing to slide" in page.text_content("#landscape-controls")
    page.click("#picker button[data-loss=siglip]")
    settle(page)  # accents are drawn as accents: the modifier circumflex, not a full-size '^'
    assert "\u02c6" in page.inner_html("#loss-formula") and ">^<" not in page.inner_html("#loss-formula")


def _open(page, server: str, query: str) -> None:
    page.goto(server + query)
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)


def _train_run_ended(page, timeout: float = 120_000) -> dict:
    page.wait_for_function("window.explorer.train && window.explorer.train.ended", timeout=timeout)
    return page.evaluate("window.explorer.train")


@pytest.mark.parametrize("tab", ["losses", "compare", "playground", "confidence", "examples", "quiz", "train"])
def test_every_tab_is_reachable_by_its_url(page, server, tab):
    _open(page, server, f"?tab={tab}")
    visible = page.eval_on_selector_all("section.tab", "els => els.filter(e => !e.hidden).map(e => e.id)")
    assert visible == [tab]
    assert page.get_attribute(f"#tabs button[data-tab={tab}]", "class") == "active"
    page.click("#tabs button[data-tab=quiz]")
    assert page.evaluate("location.search") == "?tab=quiz"  # clicking a tab gives a link to it


def test_opening_the_page_opens_no_stream_and_start_opens_one(page, server):
    streams = []
    page.on("request", lambda r: streams.append(r.url) if "/api/train" in r.url else None)
    _open(page, server, "?tab=train&experiment=sigmoid-trap&epochs=50")  # settings, but no run=1: nothing starts
    page.wait_for_timeout(300)
    assert streams == [] and page.evaluate("window.explorer.train") is None
    assert page.input_value("#train-set-epochs") == "50" and page.input_value("#train-experiment") == "sigmoid-trap"
    page.click("#train-start")
    state = _train_run_ended(page)
    assert len(streams) == 1 and len(state["epochs"]) == 50 and state["stopped"] is None


def test_a_streamed_run_is_the_terminals_run(page, server, capsys):
    from losslab.cli import main

    _open(page, server, "?tab=train&experiment=outliers&losses=mse&losses=huber&epochs=400&delta=0.5&seed=3&run=1")
    state = _train_run_ended(page)
    main(["experiment", "outliers", "--losses", "mse", "huber", "--epochs", "400", "--option", "delta=0.5", "--seed", "3",
          "--json"])
    cli = json.loads(capsys.readouterr().out)
    assert state["epochs"] == list(range(400)) and state["firstEpochMs"] is not None
    for racer in ("mse", "huber"):  # every streamed epoch, bit for bit
        assert state["metrics"][racer] == cli["histories"][racer]
    assert state["result"]["claims"] == cli["claims"] and state["result"]["table"] == cli["table"]
    verdicts = page.eval_on_selector_all("#train-verdicts li", "els => els.map(e => [e.className, e.textContent])")
    assert verdicts == [["ok" if held else "not-met", f"{'holds' if held else 'not met'}: {claim}"]
                        for claim, held in cli["claims"].items()]
    assert page.text_content("#train-status").startswith("finished: 400 epochs")
    assert page.text_content("#train-cli") == ("losslab experiment outliers --losses mse huber --lr 0.5 --epochs 400 "
                                               "--seed 3 --option delta=0.5 --json")  # beta: smooth_l1 is not racing
    assert len(_table(page, "#train-table")) == 2


def test_a_run_can_be_stopped_and_restarted(page, server):
    _open(page, server, "?tab=train&experiment=overfitting&epochs=100000&run=1")
    page.wait_for_function("window.explorer.train && window.explorer.train.epochs.length > 200", timeout=30_000)
    page.click("#train-stop")
    state = _train_run_ended(page)
    assert state["stopped"] == "stopped" and state["result"] is None and 200 < len(state["epochs"]) < 100_000
    page.wait_for_timeout(300)
    assert len(page.evaluate("window.explorer.train.epochs")) == len(state["epochs"])  # nothing arrives after Stop
    assert "stopped after" in page.text_content("#train-status") and page.is_enabled("#train-start")
    page.fill("#train-set-epochs", "120")
    page.click("#train-start")
    again = _train_run_ended(page)
    assert again["stopped"] is None and len(again["epochs"]) == 120 and again["result"]["claims"]
    assert "epochs=120" in page.evaluate("location.search")  # the address is the run's link


def test_bad_settings_are_refused_before_a_run(page, server):
    _open(page, server, "?tab=train&experiment=imbalance")
    page.fill("#train-set-lr", "-1")
    page.click("#train-start")
    page.wait_for_selector("#error:not([hidden])")
    assert "lr must be a finite number in (0, 100], got -1" in page.text_content("#error")
    assert page.text_content("#train-status") == "not started"
    expected = [p for p in page.problems if "status of 400" in p]
    assert len(expected) == 1
    page.problems.remove(expected[0])


def test_train_screenshot(page, server):
    page.set_viewport_size({"width": 1400, "height": 1000})
    _open(page, server, "?tab=train&experiment=sigmoid-trap&run=1")
    _train_run_ended(page)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "explorer-train.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 20_000


def test_the_page_needs_nothing_from_the_internet():
    for path in STATIC.rglob("*"):
        if path.suffix in (".html", ".js", ".css") and path.parent.name != "vendor":
            assert not re.search(r"(src|href)=\"https?:|url\(['\"]?https?:|import .*https?:", path.read_text()), path
    for name, digest in VENDORED.items():  # the vendored library is the one recorded in vendor/README.md
        assert hashlib.sha256((STATIC / "vendor" / name).read_bytes()).hexdigest() == digest
        assert digest in (STATIC / "vendor" / "README.md").read_text()


def test_explore_command_options():
    busy = subprocess.Popen([sys.executable, "-m", "losslab.cli", "explore", "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        port = re.search(r":(\d+)/", busy.stdout.readline()).group(1)
        clash = subprocess.run([sys.executable, "-m", "losslab.cli", "explore", "--port", port],
                               capture_output=True, text=True, timeout=60)
        assert clash.returncode != 0 and f"cannot listen on 127.0.0.1:{port}" in clash.stderr
    finally:
        busy.terminate()
        busy.wait(timeout=10)
    bad = subprocess.run([sys.executable, "-m", "losslab.cli", "explore", "--port", "70000"], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "port must be in [0, 65535]" in bad.stderr
    usage = subprocess.run([sys.executable, "-m", "losslab.cli", "explore", "--help"], capture_output=True, text=True, timeout=60)
    assert all(flag in usage.stdout for flag in ("--host", "--port", "--open"))


def test_the_train_tab_refuses_rather_than_guesses(page, server):
    streams = []
    page.on("request", lambda r: streams.append(r.url) if "/api/train" in r.url else None)
    import time

    page.route("**/api/curve", lambda route: (time.sleep(0.5), route.continue_()))  # answered after the page is ready
    _open(page, server, "?tab=train&experiment=outliers&lr=0,3")  # a comma: not a number
    assert 'lr: "0,3" is not a number' in page.text_content("#error")
    page.wait_for_function("window.explorer.curve && window.explorer.busy === 0")
    assert 'lr: "0,3" is not a number' in page.text_content("#error")  # a later success does not wipe it
    page.fill("#train-set-lr", "0.5")
    for box in page.query_selector_all("#train-racers input"):
        box.uncheck()
    page.click("#train-start")
    assert "pick at least one loss" in page.text_content("#error") and streams == []
    page.check("#train-racers input[value=mse]")  # huber is not racing: its delta is not sent
    assert "delta" not in page.get_attribute("#train-link", "href") and "--option" not in page.text_content("#train-cli")
    page.check("#train-racers input[value=huber]")
    assert "delta=1" in page.get_attribute("#train-link", "href")


def test_changing_the_experiment_stops_the_run(page, server):
    _open(page, server, "?tab=train&experiment=overfitting&epochs=100000&run=1")
    page.wait_for_function("window.explorer.train && window.explorer.train.epochs.length > 50", timeout=30_000)
    page.select_option("#train-experiment", "imbalance")
    state = _train_run_ended(page)
    assert state["stopped"] == "stopped" and state["metric"] == "validation mse"
    assert page.is_enabled("#train-start") and page.is_disabled("#train-stop")


def test_charts_follow_the_window_width(page):
    page.click("#picker button[data-loss=huber]")
    settle(page)
    wide = page.evaluate("window.explorer.chart.width")
    page.set_viewport_size({"width": 700, "height": 900})
    page.wait_for_function(f"window.explorer.chart.width < {wide}")
    assert page.evaluate("window.explorer.chart.width") <= page.evaluate("document.querySelector('#landscape').clientWidth")
