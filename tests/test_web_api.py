"""The explorer's JSON API: the registry, loss values and gradients identical to the library,
curves, examples, and 4xx (never 500) for malformed or oversized requests."""

from __future__ import annotations

import json

import numpy as np
import pytest
from starlette.testclient import TestClient

import losslab as ll
from losslab.web import create_app
from losslab.web.app import MAX_ELEMENTS


@pytest.fixture(scope="module")
def client():
    return TestClient(create_app(), raise_server_exceptions=False)


def test_losses_list_is_the_registry(client):
    data = client.get("/api/losses").json()
    assert [d["name"] for d in data] == [s.name for s in ll.losses()]
    assert data[2]["formula_latex"] == ll.get("huber").formula_latex and "peers" in data[2]
    assert client.get("/api/losses/focal").json()["has_hessian"] is True
    assert client.get("/api/losses/nope").status_code == 404


def test_loss_value_and_grad_match_the_library(client):
    body = {"loss": "huber", "predictions": [1.5, 2.5, 3.0], "targets": [1.0, 3.0, 3.0], "options": {"delta": 1.0}}
    data = client.post("/api/loss", json=body).json()
    value, grad = ll.huber.value_and_grad(np.array([1.5, 2.5, 3.0]), np.array([1.0, 3.0, 3.0]), delta=1.0)
    assert data["value"] == pytest.approx(float(value)) and data["grad"] == pytest.approx(grad.tolist())
    ce = client.post("/api/loss", json={"loss": "cross_entropy", "predictions": [[2, 1, 0.1]], "targets": [0],
                                        "options": {"label_smoothing": 0.1, "weight": [1, 2, 3]}}).json()
    v, g = ll.cross_entropy.value_and_grad(np.array([[2, 1, 0.1]]), np.array([0]), label_smoothing=0.1, weight=np.array([1.0, 2, 3]))
    assert ce["value"] == pytest.approx(float(v)) and np.allclose(ce["grad"], g)
    pair = client.post("/api/loss", json={"loss": "info_nce", "inputs": [[[1, 0], [0, 1]], [[1, 0.1], [0.2, 1]]],
                                          "options": {"temperature": 0.5}}).json()
    assert len(pair["grad"]) == 2 and len(pair["grad"][0]) == 2
    none = client.post("/api/loss", json={"loss": "mse", "predictions": [1, 2], "targets": [0, 0], "reduction": "none"}).json()
    assert none["value"] == [1.0, 4.0]
    logps = [[-3.0, -5.0], [-4.0, -2.0], [-3.5, -4.5], [-3.0, -3.0]]  # DPO: all four arguments as "inputs"
    dpo = client.post("/api/loss", json={"loss": "dpo", "inputs": logps, "options": {"loss_type": "ipo"}}).json()
    v, g = ll.dpo.value_and_grad(*map(np.array, logps), loss_type="ipo")
    assert dpo["value"] == pytest.approx(float(v)) and np.allclose(dpo["grad"], g)
    contrastive = client.post("/api/loss", json={"loss": "contrastive", "inputs": [[[1, 0]], [[0, 1]], [1]]}).json()
    assert contrastive["value"] == pytest.approx(float(ll.contrastive(np.array([[1.0, 0]]), np.array([[0.0, 1]]), np.array([1.0]))))
    refused = client.post("/api/loss", json={"loss": "dpo", "inputs": logps, "options": {"loss_type": "kto"}})
    assert refused.status_code == 400 and "loss_type must be 'sigmoid', 'hinge', 'ipo' or 'robust'" in refused.json()["error"]
    both = client.post("/api/loss", json={"loss": "dpo", "inputs": logps, "targets": [1, 2]})
    assert both.status_code == 400 and "leave \"targets\" out" in both.json()["error"]


