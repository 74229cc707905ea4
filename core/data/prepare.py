"""From a RunConfig to training and evaluation `datasets.Dataset`s: load, curate, shuffle, split, encode.

Order: load the source -> curate (integrity checks + signal) -> drop what cannot train in any case
(null texts, and for classification missing / unparseable labels, even when curation only flagged
them) -> shuffle with the run's seed -> cap at data.max_rows -> split (stratified for
classification) or read the separate evaluation file -> encode labels -> build Datasets.

The evaluation file gets the integrity checks but not the signal: it measures the model on the data
the user chose for evaluation, and rows whose label the training data lacks are dropped and counted.

Tokenising is not done here: `BatchEncoder` and `lazily_tokenized` let the engine tokenise each batch
as the Trainer fetches it, so a million rows start training as soon as a hundred would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from core.config import RunConfig
from core.data.integrity import CurationResult, curate
from core.data.signals import canonical_labels, null_text_mask, parse_labels
from core.data.sources import check_columns, load_frame, read_table
from core.errors import DataError


@dataclass
class PreparedData:
    """Training / evaluation Datasets ("text", plus int "label" for classification) and the data report.

    `eval` is None when no evaluation file is given and data.validation_fraction is 0.
    """

    train: Any  # datasets.Dataset
    eval: Any  # datasets.Dataset | None
    label_names: list[str] | None
    report: dict[str, Any]


def _usable(kept: pd.DataFrame, text_column: str, label_column: str, task: str) -> tuple[np.ndarray, dict[str, int]]:
    """Rows that can train, and counts of those that cannot (flag mode keeps them in `kept`)."""
    null = null_text_mask(kept[text_column])
    usable = ~null
    dropped = {"null_text": int(null.sum())}
    if task == "classification":
        _, _, missing, unparseable = parse_labels(kept[label_column])
        dropped["missing_label"] = int((missing & usable).sum())
        usable &= ~missing
        dropped["unparseable_label"] = int((unparseable & usable).sum())
        usable &= ~unparseable
    return usable, {k: v for k, v in dropped.items() if v}


def _label_encoding(canon: pd.Series, kind: str, hint: list[str] | None) -> tuple[dict[str, int], list[str]]:
    """Map canonical label strings to ids: 0..K-1 ints stay, other ints and names sort into ids."""
    if kind == "int":
        values = sorted({int(v) for v in canon})
        if hint and all(0 <= v < len(hint) for v in values):
            return {str(v): v for v in values}, list(hint)  # e.g. synthetic 0/1 = negative/positive
        if values == list(range(len(values))):
            return {str(v): v for v in values}, [str(v) for v in values]
        return {str(v): i for i, v in enumerate(values)}, [str(v) for v in values]
    names = sorted(set(canon))
    return {name: i for i, name in enumerate(names)}, names


def _split(n: int, labels: np.ndarray | None, fraction: float, seed: int, warnings: list[str]) -> tuple[np.ndarray, np.ndarray, str]:
    """Positions of train and eval rows: stratified by label when every class can be split."""
    if n < 2:
        raise DataError(
            f"Only {n} usable row(s): there is nothing to hold out for evaluation. Add data, loosen the "
            "curation, or set data.validation_fraction to 0.",
            field="data.validation_fraction",
        )
    n_eval = min(max(int(round(n * fraction)), 1), n - 1)
    positions = np.arange(n)
    if labels is not None:
        counts = np.bincount(labels)
        classes = int((counts > 0).sum())
        if counts[counts > 0].min() >= 2 and classes <= n_eval <= n - classes:
            from sklearn.model_selection import train_test_split

            train, held = train_test_split(positions, test_size=n_eval, stratify=labels, random_state=seed)
            return np.sort(train), np.sort(held), "stratified"
        warnings.append(
            "some classes are too small to split evenly: the validation split is random, not stratified"
        )
    # What sklearn's train_test_split(shuffle=True, random_state=seed) draws, without importing sklearn
    # (half a second before a language model's first step).
    permuted = np.random.RandomState(seed).permutation(n)
    return np.sort(permuted[n_eval:]), np.sort(permuted[:n_eval]), "random"


def _text_array(column: pd.Series) -> Any:
    """The texts as an Arrow string array, each as str() writes it; no Python string per row for a string column."""
    import pyarrow as pa

    try:
        values = pa.array(column, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        values = None
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if values is None or not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        return pa.array(column.astype(str).tolist(), type=pa.string())
    return values.cast(pa.string())


def _dataset(texts: Any, labels: list[int] | None, names: list[str] | None) -> Any:
    """An in-memory Dataset built straight from Arrow arrays (from_dict encodes row by row: seconds per million).

    texts: a list of strings or an Arrow string array.
    """
    import datasets
    import pyarrow as pa
    from datasets.table import InMemoryTable

    columns = {"text": texts if isinstance(texts, pa.Array) else pa.array(texts, type=pa.string())}
    features = {"text": datasets.Value("string")}
    if labels is not None:
        columns["label"] = pa.array(labels, type=pa.int64())
        features["label"] = datasets.ClassLabel(names=names)
    table = InMemoryTable(pa.table(columns))
    return datasets.Dataset(table, info=datasets.DatasetInfo(features=datasets.Features(features)))


# ---- tokenising as the Trainer asks for rows -------------------------------------------------

LENGTH_COLUMN = "length"  # the Trainer's length_column_name: what length-grouped batching sorts by


class BatchEncoder:
    """Tokenises a batch of rows as the model trains on them: ids and masks, plus labels for classification.

    No padding: the collator pads each batch to its own longest row. Truncation at max_length only
    bounds what curation's too-long check could not cut by text (slow tokenizers). One encoder
    serves both the lazy transform and an eager `Dataset.map`, so both give the same token ids.
    """

    def __init__(self, tokenizer: Any, task: str, max_length: int):
        self.tokenizer = tokenizer
        self.task = task
        self.max_length = int(max_length)

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        """{"text": [...], "label": [...]?} -> {"input_ids": [...], "attention_mask": [...], ...}."""
        encoded = self.tokenizer(
            [str(text) for text in batch["text"]], truncation=True, max_length=self.max_length,
            return_special_tokens_mask=self.task == "mlm",
        )
        out = {key: list(value) for key, value in encoded.items()}
        if self.task == "classification" and "label" in batch:
            out["labels"] = [int(label) for label in batch["label"]]
        return out


def with_text_lengths(dataset: Any) -> Any:
    """The dataset plus a LENGTH_COLUMN of characters per text, computed by Arrow in one pass.

    Length-grouped batching only needs to rank rows by size; characters rank them nearly as token
    counts do, without a tokenizer pass over every row before the first step.
    """
    import pyarrow.compute as pc

    texts = dataset.with_format("arrow")["text"]  # honours a select()/shuffle() indices mapping
    lengths = pc.fill_null(pc.utf8_length(texts), 0).cast("int32")
    return dataset.add_column(LENGTH_COLUMN, lengths.to_numpy(zero_copy_only=False),
                              new_fingerprint=f"{dataset._fingerprint}-text-lengths")


def lazily_tokenized(dataset: Any, encoder: BatchEncoder) -> Any:
    """The rows with approximate lengths, tokenised batch by batch when the Trainer fetches them.

    `dataset[indices]` (what a DataLoader asks for a batch) runs `encoder` on those rows only, so
    the work before the first step does not grow with the row count, and under DDP each rank
    tokenises only the batches its sampler shard fetches.
    """
    columns = [c for c in ("text", "label") if c in dataset.column_names]
    return with_text_lengths(dataset).with_transform(encoder, columns=columns)


def length_column(dataset: Any, name: str = LENGTH_COLUMN) -> list[int] | None:
    """The dataset's length column as a list, read through Arrow (never through its transform); None without one."""
    import datasets

    if not isinstance(dataset, datasets.Dataset) or name not in dataset.column_names:
        return None
    return dataset.with_format("arrow")[name].to_pylist()


