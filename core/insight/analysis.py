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

from core.data.instructions import map_to_label
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
        "text": _example_texts(tuned).to_numpy(),
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

# The pairs a human labelling is scored in, named as `python -m core evaluate` names them: the base and the
# fine-tuned model each against the humans, and the humans against the run's gold labels. The last is the
# ceiling: a model that always matched gold would agree with the humans exactly that much.
AGREEMENT_PAIRS = ("base", "tuned", "gold")
# The kinds of disagreement listed for a reader to inspect; "model" is the fine-tuned (or prompted) model.
DISAGREEMENT_KINDS = ("model_human", "model_gold", "human_gold")
# Column names that say they hold a second annotator's labels, in order of preference (case does not matter).
HUMAN_COLUMN_NAMES = ("human", "human_label", "annotator", "annotation", "human_labels", "rater")
# Rows of a human file sampled to find which column holds the run's texts: enough to rank the columns even
# when the run evaluated only a small share of the file, few enough to stay instant on a large one.
TEXT_COLUMN_SAMPLE = 2000


def agreement(first: Sequence[str], second: Sequence[str]) -> dict[str, float]:
    """{'accuracy', 'kappa'} of two labelings of the same items (the CLI's and the Evaluate page's pairs)."""
    return {"accuracy": accuracy(first, second), "kappa": cohen_kappa(first, second)}


def human_label(value: Any, label_names: Sequence[str]) -> str:
    """A human's label as one of the run's label names where it names one (by name in any case, by id, or in a
    sentence as a generated answer would), else as written."""
    if not label_names:
        return str(value).strip()
    named = normalise_label(value, label_names)
    return named if named in label_names else map_to_label(value, label_names) or named


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


def likely_text_column(human: pd.DataFrame, predictions: RunPredictions, preferred: str | None = None) -> str:
    """The column of a human file whose values are most often the run's example texts (sampled); on a tie
    `preferred` (the run's text column), then the first column."""
    columns = [str(c) for c in human.columns]
    if predictions.tuned is None or not columns:
        return preferred if preferred in columns else (columns[0] if columns else "")
    known = set(_example_texts(predictions.tuned).str.strip())
    sample = human.head(TEXT_COLUMN_SAMPLE).rename(columns=str)
    hits = {c: int(sample[c].dropna().astype(str).str.strip().isin(known).sum()) for c in columns}
    best = max(hits.values())
    if best == 0 or hits.get(preferred or "", -1) == best:
        return preferred if preferred in columns else columns[0]
    return next(c for c in columns if hits[c] == best)


def likely_human_column(columns: Sequence[str], text_column: str, gold_column: str | None) -> str | None:
    """The column most likely to hold the human labels: neither the text nor the run's gold label column, one
    named like HUMAN_COLUMN_NAMES first, else the first such column; the gold column only when nothing else is left."""
    others = [c for c in columns if c not in (text_column, gold_column)]
    by_name = {c.strip().lower(): c for c in reversed(others)}
    for name in HUMAN_COLUMN_NAMES:
        if name in by_name:
            return by_name[name]
    named = [c for c in others if "human" in c.lower() or "annotat" in c.lower()]
    if named or others:
        return (named or others)[0]
    return gold_column if gold_column in columns and gold_column != text_column else None


@dataclass(frozen=True)
class HumanAgreement:
    """Human labels against the run's stored predictions and gold labels, on the texts both hold."""

    matched: int
    unmatched: int  # labelled texts that are not among the run's evaluation examples
    # "base", "tuned" (each model vs the humans) and "gold" (the humans vs gold, the ceiling) -> accuracy, kappa;
    # no "base" when the run stored no base stage (a prompt run)
    pairs: dict[str, dict[str, float]]
    # One row per matched text: text, human, gold, base_prediction, tuned_prediction, and one boolean column
    # per DISAGREEMENT_KINDS saying whether the text is a disagreement of that kind.
    examples: pd.DataFrame

    def disagreement_counts(self) -> dict[str, int]:
        """How many matched texts are a disagreement of each kind."""
        return {kind: int(self.examples[kind].sum()) for kind in DISAGREEMENT_KINDS}

    def disagreements(self, kind: str) -> pd.DataFrame:
        """The matched texts of one kind of disagreement: text, human, gold, base_prediction, tuned_prediction."""
        if kind not in DISAGREEMENT_KINDS:
            raise ValueError(f"Unknown kind of disagreement {kind!r}: use one of {', '.join(DISAGREEMENT_KINDS)}.")
        chosen = self.examples[self.examples[kind]]
        return chosen.drop(columns=list(DISAGREEMENT_KINDS)).reset_index(drop=True)


def human_agreement(
    human: pd.DataFrame, text_column: str, label_column: str, predictions: RunPredictions
) -> HumanAgreement:
    """Match human-labelled texts to the run's stored predictions by text (stripped; the first of duplicates
    counts); the three agreements and the disagreements of each kind."""
    if predictions.tuned is None:
        raise ValueError("The run has no fine-tuned predictions to compare with.")
    if text_column == label_column:
        raise ValueError(f"The texts and the human labels are both '{text_column}': choose two columns.")
    names = predictions.label_names
    human = human.rename(columns=str)  # a file read without a header has number names; the pickers show text
    rows = human[[text_column, label_column]].dropna()
    # Only derived columns go into the merge: a human file's own columns are often called `text`, `label` or
    # `human` too, and pandas would suffix both sides of the clash.
    labelled = pd.DataFrame({
        "_text": rows[text_column].astype(str).str.strip().to_numpy(),
        "_human": [human_label(v, names) for v in rows[label_column]],
    })
    labelled = labelled[labelled["_text"] != ""].drop_duplicates("_text", keep="first")
    table = example_table(predictions.base, predictions.tuned)
    table["_text"] = table["text"].astype(str).str.strip()
    table = table.drop_duplicates("_text", keep="first")
    merged = labelled.merge(table, on="_text", how="inner")
    examples = pd.DataFrame({
        "text": merged["text"].to_numpy(),
        "human": merged["_human"].to_numpy(),
        "gold": merged["gold"].astype(str).to_numpy(),
        "base_prediction": merged["base_prediction"].to_numpy(),
        "tuned_prediction": merged["tuned_prediction"].fillna(NO_LABEL).astype(str).to_numpy(),
    })
    # A stage's own verdict decides "model vs gold" (generated answers are judged by their run, not by string).
    examples["model_human"] = examples["tuned_prediction"] != examples["human"]
    examples["model_gold"] = ~merged["tuned_correct"].astype(bool).to_numpy()
    examples["human_gold"] = examples["human"] != examples["gold"]
    humans = examples["human"].tolist()
    pairs = {}
    if predictions.base is not None:
        pairs["base"] = agreement(humans, examples["base_prediction"].fillna(NO_LABEL).astype(str).tolist())
    pairs["tuned"] = agreement(humans, examples["tuned_prediction"].tolist())
    pairs["gold"] = agreement(humans, examples["gold"].tolist())
    return HumanAgreement(matched=len(examples), unmatched=len(labelled) - len(examples), pairs=pairs,
                          examples=examples)


def _example_texts(stage: pd.DataFrame) -> pd.Series:
    """The texts a human file names a stage's examples by: the asked `input` of generated answers, else `text`."""
    return stage["input" if "input" in stage.columns else "text"].astype(str)
