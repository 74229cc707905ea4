"""What can be known about the data before a run is queued: usable rows, classes, split sizes.

Pure pandas, no torch, no tokenizer: Setup runs these on every rerun (on cached facts) and shows
each problem under its widget, so a one-class label column or a dataset smaller than one batch is
refused before Start instead of failing a second after it. The counts mirror core.data.prepare
(null texts and missing or unparseable labels cannot train; the split holds out at least one row)
but are taken before curation, whose signals may need a model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from core.config import RunConfig
from core.errors import DataError

if TYPE_CHECKING:  # pandas (and core.data.cells, which needs it) load on first use: Setup draws before them
    import pandas as pd

# Below this share of the largest class, the smallest class is called imbalanced.
IMBALANCE_SHARE = 0.2
WORD_COUNT_SAMPLE = 2000
# Subword tokenizers cut English into ~1.3 tokens per word; [CLS]/[SEP] or BOS/EOS add two.
TOKENS_PER_WORD = 1.3
SPECIAL_TOKENS = 2
# Generating more synthetic rows than this just to check them would slow every Start down.
SYNTHETIC_CHECK_ROWS = 200_000


@dataclass(frozen=True)
class LabelSummary:
    """Usable rows per class of a label column, most common first."""

    column: str
    counts: dict[str, int] = field(default_factory=dict)
    missing: int = 0
    unparseable: int = 0

    @property
    def classes(self) -> int:
        """How many distinct classes the usable rows hold."""
        return len(self.counts)

    @property
    def balance(self) -> float | None:
        """Smallest class over largest class (1.0: balanced); None without two classes."""
        if self.classes < 2:
            return None
        return min(self.counts.values()) / max(self.counts.values())

    @property
    def imbalanced(self) -> bool:
        """Whether the smallest class is under IMBALANCE_SHARE of the largest."""
        return self.balance is not None and self.balance < IMBALANCE_SHARE


@dataclass(frozen=True)
class DataFacts:
    """Rows read and rows that can train (text present; a valid label for classification)."""

    rows: int
    usable: int
    empty_text: int
    labels: LabelSummary | None = None
    # Words per usable text, of a seeded sample of at most WORD_COUNT_SAMPLE: what a run's time
    # estimate (core.plan.estimate) needs to know about the text lengths without a tokenizer.
    word_counts: tuple[int, ...] = ()


def label_summary(values: pd.Series, column: str, names: list[str] | None = None) -> LabelSummary:
    """Counts per class of the rows whose label parses; integer labels 0..K-1 show as `names` when given."""
    from core.data.cells import canonical_labels, parse_labels

    _, kind, missing, unparseable = parse_labels(values)
    valid = ~missing & ~unparseable
    canon = canonical_labels(values)[valid]
    if kind == "int" and names:
        ints = canon.astype(int)
        if ints.between(0, len(names) - 1).all():
            canon = ints.map(lambda i: names[i])
    counts = canon.value_counts()
    return LabelSummary(
        column=column,
        counts={str(k): int(v) for k, v in counts.items()},
        missing=int(missing.sum()),
        unparseable=int(unparseable.sum()),
    )


def data_facts(frame: pd.DataFrame, text_column: str, label_column: str | None = None) -> DataFacts:
    """Rows, usable rows and (with a label column) the classes of a table; absent columns count as empty."""
    import pandas as pd

    from core.data.cells import null_text_mask

    if text_column in frame.columns:
        empty = null_text_mask(frame[text_column])
    else:
        empty = pd.Series(True, index=frame.index).to_numpy()
    usable = ~empty
    labels = None
    if label_column is not None and label_column in frame.columns:
        values = frame[label_column][usable]
        labels = label_summary(values, label_column, frame.attrs.get("label_names"))
        usable_count = sum(labels.counts.values())
    else:
        usable_count = int(usable.sum())
    texts = frame[text_column][usable] if text_column in frame.columns else pd.Series([], dtype=str)
    if len(texts) > WORD_COUNT_SAMPLE:
        texts = texts.sample(n=WORD_COUNT_SAMPLE, random_state=0)
    word_counts = tuple(int(n) for n in texts.astype(str).str.split().str.len())
    return DataFacts(rows=len(frame), usable=usable_count, empty_text=int(empty.sum()), labels=labels,
                     word_counts=word_counts)


def split_sizes(usable: int, cfg: RunConfig) -> tuple[int, int | None]:
    """(training rows, evaluation rows) as prepare_data splits `usable` rows; eval None when unknown.

    A separate evaluation file is not read here (None); a validation share holds out
    round(n * share) rows, at least one and at most n - 1; data.max_rows caps the training rows.
    """
    d = cfg.data
    fraction = 0.0 if d.eval_path else float(d.validation_fraction)
    n = usable
    if d.max_rows:
        extra = math.ceil(d.max_rows * fraction / (1 - fraction)) if fraction else 0
        n = min(n, d.max_rows + extra)
    if d.eval_path:
        return min(n, d.max_rows or n), None
    if fraction == 0:
        return min(n, d.max_rows or n), 0
    held = min(max(int(round(n * fraction)), 1), n - 1) if n >= 2 else 0
    return min(n - held, d.max_rows or n), held


def data_problems(facts: DataFacts, cfg: RunConfig) -> list[DataError]:
    """Every problem the facts show for this config, each naming the field (widget) it belongs to."""
    d, t = cfg.data, cfg.training
    problems: list[DataError] = []
    if facts.rows and facts.empty_text == facts.rows:
        problems.append(DataError(
            f"Column '{d.text_column}' has no text in any of its {facts.rows:,} rows: choose the column "
            "that holds the text.",
            field="data.text_column",
        ))
        return problems
    labels = facts.labels
    if cfg.task == "classification" and labels is not None:
        if labels.classes == 0:
            problems.append(DataError(
                f"Label column '{labels.column}' has no usable label ({labels.missing:,} missing, "
                f"{labels.unparseable:,} unreadable): choose the column that holds the labels.",
                field="data.label_column",
            ))
            return problems
        if labels.classes == 1:
            only, count = next(iter(labels.counts.items()))
            problems.append(DataError(
                f"Label column '{labels.column}' has a single class ({only!r}, {count:,} rows): classification "
                "needs at least two. Choose another label column, add rows of other classes, or choose "
                "the mlm task.",
                field="data.label_column",
            ))
            return problems
    if d.validation_fraction > 0 and not d.eval_path and facts.usable < 2:
        problems.append(DataError(
            f"Only {facts.usable} usable row(s): a validation share of {d.validation_fraction:g} leaves 0 rows "
            "to evaluate on. Add rows, or set the validation share to 0.",
            field="data.validation_fraction",
        ))
        return problems
    train, held = split_sizes(facts.usable, cfg)
    if isinstance(t.batch_size, int) and 0 < train < t.batch_size:
        held_note = f", {held:,} held out for evaluation" if held else ""
        problems.append(DataError(
            f"Only {train:,} training rows ({facts.usable:,} usable{held_note}) for a batch of {t.batch_size}: "
            f"lower the batch size to {train} or less, or add rows.",
            field="training.batch_size",
        ))
    return problems


def instruction_facts(frame: pd.DataFrame, cfg: RunConfig) -> DataFacts:
    """Rows and usable chats of instruction data; every row is checked first (DataError: file, line, field).

    The evaluation file is checked the same way. Word counts are of the whole chat (prompt and answers).
    """
    from core.data.instructions import run_conversations
    from core.data.tables import read_table

    chats, shape, dropped = run_conversations(frame, cfg.data)
    if cfg.data.eval_path:
        run_conversations(read_table(cfg.data.eval_path), cfg.data, labelled=shape == "labels")
    sample = chats if len(chats) <= WORD_COUNT_SAMPLE else [chats[i] for i in range(0, len(chats), len(chats) // WORD_COUNT_SAMPLE)]
    words = tuple(sum(len(m["content"].split()) for m in chat) for chat in sample[:WORD_COUNT_SAMPLE])
    return DataFacts(rows=len(frame), usable=len(chats), empty_text=int(dropped.get("null_text", 0)), word_counts=words)


def approx_tokens(words: int) -> int:
    """A text's token count from its word count, without a tokenizer."""
    return round(words * TOKENS_PER_WORD) + SPECIAL_TOKENS