def _counts(ids: list[int], names: list[str]) -> dict[str, int]:
    counts = np.bincount(np.asarray(ids, dtype=np.int64), minlength=len(names))
    return {name: int(c) for name, c in zip(names, counts, strict=True)}


def _merge(target: dict[str, int], extra: dict[str, int]) -> None:
    for key, value in extra.items():
        target[key] = target.get(key, 0) + value


def prepare_data(cfg: RunConfig, tokenizer: Any = None, *, max_length: int | None = None) -> PreparedData:
    """Load, curate, shuffle, cap, split and encode the configured data into Datasets plus a report.

    With the model's tokenizer (and its capped max_length) the too-long check runs; without, it is
    skipped and reported so.
    """
    d, task = cfg.data, cfg.task
    max_length = max_length or cfg.model.max_length
    seed = cfg.training.seed
    frame = load_frame(d)
    what = "The synthetic data" if d.source == "synthetic" else f"'{d.path}'"
    check_columns(frame, d, task, what=what)
    result: CurationResult = curate(frame, d, task, tokenizer, max_length=max_length)
    warnings: list[str] = list(result.report.get("read", {}).get("warnings", []))
    dropped = dict(result.report["removed"])

    usable, extra = _usable(result.kept, d.text_column, d.label_column, task)
    _merge(dropped, extra)
    pool = result.kept[usable]
    if len(pool) == 0:
        reasons = ", ".join(f"{n} {k}" for k, n in dropped.items()) or "none"
        raise DataError(
            f"No rows are left to train on ({len(frame)} read; removed: {reasons}). Loosen the curation "
            "signal or fix the data.",
            field="data.curation.signal",
        )

    # Shuffle once with the run's seed: the same config always trains on the same rows.
    order = np.random.default_rng(seed).permutation(len(pool))
    pool = pool.iloc[order]
    split_fraction = 0.0 if d.eval_path else d.validation_fraction
    if d.max_rows is not None:
        # Keep enough rows that the training split itself holds max_rows.
        total = d.max_rows + (math.ceil(d.max_rows * split_fraction / (1 - split_fraction)) if split_fraction else 0)
        pool = pool.iloc[:total]
    texts = _text_array(pool[d.text_column])

    names: list[str] | None = None
    ids: np.ndarray | None = None
    mapping: dict[str, int] = {}
    if task == "classification":
        canon = canonical_labels(pool[d.label_column])
        _, kind, _, _ = parse_labels(pool[d.label_column])
        mapping, names = _label_encoding(canon, kind, frame.attrs.get("label_names") or result.report.get("label_names"))
        ids = canon.map(mapping).to_numpy(dtype=np.int64)
        if len(set(ids.tolist())) < 2:
            only = names[int(ids[0])]
            raise DataError(
                f"Classification needs at least two classes, but every usable row has the label {only!r}. "
                "Use data with more than one label, loosen the curation signal, or choose the mlm task.",
                field="data.label_column",
            )

    eval_report = None
    if d.eval_path:
        train_pos, eval_pos, split = np.arange(len(pool)), np.array([], dtype=np.int64), "eval_file"
    elif d.validation_fraction == 0:
        train_pos, eval_pos, split = np.arange(len(pool)), None, "none"
    else:
        train_pos, eval_pos, split = _split(len(pool), ids, d.validation_fraction, seed, warnings)
    if d.max_rows is not None:
        train_pos = train_pos[: d.max_rows]

    train_texts = texts.take(np.asarray(train_pos, dtype=np.int64))
    train_ids = ids[train_pos].tolist() if ids is not None else None
    if train_ids is not None and len(set(train_ids)) < 2:
        raise DataError(
            "After the validation split the training rows hold a single class: add rows of the other "
            "classes or lower data.validation_fraction.",
            field="data.validation_fraction",
        )
    train = _dataset(train_texts, train_ids, names)

    evaluation = None
    eval_ids: list[int] | None = None
    if d.eval_path:
        eval_frame = read_table(d.eval_path)
        check_columns(eval_frame, d, task, what=f"The evaluation file '{d.eval_path}'")
        eval_result = curate(
            eval_frame,
            d,
            task,
            tokenizer,
            max_length=max_length,
            expected_labels=list(mapping) if task == "classification" else None,
            apply_signal=False,
        )
        eval_usable, _ = _usable(eval_result.kept, d.text_column, d.label_column, task)
        if task == "classification":
            # In flag mode unexpected labels are only flagged; they still cannot be evaluated.
            eval_usable &= canonical_labels(eval_result.kept[d.label_column]).isin(list(mapping)).to_numpy(dtype=bool)
        eval_pool = eval_result.kept[eval_usable]
        if len(eval_pool) == 0:
            raise DataError(
                f"The evaluation file '{d.eval_path}' has no usable rows after the integrity checks: fix it or "
                "leave the evaluation file empty to hold out part of the training data.",
                field="data.eval_path",
            )
        eval_texts = eval_pool[d.text_column].astype(str).tolist()
        if task == "classification":
            eval_ids = canonical_labels(eval_pool[d.label_column]).map(mapping).to_numpy(dtype=np.int64).tolist()
        evaluation = _dataset(eval_texts, eval_ids, names)
        eval_report = eval_result.report
    elif eval_pos is not None:
        eval_ids = ids[eval_pos].tolist() if ids is not None else None
        evaluation = _dataset(texts.take(np.asarray(eval_pos, dtype=np.int64)), eval_ids, names)

    report: dict[str, Any] = {
        "task": task,
        "source": result.report["source"],
        "rows_read": int(len(frame)),
        "dropped": dropped,
        "rows_usable": int(usable.sum()),
        "max_rows": d.max_rows,
        "split": split,
        "train_rows": len(train),
        "eval_rows": len(evaluation) if evaluation is not None else 0,
        "label_names": names,
        "train_label_counts": _counts(train_ids, names) if train_ids is not None and names else None,
        "eval_label_counts": _counts(eval_ids, names) if eval_ids is not None and names else None,
        "warnings": warnings,
        "curation": result.report,
        "eval_curation": eval_report,
    }
    return PreparedData(train=train, eval=evaluation, label_names=names, report=report)