def test_options_with_listed_values_are_menus_and_reach_the_curve(client):
    spec = client.get("/api/losses/dpo").json()
    assert spec["choices"] == [{"name": "loss_type", "description": ll.get("dpo").option("loss_type").description,
                                "values": ["sigmoid", "hinge", "ipo", "robust"], "default": "sigmoid"}]
    assert client.get("/api/losses/distill_kl").json()["choices"][0]["values"] == [False, True]
    ipo = client.post("/api/curve", json={"loss": "dpo", "options": {"loss_type": "ipo", "beta": 0.5}}).json()
    x = np.array(ipo["x"])
    np.testing.assert_allclose(ipo["values"], (x - 1.0) ** 2)
    kl = client.post("/api/curve", json={"loss": "kl_div", "options": {"log_target": True}}).json()
    np.testing.assert_allclose(kl["values"], client.post("/api/curve", json={"loss": "kl_div"}).json()["values"])


def test_curve_is_the_plots_landscape(client):
    data = client.post("/api/curve", json={"loss": "huber", "target": 3.0, "options": {"delta": 0.5}}).json()
    x = np.array(data["x"])
    np.testing.assert_allclose(data["values"], ll.huber(x, np.full_like(x, 3.0), delta=0.5, reduction="none"))
    assert data["label"].startswith("prediction")


def test_examples(client):
    rows = client.get("/api/examples").json()
    assert sum(r["agrees"] is False for r in rows) == 11