def planned_max_length(facts: DataFacts | None, max_length: int | None) -> int | None:
    """The max length a run will use: the configured one, or (empty) one fitted to the texts' approximate lengths.

    None when it is left to the data and the data has not been read (the run fits it at Start).
    """
    if max_length is not None:
        return int(max_length)
    if facts is None or not facts.word_counts:
        return None
    from core.config import AUTO_MAX_LENGTH_CAP
    from core.data.lengths import fitted_length

    return fitted_length(np.asarray([approx_tokens(w) for w in facts.word_counts]), AUTO_MAX_LENGTH_CAP)


def too_long_share(facts: DataFacts, max_length: int | None) -> float:
    """Share of the (sampled) usable texts that will not fit in the planned max length."""
    limit = planned_max_length(facts, max_length)
    if not facts.word_counts or limit is None:
        return 0.0
    return sum(approx_tokens(words) > limit for words in facts.word_counts) / len(facts.word_counts)


def check_data(cfg: RunConfig) -> DataFacts | None:
    """Read the run's data and raise its first problem (DataError), as Setup shows them; None when not read.

    For the CLI and for submit: what Setup shows under its widgets is refused here before a run
    folder exists. Hub datasets (network) and very large synthetic sets are left to the run.
    """
    from core.data.columns import check_columns
    from core.data.rows import load_rows

    d = cfg.data
    if d.source == "hub" or (d.source == "synthetic" and d.synthetic.rows > SYNTHETIC_CHECK_ROWS):
        return None
    frame = load_rows(d)
    if cfg.task == "sft":
        facts = instruction_facts(frame, cfg)
        problems = data_problems(facts, cfg)
        if problems:
            raise problems[0]
        return facts
    check_columns(frame, d, cfg.task)
    facts = data_facts(frame, d.text_column, d.label_column if cfg.task == "classification" else None)
    problems = data_problems(facts, cfg)
    if problems:
        raise problems[0]
    return facts
