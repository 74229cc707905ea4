"""core.training.metrics: macro classification metrics (proven by hand and against `evaluate`), perplexity."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from core.training.metrics import (
    classification_metrics,
    classification_metrics_with_evaluate,
    compute_metrics_for,
    evaluate_available,
    perplexity,
)


def _by_hand(predictions: list[int], references: list[int]) -> dict[str, float]:
    """Macro metrics from a confusion matrix, over the labels seen in either list (sklearn's rule)."""
    labels = sorted(set(predictions) | set(references))
    matrix = {(t, p): 0 for t in labels for p in labels}
    for t, p in zip(references, predictions, strict=True):
        matrix[t, p] += 1
    precisions, recalls, f1s = [], [], []
    for label in labels:
        tp = matrix[label, label]
        predicted = sum(matrix[t, label] for t in labels)
        actual = sum(matrix[label, p] for p in labels)
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        precisions.append(precision)
        recalls.append(recall)
        f1s.append(f1)
    return {
        "accuracy": sum(matrix[label, label] for label in labels) / len(references),
        "precision": sum(precisions) / len(labels),
        "recall": sum(recalls) / len(labels),
        "f1": sum(f1s) / len(labels),
    }


def test_known_binary_example():
    # refs 0 1 0 0 / preds 0 1 1 0: class 0 P=2/2 R=2/3, class 1 P=1/2 R=1/1.
    result = classification_metrics([0, 1, 1, 0], [0, 1, 0, 0])
    assert result["accuracy"] == pytest.approx(0.75)
    assert result["precision"] == pytest.approx((1.0 + 0.5) / 2)
    assert result["recall"] == pytest.approx((2 / 3 + 1.0) / 2)
    assert result["f1"] == pytest.approx((0.8 + 2 / 3) / 2)


@pytest.mark.parametrize("seed", range(8))
def test_sklearn_agrees_with_a_hand_computed_confusion_matrix(seed):
    rng = random.Random(seed)
    classes = rng.randint(2, 5)
    size = rng.randint(5, 60)
    references = [rng.randrange(classes) for _ in range(size)]
    # Mostly right, sometimes wrong, and never predicting the last class: exercises zero_division.
    predictions = [r if rng.random() < 0.6 else rng.randrange(max(1, classes - 1)) for r in references]
    got = classification_metrics(predictions, references)
    want = _by_hand(predictions, references)
    assert got == pytest.approx(want, abs=1e-12)


def test_degenerate_inputs():
    assert classification_metrics([1, 1, 1], [1, 1, 1]) == pytest.approx(
        {"accuracy": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    )
    all_wrong = classification_metrics([1, 1], [0, 0])
    assert all_wrong == pytest.approx({"accuracy": 0.0, "precision": 0.0, "recall": 0.0, "f1": 0.0})
    assert classification_metrics([], [])["accuracy"] == 0.0
    assert classification_metrics(np.array([0, 1]), np.array([0, 1]))["f1"] == 1.0
    with pytest.raises(ValueError):
        classification_metrics([0, 1], [0])


def test_evaluate_path_returns_none_or_a_dict():
    result = classification_metrics_with_evaluate([0, 1, 1], [0, 1, 0])
    assert result is None or set(result) == {"accuracy", "precision", "recall", "f1"}
    assert (result is None) == (not evaluate_available())


@pytest.mark.skipif(
    not evaluate_available(),
    reason="`evaluate` metric modules cannot load here (offline, not cached); the sklearn numbers are "
    "proven against a hand-computed confusion matrix instead",
)
@pytest.mark.parametrize("seed", range(4))
def test_evaluate_and_sklearn_agree(seed):
    rng = random.Random(seed)
    references = [rng.randrange(3) for _ in range(40)]
    predictions = [r if rng.random() < 0.7 else rng.randrange(2) for r in references]
    assert classification_metrics_with_evaluate(predictions, references) == pytest.approx(
        classification_metrics(predictions, references), abs=1e-12
    )


def test_perplexity_is_overflow_safe():
    assert perplexity(0.0) == 1.0
    assert perplexity(2.0) == pytest.approx(math.exp(2.0))
    assert perplexity(1e6) == math.inf
    assert perplexity(float("inf")) == math.inf
    assert math.isnan(perplexity(float("nan")))
    assert math.isnan(perplexity(None))
    assert math.isnan(perplexity("not a number"))
    assert perplexity(np.float32(1.5)) == pytest.approx(math.exp(1.5), rel=1e-6)


def test_compute_metrics_for_each_task():
    from transformers import EvalPrediction

    assert compute_metrics_for("mlm") is None
    assert compute_metrics_for("causal") is None
    compute = compute_metrics_for("classification")
    logits = np.array([[2.0, -1.0], [0.1, 0.3], [1.0, 0.0], [-1.0, 1.0]])
    labels = np.array([0, 1, 1, 1])
    result = compute(EvalPrediction(predictions=logits, label_ids=labels))
    assert result == pytest.approx(classification_metrics([0, 1, 0, 1], [0, 1, 1, 1]))
    # Models that return extra outputs hand the Trainer a tuple of arrays.
    assert compute(((logits, np.zeros((4, 3))), labels)) == result
