"""What per-example predictions say: confusion, per-class scores, the examples that moved, and agreement
with human labels. Pure functions on pandas frames (core.insight.predictions reads them from disk);
no torch, so the Evaluate page and the report use them.

Instruction tuning's stages of generated answers carry a classifier's columns (core.insight.answer_pass), so
the same functions read them; an example is named by its `input` there (the text a human file holds), and
its answers and whether each was right come along.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.insight.answers import score_answers
from core.insight.predictions import NO_LABEL, RunPredictions

# The example browser's filters.
FILTERS = ("all", "misclassified", "fixed", "broken", "least_confident")
# example_table's columns that only the filters read.
FILTER_COLUMNS = ("row", "base_confidence", "base_correct", "tuned_correct")

# ---- classification analysis (pure) ------------------------------------------------------------

def confusion(gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(counts, row-normalised shares), rows = gold label, columns = predicted label, in `labels` order."""
    index = {label: i for i, label in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for g, p in zip(gold, predicted, strict=True):
        if g in index and p in index:
            counts[index[g], index[p]] += 1
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros(counts.shape, dtype=float), where=totals > 0)
    return counts, shares


def per_class(gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> pd.DataFrame:
    """Precision, recall, F1 and support of each class (zero where undefined), in `labels` order."""
    counts, _ = confusion(gold, predicted, labels)
    true_positive = np.diag(counts).astype(float)
    predicted_totals = counts.sum(axis=0).astype(float)
    support = counts.sum(axis=1)
    precision = np.divide(true_positive, predicted_totals, out=np.zeros_like(true_positive), where=predicted_totals > 0)
    recall = np.divide(true_positive, support.astype(float), out=np.zeros_like(true_positive), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(true_positive), where=denominator > 0)
    return pd.DataFrame({"label": list(labels), "precision": precision, "recall": recall, "f1": f1, "support": support})


def per_class_change(base: pd.DataFrame | None, tuned: pd.DataFrame, labels: Sequence[str]) -> pd.DataFrame:
    """The per-class table of the fine-tuned stage, with the change from the base stage per metric.

    NO_LABEL among `labels` counts answers that named no label as misses of their gold label; it gets no row.
    """
    table = per_class(tuned["gold"].tolist(), tuned["predicted"].tolist(), labels)
    if base is not None:
        before = per_class(base["gold"].tolist(), base["predicted"].tolist(), labels)
        for metric in ("precision", "recall", "f1"):
            table[f"{metric}_change"] = table[metric] - before[metric]
    return table[table["label"] != NO_LABEL].reset_index(drop=True)


def cohen_kappa(first: Sequence[str], second: Sequence[str]) -> float:
    """Cohen's kappa of two labelings of the same items (1 = perfect, 0 = chance); 1.0 when both agree
    on a single label everywhere (no disagreement to measure)."""
    if len(first) != len(second):
        raise ValueError(f"{len(first)} labels against {len(second)}.")
    if not first:
        return 0.0
    labels = sorted(set(first) | set(second))
    index = {label: i for i, label in enumerate(labels)}
    table = np.zeros((len(labels), len(labels)), dtype=float)
    for a, b in zip(first, second, strict=True):
        table[index[a], index[b]] += 1
    total = table.sum()
    observed = np.trace(table) / total
    expected = float((table.sum(axis=1) * table.sum(axis=0)).sum() / total**2)
    if expected >= 1.0:
        return 1.0 if observed >= 1.0 else 0.0
    return float((observed - expected) / (1.0 - expected))


def accuracy(first: Sequence[str], second: Sequence[str]) -> float:
    """Share of positions where two labelings agree (0 when empty)."""
    if not first:
        return 0.0
    return float(np.mean([a == b for a, b in zip(first, second, strict=True)]))


def example_table(base: pd.DataFrame | None, tuned: pd.DataFrame) -> pd.DataFrame:
    """One row per example: text, gold, base prediction, fine-tuned prediction and confidences; generated
    answers (base_answer, tuned_answer) where the stages hold them; and whether each model was right."""
    answers = "answer" in tuned.columns
    table = pd.DataFrame({
        "row": tuned["row"].to_numpy(),
        "text": tuned["input" if "input" in tuned.columns else "text"].to_numpy(),
        "gold": tuned["gold"].to_numpy(),
        "base_prediction": None,
        "tuned_prediction": tuned["predicted"].to_numpy(),
        "confidence": tuned["confidence"].to_numpy(),
        "base_confidence": np.nan,
        "base_correct": None,
        "tuned_correct": _correct(tuned).to_numpy(),
    })
    if answers:
        table.insert(3, "base_answer", None)
        table.insert(5, "tuned_answer", tuned["answer"].to_numpy())
    if base is not None:
        by_row = base.set_index("row")
        table["base_prediction"] = table["row"].map(by_row["predicted"])
        table["base_confidence"] = table["row"].map(by_row["confidence"])
        table["base_correct"] = table["row"].map(_correct(base).set_axis(base["row"]))
        if answers and "answer" in base.columns:
            table["base_answer"] = table["row"].map(by_row["answer"])
    return table


def _correct(frame: pd.DataFrame) -> pd.Series:
    """Whether each example was right: the stage's own verdict (generated answers), else prediction == gold."""
    return frame["correct"].astype(bool) if "correct" in frame.columns else frame["predicted"] == frame["gold"]


def filter_examples(table: pd.DataFrame, which: str, limit: int | None = None) -> pd.DataFrame:
    """The examples a filter selects (see FILTERS); least confident comes sorted by confidence."""
    if which not in FILTERS:
        raise ValueError(f"Unknown filter {which!r}: use one of {', '.join(FILTERS)}.")
    tuned_right = table["tuned_correct"].astype(bool)
    has_base = table["base_correct"].notna()
    base_right = table["base_correct"].where(has_base, False).astype(bool)
    if which == "misclassified":
        chosen = table[~tuned_right]
    elif which == "fixed":
        chosen = table[has_base & ~base_right & tuned_right]
    elif which == "broken":
        chosen = table[has_base & base_right & ~tuned_right]
    elif which == "least_confident":
        chosen = table.sort_values("confidence", kind="stable")
    else:
        chosen = table
    return chosen.head(limit) if limit is not None else chosen


def answer_summary(frame: pd.DataFrame, label_names: Sequence[str] | None) -> dict[str, float]:
    """A stage of generated answers scored as its run scored it: exact_match, and with labels accuracy and f1."""
    scored = score_answers(frame["answer"].tolist(), frame["reference"].tolist(), list(label_names or []) or None)
    return {key: float(scored[key]) for key in ("exact_match", "accuracy", "f1") if key in scored}


# ---- language-model analysis (pure) ------------------------------------------------------------

def loss_changes(base: pd.DataFrame, tuned: pd.DataFrame) -> pd.DataFrame:
    """Per example: text, base loss, fine-tuned loss and change (negative = improved)."""
    merged = base[["row", "text", "loss"]].merge(tuned[["row", "loss"]], on="row", suffixes=("_base", "_tuned"))
    merged = merged.rename(columns={"loss_base": "base_loss", "loss_tuned": "tuned_loss"})
    merged["change"] = merged["tuned_loss"] - merged["base_loss"]
    return merged


def largest_improvements(changes: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The n examples whose loss fell the most."""
    return changes[changes["change"] < 0].sort_values("change", kind="stable").head(n)


def largest_regressions(changes: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The n examples whose loss rose the most."""
    return changes[changes["change"] > 0].sort_values("change", ascending=False, kind="stable").head(n)


def moved_examples(base: pd.DataFrame, tuned: pd.DataFrame, n: int = 10) -> dict[str, pd.DataFrame]:
    """{'improvements': ..., 'regressions': ...}: the n examples whose loss fell / rose the most
    (text, base_loss, tuned_loss, change), for Evaluate and the report alike."""
    changes = loss_changes(base, tuned)
    return {"improvements": largest_improvements(changes, n).drop(columns=["row"]),
            "regressions": largest_regressions(changes, n).drop(columns=["row"])}


# ---- agreement with human labels (pure) --------------------------------------------------------

@dataclass(frozen=True)
class HumanAgreement:
    """Agreement of the base and the fine-tuned model with human labels, on the matched texts."""

    matched: int
    unmatched: int
    base_accuracy: float | None
    base_kappa: float | None
    tuned_accuracy: float
    tuned_kappa: float
    disagreements: pd.DataFrame  # text, human, base_prediction, tuned_prediction


def normalise_label(value: Any, label_names: Sequence[str]) -> str:
    """A human label as one of the run's label names when it names one (any case) or is its id."""
    label = str(value).strip()
    lowered = {name.lower(): name for name in label_names}
    if label.lower() in lowered:
        return lowered[label.lower()]
    try:
        number = float(label)
    except ValueError:
        return label
    if number.is_integer() and 0 <= int(number) < len(label_names):
        return label_names[int(number)]
    return label


def human_agreement(
    human: pd.DataFrame, text_column: str, label_column: str, predictions: RunPredictions
) -> HumanAgreement:
    """Match human-labelled texts to the run's stored predictions by text; agreement and disagreements."""
    if predictions.tuned is None:
        raise ValueError("The run has no fine-tuned predictions to compare with.")
    names = predictions.label_names
    rows = human[[text_column, label_column]].dropna()
    # Only the two derived columns go into the merge: a human file's own columns are often called
    # `text` or `label` too, and pandas would suffix both sides of the clash.
    labelled = pd.DataFrame({
        "_text": rows[text_column].astype(str).str.strip().to_numpy(),
        "_human": [normalise_label(v, names) for v in rows[label_column]],
    }).drop_duplicates("_text", keep="first")
    table = example_table(predictions.base, predictions.tuned)
    table["_text"] = table["text"].astype(str).str.strip()
    table = table.drop_duplicates("_text", keep="first")
    merged = labelled.merge(table, on="_text", how="inner")
    humans = merged["_human"].tolist()
    tuned = merged["tuned_prediction"].astype(str).tolist()
    base_accuracy = base_kappa = None
    if predictions.base is not None and len(merged):
        base = merged["base_prediction"].astype(str).tolist()
        base_accuracy, base_kappa = accuracy(humans, base), cohen_kappa(humans, base)
    base_differs = merged["base_prediction"].notna() & (merged["base_prediction"] != merged["_human"])
    disagree = merged[(merged["tuned_prediction"] != merged["_human"]) | base_differs]
    disagreements = disagree[["text", "_human", "base_prediction", "tuned_prediction"]].rename(columns={"_human": "human"})
    return HumanAgreement(
        matched=len(merged),
        unmatched=len(labelled) - len(merged),
        base_accuracy=base_accuracy,
        base_kappa=base_kappa,
        tuned_accuracy=accuracy(humans, tuned),
        tuned_kappa=cohen_kappa(humans, tuned) if humans else 0.0,
        disagreements=disagreements.reset_index(drop=True),
    )