@pytest.mark.parametrize(("body", "status", "message"), [
    (b"not json", 400, "must be JSON"),
    (b"[1, 2]", 400, "JSON object"),
    (b'{"loss": 3}', 400, "must name a loss"),
    (b'{"loss": "hubr", "predictions": [1], "targets": [1]}', 404, "did you mean huber"),
    (b'{"loss": "mse", "targets": [1]}', 400, "predictions"),
    (b'{"loss": "mse", "predictions": "__import__(\'os\')", "targets": [1]}', 400, "list of numbers"),
    (b'{"loss": "mse", "predictions": [[1, 2], [3]], "targets": [1, 2]}', 400, "rectangular"),
    (b'{"loss": "mse", "predictions": [1, 2], "targets": [1, 2, 3]}', 400, "same shape"),
    (b'{"loss": "huber", "predictions": [1], "targets": [1], "options": {"delta": -1}}', 400, "delta must be"),
    (b'{"loss": "huber", "predictions": [1], "targets": [1], "options": {"evil": "os.system"}}', 400, "no option 'evil'"),
    (b'{"loss": "huber", "predictions": [1], "targets": [1], "options": {"delta": "1"}}', 400, "delta must be a finite number"),
    (b'{"loss": "cross_entropy", "predictions": [[1, 2]], "targets": [5]}', 400, "out of range"),
    (b'{"loss": "info_nce", "inputs": [[[1, 0]]]}', 400, "list of 2 arrays"),
    (b'{"loss": "mse", "predictions": [1], "targets": [1], "reduction": "avg"}', 400, "reduction must be one of"),
])
def test_bad_requests_get_a_4xx_with_a_message(client, body, status, message):
    response = client.post("/api/loss", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status and message in response.json()["error"]


def test_oversized_requests_are_refused(client):
    big = {"loss": "mse", "predictions": [0.0] * (MAX_ELEMENTS + 1), "targets": [0.0] * (MAX_ELEMENTS + 1)}
    assert client.post("/api/loss", json=big).status_code == 413
    assert client.post("/api/loss", content=b"[" + b"0," * 600_000 + b"0]",
                       headers={"content-type": "application/json"}).status_code == 413


def test_specs_carry_mathml_and_slider_ranges_the_losses_accept(client):
    for spec in client.get("/api/losses").json():
        assert spec["formula_mathml"].startswith("<math") and spec["gradient_mathml"].startswith("<math")
        target = spec["target_slider"]
        if spec["family"] == "regression" or spec["name"] in ("binary_cross_entropy", "binary_cross_entropy_with_logits",
                                                               "focal", "kl_div", "cross_entropy", "distill_kl", "jsd"):
            for value in (target["low"], target["default"], target["high"]):  # every target position draws
                r = client.post("/api/curve", json={"loss": spec["name"], "target": value})
                assert r.status_code == 200 and f"{value:g})" in r.json()["label"], (spec["name"], r.json()["label"])
            outside = client.post("/api/curve", json={"loss": spec["name"], "target": target["high"] + 1})
            assert outside.status_code == 400 and "target must be in" in outside.json()["error"]
        else:  # class indices, -1/+1 labels, pairs: no target to move, and the server says so
            assert target is None
            r = client.post("/api/curve", json={"loss": spec["name"], "target": 0.5})
            assert r.status_code == 400 and "has no target to set" in r.json()["error"]
        for s in spec["sliders"]:
            positions = [s["low"], s["high"]] + ([s["default"]] if s["default"] is not None else [])
            assert s["low"] <= min(positions) and max(positions) <= s["high"] and 0 < s["step"] <= s["high"] - s["low"]
            for value in positions:  # every slider position is a valid option: the curve answers 200
                r = client.post("/api/curve", json={"loss": spec["name"], "options": {s["name"]: value}})
                assert r.status_code == 200, (spec["name"], s["name"], value, r.json())
    names = {s["name"] for spec in client.get("/api/losses").json() for s in spec["sliders"]}
    assert {"delta", "beta", "q", "label_smoothing", "margin", "gamma", "alpha", "temperature", "t", "bias"} <= names


def test_playground_is_the_cli_compare(client, capsys):
    from losslab.cli import main

    for pred, target in (([1.5, 2.5, 3.0], [1.0, 3.0, 3.0]), ([0.9, 0.1, 0.6], [1.0, 0.0, 1.0]), ([2.0, -1.0], [1.0, -1.0])):
        body = {"predictions": pred, "targets": target, "options": {"delta": 0.5, "beta": 1.0, "q": 0.5, "margin": 1.0}}
        web = client.post("/api/playground", json=body).json()
        main(["compare", "--pred", *map(str, pred), "--target", *map(str, target), "--delta", "0.5", "--json"])
        cli = json.loads(capsys.readouterr().out)
        assert {k: {"value": v["value"], "grad": v["grad"]} for k, v in web["results"].items()} == cli
        assert set(web["results"]) | set(web["not_applicable"]) == {
            s.name for s in ll.losses() if len(s.inputs) == 2 and (s.family == "regression" or s.task in ("binary", "multilabel"))}
    binary = client.post("/api/playground", json={"predictions": [0.9, 0.1], "targets": [1, 0]}).json()
    assert "binary_cross_entropy" in binary["results"] and "-1/+1" in binary["not_applicable"]["hinge"]


def test_class_playground_and_cross_entropy_are_the_cli_ce(client, capsys):
    from losslab.cli import main

    board = client.post("/api/playground", json={"logits": [2, 1, 0.1], "target": 0, "options": {"margin": 1}}).json()
    assert set(board["results"]) == {"cross_entropy", "multiclass_hinge"}
    report = client.post("/api/cross_entropy", json={"logits": [2, 1, 0.1], "target": 0, "label_smoothing": 0.1}).json()
    main(["ce", "--logits", "2", "1", "0.1", "--target", "0", "--label-smoothing", "0.1", "--json"])
    assert report == json.loads(capsys.readouterr().out)
    plain = client.post("/api/cross_entropy", json={"logits": [2, 1, 0.1], "target": 0}).json()
    assert plain["loss"] == board["results"]["cross_entropy"]["value"] == pytest.approx(0.4170300162778)
    assert client.get("/api/scenarios").json()["confident & wrong"] == [0.5, 0.5, 5.0]


@pytest.mark.parametrize(("route", "body", "status", "message"), [
    ("/api/playground", {"predictions": [1, 2], "targets": [1]}, 400, "one target per prediction"),
    ("/api/playground", {"predictions": [1]}, 400, '"predictions" and "targets"'),
    ("/api/playground", {"predictions": [1], "targets": [1], "options": {"delta": "x"}}, 400, "numbers"),
    ("/api/playground", {"predictions": [1], "targets": [1], "options": {"exec": 1}}, 400, "no loss has the option 'exec'"),
    ("/api/playground", {"predictions": [1], "targets": [1], "options": {"delta": -1}}, 400, "delta must be"),
    ("/api/playground", {"logits": [1, 2], "target": 1.5}, 400, "class index"),
    ("/api/cross_entropy", {"logits": [1], "target": 0}, 400, "2 to 1000 numbers"),
    ("/api/cross_entropy", {"logits": [[1, 2]], "target": 0}, 400, "one row"),
    ("/api/cross_entropy", {"logits": [1, 2], "target": 7}, 400, "out of range"),
    ("/api/cross_entropy", {"logits": [1, 2], "target": 0, "label_smoothing": "a"}, 400, "label_smoothing"),
    ("/api/cross_entropy", {"logits": [1, 2], "target": 0, "label_smoothing": 2}, 400, "label_smoothing"),
    ("/api/quiz/answer", {"id": "nope", "choice": 0}, 404, "no question 'nope'"),
    ("/api/quiz/answer", {"id": "bce-p-0.05", "choice": 9}, 400, "choice must be an index"),
    ("/api/quiz/answer", {"choice": 0}, 400, '"id" must name a question'),
])
def test_explorer_routes_refuse_bad_requests_with_a_message(client, route, body, status, message):
    response = client.post(route, json=body)
    assert response.status_code == status and message in response.json()["error"], response.json()


def test_quiz_routes_hide_then_grade_the_answer(client):
    questions = client.get("/api/quiz").json()
    assert all(set(q) == {"id", "source", "stem", "choices", "graded"} for q in questions)  # no answer key on the page
    verdict = client.post("/api/quiz/answer", json={"id": "bce-p-0.05", "choice": 0}).json()
    assert verdict["correct"] is True and "2.996" in verdict["explanation"]
    assert client.post("/api/quiz/answer", json={"id": "bce-p-0.05", "choice": 1}).json()["correct"] is False
    assert client.post("/api/quiz/answer", json={"id": "design-a-loss"}).json()["correct"] is None


def test_the_page_and_its_static_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "losslab explorer" in page.text
    for path in ("/static/explorer.js", "/static/style.css", "/static/vendor/uPlot.iife.min.js"):
        assert client.get(path).status_code == 200
    assert client.get("/static/../app.py").status_code == 404


def test_compare_gives_the_plots_curves_and_every_preset_shares_an_axis(client):
    from losslab.plots import COMPARISONS, shared_axis, target_range

    presets = client.get("/api/comparisons").json()
    assert presets == {k: list(v) for k, v in COMPARISONS.items()}
    for names in presets.values():
        target = target_range(names[0])  # the first entry's target (mse:sigmoid follows BCE's labels)
        value = None if target is None else (target.low + target.high) / 2
        data = client.post("/api/compare", json={"losses": names, **({} if value is None else {"target": value})}).json()
        label, axes = shared_axis(names, value)
        assert data["label"] == label and [c["loss"] for c in data["curves"]] == names
        for curve, (_, axis) in zip(data["curves"], axes):
            np.testing.assert_allclose(curve["values"], axis.values)
            np.testing.assert_allclose(curve["grads"], axis.grads)
    trap = client.post("/api/compare", json={"losses": ["binary_cross_entropy_with_logits", "mse:sigmoid"]}).json()
    assert trap["curves"][0]["grads"][0] == pytest.approx(-1.0, abs=1e-3)  # confidently wrong: CE pushes hard,
    assert abs(trap["curves"][1]["grads"][0]) < 1e-3  # MSE on a sigmoid barely moves


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"losses": ["mse", "cross_entropy"]}, 400, "do not share an axis"),
    ({"losses": ["mse", "nope"]}, 404, "nope"),
    ({"losses": ["mse:tanh"]}, 400, "only 'name:sigmoid'"),
    ({"losses": []}, 400, "list of 1 to 8"),
    ({"losses": "mse"}, 400, "list of 1 to 8"),
    ({"losses": ["mse"], "target": "3"}, 400, '"target" must be a number'),
    ({"losses": ["hinge", "squared_hinge"], "target": 1}, 400, "has no target to set"),
    ({"losses": ["binary_cross_entropy_with_logits", "mse:sigmoid"], "target": 3}, 400, "target must be in [0, 1]"),
])
def test_compare_refuses_bad_requests(client, body, status, message):
    response = client.post("/api/compare", json=body)
    assert response.status_code == status and message in response.json()["error"], response.json()
