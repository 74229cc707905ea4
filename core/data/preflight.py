"""What can be known about the data before a run is queued: usable rows, classes, split sizes.

Pure pandas, no torch, no tokenizer: Setup runs these on every rerun (on cached facts) and shows
each problem under its widget, so a one-class label column or a dataset smaller than one batch is
refused before Start instead of failing a second after it. Given the run's curation settings the
counts follow core.data.prepare step by step: null texts and missing or unparseable labels cannot
train, repeated texts (or chats) are dropped, then the signal; the split holds out at least one row.
What cannot be counted cheaply is said to be so: a signal that needs a model is left to the run,
one over many rows is measured on a sample, and normalised repeats of a large table are a lower bound.
The too-long check needs the tokenizer: Setup estimates its share from word counts (too_long_share).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.config import CurationConfig, DataConfig, RunConfig
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
# Repeats are found by hashing the texts: exact ones cost ~0.7 s per million rows on 2 cores, but the
# normalised key (lower case, collapsed whitespace) ~5 s. Past this many rows only exact repeats are
# counted, and the count is said to be a lower bound.
NORMALISED_REPEATS_ROWS = 200_000
# A signal that needs no model (words, regexes, the lexicon) runs at ~7 µs a row: counted on every row
# up to SIGNAL_EXACT_ROWS, above on a seeded sample of SIGNAL_SAMPLE_ROWS (its share within ~1 point).
SIGNAL_EXACT_ROWS = 50_000
SIGNAL_SAMPLE_ROWS = 20_000
#: How DataFacts knows what the curation signal removes.
SIGNAL_NONE, SIGNAL_COUNTED, SIGNAL_SAMPLED, SIGNAL_AT_START = "none", "counted", "sampled", "at_start"


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
    """Rows read and rows that will train: text present, a valid label for classification, and (given the
    curation settings) neither a repeat nor removed by the signal."""

    rows: int
    usable: int
    empty_text: int
    labels: LabelSummary | None = None
    # Words per usable text, of a seeded sample of at most WORD_COUNT_SAMPLE: what a run's time
    # estimate (core.plan.estimate) needs to know about the text lengths without a tokenizer.
    word_counts: tuple[int, ...] = ()
    # Rows that will not train, by reason, named and ordered as a run's data report counts them
    # (core.data.integrity.REMOVAL_REASONS); zero counts left out.
    dropped: dict[str, int] = field(default_factory=dict)
    # Repeats found but kept because the integrity checks only flag (check_action "flag").
    flagged_duplicates: int = 0
    # Only exact repeats were counted (a large table with normalise_duplicates): more may go at Start.
    duplicates_at_least: bool = False
    signal: str = SIGNAL_NONE  # how dropped["signal"] is known: SIGNAL_NONE, _COUNTED, _SAMPLED or _AT_START
    signal_sample: int = 0     # SIGNAL_SAMPLED: the rows the signal was measured on

    @property
    def estimated(self) -> bool:
        """Whether `usable` is an estimate (a sampled signal) or an upper bound (repeats or a signal left to Start)."""
        return self.signal in (SIGNAL_SAMPLED, SIGNAL_AT_START) or self.duplicates_at_least


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


def data_facts(frame: pd.DataFrame, text_column: str, label_column: str | None = None, *,
               curation: CurationConfig | None = None, signal_label_column: str | None = None) -> DataFacts:
    """Rows, usable rows and (with a label column) the classes of a table; absent columns count as empty.

    Without `curation`, usable rows are those that can train at all; with the run's, also those that
    survive its de-duplication and signal, in the order curate() applies them. `signal_label_column`
    is the column a label signal reads (a run's data.label_column, whatever its task).
    """
    import pandas as pd

    from core.data.cells import arrow_text, null_text_mask, parse_labels, repeats

    n = len(frame)
    has_text = text_column in frame.columns
    empty = null_text_mask(frame[text_column]) if has_text else np.ones(n, dtype=bool)
    alive = ~empty
    dropped = {"null_text": int(empty.sum())}
    labelled = label_column is not None and label_column in frame.columns
    if labelled:
        # Parsed over every row, as curate's label check does: the majority kind decides what is unreadable.
        _, _, missing, unparseable = parse_labels(frame[label_column])
        dropped["missing_label"] = int((missing & alive).sum())
        alive &= ~missing
        dropped["unparseable_label"] = int((unparseable & alive).sum())
        alive &= ~unparseable
    texts = arrow_text(frame[text_column]) if has_text else pd.Series([""] * n, dtype="str")
    flagged = 0
    at_least = False
    if curation is not None and curation.drop_duplicates and has_text:
        normalise = curation.normalise_duplicates and n <= NORMALISED_REPEATS_ROWS
        at_least = curation.normalise_duplicates and not normalise
        if curation.check_action == "flag":
            flagged = int(repeats(texts, ~empty, normalise=normalise).sum())  # kept, as curate keeps them
        else:
            dup = repeats(texts, alive, normalise=normalise)
            dropped["duplicate"] = int(dup.sum())
            alive &= ~dup
    kept = np.flatnonzero(alive)
    scale, how, measured = 1.0, SIGNAL_NONE, 0
    if curation is not None and curation.signal and has_text:
        kept, scale, how, measured = _signal_kept(frame, kept, curation.signal, text_column, signal_label_column)
        dropped["signal"] = int(alive.sum()) - round(len(kept) * scale)
    labels = None
    if labelled:
        names = frame.attrs.get("label_names")
        summary = label_summary(frame[label_column].iloc[kept], label_column, names)
        labels = LabelSummary(column=label_column, counts={k: round(v * scale) for k, v in summary.counts.items()},
                              missing=dropped["missing_label"], unparseable=dropped["unparseable_label"])
    sample = kept if len(kept) <= WORD_COUNT_SAMPLE else np.sort(
        np.random.default_rng(0).choice(kept, WORD_COUNT_SAMPLE, replace=False))
    word_counts = tuple(int(w) for w in texts.iloc[sample].str.split().str.len())
    return DataFacts(rows=n, usable=round(len(kept) * scale), empty_text=int(empty.sum()), labels=labels,
                     word_counts=word_counts, dropped={k: v for k, v in dropped.items() if v},
                     flagged_duplicates=flagged, duplicates_at_least=at_least, signal=how,
                     signal_sample=measured if how == SIGNAL_SAMPLED else 0)


def _signal_kept(frame: pd.DataFrame, rows: np.ndarray, tree: dict, text_column: str,
                 label_column: str | None) -> tuple[np.ndarray, float, str, int]:
    """(rows that pass the signal, rows each stands for, how it was known, rows measured) of the positions `rows`.

    A signal that needs a model keeps every row here (SIGNAL_AT_START); past SIGNAL_EXACT_ROWS a seeded
    sample is measured and each row that passes stands for len(rows) / sample of them.
    """
    from core.data.signal_eval import passing_rows
    from core.data.signals import needs_model, signal_from_dict

    signal = signal_from_dict(tree)
    if needs_model(signal):
        return rows, 1.0, SIGNAL_AT_START, 0
    measured, how = rows, SIGNAL_COUNTED
    if len(rows) > SIGNAL_EXACT_ROWS:
        measured = np.sort(np.random.default_rng(0).choice(rows, SIGNAL_SAMPLE_ROWS, replace=False))
        how = SIGNAL_SAMPLED
    if len(measured) == 0:
        return measured, 1.0, how, 0
    if label_column is not None and label_column not in frame.columns:
        label_column = None
    passed = passing_rows(frame.iloc[measured], signal, text_column=text_column, label_column=label_column)
    return measured[passed], len(rows) / len(measured), how, len(measured)


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

    Repeated chats are dropped and counted as a run drops them (core.data.instructions.run_conversations).
    The evaluation file is checked the same way; its problems belong to data.eval_path. Word counts are
    of the whole chat (prompt and answers).
    """
    from core.data.instructions import run_conversations
    from core.data.tables import read_table

    chats, shape, dropped = run_conversations(frame, cfg.data)
    if cfg.data.eval_path:
        try:
            run_conversations(read_table(cfg.data.eval_path), cfg.data, labelled=shape == "labels")
        except DataError as err:
            raise DataError(str(err), field="data.eval_path") from None
    sample = chats if len(chats) <= WORD_COUNT_SAMPLE else [chats[i] for i in range(0, len(chats), len(chats) // WORD_COUNT_SAMPLE)]
    words = tuple(sum(len(m["content"].split()) for m in chat) for chat in sample[:WORD_COUNT_SAMPLE])
    return DataFacts(rows=len(frame), usable=len(chats), empty_text=int(dropped.get("null_text", 0)), word_counts=words,
                     dropped={k: v for k, v in dropped.items() if v})


def run_facts(frame: pd.DataFrame, cfg: RunConfig) -> DataFacts:
    """The facts of a run's rows under its task and curation settings (what check_data and Setup count)."""
    if cfg.task == "sft":
        return instruction_facts(frame, cfg)
    d = cfg.data
    return data_facts(frame, d.text_column, d.label_column if cfg.task == "classification" else None,
                      curation=d.curation, signal_label_column=d.label_column)


def check_eval_file(data: DataConfig, task: str, name: str | None = None) -> int:
    """The evaluation file's rows, once it reads and has the columns the run reads (else DataError, field
    data.eval_path); 0 without one.

    `name`: the file as the user knows it (an upload's own name rather than its stored copy's). Instruction
    data's evaluation file is only read here: instruction_facts checks it row by row.
    """
    from core.data.columns import check_columns
    from core.data.tables import read_table

    if not data.eval_path:
        return 0
    shown = name or data.eval_path
    try:
        frame = read_table(data.eval_path)
        if task != "sft":
            check_columns(frame, data, task, what=f"The evaluation file '{shown}'")
    except DataError as err:
        raise DataError(str(err), field="data.eval_path") from None
    return len(frame)


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
    folder exists. Hub datasets (network) and very large synthetic sets are left to the run. The
    facts of the last config checked are kept while its files are unchanged, so the CLI can print
    them after engine.preflight without reading a large file twice.
    """
    global _last_check
    from core.data.columns import check_columns
    from core.data.rows import hand_on, load_rows

    d = cfg.data
    if d.source == "hub" or (d.source == "synthetic" and d.synthetic.rows > SYNTHETIC_CHECK_ROWS):
        return None
    # A curated set is re-saved under the same name: only files and synthetic rows are known unchanged.
    key = None if d.source == "curated" else (
        cfg.to_yaml(), _file_stamp(d.path if d.source == "file" else None), _file_stamp(d.eval_path))
    if key is not None and _last_check is not None and _last_check[0] == key:
        return _last_check[1]
    frame = load_rows(d)
    if cfg.task != "sft":
        check_columns(frame, d, cfg.task)
        check_eval_file(d, cfg.task)
    facts = run_facts(frame, cfg)
    problems = data_problems(facts, cfg)
    if problems:
        raise problems[0]
    if key is not None:
        _last_check = (key, facts)
    hand_on(d, frame)  # the CLI trains it next, in this process: not read twice
    return facts


_last_check: tuple[tuple, DataFacts] | None = None


def _file_stamp(path: str | None) -> tuple[int, int] | None:
    """(size, mtime) of a data file, so an edited file is read again; None without one."""
    if not path:
        return None
    try:
        info = Path(path).expanduser().stat()
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns
