"""From a RunConfig to training and evaluation `datasets.Dataset`s: load, curate, shuffle, split, encode.

Order: load the source -> curate (integrity checks + signal) -> drop what cannot train in any case
(null texts, and for classification missing / unparseable labels, even when curation only flagged
them) -> shuffle with the run's seed -> cap at data.max_rows -> split (stratified for
classification) or read the separate evaluation file -> encode labels -> build Datasets.

The evaluation file gets the integrity checks but not the signal: it measures the model on the data
the user chose for evaluation, and rows whose label the training data lacks are dropped and counted.

Tokenising is not done here: `BatchEncoder` and `lazily_tokenized` let the engine tokenise each batch
as the Trainer fetches it, so a million rows start training as soon as a hundred would.

Instruction tuning (task sft) takes its own path (_prepare_instructions): every row becomes a chat
(core.data.instructions, which refuses a bad row by file, line and field), held in the "text" column
as JSON, and `ConversationEncoder` renders and masks it batch by batch. A chat that repeats an earlier
one is dropped as a repeated text is (run_conversations); the other integrity checks and the signals,
which read one text column, do not apply to chats.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.config import RunConfig
from core.data.cells import canonical_labels, null_text_mask, parse_labels
from core.data.columns import check_columns
from core.data.integrity import CurationResult, curate
from core.data.probe_texts import run_probe_texts
from core.data.rows import load_frame, load_rows
from core.data.tables import read_table
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
    # The probes the run scores (core.data.probe_texts), chosen from the rows read here: reading the
    # source again only for them cost a second pass over the file (~1.5 s at a million rows).
    probe_texts: list[str] | None = None


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


def split_positions(n: int, labels: np.ndarray | None, fraction: float, seed: int, warnings: list[str]) -> tuple[np.ndarray, np.ndarray, str]:
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


class ConversationEncoder:
    """Tokenises chats (JSON in the "text" column) for instruction tuning: ids, mask and labels (-100 off the answers).

    Counts the distinct rows whose prompt was cut from the left (and whose answer alone was too long)
    as it meets them, for the run log; the truncated_* flags of encode_conversation go no further.
    """

    def __init__(self, tokenizer: Any, max_length: int, *, train_on_prompt: bool = False,
                 chat_template: str | None = None):
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.train_on_prompt = bool(train_on_prompt)
        self.chat_template = chat_template
        self.cut_prompts: set[int] = set()
        self.cut_answers: set[int] = set()

    def __call__(self, batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        """{"text": [chat JSON, ...]} -> {"input_ids": [...], "attention_mask": [...], "labels": [...]}."""
        from core.data.instructions import encode_conversation

        out: dict[str, list[Any]] = {"input_ids": [], "attention_mask": [], "labels": []}
        for text in batch["text"]:
            encoded = encode_conversation(self.tokenizer, json.loads(text), self.max_length,
                                          train_on_prompt=self.train_on_prompt, chat_template=self.chat_template)
            for key in out:
                out[key].append(encoded[key])
            if encoded["truncated_prompt"]:
                self.cut_prompts.add(hash(text))
            if encoded["truncated_answer"]:
                self.cut_answers.add(hash(text))
        return out

    def truncation_note(self, what: str = "") -> str | None:
        """The run log's line about what was cut, or None when nothing was."""
        if not self.cut_prompts:
            return None
        n = len(self.cut_prompts)
        where = f" in the {what} set" if what else ""
        note = (f"{n} prompt{'s were' if n != 1 else ' was'} cut from the left to fit max_length "
                f"({self.max_length} tokens){where}.")
        if self.cut_answers:
            note += f" {len(self.cut_answers)} answer(s) were longer than max_length on their own and lost their end."
        return note


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
    max_length = max_length or cfg.model.max_length
    if cfg.task == "sft":
        return _prepare_instructions(cfg)
    frame = _load(cfg)
    probe_texts = run_probe_texts(cfg, frame)
    result = curate(frame, cfg.data, cfg.task, tokenizer, max_length=max_length)
    warnings: list[str] = list(result.report.get("read", {}).get("warnings", []))
    pool, dropped, usable = _training_pool(result, cfg, rows_read=len(frame))
    pool = _shuffle_and_cap(pool, cfg)
    texts = _text_array(pool[cfg.data.text_column])
    labels = _encode_labels(pool, cfg, frame.attrs.get("label_names") or result.report.get("label_names"))
    train_pos, eval_pos, split = _split_rows(len(pool), labels.ids, cfg, warnings)
    train, train_ids = _train_dataset(texts, train_pos, labels)
    if cfg.data.eval_path:
        evaluation, eval_ids, eval_report = _eval_file_dataset(cfg, tokenizer, max_length, labels)
    else:
        evaluation, eval_ids = _held_out_dataset(texts, eval_pos, labels)
        eval_report = None
    report = _report(
        cfg, result, rows_read=len(frame), dropped=dropped, usable=usable, split=split, labels=labels,
        train=train, train_ids=train_ids, evaluation=evaluation, eval_ids=eval_ids, eval_report=eval_report,
        warnings=warnings,
    )
    return PreparedData(train=train, eval=evaluation, label_names=labels.names, report=report, probe_texts=probe_texts)


