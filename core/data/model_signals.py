"""Model-based signals: load a classifier or language model once and score texts with it.

The sentiment-by-model and confidence signals (core.data.signals) ask here. Models load through
core.models.load_saved, the one loader; at most two stay in memory at a time.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import DataError, ModelError

# What a signal asks for -> the task whose head answers it; "auto" takes the saved model's own head.
_HEAD_TASKS = {"classifier": "classification", "masked": "mlm", "causal": "causal"}
_TASK_HEADS = {task: head for head, task in _HEAD_TASKS.items()}


@dataclass
class SignalModel:
    """A loaded model (eval mode), its tokenizer, and its head: "classifier" | "masked" | "causal"."""

    model: Any
    tokenizer: Any
    head: str


_MODELS: dict[tuple[str, str], SignalModel] = {}
_MODELS_LOCK = threading.Lock()


def resolve_model_folder(value: str) -> Path:
    """A model folder from a path, a run folder (its final/ model) or a run id under the runs root.

    The folder holds a full model (config.json) or a run's LoRA adapter (adapter_config.json),
    which loads onto its base model in memory.
    """
    candidates = [Path(value).expanduser()]
    runs_root = Path(os.environ.get("TUNEBOARD_RUNS", "runs"))
    candidates += [candidates[0] / "final", runs_root / value / "final"]
    for folder in candidates:
        if (folder / "config.json").is_file():
            return folder.resolve()
    for folder in candidates:
        if (folder / "adapter_config.json").is_file():
            if not (folder.parent / "config.yaml").is_file():
                raise DataError(
                    f"{value} holds a LoRA adapter outside a run folder, so its task is unknown: pick the run "
                    "itself, or export it with 'merge' to get a full model.",
                    field="data.curation.signal",
                )
            return folder.resolve()
    raise DataError(
        f"No model found at {value!r}: pick a finished run, or give a model folder (with config.json) or a run folder.",
        field="data.curation.signal",
    )


def _saved_task_and_labels(folder: Path) -> tuple[str, tuple[str, ...] | None]:
    """The head a saved model has and, for a run's adapter, the classes its run trained with."""
    from core.models import saved_task

    if (folder / "config.json").is_file():
        return saved_task(folder), None
    from core.models.export import run_label_names
    from core.run.folder import RunFolder

    run = RunFolder(folder.parent)
    return run.config().task, run_label_names(run)


def load_signal_model(value: str, head: str) -> SignalModel:
    """Load (once per folder and head) a model for a signal; head "auto" uses the folder's own head."""
    from core.models import load_saved

    folder = resolve_model_folder(value)
    key = (str(folder), head)
    with _MODELS_LOCK:
        if key in _MODELS:
            return _MODELS[key]
        try:
            own_task, label_names = _saved_task_and_labels(folder)
            task = own_task if head == "auto" else _HEAD_TASKS[head]
            model, tokenizer = load_saved(folder, task, label_names if task == own_task else None)
        except ModelError as err:
            raise DataError(
                f"The model at {folder} could not be loaded for curation: {err}", field="data.curation.signal"
            ) from None
        if len(_MODELS) >= 2:  # keep memory bounded: at most two curation models at a time
            _MODELS.pop(next(iter(_MODELS)))
        _MODELS[key] = SignalModel(model=model, tokenizer=tokenizer, head=_TASK_HEADS[task])
        return _MODELS[key]


def polarity_indices(config: Any, where: str) -> tuple[int, int]:
    """Which output is positive and which negative: by label names, else 1/0 for two labels."""
    names = {int(i): str(n).lower() for i, n in (config.id2label or {}).items()}
    positive = [i for i, n in names.items() if n.startswith("pos")]
    negative = [i for i, n in names.items() if n.startswith("neg")]
    if len(positive) == 1 and len(negative) == 1:
        return positive[0], negative[0]
    if config.num_labels == 2:
        return 1, 0  # Tuneboard's convention (and the synthetic data's): 1 positive, 0 negative
    raise DataError(
        f"Cannot tell which label of the model {where} is positive (labels: {', '.join(names.values())}): "
        "use a two-label classifier or one with labels named positive/negative.",
        field="data.curation.signal",
    )


def classifier_probs(loaded: SignalModel, texts: list[str], batch_size: int = 32) -> np.ndarray:
    """Label probabilities per text (shape: texts x labels)."""
    import torch

    rows = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            enc = loaded.tokenizer(
                texts[start : start + batch_size], padding=True, truncation=True, max_length=128, return_tensors="pt"
            )
            logits = loaded.model(**enc).logits.float()
            rows.append(torch.softmax(logits, dim=-1).numpy())
    return np.concatenate(rows) if rows else np.zeros((0, loaded.model.config.num_labels))


def lm_confidence(loaded: SignalModel, texts: list[str], batch_size: int = 8) -> np.ndarray:
    """Mean over real tokens of the top token probability (shapes: logits B x T x V)."""
    import torch

    out = np.ones(len(texts), dtype=np.float64)
    todo = [i for i, t in enumerate(texts) if t.strip()]
    with torch.inference_mode():
        for start in range(0, len(todo), batch_size):
            idx = todo[start : start + batch_size]
            enc = loaded.tokenizer(
                [texts[i] for i in idx],
                padding=True,
                truncation=True,
                max_length=128,
                return_tensors="pt",
                return_special_tokens_mask=True,
            )
            special = enc.pop("special_tokens_mask")
            logits = loaded.model(**enc).logits.float()
            # max softmax = exp(max logit - logsumexp): avoids a second B x T x V tensor.
            top = torch.exp(logits.max(dim=-1).values - torch.logsumexp(logits, dim=-1))
            valid = enc["attention_mask"].bool() & ~special.bool()
            if loaded.head == "causal":
                top, valid = top[:, :-1], enc["attention_mask"][:, 1:].bool()  # position t predicts t+1
            counts = valid.sum(dim=1).clamp(min=1)
            mean = (top * valid).sum(dim=1) / counts
            for j, i in enumerate(idx):
                out[i] = float(mean[j]) if valid[j].any() else 1.0
    return out
