"""Per-example predictions on the evaluation set, and what they say about the fine-tune.

runs/<id>/predictions/
    meta.json            task, label names, rows used / rows in the eval set       written atomically
    base.parquet         the base model, before training                          written atomically
    eval-00000050.parquet  the model at each evaluation (classification)           written atomically
    final.parquet        the fine-tuned model at the end                           written atomically

Every stage file holds one row per evaluation example: `row` (position in the used eval rows) and
`text`; for classification `gold`, `predicted`, `confidence` and one `prob:<label>` column per class;
for masked and causal LMs `loss`, the mean token loss of the example; for instruction tuning the generated
answers too (core.insight.answer_pass: `input`, `reference`, `answer`, `exact_match`, and `gold`, `predicted`,
`correct`, `confidence` as a classifier's), the base model prompted with the run's few-shot examples and the
fine-tuned model without them (meta.json's `shots`). A prompt run (no training) stores only its final stage.

Reading is pure functions on pandas frames (no torch at import: the Evaluate page and the report use
them); core.insight.analysis says what the frames mean. The `PredictionRecorder` is the engine's side:
it runs the passes of core.insight.example_pass, which import torch only when called.
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

from core.data.instructions import conversation_preview
from core.files import FILE_MODE, atomic_write_json
from core.insight.answer_pass import (
    AnswerScores,
    AnswerSettings,
    answer_frame,
    answer_pass,
    answer_scores,
    plan_answers,
)
from core.insight.example_pass import classification_pass, example_loss_pass
from core.run.folder import RunFolder

META_FILE = "meta.json"
# What a generated answer that names none of the labels counts as, wherever labels are compared.
NO_LABEL = "(no label)"
PROB_PREFIX = "prob:"
# A language model's per-example losses are computed on at most this many evaluation rows (a fixed
# sample: the eval set arrives shuffled with the run's seed). The base pass runs before step 1, and
# the encoder's cost per row cannot be cut further; 500 examples still rank the largest improvements
# and regressions, and the Evaluate page and the report say that a sample was used.
LM_EXAMPLE_ROWS = 500


# ---- files -----------------------------------------------------------------------------------

def stage_file_name(stage: str, step: int | None = None) -> str:
    """'base.parquet', 'final.parquet' or 'eval-00000050.parquet'."""
    return f"eval-{int(step or 0):08d}.parquet" if stage == "eval" else f"{stage}.parquet"


def write_frame_atomically(path: Path, frame: pd.DataFrame) -> None:
    """Write a parquet file via a temp file and a rename, so a reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.fchmod(fd, FILE_MODE)
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
        data = json.loads((RunFolder(Path(run_path)).predictions_path / META_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def list_stages(run_path: Path | str) -> list[tuple[str, int | None]]:
    """The stored stages as (stage, step), in training order: base, evaluations by step, final."""
    folder = RunFolder(Path(run_path)).predictions_path
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
    path = RunFolder(Path(run_path)).predictions_path / stage_file_name(stage, step)
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

    @property
    def has_answers(self) -> bool:
        """Whether the stages hold generated answers (instruction tuning)."""
        return any(frame is not None and "answer" in frame.columns for frame in (self.base, self.tuned))

    @property
    def has_labels(self) -> bool:
        """Whether the stages name labels: a classifier's, or generated answers mapped to a small label set."""
        return self.task == "classification" or (self.has_answers and bool(self.label_names))

    @property
    def prompted(self) -> bool:
        """Whether the run is a prompt run: its only stage is the base model's answers, no training."""
        return bool(self.meta.get("prompted"))

    def shots(self, stage: str) -> int:
        """How many few-shot examples the prompts of a stage ('base' or 'final') carried."""
        return int((self.meta.get("shots") or {}).get(stage) or 0)

    def shown_labels(self) -> list[str]:
        """The label names, and NO_LABEL last when an answer named none of them (a confusion's extra column)."""
        unlabelled = any(frame is not None and (frame["predicted"] == NO_LABEL).any()
                         for frame in (self.base, self.tuned) if frame is not None and "answer" in frame.columns)
        return self.label_names + ([NO_LABEL] if unlabelled else [])


def load_predictions(run_path: Path | str) -> RunPredictions | None:
    """The base and latest fine-tuned stage of a run; None when it stored no predictions."""
    meta = read_meta(run_path)
    if meta is None:
        return None
    stages = list_stages(run_path)
    base = _labelled(load_stage(run_path, "base") if ("base", None) in stages else None, meta)
    tuned, tuned_stage, tuned_step = None, None, None
    for stage, step in reversed(stages):
        if stage == "base":
            continue
        tuned = _labelled(load_stage(run_path, stage, step), meta)
        if tuned is not None:
            tuned_stage, tuned_step = stage, step if step is not None else meta.get("final_step")
            break
    if base is None and tuned is None:
        return None
    return RunPredictions(meta, base, tuned, tuned_stage, tuned_step, stages)


def _labelled(frame: pd.DataFrame | None, meta: dict[str, Any]) -> pd.DataFrame | None:
    """A stage of answers mapped to labels, an answer that names none counted as NO_LABEL (stored as null)."""
    if frame is None or "answer" not in frame.columns or not meta.get("label_names"):
        return frame
    return frame.assign(predicted=frame["predicted"].fillna(NO_LABEL))


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

class PredictionRecorder:
    """Writes the stages of one run. The engine calls `base`, `after_evaluate` and `final` (a prompt run:
    `prompted`) on the main process only; `wrap_compute_metrics` runs on every rank and keeps the
    evaluation's logits so the classification stages cost no extra pass. `answers`: instruction tuning's
    few-shot examples and label set (core.training.prompting.answer_settings)."""

    def __init__(self, run_path: Path, task: str, eval_rows: Any, total_rows: int, label_names: list[str] | None,
                 eval_dataset: Any, tokenizer: Any, seed: int, *, precision: str = "fp32",
                 answers: AnswerSettings | None = None):
        self.folder = RunFolder(Path(run_path)).predictions_path
        self.task = task
        if task != "classification" and len(eval_rows) > LM_EXAMPLE_ROWS:
            # Classification keeps every row: its evaluation stages reuse the Trainer's logits of the whole set.
            eval_rows, eval_dataset = eval_rows.select(range(LM_EXAMPLE_ROWS)), eval_dataset.select(range(LM_EXAMPLE_ROWS))
        texts = [str(t) for t in eval_rows["text"]]
        # Instruction data holds each chat as JSON: the Evaluate page and the report show it as prompt -> answer.
        self.texts = [conversation_preview(t) for t in texts] if task == "sft" else texts
        self.gold = [int(g) for g in eval_rows["label"]] if task == "classification" else None
        self.answer_plan = plan_answers(texts, answers) if task == "sft" and answers is not None else None
        self.label_names = list(label_names or (self.answer_plan.label_names if self.answer_plan else None) or [])
        self.shots: dict[str, int] = {}  # few-shot examples per stored stage
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

    def base(self, model: Any) -> AnswerScores | None:
        """The base stage: one prediction pass before training; instruction tuning's answer scores, else None."""
        def write() -> AnswerScores | None:
            self.write_meta()
            return self._write_pass("base", model, with_examples=True)

        return self._guarded("base", write)

    def after_evaluate(self, step: int, model: Any) -> None:
        """An evaluation stage (classification only: LM losses are stored at base and final)."""
        if self.task == "classification":
            self._guarded(f"evaluation at step {step}", lambda: self._write_evaluation(step, model))

    def final(self, step: int, model: Any) -> AnswerScores | None:
        """The final stage: the evaluation at this step (classification) or one loss pass (LM; sft with answers)."""
        def write() -> AnswerScores | None:
            scores = None
            if self._last_evaluation is not None and self._last_evaluation[0] == step:
                frame = classification_frame(self.texts, self.gold, self._last_evaluation[1], self.label_names)
                write_frame_atomically(self.folder / stage_file_name("final"), frame)
            else:
                scores = self._write_pass("final", model)
            self.write_meta(final_step=int(step))
            return scores

        return self._guarded("final", write)

    def prompted(self, model: Any, *, should_stop: Callable[[], bool] | None = None,
                 on_batch: Callable[[int, int], None] | None = None) -> AnswerScores | None:
        """A prompt run's one stage, stored as final: the base model's answers with the run's few-shot examples.

        Unlike the other stages its failures are raised, not reported: the answers are the run's result.
        None when should_stop() turned true between two batches (nothing is stored then).
        """
        if self.answer_plan is None:
            raise ValueError("A prompt run's recorder needs the answer settings (task sft).")
        scores = self._write_pass("final", model, with_examples=True, with_losses=False, should_stop=should_stop,
                                  on_batch=on_batch)
        if scores is not None:
            self.write_meta(final_step=0, prompted=True)
        return scores

    def _guarded(self, what: str, action: Callable[[], Any]) -> Any:
        # Per-example predictions are an extra: a failure there is reported, never fails the run.
        try:
            return action()
        except Exception as err:  # noqa: BLE001 - reported through on_error, the run goes on
            self.on_error(f"Per-example predictions ({what}) could not be stored: {type(err).__name__}: {err}")
            return None

    def _write_evaluation(self, step: int, model: Any) -> None:
        probabilities = self._captured_probabilities()
        if probabilities is None:
            probabilities = classification_pass(model, self.eval_dataset, self.tokenizer, bf16=self._bf16(model))
        self._last_evaluation = (step, probabilities)
        write_frame_atomically(self.folder / stage_file_name("eval", step),
                               classification_frame(self.texts, self.gold, probabilities, self.label_names))

    def _write_pass(self, stage: str, model: Any, *, with_examples: bool = False, with_losses: bool = True,
                    should_stop: Callable[[], bool] | None = None,
                    on_batch: Callable[[int, int], None] | None = None) -> AnswerScores | None:
        """One stage's passes written to its file; the answers' scores (instruction tuning), else None.

        with_examples: the prompts carry the run's few-shot examples (the base model's, never a fine-tuned one's).
        """
        bf16 = self._bf16(model)
        scores = None
        if self.task == "classification":
            probabilities = classification_pass(model, self.eval_dataset, self.tokenizer, bf16=bf16)
            frame = classification_frame(self.texts, self.gold, probabilities, self.label_names)
        else:
            losses = (example_loss_pass(model, self.eval_dataset, self.tokenizer, self.task, self.seed, bf16=bf16)
                      if with_losses else None)
            if self.answer_plan is None:
                frame = loss_frame(self.texts, losses)
            else:
                result = answer_pass(model, self.tokenizer, self.answer_plan, with_examples=with_examples,
                                     should_stop=should_stop, on_batch=on_batch)
                if result is None:
                    return None
                frame = answer_frame(self.texts, self.answer_plan, result, losses)
                scores = answer_scores(self.answer_plan, result)
                self.shots[stage] = result.shots
                self.write_meta(shots=dict(self.shots))
        write_frame_atomically(self.folder / stage_file_name(stage), frame)
        return scores

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
