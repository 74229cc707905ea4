"""Per-example predictions on the evaluation set, and what they say about the fine-tune.

runs/<id>/predictions/
    meta.json            task, label names, rows used / rows in the eval set       written atomically
    base.parquet         the base model, before training                          written atomically
    eval-00000050.parquet  the model at each evaluation (classification)           written atomically
    final.parquet        the fine-tuned model at the end                           written atomically

Every stage file holds one row per evaluation example: `row` (position in the used eval rows) and
`text`; for classification `gold`, `predicted`, `confidence` and one `prob:<label>` column per class;
for masked and causal LMs `loss`, the mean token loss of the example.

Reading and analysis are pure functions on pandas frames (no torch at import: the Evaluate page and
the report use them). The `Recorder` and the two `*_pass` functions are the engine's side; they
import torch only when called.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.files import atomic_write_json

PREDICTIONS_DIR = "predictions"
META_FILE = "meta.json"
PROB_PREFIX = "prob:"
FILTERS = ("all", "misclassified", "fixed", "broken", "least_confident")
# The masked-LM pass draws its masks in row-order batches of this many rows (see mlm_example_masks).
LM_BATCH_SIZE = 8
# Per-example passes run length-sorted batches of about this many padded tokens (at most MAX_PASS_ROWS rows);
# where full [batch, tokens, vocabulary] logits are needed, their size bounds the batch instead.
LM_TOKENS_PER_BATCH = 8192
CLASSIFICATION_TOKENS_PER_BATCH = 8192
LOGITS_BYTES_PER_BATCH = 256 * 2**20
MAX_PASS_ROWS = 512
MLM_MASK_FRACTION = 0.15
# A language model's per-example losses are computed on at most this many evaluation rows (a fixed
# sample: the eval set arrives shuffled with the run's seed). The base pass runs before step 1, and
# the encoder's cost per row cannot be cut further; 500 examples still rank the largest improvements
# and regressions, and the Evaluate page and the report say that a sample was used.
LM_EXAMPLE_ROWS = 500


# ---- files -----------------------------------------------------------------------------------

def predictions_dir(run_path: Path | str) -> Path:
    """The predictions folder of a run folder."""
    return Path(run_path) / PREDICTIONS_DIR


def stage_file_name(stage: str, step: int | None = None) -> str:
    """'base.parquet', 'final.parquet' or 'eval-00000050.parquet'."""
    return f"eval-{int(step or 0):08d}.parquet" if stage == "eval" else f"{stage}.parquet"


def write_frame_atomically(path: Path, frame: pd.DataFrame) -> None:
    """Write a parquet file via a temp file and a rename, so a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_meta(run_path: Path | str) -> dict[str, Any] | None:
    """The predictions' meta.json, or None when the run has no predictions."""
    try:
        data = json.loads((predictions_dir(run_path) / META_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def list_stages(run_path: Path | str) -> list[tuple[str, int | None]]:
    """The stored stages as (stage, step), in training order: base, evaluations by step, final."""
    folder = predictions_dir(run_path)
    if not folder.is_dir():
        return []
    found: list[tuple[str, int | None]] = []
    evals = []
    for path in folder.glob("*.parquet"):
        name = path.stem
        if name in ("base", "final"):
            found.append((name, None))
        elif name.startswith("eval-") and name[5:].isdigit():
            evals.append(int(name[5:]))
    order = {"base": 0, "final": 2}
    stages = sorted(found, key=lambda s: order[s[0]])
    return [s for s in stages if s[0] == "base"] + [("eval", step) for step in sorted(evals)] + [s for s in stages if s[0] == "final"]


def load_stage(run_path: Path | str, stage: str, step: int | None = None) -> pd.DataFrame | None:
    """One stage's frame, or None when it was not stored (or cannot be read)."""
    path = predictions_dir(run_path) / stage_file_name(stage, step)
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class RunPredictions:
    """What a page or the report needs: the meta, the base frame and the fine-tuned frame."""

    meta: dict[str, Any]
    base: pd.DataFrame | None
    tuned: pd.DataFrame | None
    tuned_stage: str | None  # 'final', or 'eval' for a run that has not finished
    tuned_step: int | None
    stages: list[tuple[str, int | None]] = field(default_factory=list)

    @property
    def task(self) -> str:
        return str(self.meta.get("task", ""))

    @property
    def label_names(self) -> list[str]:
        return [str(n) for n in self.meta.get("label_names") or []]

    @property
    def sampled(self) -> bool:
        return bool(self.meta.get("sampled"))


def load_predictions(run_path: Path | str) -> RunPredictions | None:
    """The base and latest fine-tuned stage of a run; None when it stored no predictions."""
    meta = read_meta(run_path)
    if meta is None:
        return None
    stages = list_stages(run_path)
    base = load_stage(run_path, "base") if ("base", None) in stages else None
    tuned, tuned_stage, tuned_step = None, None, None
    for stage, step in reversed(stages):
        if stage == "base":
            continue
        tuned = load_stage(run_path, stage, step)
        if tuned is not None:
            tuned_stage, tuned_step = stage, step if step is not None else meta.get("final_step")
            break
    if base is None and tuned is None:
        return None
    return RunPredictions(meta, base, tuned, tuned_stage, tuned_step, stages)


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
    """The per-class table of the fine-tuned stage, with the change from the base stage per metric."""
    table = per_class(tuned["gold"].tolist(), tuned["predicted"].tolist(), labels)
    if base is not None:
        before = per_class(base["gold"].tolist(), base["predicted"].tolist(), labels)
        for metric in ("precision", "recall", "f1"):
            table[f"{metric}_change"] = table[metric] - before[metric]
    return table


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
    """One row per example: text, gold, base prediction, fine-tuned prediction and confidences."""
    table = pd.DataFrame({
        "row": tuned["row"].to_numpy(),
        "text": tuned["text"].to_numpy(),
        "gold": tuned["gold"].to_numpy(),
        "base_prediction": None,
        "tuned_prediction": tuned["predicted"].to_numpy(),
        "confidence": tuned["confidence"].to_numpy(),
        "base_confidence": np.nan,
    })
    if base is not None:
        by_row = base.set_index("row")
        table["base_prediction"] = table["row"].map(by_row["predicted"])
        table["base_confidence"] = table["row"].map(by_row["confidence"])
    return table


def filter_examples(table: pd.DataFrame, which: str, limit: int | None = None) -> pd.DataFrame:
    """The examples a filter selects (see FILTERS); least confident comes sorted by confidence."""
    if which not in FILTERS:
        raise ValueError(f"Unknown filter {which!r}: use one of {', '.join(FILTERS)}.")
    tuned_right = table["tuned_prediction"] == table["gold"]
    base_right = table["base_prediction"] == table["gold"]
    has_base = table["base_prediction"].notna()
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
    labelled = human[[text_column, label_column]].dropna()
    labelled = labelled.assign(
        _text=labelled[text_column].astype(str).str.strip(),
        _human=[normalise_label(v, names) for v in labelled[label_column]],
    ).drop_duplicates("_text", keep="first")
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
    disagree = merged[(merged["tuned_prediction"] != merged["_human"]) | (merged["base_prediction"] != merged["_human"])]
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


# ---- building stage frames (pure) --------------------------------------------------------------

def classification_frame(texts: Sequence[str], gold: Sequence[int], probabilities: np.ndarray,
                         label_names: Sequence[str]) -> pd.DataFrame:
    """A classification stage: one row per example with gold, predicted, confidence and per-class probabilities."""
    probabilities = np.asarray(probabilities, dtype=np.float32)
    predicted = probabilities.argmax(axis=1)
    frame = pd.DataFrame({
        "row": np.arange(len(texts)),
        "text": list(texts),
        "gold": [label_names[int(g)] for g in gold],
        "predicted": [label_names[int(p)] for p in predicted],
        "confidence": probabilities.max(axis=1),
    })
    for i, name in enumerate(label_names):
        frame[f"{PROB_PREFIX}{name}"] = probabilities[:, i]
    return frame


def loss_frame(texts: Sequence[str], losses: Sequence[float]) -> pd.DataFrame:
    """A language-model stage: one row per example with its mean token loss."""
    return pd.DataFrame({"row": np.arange(len(texts)), "text": list(texts), "loss": np.asarray(losses, dtype=np.float32)})


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


# ---- the engine's side -------------------------------------------------------------------------

class Recorder:
    """Writes the stages of one run. The engine calls `base`, `after_evaluate` and `final` on the main
    process only; `wrap_compute_metrics` runs on every rank and keeps the evaluation's logits so the
    classification stages cost no extra pass."""

    def __init__(self, run_path: Path, task: str, eval_rows: Any, total_rows: int, label_names: list[str] | None,
                 eval_dataset: Any, tokenizer: Any, seed: int, *, precision: str = "fp32"):
        self.folder = predictions_dir(run_path)
        self.task = task
        if task != "classification" and len(eval_rows) > LM_EXAMPLE_ROWS:
            # Classification keeps every row: its evaluation stages reuse the Trainer's logits of the whole set.
            eval_rows, eval_dataset = eval_rows.select(range(LM_EXAMPLE_ROWS)), eval_dataset.select(range(LM_EXAMPLE_ROWS))
        self.texts = [str(t) for t in eval_rows["text"]]
        self.gold = [int(g) for g in eval_rows["label"]] if task == "classification" else None
        self.label_names = list(label_names or [])
        self.total_rows = int(total_rows)
        self.eval_dataset = eval_dataset
        self.tokenizer = tokenizer
        self.seed = seed
        self.precision = precision  # the run's training.precision: the passes run in bf16 where training does
        self.eval_order: Callable[[], list[int]] | None = None  # the Trainer's evaluation order
        self.on_error: Callable[[str], None] = lambda message: None
        self._captured: tuple[np.ndarray, np.ndarray] | None = None
        self._last_evaluation: tuple[int, np.ndarray] | None = None

    def write_meta(self, **extra: Any) -> None:
        """meta.json: task, labels, and how many eval rows were used out of how many."""
        meta = read_meta(self.folder.parent) or {}
        meta.update(task=self.task, label_names=self.label_names, rows_used=len(self.texts),
                    rows_total=self.total_rows, sampled=len(self.texts) < self.total_rows, **extra)
        atomic_write_json(self.folder / META_FILE, meta)

    def wrap_compute_metrics(self, compute_metrics: Callable[[Any], dict[str, float]]) -> Callable[[Any], dict[str, float]]:
        """compute_metrics that also keeps the logits and labels of the evaluation it scores."""
        def compute_and_keep(eval_pred):
            logits = eval_pred.predictions
            if isinstance(logits, tuple | list):
                logits = logits[0]
            self._captured = (np.asarray(logits, dtype=np.float32), np.asarray(eval_pred.label_ids))
            return compute_metrics(eval_pred)

        return compute_and_keep

    def base(self, model: Any) -> None:
        """The base stage: one prediction pass before training."""
        self._guarded("base", lambda: (self.write_meta(), self._write_pass("base", model)))

    def after_evaluate(self, step: int, model: Any) -> None:
        """An evaluation stage (classification only: LM losses are stored at base and final)."""
        if self.task == "classification":
            self._guarded(f"evaluation at step {step}", lambda: self._write_evaluation(step, model))

    def final(self, step: int, model: Any) -> None:
        """The final stage: the evaluation at this step (classification) or one loss pass (LM)."""
        def write() -> None:
            if self._last_evaluation is not None and self._last_evaluation[0] == step:
                frame = classification_frame(self.texts, self.gold, self._last_evaluation[1], self.label_names)
                write_frame_atomically(self.folder / stage_file_name("final"), frame)
            else:
                self._write_pass("final", model)
            self.write_meta(final_step=int(step))

        self._guarded("final", write)

    def _guarded(self, what: str, action: Callable[[], Any]) -> None:
        # Per-example predictions are an extra: a failure there is reported, never fails the run.
        try:
            action()
        except Exception as err:  # noqa: BLE001 - reported through on_error, the run goes on
            self.on_error(f"Per-example predictions ({what}) could not be stored: {type(err).__name__}: {err}")

    def _write_evaluation(self, step: int, model: Any) -> None:
        probabilities = self._captured_probabilities()
        if probabilities is None:
            probabilities = classification_pass(model, self.eval_dataset, self.tokenizer, bf16=self._bf16(model))
        self._last_evaluation = (step, probabilities)
        write_frame_atomically(self.folder / stage_file_name("eval", step),
                               classification_frame(self.texts, self.gold, probabilities, self.label_names))

    def _write_pass(self, stage: str, model: Any) -> None:
        bf16 = self._bf16(model)
        if self.task == "classification":
            probabilities = classification_pass(model, self.eval_dataset, self.tokenizer, bf16=bf16)
            frame = classification_frame(self.texts, self.gold, probabilities, self.label_names)
        else:
            losses = example_loss_pass(model, self.eval_dataset, self.tokenizer, self.task, self.seed, bf16=bf16)
            frame = loss_frame(self.texts, losses)
        write_frame_atomically(self.folder / stage_file_name(stage), frame)

    def _bf16(self, model: Any) -> bool:
        """Whether the passes run under bf16 autocast: on a GPU where the run itself trains in bf16.

        Not on a CPU, even one with AMX: there the pass (inference, small batches) measured no faster
        in bf16 than in fp32, and fp32 keeps the stored losses exact.
        """
        from core.devices import use_bf16

        device = next(model.parameters()).device.type
        return device == "cuda" and use_bf16(device, self.precision)

    def _captured_probabilities(self) -> np.ndarray | None:
        """The captured logits as probabilities in row order; None when they cannot be placed safely."""
        if self._captured is None or self.eval_order is None:
            return None
        logits, labels = self._captured
        self._captured = None
        try:
            order = np.asarray(self.eval_order(), dtype=np.int64)
        except Exception:  # an unexpected sampler: fall back to our own pass rather than guess
            return None
        n = len(self.texts)
        if len(order) != n or len(logits) != n or sorted(order.tolist()) != list(range(n)):
            return None
        # Rows arrive in the Trainer's length-grouped order; the gold labels prove the placement.
        if not np.array_equal(np.asarray(self.gold)[order], labels.reshape(-1)[:n]):
            return None
        placed = np.empty_like(logits)
        placed[order] = logits
        return softmax(placed)


def trainer_eval_order(trainer: Any) -> Callable[[], list[int]]:
    """The row order in which the Trainer evaluates its eval set (its sampler is seeded afresh each time)."""
    def order() -> list[int]:
        sampler = trainer._get_eval_sampler(trainer.eval_dataset)
        return list(sampler) if sampler is not None else list(range(len(trainer.eval_dataset)))

    return order


def _length_batches(lengths: Sequence[int], tokens_per_batch: int, max_rows: int) -> list[np.ndarray]:
    """Row positions in batches of similar length, longest first, each about `tokens_per_batch` padded tokens.

    Sorted rows waste almost nothing on padding, and the budget keeps the activations (or logits) of
    a batch the same size whether the rows are 10 or 500 tokens long.
    """
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    batches, start = [], 0
    while start < len(order):
        longest = max(1, int(lengths[order[start]]))
        size = max(1, min(max_rows, tokens_per_batch // longest))
        batches.append(order[start:start + size])
        start += size
    return batches


def _padded(rows: dict[str, list[Any]], positions: np.ndarray, tokenizer: Any) -> dict[str, Any]:
    """The rows at `positions` as right-padded tensors: each row keeps its own positions 0..n-1."""
    columns = [c for c in ("input_ids", "attention_mask", "token_type_ids") if c in rows]
    features = [{c: rows[c][p] for c in columns} for p in positions]
    batch = dict(tokenizer.pad(features, padding_side="right", return_attention_mask=True, return_tensors="pt"))
    return {c: batch[c] for c in ("input_ids", "attention_mask", "token_type_ids") if c in batch}


def _read_columns(dataset: Any, columns: Sequence[str]) -> dict[str, list[Any]]:
    """The tokenised columns the pass needs, read once as Python lists."""
    plain = dataset.with_format(None) if hasattr(dataset, "with_format") else dataset
    present = [c for c in columns if c in plain.column_names]
    return {c: plain[c] for c in present}


def _autocast(device: Any, bf16: bool):
    """bf16 autocast on the model's device when the run trains in bf16; a no-op context otherwise."""
    import contextlib

    import torch

    return torch.autocast(device_type=device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def classification_pass(model: Any, dataset: Any, tokenizer: Any, *, bf16: bool = False,
                        tokens_per_batch: int = CLASSIFICATION_TOKENS_PER_BATCH) -> np.ndarray:
    """Class probabilities [rows, classes] of every example, in row order (computed in length-sorted batches)."""
    import torch

    device = next(model.parameters()).device
    rows = _read_columns(dataset, ("input_ids", "attention_mask", "token_type_ids"))
    lengths = [len(ids) for ids in rows["input_ids"]]
    was_training = model.training
    model.eval()
    out: np.ndarray | None = None
    try:
        with torch.inference_mode(), _autocast(device, bf16):
            for positions in _length_batches(lengths, tokens_per_batch, MAX_PASS_ROWS):
                batch = _padded(rows, positions, tokenizer)
                logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
                probabilities = torch.softmax(logits.float(), dim=-1).cpu().numpy()
                if out is None:
                    out = np.empty((len(lengths), probabilities.shape[1]), dtype=np.float32)
                out[positions] = probabilities
    finally:
        model.train(was_training)
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def mlm_example_masks(input_ids: Sequence[Sequence[int]], special_tokens_mask: Sequence[Sequence[int]] | None,
                      seed: int, padding_side: str = "right",
                      attention_mask: Sequence[Sequence[int]] | None = None) -> list[np.ndarray]:
    """Per example, which of its tokens the masked-LM pass hides: a seeded ~15% of the non-special ones, at least one.

    The draws are made as the pass has always made them, batch by batch of LM_BATCH_SIZE rows in row
    order, each batch padded to its longest row on the tokenizer's padding side; so masks (and losses)
    do not depend on how the pass batches its work, and a base stage written before still matches.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    masks: list[np.ndarray] = []
    for start in range(0, len(input_ids), LM_BATCH_SIZE):
        chunk = range(start, min(len(input_ids), start + LM_BATCH_SIZE))
        width = max(len(input_ids[row]) for row in chunk)
        draws = torch.rand((len(chunk), width), generator=generator).numpy()
        for i, row in enumerate(chunk):
            n = len(input_ids[row])
            offset = width - n if padding_side == "left" else 0
            draw = draws[i, offset:offset + n]
            special = np.asarray(special_tokens_mask[row], dtype=bool) if special_tokens_mask is not None else np.zeros(n, bool)
            maskable = ~special
            if attention_mask is not None:
                maskable &= np.asarray(attention_mask[row], dtype=bool)
            chosen = maskable & (draw < MLM_MASK_FRACTION)
            if maskable.any():
                chosen[int(np.argmin(np.where(maskable, draw, 2.0)))] = True
            masks.append(chosen)
    return masks


def example_loss_pass(model: Any, dataset: Any, tokenizer: Any, task: str, seed: int, *, bf16: bool = False) -> np.ndarray:
    """Mean token loss of every example, in row order.

    Causal: next-token loss over the example's tokens. Masked: loss on a fixed, seeded 15% of its
    non-special tokens (at least one; see mlm_example_masks), replaced by the mask token; the same seed
    gives the base and the fine-tuned model the same masks, so their losses compare example by example.
    Rows go through the model in length-sorted batches, right-padded, so each example's loss is its
    own whatever its neighbours; a masked LM projects only the masked positions onto the vocabulary
    (core.models.fast_mlm), which is most of the work saved.
    """
    import torch
    import torch.nn.functional as F

    from core.models.fast_mlm import masked_only_parts

    device = next(model.parameters()).device
    rows = _read_columns(dataset, ("input_ids", "attention_mask", "token_type_ids", "special_tokens_mask"))
    count = len(rows["input_ids"])
    lengths = [len(ids) for ids in rows["input_ids"]]
    parts = masked_only_parts(model) if task == "mlm" else None
    masks = None
    if task == "mlm":
        masks = mlm_example_masks(rows["input_ids"], rows.get("special_tokens_mask"), seed,
                                  getattr(tokenizer, "padding_side", "right"), rows.get("attention_mask"))
    # Full [batch, tokens, vocabulary] logits are what bounds a batch unless only masked rows are projected.
    vocabulary = int(getattr(model.config, "vocab_size", 0) or 0) or 50_000
    budget = LM_TOKENS_PER_BATCH if parts is not None else max(64, LOGITS_BYTES_PER_BATCH // (4 * vocabulary))
    totals = np.zeros(count, dtype=np.float64)
    counted = np.zeros(count, dtype=np.int64)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), _autocast(device, bf16):
            for positions in _length_batches(lengths, budget, MAX_PASS_ROWS):
                batch = _padded(rows, positions, tokenizer)
                input_ids, attention = batch["input_ids"], batch["attention_mask"].bool()
                if task == "mlm":
                    chosen = torch.zeros_like(attention)
                    for i, p in enumerate(positions):
                        chosen[i, :lengths[p]] = torch.from_numpy(masks[p])
                    chosen &= attention
                    targets = input_ids[chosen]
                    batch["input_ids"] = torch.where(chosen, torch.full_like(input_ids, tokenizer.mask_token_id), input_ids)
                    inputs = {k: v.to(device) for k, v in batch.items()}
                    if parts is not None:
                        encoder, head = parts
                        hidden = encoder(**inputs, return_dict=True).last_hidden_state  # [B, T, H]
                        logits = head(hidden[chosen.to(device)])  # [M, V]: masked positions only
                    else:
                        logits = model(**inputs).logits[chosen.to(device)]
                else:
                    # Position t predicts token t+1; both must be real tokens of the row.
                    chosen = attention[:, 1:] & attention[:, :-1]
                    targets = input_ids[:, 1:][chosen]
                    logits = model(**{k: v.to(device) for k, v in batch.items()}).logits[:, :-1][chosen.to(device)]
                token_loss = F.cross_entropy(logits.float(), targets.to(device), reduction="none").double().cpu().numpy()
                owner = positions[chosen.nonzero()[:, 0].numpy()]  # [M]: the row each scored token belongs to
                np.add.at(totals, owner, token_loss)
                np.add.at(counted, owner, 1)
    finally:
        model.train(was_training)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counted > 0, totals / np.maximum(counted, 1), np.nan)
    return means.astype(np.float32)
