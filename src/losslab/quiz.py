"""Self-check questions: the seed documents' quiz stems with authored options, answer keys and
explanations, plus a few numeric questions. Every number in a question is computed by the
library when the questions are built, never typed in.

``questions()`` builds them; ``grade(id, choice)`` marks an answer. The web explorer shows the
public part (stem and choices) and asks the server to grade, so the page holds no answer key.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from .registry import get_loss


@dataclass(frozen=True)
class Question:
    id: str
    source: str  # "seed 000" for the seeds' stems, "authored" for ours
    stem: str
    choices: tuple[str, ...]  # empty for an open exercise
    answer: int | None  # index into choices; None for an open exercise (a model answer instead)
    explanation: str

    @property
    def graded(self) -> bool:
        return self.answer is not None

    def public(self) -> dict[str, Any]:
        """What a page may show before the question is answered."""
        return {"id": self.id, "source": self.source, "stem": self.stem, "choices": list(self.choices),
                "graded": self.graded}


def _loss(name: str, predictions, targets, **options) -> float:
    return float(get_loss(name)(np.asarray(predictions, dtype=np.float64), np.asarray(targets), **options))


def _grad(name: str, predictions, targets, **options) -> np.ndarray:
    return np.asarray(get_loss(name).grad(np.asarray(predictions, dtype=np.float64), np.asarray(targets), **options))


@cache
def questions() -> tuple[Question, ...]:
    """Built once (their numbers come from the library), then shared: every field is immutable."""
    log_loss = lambda p, y: _loss("binary_cross_entropy", [p], [float(y)])  # noqa: E731 - -log p or -log(1-p)
    squared = lambda e: _loss("mse", [e], [0.0])  # noqa: E731
    p_wrong = 0.01  # a confidently wrong sigmoid output for y = 1
    z_wrong = float(np.log(p_wrong / (1 - p_wrong)))
    grad_ce = float(_grad("binary_cross_entropy_with_logits", [z_wrong], [1.0])[0])  # p - y
    grad_mse = float(_grad("mse", [p_wrong], [1.0])[0]) * p_wrong * (1 - p_wrong)  # chain rule through the sigmoid
    playground = ([1.5, 2.5, 3.0], [1.0, 3.0, 3.0])
    ce_grad = _grad("cross_entropy", [2.0, 1.0, 0.1], 0)
    return (
        Question(
            "mse-squared", "seed 000", "Why does MSE use squared error rather than absolute error?",
            ("Squared error is more robust to outliers: squaring shrinks large errors relative to small ones, so one bad "
             "point cannot dominate the fit.",
             f"Squaring gives a smooth loss whose gradient 2e shrinks as the error shrinks, and it weighs large errors "
             f"more: an error of 10 costs {squared(10.0) / squared(1.0):.0f}x an error of 1. It is also the "
             "maximum-likelihood loss under Gaussian noise.",
             "Absolute error has no derivative anywhere, so gradient descent cannot use it at all.",
             "Squaring makes every error count the same whatever its sign and size, which keeps the average unbiased."),
            1,
            "MSE's gradient 2e is proportional to the error, so steps get smaller near the optimum; MAE's gradient is "
            "+-1 everywhere except its kink at 0. The price: squaring makes MSE sensitive to outliers (MAE and Huber "
            "are the robust ones), so the first option is backwards."),
        Question(
            "ce-low-probability", "seed 000",
            "In cross-entropy loss, what happens when the model assigns very low probability to the correct class?",
            ("The loss is capped at 1, like an error rate.",
             "The loss is 0: the prediction is still a valid probability distribution.",
             f"The loss -log p grows without bound: {log_loss(0.01, 1):.2f} at p = 0.01 and {log_loss(1e-4, 1):.2f} at "
             "p = 0.0001, and the gradient -1/p grows with it.",
             "The gradient vanishes, so the model stops learning from that example."),
            2,
            "-log p goes to infinity as p goes to 0: confidently wrong predictions get the largest penalty and the "
            "strongest learning signal. A vanishing gradient is what MSE on a saturated sigmoid suffers, not "
            "cross-entropy."),
        Question(
            "ce-vs-mse", "seed 000", "Why is cross-entropy preferred over MSE for classification tasks?",
            ("Cross-entropy values are always smaller than MSE values on the same predictions, so its gradients are "
             "smaller and training is more stable.",
             "MSE cannot be computed on probabilities, because probabilities must sum to 1.",
             "Cross-entropy needs no output activation at all, so the network is simpler and trains faster.",
             "It is the negative log-likelihood of the labels, and its gradient with respect to the logit is p - y, "
             f"large when the model is confidently wrong: at p = {p_wrong} with y = 1 it is {grad_ce:.2f}, while MSE "
             f"through the sigmoid gives 2(p - y) p (1 - p) = {grad_mse:.4f}."),
            3,
            "MSE composed with a sigmoid or softmax has an extra factor p(1 - p) in its gradient, which goes to 0 when "
            "the output saturates, precisely when the model is confidently wrong. Cross-entropy's p - y has no such "
            "factor, and its minimiser is the true class probability (it is a proper scoring rule)."),
        Question(
            "bce-negative-label", "seed 000", "In Binary Cross-Entropy, when the true label y = 0, which term of the loss is active?",
            ("-log(p): the loss of the positive class.",
             f"-log(1 - p): the y log p term is multiplied by y = 0. At p = 0.9 the loss is {log_loss(0.9, 0):.4f} "
             "= -log 0.1.",
             "Both terms, weighted equally.",
             "Neither: negative examples contribute nothing to the loss."),
            1,
            "BCE = -[y log p + (1 - y) log(1 - p)]. With y = 0 only -log(1 - p) remains: the loss grows as the model "
            "pushes p, the probability of the positive class, towards 1."),
        Question(
            "bce-fill-in", "seed 003",
            "Complete the statement: in binary cross-entropy, the loss is high when the model outputs a ___ probability "
            "for the correct class, and the function is chosen over raw accuracy because accuracy is not ___.",
            ("high ... differentiable", "low ... differentiable", "low ... bounded", "high ... interpretable"),
            1,
            f"-log p is {log_loss(0.05, 1):.3f} at p = 0.05 and {log_loss(0.95, 1):.3f} at p = 0.95. Accuracy is a "
            "step function of the weights: tiny changes usually leave it unchanged, so its gradient is zero almost "
            "everywhere and gives gradient descent nothing to follow (losslab plot accuracy-vs-loss shows it)."),
        Question(
            "mse-large-errors", "seed 003", "Why does Mean Squared Error penalize large errors more heavily than small ones?",
            ("Because it divides the total by the number of samples.",
             "Because large errors are clipped before averaging.",
             f"Because each error is squared: doubling the error quadruples its cost (an error of 2 costs "
             f"{squared(2.0):g}, an error of 4 costs {squared(4.0):g}).",
             "It does not: MSE penalizes all errors equally."),
            2,
            "The squared term grows quadratically, so one large error can outweigh many small ones. That is why a "
            "single outlier dominates MSE (losslab plot outlier), and why Huber switches to a linear penalty beyond "
            "delta."),
        Question(
            "bce-p-0.05", "seed 003",
            "A network trained on binary cross-entropy outputs p = 0.05 for an example with true label y = 1. Which "
            "description best characterizes the loss for this example?",
            (f"High, {log_loss(0.05, 1):.3f} (= -log 0.05): the model is confidently wrong and gets a large penalty "
             "and a strong gradient.",
             "Low, about 0.05: the output is small, so the loss is small.",
             f"About {1 - 0.05:.2f} (= 1 - p), the distance to the label.",
             "Zero: 0.05 is a valid probability, so nothing is wrong."),
            0,
            f"With y = 1 the loss is -log p = {log_loss(0.05, 1):.3f}, about {log_loss(0.05, 1) / log_loss(0.5, 1):.1f}x "
            "the loss of an undecided p = 0.5. 1 - p would be the absolute error (MAE), not the cross-entropy."),
        Question(
            "playground-huber", "authored",
            "Predictions [1.5, 2.5, 3.0], targets [1.0, 3.0, 3.0] (seed 001's playground). What is the Huber loss with "
            "delta = 1 and the default mean reduction?",
            (f"{_loss('mse', *playground):.4f}", f"{_loss('huber', *playground, delta=1.0):.4f}",
             f"{_loss('mae', *playground):.4f}", f"{_loss('huber', *playground, delta=1.0, reduction='sum'):.4f}"),
            1,
            f"The errors are 0.5, -0.5 and 0, all within delta, so each costs e^2 / 2: (0.125 + 0.125 + 0) / 3 = "
            f"{_loss('huber', *playground, delta=1.0):.4f}. MSE is twice that ({_loss('mse', *playground):.4f}), MAE is "
            f"{_loss('mae', *playground):.4f}, and {_loss('huber', *playground, delta=1.0, reduction='sum'):.4f} is the "
            "sum instead of the mean."),
        Question(
            "softmax-gradient", "authored",
            "Softmax cross-entropy with logits [2, 1, 0.1] and true class 0: what is the gradient of the loss with "
            "respect to the logit of class 1?",
            ("0: class 1 is not the true class, so its logit does not matter.", f"{ce_grad[0]:+.4f}",
             f"{ce_grad[1]:+.4f}", f"{-ce_grad[1]:+.4f}"),
            2,
            f"The gradient is p - y. Class 1 has p = {ce_grad[1]:.4f} and y = 0, so gradient descent lowers its logit "
            f"in proportion to {ce_grad[1]:.4f}; the true class gets p - 1 = {ce_grad[0]:.4f}. The gradient sums to 0 over the classes "
            "(try it in the confidence explorer)."),
        Question(
            "confidence-ratio", "authored",
            "One model gives the true class p = 0.1, another p = 0.9. How many times larger is the first model's "
            "cross-entropy?",
            ("9x (the ratio of the probabilities)", "2x", f"{log_loss(0.1, 1) / log_loss(0.9, 1):.1f}x", "100x"),
            2,
            f"-log 0.1 = {log_loss(0.1, 1):.4f} and -log 0.9 = {log_loss(0.9, 1):.4f}: a ratio of "
            f"{log_loss(0.1, 1) / log_loss(0.9, 1):.1f} (seed 001 prints 21.9x)."),
        Question(
            "design-a-loss", "seed 003",
            "Design a loss function: a system predicts the probability p that a loan applicant will default. Name two "
            "ways the prediction can be wrong and which costs more; say why binary cross-entropy suits the task better "
            "than MSE; and, if the bank wants to catch 99% of likely defaulters, whether training on cross-entropy "
            "alone achieves that and what else would help.",
            (), None,
            "A model answer. The errors: a missed defaulter (false negative: the loan is lost) and a rejected safe "
            "applicant (false positive: a lost customer); the first usually costs far more. BCE is the Bernoulli "
            "likelihood of the label, convex in the logit and with gradient p - y, so confidently wrong predictions "
            "are corrected fast; MSE on a sigmoid saturates. Cross-entropy alone does not target 99% recall: it "
            "estimates probabilities, and the decision comes from a threshold chosen on validation data "
            "(ll.metrics.threshold_for(y, scores, recall=0.99)), helped by pos_weight or resampling for the rare "
            "class, and judged with recall, precision and average precision rather than accuracy."),
    )


def get_question(question_id: str) -> Question:
    for q in questions():
        if q.id == question_id:
            return q
    raise KeyError(f"no question {question_id!r}; the questions are {[q.id for q in questions()]}")


def grade(question_id: str, choice: int) -> dict[str, Any]:
    """Mark an answer: {"correct", "answer", "explanation"} (for an open exercise: the model answer)."""
    q = get_question(question_id)
    if not q.graded:
        return {"id": q.id, "correct": None, "answer": None, "explanation": q.explanation}
    if isinstance(choice, bool) or not isinstance(choice, int) or not 0 <= choice < len(q.choices):
        raise ValueError(f"choice must be an index in [0, {len(q.choices) - 1}] for question {q.id!r}, got {choice!r}")
    return {"id": q.id, "correct": choice == q.answer, "answer": q.answer, "explanation": q.explanation}
