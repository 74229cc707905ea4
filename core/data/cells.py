"""What a text or label cell means: null-like texts, canonical and parsed labels, token counts.

The integrity checks, the signals, preparation and the Setup page's preflight all read cells
through these helpers, so "missing", "the label 1" and "too long" mean the same thing everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

#: Texts that mean "missing" in exports: compared after stripping and lower-casing.
NULL_STRINGS = frozenset({"nan", "none", "null", "na", "n/a", "<na>", "nil"})
#: An integer as exports write it: "1", "+1", "-3", "1.0".
INT_LIKE = r"^[+-]?\d+(?:\.0*)?$"
# Explicit whitespace classes instead of \s / \S: pandas sends \s patterns to Python's slow `re`
# because RE2's \s misses "\v"; a class listing it runs in RE2.
WHITESPACE = r"[ \t\r\n\f\v]+"
NON_WHITESPACE = r"[^ \t\r\n\f\v]+"


def arrow_text(values: pd.Series | Iterable[Any]) -> pd.Series:
    """Texts as an Arrow-backed string Series (fast RE2 regexes), nulls as ""."""
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    if str(series.dtype) != "str":
        series = series.astype("str")
    return series.fillna("")


def text_matches(texts: pd.Series, pattern: str) -> np.ndarray:
    """Boolean mask of texts matching a regex (RE2 through pyarrow; pandas falls back to `re`)."""
    return texts.str.contains(pattern, regex=True).fillna(False).to_numpy(dtype=bool)


_LONGEST_NULL_STRING = max(map(len, NULL_STRINGS))


def null_text_mask(values: pd.Series) -> np.ndarray:
    """True where the text is None, NaN, empty, whitespace or a null word such as "nan" or "NULL"."""
    missing = values.isna().to_numpy(dtype=bool)
    stripped = arrow_text(values).str.strip()
    lengths = stripped.str.len().to_numpy(dtype=np.int64, na_value=0)
    # Only a text as short as a null word can be one (lower-casing never shortens a text): lower-casing
    # just those spares a pass over every text, ~0.3 s a million rows, paid by each check of a run's data.
    short = lengths <= _LONGEST_NULL_STRING
    null_word = np.zeros(len(values), dtype=bool)
    if short.any():
        null_word[short] = stripped[short].str.lower().isin(NULL_STRINGS).to_numpy(dtype=bool)
    return missing | (lengths == 0) | null_word


def canonical_labels(values: pd.Series) -> pd.Series:
    """Labels as strings, integral numbers without decimals ("1.0" -> "1"), nulls as ""."""
    s = arrow_text(values).str.strip()
    return s.str.replace(r"^([+-]?\d+)\.0*$", r"\1", regex=True).str.replace(r"^\+", "", regex=True)


def parse_labels(values: pd.Series) -> tuple[pd.Series, str, np.ndarray, np.ndarray]:
    """Infer the label kind and parse: returns (parsed, "int"|"str", missing mask, unparseable mask).

    Decision for mixed columns: the majority kind wins. If most non-missing labels are integers
    (1, "1", 1.0), labels are integers and the others ("positive", 0.5) are unparseable; otherwise
    labels are strings (class names) and the integer-looking ones are unparseable. Booleans are read
    as the strings "True"/"False". The integrity check reports the unparseable rows with examples, so
    a stray value never silently becomes an extra class.
    """
    canon = canonical_labels(values)
    missing = values.isna().to_numpy(dtype=bool) | canon.eq("").to_numpy(dtype=bool)
    missing |= canon.str.lower().isin(NULL_STRINGS).to_numpy(dtype=bool)
    int_like = canon.str.match(INT_LIKE).fillna(False).to_numpy(dtype=bool) & ~missing
    other = ~missing & ~int_like
    kind = "int" if int_like.sum() > other.sum() else "str"
    if kind == "int":
        parsed = pd.Series(np.zeros(len(values), dtype=np.int64), index=values.index)
        parsed[int_like] = canon[int_like].astype(np.int64)
        return parsed, kind, missing, other
    return canon, kind, missing, int_like


def token_lengths(tokenizer: Any, texts: list[str], chunk: int = 4096) -> np.ndarray:
    """Token count of each text with special tokens (what the model sees), in chunks."""
    lengths = []
    for start in range(0, len(texts), chunk):
        enc = tokenizer(texts[start : start + chunk], add_special_tokens=True, truncation=False, verbose=False)
        lengths += [len(ids) for ids in enc["input_ids"]]
    return np.asarray(lengths, dtype=np.int64)


def repeats(texts: pd.Series, eligible: np.ndarray, *, normalise: bool = False) -> np.ndarray:
    """True where an eligible text repeats an earlier eligible one (the first is kept); `texts` as arrow_text gives them.

    normalise: texts that differ only in case or whitespace count as the same. The integrity check,
    the preflight's counts and instruction data's repeated chats all ask here, so they agree.
    """
    key = texts.str.lower().str.replace(WHITESPACE, " ", regex=True).str.strip() if normalise else texts
    out = np.zeros(len(texts), dtype=bool)
    out[eligible] = key[eligible].duplicated(keep="first").to_numpy(dtype=bool)
    return out
