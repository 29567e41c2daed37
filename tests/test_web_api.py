"""The explorer's JSON API: the registry, loss values and gradients identical to the library,
curves, examples, and 4xx (never 500) for malformed or oversized requests."""

from __future__ import annotations

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
    (b'{"loss": "huber", "predictions": [1], "targets": [1], "options": {"delta": "1"}}', 400, "must be a number"),
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