def _prepare_instructions(cfg: RunConfig) -> PreparedData:
    """Instruction data as chats (JSON strings in "text"): read, validated, shuffled, capped and split."""
    from core.data.instructions import classification_labels, run_conversations

    d = cfg.data
    frame = load_rows(d)
    probe_texts = run_probe_texts(cfg, frame)
    chats, shape, dropped = run_conversations(frame, d)
    warnings: list[str] = list((frame.attrs.get("read_report") or {}).get("warnings", []))
    pool = pd.DataFrame({"text": [json.dumps(chat, ensure_ascii=False) for chat in chats]})
    pool = _shuffle_and_cap(pool, cfg)
    texts = _text_array(pool["text"])
    train_pos, eval_pos, split = _split_rows(len(pool), None, cfg, warnings)
    train = _dataset(texts.take(np.asarray(train_pos, dtype=np.int64)), None, None)
    eval_shape = None
    if d.eval_path:
        eval_frame = read_table(d.eval_path)
        eval_chats, eval_shape, _ = run_conversations(eval_frame, d, labelled=shape == "labels")
        evaluation = _dataset([json.dumps(chat, ensure_ascii=False) for chat in eval_chats], None, None)
    else:
        evaluation, _ = _held_out_dataset(texts, eval_pos, _Labels())
    # In the order the prompt template lists them, so that evaluation asks exactly as training did.
    answers = classification_labels(frame, d.label_column) if shape == "labels" else None
    report = {
        "task": cfg.task,
        "source": frame.attrs.get("source") or {"source": d.source, "path": d.path},
        "format": shape,
        "eval_format": eval_shape,
        "rows_read": len(frame),
        "dropped": dropped,
        "rows_usable": len(chats),
        "max_rows": d.max_rows,
        "split": split,
        "train_rows": len(train),
        "eval_rows": len(evaluation) if evaluation is not None else 0,
        "label_names": None,
        "answer_labels": answers,  # labelled texts: the answers come from this set
        "train_label_counts": None,
        "eval_label_counts": None,
        "warnings": warnings,
        "curation": None,
        "eval_curation": None,
    }
    return PreparedData(train=train, eval=evaluation, label_names=None, report=report, probe_texts=probe_texts)


@dataclass
class _Labels:
    """The training pool's label encoding: class names, one id per pool row, canonical label -> id (mlm: empty)."""

    names: list[str] | None = None
    ids: np.ndarray | None = None
    mapping: dict[str, int] = field(default_factory=dict)


def _load(cfg: RunConfig) -> pd.DataFrame:
    """The configured source's rows; its text (and classification label) column must exist."""
    d = cfg.data
    frame = load_frame(d)
    what = "The synthetic data" if d.source == "synthetic" else f"'{d.path}'"
    check_columns(frame, d, cfg.task, what=what)
    return frame


def _training_pool(result: CurationResult, cfg: RunConfig, *, rows_read: int) -> tuple[pd.DataFrame, dict[str, int], int]:
    """The kept rows that can train, the counts of every row dropped so far, and how many are usable."""
    d = cfg.data
    dropped = dict(result.report["removed"])
    usable, extra = _usable(result.kept, d.text_column, d.label_column, cfg.task)
    _merge(dropped, extra)
    pool = result.kept[usable]
    if len(pool) == 0:
        reasons = ", ".join(f"{n} {k}" for k, n in dropped.items()) or "none"
        raise DataError(
            f"No rows are left to train on ({rows_read} read; removed: {reasons}). Loosen the curation "
            "signal or fix the data.",
            field="data.curation.signal",
        )
    return pool, dropped, int(usable.sum())


def _shuffle_and_cap(pool: pd.DataFrame, cfg: RunConfig) -> pd.DataFrame:
    """The pool shuffled with the run's seed, cut to the rows data.max_rows needs."""
    d = cfg.data
    # Shuffle once with the run's seed: the same config always trains on the same rows.
    order = np.random.default_rng(cfg.training.seed).permutation(len(pool))
    pool = pool.iloc[order]
    split_fraction = 0.0 if d.eval_path else d.validation_fraction
    if d.max_rows is not None:
        # Keep enough rows that the training split itself holds max_rows.
        total = d.max_rows + (math.ceil(d.max_rows * split_fraction / (1 - split_fraction)) if split_fraction else 0)
        pool = pool.iloc[:total]
    return pool


