"""Self-check questions: well formed, graded right, and every number in them equal to an
independent computation (the library computes them; these tests recompute them by hand)."""

from __future__ import annotations

import math

import pytest

from losslab.quiz import get_question, grade, questions

SEED_STEMS = (  # the seeds give only these stems; the options, keys and explanations are authored
    "Why does MSE use squared error rather than absolute error?",
    "In cross-entropy loss, what happens when the model assigns very low probability to the correct class?",
    "Why is cross-entropy preferred over MSE for classification tasks?",
    "In Binary Cross-Entropy, when the true label y = 0, which term of the loss is active?",
    "Why does Mean Squared Error penalize large errors more heavily than small ones?",
)


def correct(question_id: str) -> str:
    q = get_question(question_id)
    return q.choices[q.answer]


def test_questions_are_well_formed():
    qs = questions()
    assert len({q.id for q in qs}) == len(qs)
    for q in qs:
        if q.graded:
            assert len(q.choices) >= 3 and len(set(q.choices)) == len(q.choices), q.id
            assert 0 <= q.answer < len(q.choices)
        else:
            assert q.choices == () and q.explanation
    stems = [q.stem for q in qs]
    for stem in SEED_STEMS:
        assert stem in stems
    assert sum(q.source.startswith("seed") for q in qs) >= 8 and any(not q.graded for q in qs)


def test_grading():
    for q in questions():
        if not q.graded:
            assert grade(q.id, 0)["correct"] is None
            continue
        verdicts = [grade(q.id, i)["correct"] for i in range(len(q.choices))]
        assert verdicts.count(True) == 1 and verdicts.index(True) == q.answer
    with pytest.raises(ValueError, match="choice must be an index"):
        grade("bce-p-0.05", 4)
    with pytest.raises(ValueError, match="choice must be an index"):
        grade("bce-p-0.05", True)
    with pytest.raises(KeyError, match="no question"):
        grade("nope", 0)


def test_numbers_in_the_answers_are_right():
    assert f"{-math.log(0.05):.3f}" in correct("bce-p-0.05")
    assert f"{-math.log(0.01):.2f}" in correct("ce-low-probability") and f"{-math.log(1e-4):.2f}" in correct("ce-low-probability")
    assert f"{-math.log(0.1):.4f}" in correct("bce-negative-label")
    assert f"{math.log(0.1) / math.log(0.9):.1f}x" == correct("confidence-ratio")
    e = [math.exp(z) for z in (2.0, 1.0, 0.1)]
    assert correct("softmax-gradient") == f"{e[1] / sum(e):+.4f}"
    assert correct("playground-huber") == f"{(0.125 + 0.125) / 3:.4f}"
    p = 0.01
    assert f"{p - 1:.2f}" in correct("ce-vs-mse") and f"{2 * (p - 1) * p * (1 - p):.4f}" in correct("ce-vs-mse")
    assert "100x" in correct("mse-squared") and "costs 4, an error of 4 costs 16" in correct("mse-large-errors")
    assert correct("bce-fill-in") == "low ... differentiable"
