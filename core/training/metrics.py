"""Evaluation metrics: accuracy / precision / recall / F1 (macro) and overflow-safe perplexity.

scikit-learn computes the classification metrics, offline and deterministic. The `evaluate`
modules give the same numbers (tests prove it where they can load) but are fetched from the Hub,
so `classification_metrics_with_evaluate` returns None when they cannot load.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

_EXP_LIMIT = math.log(1.0e300)  # exp above this is "infinite" for display purposes


def classification_metrics(predictions: Sequence[int], references: Sequence[int]) -> dict[str, float]:
    """Accuracy and macro precision / recall / F1 (zero_division=0) of predicted vs true label ids."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    preds, refs = _as_int_lists(predictions, references)
    if not refs:
        return {"accuracy": 0.0, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    precision, recall, f1, _ = precision_recall_fscore_support(
        refs, preds, average="macro", zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(refs, preds)),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
    }


def classification_metrics_with_evaluate(
    predictions: Sequence[int], references: Sequence[int]
) -> dict[str, float] | None:
    """The same four numbers through Hugging Face `evaluate`; None when its modules cannot load."""
    modules = _evaluate_modules()
    if modules is None:
        return None
    preds, refs = _as_int_lists(predictions, references)
    out = {"accuracy": float(modules["accuracy"].compute(predictions=preds, references=refs)["accuracy"])}
    for name in ("precision", "recall", "f1"):
        result = modules[name].compute(predictions=preds, references=refs, average="macro", zero_division=0)
        out[name] = float(result[name])
    return out


@functools.lru_cache(maxsize=1)
def _evaluate_modules() -> dict[str, Any] | None:
    """Load the four `evaluate` modules once per process (offline they usually cannot load)."""
    try:
        import evaluate
    except ImportError:
        return None
    from core.models import hub_offline, hub_reachable

    if not hub_offline() and not hub_reachable():
        return None  # evaluate would retry the network for a long time
    try:
        return {name: evaluate.load(name) for name in ("accuracy", "precision", "recall", "f1")}
    except Exception:  # offline without a cached module, hub errors, ...: fall back to sklearn
        return None


def evaluate_available() -> bool:
    """Whether the `evaluate` metric modules can load here."""
    return _evaluate_modules() is not None


def perplexity(loss: float | None) -> float:
    """exp(loss), overflow-safe: inf for huge losses, nan for a missing or NaN loss."""
    if loss is None:
        return float("nan")
    try:
        value = float(loss)
    except (TypeError, ValueError):
        return float("nan")
    if math.isnan(value):
        return float("nan")
    if value > _EXP_LIMIT:
        return float("inf")
    return math.exp(value)


def compute_metrics_for(task: str) -> Callable[[Any], dict[str, float]] | None:
    """A Trainer `compute_metrics` for the task: classification metrics, None for mlm/causal."""
    if task != "classification":
        return None

    def compute_metrics(eval_pred) -> dict[str, float]:
        import numpy as np

        logits, labels = _unpack(eval_pred)
        if isinstance(logits, tuple | list):  # some models return (logits, hidden_states, ...)
            logits = logits[0]
        preds = np.asarray(logits).argmax(axis=-1)
        return classification_metrics(preds.tolist(), np.asarray(labels).tolist())

    return compute_metrics


def _unpack(eval_pred) -> tuple[Any, Any]:
    if hasattr(eval_pred, "predictions"):
        return eval_pred.predictions, eval_pred.label_ids
    logits, labels = eval_pred[0], eval_pred[1]
    return logits, labels


def _as_int_lists(predictions, references) -> tuple[list[int], list[int]]:
    preds = [int(p) for p in list(predictions)]
    refs = [int(r) for r in list(references)]
    if len(preds) != len(refs):
        raise ValueError(f"{len(preds)} predictions but {len(refs)} references.")
    return preds, refs
