"""Which column of a table holds the text and which the label: found by name, else by type, and checked.

Pure pandas, no torch: the pages call it on a preview right after an upload so the pickers start
on real columns instead of a configured name the file may not have; `check_columns` refuses a
configured column the table lacks, naming the ones it has.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.errors import DataError

if TYPE_CHECKING:  # pandas is imported by the callers that pass frames; a first page must not wait for it
    import pandas as pd

    from core.config import DataConfig

TEXT_NAMES = ("text", "review", "sentence", "content", "body")
LABEL_NAMES = ("label", "sentiment", "class", "category", "target")
# A label column has few distinct values; more than this reads as free text, ids or a score.
MAX_LABEL_CLASSES = 50


@dataclass(frozen=True)
class ColumnGuess:
    """The columns found for the text and the label (None: nothing fits)."""

    text: str | None
    label: str | None


def find_columns(frame: pd.DataFrame) -> ColumnGuess:
    """Text and label columns of a table: by name first, else by type and cardinality."""
    text = find_text_column(frame)
    return ColumnGuess(text=text, label=find_label_column(frame, exclude=(text,) if text else ()))


def find_text_column(frame: pd.DataFrame, exclude: Sequence[str] = ()) -> str | None:
    """The text column: a known name (exact, then contained), else the string column with the longest texts."""
    columns = [str(c) for c in frame.columns if str(c) not in exclude]
    named = _by_name(columns, TEXT_NAMES, lambda c: _is_text(frame[c]))
    if named is not None:
        return named
    lengths = {c: _mean_length(frame[c]) for c in columns if _is_text(frame[c])}
    return max(lengths, key=lengths.get) if lengths else None


def find_label_column(frame: pd.DataFrame, exclude: Sequence[str] = ()) -> str | None:
    """The label column: a known name (exact, then contained), else the column with the fewest values (2+)."""
    columns = [str(c) for c in frame.columns if str(c) not in exclude]
    named = _by_name(columns, LABEL_NAMES, lambda c: _is_low_cardinality(frame[c]))
    if named is not None:
        return named
    candidates = {
        c: frame[c].nunique(dropna=True)
        for c in columns
        if _is_low_cardinality(frame[c]) and frame[c].nunique(dropna=True) >= 2 and not _is_unique(frame[c])
    }
    return min(candidates, key=lambda c: (candidates[c], columns.index(c))) if candidates else None


def check_columns(frame: pd.DataFrame, data_cfg: DataConfig, task: str, *, what: str = "The data") -> None:
    """Raise a DataError naming the available columns when the text (or classification label) column is missing."""
    needed = [("data.text_column", data_cfg.text_column, "text")]
    if task == "classification":
        needed.append(("data.label_column", data_cfg.label_column, "label"))
    available = [str(c) for c in frame.columns]
    for field, column, role in needed:
        if column in frame.columns:
            continue
        close = difflib.get_close_matches(column, available, n=1, cutoff=0.6)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise DataError(
            f"{what} has no {role} column '{column}'; its columns are: {', '.join(available)}.{hint} "
            f"Set {field} to one of them.",
            field=field,
        )


def _by_name(columns: list[str], names: Sequence[str], fits) -> str | None:
    """Exact names (case-insensitive) win over names that merely contain a known word.

    An exact name is trusted whatever its values (the user named it so); a contained word
    ("review_id", "content_length") must also look like the role (`fits`).
    """
    lowered = {c: c.strip().lower() for c in columns}
    for name in names:
        for column in columns:
            if lowered[column] == name:
                return column
    for name in names:
        for column in columns:
            if name in lowered[column] and fits(column):
                return column
    return None


def _is_text(values: pd.Series) -> bool:
    """Strings that are not numbers in disguise ("1", "0.5")."""
    import pandas as pd

    if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
        return False
    present = values.dropna().astype(str).str.strip()
    present = present[present != ""]
    if present.empty:
        return False
    return not pd.to_numeric(present, errors="coerce").notna().all()


def _mean_length(values: pd.Series) -> float:
    present = values.dropna().astype(str)
    return float(present.str.len().mean()) if len(present) else 0.0


def _is_low_cardinality(values: pd.Series) -> bool:
    import pandas as pd

    if pd.api.types.is_float_dtype(values):
        present = values.dropna()
        if not (present == present.round()).all():  # 0.37, 4.5: a score, not a class
            return False
    return values.nunique(dropna=True) <= MAX_LABEL_CLASSES


def _is_unique(values: pd.Series) -> bool:
    """One distinct value per row, as an id column (only meaningful beyond a handful of rows)."""
    present = values.dropna()
    return len(present) > 3 and present.nunique() == len(present)