def _encode_labels(pool: pd.DataFrame, cfg: RunConfig, hint: list[str] | None) -> _Labels:
    """Class ids of the pool's labels (classification); at least two classes must be left."""
    if cfg.task != "classification":
        return _Labels()
    column = cfg.data.label_column
    canon = canonical_labels(pool[column])
    _, kind, _, _ = parse_labels(pool[column])
    mapping, names = _label_encoding(canon, kind, hint)
    ids = canon.map(mapping).to_numpy(dtype=np.int64)
    if len(set(ids.tolist())) < 2:
        only = names[int(ids[0])]
        raise DataError(
            f"Classification needs at least two classes, but every usable row has the label {only!r}. "
            "Use data with more than one label, loosen the curation signal, or choose the mlm task.",
            field="data.label_column",
        )
    return _Labels(names=names, ids=ids, mapping=mapping)


def _split_rows(n: int, ids: np.ndarray | None, cfg: RunConfig, warnings: list[str]) -> tuple[np.ndarray, np.ndarray | None, str]:
    """Pool positions of the training and held-out rows, and how they were split (eval_file, none, stratified, random)."""
    d = cfg.data
    if d.eval_path:
        train_pos, eval_pos, split = np.arange(n), np.array([], dtype=np.int64), "eval_file"
    elif d.validation_fraction == 0:
        train_pos, eval_pos, split = np.arange(n), None, "none"
    else:
        train_pos, eval_pos, split = split_positions(n, ids, d.validation_fraction, cfg.training.seed, warnings)
    if d.max_rows is not None:
        train_pos = train_pos[: d.max_rows]
    return train_pos, eval_pos, split


def _train_dataset(texts: Any, train_pos: np.ndarray, labels: _Labels) -> tuple[Any, list[int] | None]:
    """The training Dataset and its label ids; refused when the split left a single class."""
    train_texts = texts.take(np.asarray(train_pos, dtype=np.int64))
    train_ids = labels.ids[train_pos].tolist() if labels.ids is not None else None
    if train_ids is not None and len(set(train_ids)) < 2:
        raise DataError(
            "After the validation split the training rows hold a single class: add rows of the other "
            "classes or lower data.validation_fraction.",
            field="data.validation_fraction",
        )
    return _dataset(train_texts, train_ids, labels.names), train_ids


def _held_out_dataset(texts: Any, eval_pos: np.ndarray | None, labels: _Labels) -> tuple[Any, list[int] | None]:
    """The evaluation Dataset held out of the pool and its label ids; (None, None) without a validation split."""
    if eval_pos is None:
        return None, None
    eval_ids = labels.ids[eval_pos].tolist() if labels.ids is not None else None
    return _dataset(texts.take(np.asarray(eval_pos, dtype=np.int64)), eval_ids, labels.names), eval_ids


def _eval_file_dataset(cfg: RunConfig, tokenizer: Any, max_length: int,
                       labels: _Labels) -> tuple[Any, list[int] | None, dict[str, Any]]:
    """The evaluation file's usable rows as a Dataset, their label ids and its curation report (checks, no signal)."""
    d, task = cfg.data, cfg.task
    eval_frame = read_table(d.eval_path)
    check_columns(eval_frame, d, task, what=f"The evaluation file '{d.eval_path}'")
    eval_result = curate(
        eval_frame,
        d,
        task,
        tokenizer,
        max_length=max_length,
        expected_labels=list(labels.mapping) if task == "classification" else None,
        apply_signal=False,
    )
    eval_usable, _ = _usable(eval_result.kept, d.text_column, d.label_column, task)
    if task == "classification":
        # In flag mode unexpected labels are only flagged; they still cannot be evaluated.
        eval_usable &= canonical_labels(eval_result.kept[d.label_column]).isin(list(labels.mapping)).to_numpy(dtype=bool)
    eval_pool = eval_result.kept[eval_usable]
    if len(eval_pool) == 0:
        raise DataError(
            f"The evaluation file '{d.eval_path}' has no usable rows after the integrity checks: fix it or "
            "leave the evaluation file empty to hold out part of the training data.",
            field="data.eval_path",
        )
    eval_texts = eval_pool[d.text_column].astype(str).tolist()
    eval_ids = None
    if task == "classification":
        eval_ids = canonical_labels(eval_pool[d.label_column]).map(labels.mapping).to_numpy(dtype=np.int64).tolist()
    return _dataset(eval_texts, eval_ids, labels.names), eval_ids, eval_result.report


def _report(cfg: RunConfig, result: CurationResult, *, rows_read: int, dropped: dict[str, int], usable: int,
            split: str, labels: _Labels, train: Any, train_ids: list[int] | None, evaluation: Any,
            eval_ids: list[int] | None, eval_report: dict[str, Any] | None, warnings: list[str]) -> dict[str, Any]:
    """The data report: rows read, dropped and used, the split, the classes per split and both curation reports."""
    names = labels.names
    return {
        "task": cfg.task,
        "source": result.report["source"],
        "rows_read": int(rows_read),
        "dropped": dropped,
        "rows_usable": usable,
        "max_rows": cfg.data.max_rows,
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
