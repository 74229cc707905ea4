"""Running a signal tree over a table: every node's mask, in `datasets` batches over Arrow strings.

Regexes run in RE2 (pyarrow compute), so 100k rows take well under a second; patterns RE2 cannot
run (look-behind, back-references) fall back to Python's `re`.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pandas as pd

from core.data.cells import arrow_text
from core.data.signals import Batch, Signal, iter_nodes, signal_from_dict
from core.errors import DataError


def _node_masks(signal: Signal, batch: Batch, path: str, out: dict[str, np.ndarray]) -> np.ndarray:
    """Evaluate a node bottom-up, recording every node's mask under its path."""
    if signal.children():
        masks = [_node_masks(c, batch, f"{path}.{i}", out) for i, c in enumerate(signal.children())]
        mask = signal.combine(masks)
    else:
        mask = np.asarray(signal.evaluate(batch), dtype=bool)
    out[path] = mask
    return mask


def _columns_read(frame: pd.DataFrame, signal: Signal, text_column: str, label_column: str | None) -> set[str]:
    """The columns besides the text that the tree reads (and the label column); DataError when one is missing."""
    if text_column not in frame.columns:
        raise DataError(f"The data has no text column '{text_column}'.", field="data.text_column")
    needed = set().union(*(node.columns() for _, node in iter_nodes(signal)))
    if label_column and label_column in frame.columns:
        needed.add(label_column)
    missing = sorted(c for c in needed if c not in frame.columns)
    if missing:
        raise DataError(
            f"The signal reads column(s) {', '.join(missing)}, which the data does not have; its columns are: "
            f"{', '.join(map(str, frame.columns))}.",
            field="data.curation.signal",
        )
    return needed


def passing_rows(frame: pd.DataFrame, signal: Signal | dict[str, Any], *, text_column: str = "text",
                 label_column: str | None = "label") -> np.ndarray:
    """Which rows pass the tree, evaluated as one batch in memory: for the few thousand rows Setup's preflight
    measures, without importing `datasets` on the page's thread. Trees that need a model are not for here."""
    signal = signal_from_dict(signal)
    needed = _columns_read(frame, signal, text_column, label_column)
    texts = arrow_text(frame[text_column].reset_index(drop=True))
    columns = {name: arrow_text(frame[name].reset_index(drop=True)) for name in sorted(needed)}
    batch = Batch(texts=texts, columns=columns, label_column=label_column)
    return _node_masks(signal, batch, "0", {})


def evaluate_signal(
    frame: pd.DataFrame,
    signal: Signal | dict[str, Any],
    *,
    text_column: str = "text",
    label_column: str | None = "label",
    tokenizer: Any = None,
    batch_size: int = 16_384,
) -> dict[str, np.ndarray]:
    """Masks of every node (path -> bool array over the frame's rows), evaluated in datasets batches."""
    import datasets

    signal = signal_from_dict(signal)
    nodes = iter_nodes(signal)
    needed = _columns_read(frame, signal, text_column, label_column)
    if len(frame) == 0:
        return {path: np.zeros(0, dtype=bool) for path, _ in nodes}
    # Every column goes in as text: a label column mixing 1 and "pos" would not fit one Arrow type.
    table = {"__text__": arrow_text(frame[text_column]).to_numpy(dtype=object)}
    extra = sorted(needed)
    for i, name in enumerate(extra):
        table[f"__c{i}__"] = arrow_text(frame[name]).to_numpy(dtype=object)
    dataset = datasets.Dataset.from_dict(table).with_format("arrow")
    keys = {path: f"n{i}" for i, (path, _) in enumerate(nodes)}

    def run(arrow_batch: Any) -> dict[str, np.ndarray]:
        texts = arrow_text(arrow_batch.column("__text__").to_pandas())
        columns = {name: arrow_batch.column(f"__c{i}__").to_pandas() for i, name in enumerate(extra)}
        batch = Batch(texts=texts, columns=columns, label_column=label_column, tokenizer=tokenizer)
        out: dict[str, np.ndarray] = {}
        _node_masks(signal, batch, "0", out)
        return {keys[path]: out[path] for path in keys}

    bars_were_on = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # a progress bar per curation would flood the logs
    try:
        result = dataset.map(
            run,
            batched=True,
            batch_size=batch_size,
            remove_columns=dataset.column_names,
            new_fingerprint=uuid.uuid4().hex,  # skip hashing the closure (it may hold a model)
            keep_in_memory=True,
        )
    finally:
        if bars_were_on:
            datasets.enable_progress_bars()
    arrow = result.data
    return {path: arrow.column(key).to_numpy(zero_copy_only=False).astype(bool) for path, key in keys.items()}


def signal_counts(
    frame: pd.DataFrame,
    signal: Signal | dict[str, Any],
    *,
    text_column: str = "text",
    label_column: str | None = "label",
    tokenizer: Any = None,
) -> dict[str, int]:
    """Rows passing each node on its own (node path -> count), e.g. {"0": 812, "0.0": 3011, ...}."""
    masks = evaluate_signal(frame, signal, text_column=text_column, label_column=label_column, tokenizer=tokenizer)
    return {path: int(mask.sum()) for path, mask in masks.items()}
