"""Curation: integrity checks and serialisable signals that carve a focused training set out of raw rows.

A signal is a predicate on a row stored as plain data (a dict, so it lives in the RunConfig's YAML):

    {"op": "and", "children": [
        {"kind": "word_list", "list": "brand:Nike"},
        {"kind": "word_list", "list": "brand_products:Nike"},
        {"kind": "sentiment", "polarity": "positive"}]}

The same tree in Python: `WordList("brand:Nike") & WordList("brand_products:Nike") & Sentiment()`.
`~signal` negates, `|` is OR. Signals are evaluated in batches through `datasets.Dataset.map` on
Arrow-backed string columns, so regexes run in RE2 (pyarrow compute) and 100k rows take well under a
second; patterns RE2 cannot run (look-behind, back-references) fall back to Python's `re`.

Integrity checks (null-like text, duplicates, too-long texts, unparseable / unexpected labels)
remove the failing rows, or keep them with a `flag_reason` column when `check_action` is "flag".
Rows that fail the signal are always removed: the signal is the selection, not a check.
"""

from __future__ import annotations

import json
import os
import re
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import yaml

from core.config import DataConfig
from core.data.sources import check_columns, read_table
from core.data.synthetic import (
    BRAND_PRODUCTS,
    BRANDS,
    NEGATIVE_ADJECTIVES,
    POSITIVE_ADJECTIVES,
    PRODUCT_VARIANTS,
    PRODUCTS,
)
from core.errors import ConfigError, DataError

# ---- lexicon --------------------------------------------------------------------------------

#: Words that make a review positive: the synthetic adjectives plus common review vocabulary.
POSITIVE_WORDS = frozenset(POSITIVE_ADJECTIVES) | frozenset(
    {
        "good", "love", "loved", "loves", "lovely", "recommend", "recommended", "best", "happy",
        "wonderful", "fantastic", "gorgeous", "superb", "brilliant", "sleek", "cozy", "comfy",
        "flawless", "stylish", "trendy", "breathable", "cool", "favorite", "favourite", "pleased",
        "satisfied", "outstanding", "incredible", "solid", "worth", "impressive", "beautifully",
    }
)
#: Words that make a review negative: the synthetic adjectives plus common complaint vocabulary.
NEGATIVE_WORDS = frozenset(NEGATIVE_ADJECTIVES) | frozenset(
    {
        "hate", "hated", "worst", "worse", "broke", "broken", "refund", "returned", "disappointed",
        "flimsy", "overpriced", "scratchy", "itchy", "cheaply", "shabby", "tacky", "mediocre", "waste",
        "defective", "faulty", "ripped", "torn", "unreliable", "annoying", "smelly", "awkward",
        "nasty", "dreadful", "lousy", "rubbish", "junk", "garbage", "pricey", "overrated",
    }
)
#: Words that flip the polarity of the sentiment word right after them (one intensifier allowed).
NEGATORS = ("not", "never", "no", "hardly", "isn't", "aren't", "wasn't", "weren't", "don't", "doesn't", "didn't")

#: Texts that mean "missing" in exports: compared after stripping and lower-casing.
NULL_STRINGS = frozenset({"nan", "none", "null", "na", "n/a", "<na>", "nil"})

SIGNAL_KINDS = ("keywords", "word_list", "regex", "length", "label", "sentiment", "confidence")
SIGNAL_OPS = ("and", "or", "not")
REMOVAL_REASONS = (
    "null_text", "missing_label", "unparseable_label", "unexpected_label", "duplicate", "too_long", "signal",
)
_INT_LIKE = r"^[+-]?\d+(?:\.0*)?$"
# Explicit whitespace classes instead of \s / \S: pandas sends \s patterns to Python's slow `re`
# because RE2's \s misses "\v"; a class listing it runs in RE2.
_WS = r"[ \t\r\n\f\v]+"
_NON_WS = r"[^ \t\r\n\f\v]+"
_EXAMPLES = 3


def _alternation(words: Iterable[str]) -> str:
    """One regex alternative per word; phrases match across any whitespace; longest first."""
    parts = []
    for word in sorted({w.strip() for w in words if w and w.strip()}, key=lambda w: (-len(w), w)):
        parts.append(_WS.join(re.escape(p) for p in word.split()))
    return "|".join(parts)


def _word_regex(words: Iterable[str], *, whole_word: bool = True, case_sensitive: bool = False) -> str:
    """A regex matching any of the words; boundaries only where a word starts/ends with a word char."""
    alternatives = []
    for word in sorted({w.strip() for w in words if w and w.strip()}, key=lambda w: (-len(w), w)):
        body = _WS.join(re.escape(p) for p in word.split())
        if whole_word:
            # \b only means something next to a word character ("c++" has none at its end).
            body = (r"\b" if re.match(r"\w", word[0]) else "") + body + (r"\b" if re.match(r"\w", word[-1]) else "")
        alternatives.append(body)
    if not alternatives:
        raise ConfigError("A keyword or word-list signal needs at least one word.", field="data.curation.signal")
    flags = "" if case_sensitive else "(?i)"
    return f"{flags}(?:{'|'.join(alternatives)})"


_NEGATION = r"\b(?:" + "|".join(re.escape(n) for n in NEGATORS).replace("'", "['’]") + ")" + _WS + "(?:(?:very|really|so|too|that|particularly|overly)" + _WS + ")?"
_POS = _word_regex(POSITIVE_WORDS)
_NEG = _word_regex(NEGATIVE_WORDS)
_NOT_POS = "(?i)" + _NEGATION + r"(?:" + _alternation(POSITIVE_WORDS) + r")\b"
_NOT_NEG = "(?i)" + _NEGATION + r"(?:" + _alternation(NEGATIVE_WORDS) + r")\b"


def word_lists() -> dict[str, tuple[str, ...]]:
    """Named word lists for the word_list signal: brands, products, lexicon, per-brand lists."""
    product_terms = tuple(p for product in PRODUCTS for p in (product, *PRODUCT_VARIANTS.get(product, ())))
    lists: dict[str, tuple[str, ...]] = {
        "brands": BRANDS,
        "competitors": BRANDS[1:],
        "products": product_terms,
        "positive": tuple(sorted(POSITIVE_WORDS)),
        "negative": tuple(sorted(NEGATIVE_WORDS)),
    }
    for brand, offer in BRAND_PRODUCTS.items():
        lists[f"brand:{brand}"] = (brand,)
        lists[f"brand_products:{brand}"] = tuple(p for product in offer for p in (product, *PRODUCT_VARIANTS.get(product, ())))
    return lists


def lexicon_scores(texts: pd.Series) -> np.ndarray:
    """Sentiment score per text: positive words minus negative words, negated words count reversed."""
    s = _arrow_text(texts)
    pos = s.str.count(_POS).to_numpy(dtype=np.int64)
    neg = s.str.count(_NEG).to_numpy(dtype=np.int64)
    not_pos = s.str.count(_NOT_POS).to_numpy(dtype=np.int64)
    not_neg = s.str.count(_NOT_NEG).to_numpy(dtype=np.int64)
    # "not very expensive" counted +1 negative above; flipping it is worth +2.
    return pos - neg + 2 * (not_neg - not_pos)


# ---- text helpers ---------------------------------------------------------------------------

def _arrow_text(values: pd.Series | Iterable[Any]) -> pd.Series:
    """Texts as an Arrow-backed string Series (fast RE2 regexes), nulls as ""."""
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    if str(series.dtype) != "str":
        series = series.astype("str")
    return series.fillna("")


def _contains(texts: pd.Series, pattern: str) -> np.ndarray:
    """Boolean mask of texts matching a regex (RE2 through pyarrow; pandas falls back to `re`)."""
    return texts.str.contains(pattern, regex=True).fillna(False).to_numpy(dtype=bool)


def null_text_mask(values: pd.Series) -> np.ndarray:
    """True where the text is None, NaN, empty, whitespace or a null word such as "nan" or "NULL"."""
    missing = values.isna().to_numpy(dtype=bool)
    stripped = _arrow_text(values).str.strip()
    return missing | stripped.eq("").to_numpy(dtype=bool) | stripped.str.lower().isin(NULL_STRINGS).to_numpy(dtype=bool)


def canonical_labels(values: pd.Series) -> pd.Series:
    """Labels as strings, integral numbers without decimals ("1.0" -> "1"), nulls as ""."""
    s = _arrow_text(values).str.strip()
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
    int_like = canon.str.match(_INT_LIKE).fillna(False).to_numpy(dtype=bool) & ~missing
    other = ~missing & ~int_like
    kind = "int" if int_like.sum() > other.sum() else "str"
    if kind == "int":
        parsed = pd.Series(np.zeros(len(values), dtype=np.int64), index=values.index)
        parsed[int_like] = canon[int_like].astype(np.int64)
        return parsed, kind, missing, other
    return canon, kind, missing, int_like


# ---- signals --------------------------------------------------------------------------------

@dataclass
class Batch:
    """What a signal sees: a batch of texts (Arrow strings, nulls as "") plus other columns."""

    texts: pd.Series
    columns: dict[str, pd.Series]
    label_column: str | None
    tokenizer: Any = None
    cache: dict[str, Any] = field(default_factory=dict)

    def labels(self, column: str | None = None) -> pd.Series:
        """Canonical label strings of a column (default: the label column), computed once per batch."""
        name = column or self.label_column
        if not name or name not in self.columns:
            raise DataError(
                f"The label signal needs the column '{name}', which the data does not have.",
                field="data.curation.signal",
            )
        if ("labels", name) not in self.cache:
            self.cache[("labels", name)] = canonical_labels(self.columns[name])
        return self.cache[("labels", name)]


class Signal(ABC):
    """A serialisable predicate on rows; combine with & (and), | (or), ~ (not)."""

    kind: ClassVar[str] = ""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """Plain data for YAML / JSON; `signal_from_dict(s.to_dict())` rebuilds an equal signal."""

    def to_yaml(self) -> str:
        """The signal tree as YAML."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)

    @abstractmethod
    def describe(self) -> str:
        """A short human-readable label for lists and the node counts."""

    def children(self) -> tuple[Signal, ...]:
        """Child nodes (combinators only)."""
        return ()

    def columns(self) -> set[str]:
        """Extra columns (besides the text) this node reads."""
        return set()

    def evaluate(self, batch: Batch) -> np.ndarray:
        """Boolean mask over the batch's rows (leaves only; combinators use combine)."""
        raise TypeError(f"{type(self).__name__} combines other signals: evaluate its children, then combine().")

    def combine(self, masks: list[np.ndarray]) -> np.ndarray:
        """A combinator's mask from its children's masks (combinators only)."""
        raise TypeError(f"{type(self).__name__} is a leaf signal: it has no children to combine.")

    def __and__(self, other: Signal) -> Signal:
        _require_signal(other, "&")
        return And((*_flatten(self, And), *_flatten(other, And)))

    def __or__(self, other: Signal) -> Signal:
        _require_signal(other, "|")
        return Or((*_flatten(self, Or), *_flatten(other, Or)))

    def __invert__(self) -> Signal:
        return self.child if isinstance(self, Not) else Not(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.to_dict()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Signal) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(self))


def _require_signal(other: Any, op: str) -> None:
    if not isinstance(other, Signal):
        raise TypeError(f"unsupported operand for {op}: Signal and {type(other).__name__}")


def _check_children(items: Iterable[Signal], op: str) -> tuple[Signal, ...]:
    """Children as a tuple of Signals (dicts are parsed), at least one."""
    built = tuple(signal_from_dict(c) for c in items)
    if not built:
        raise ConfigError(f"An '{op}' signal needs at least one child.", field="data.curation.signal")
    return built


def _flatten(signal: Signal, cls: type) -> tuple[Signal, ...]:
    """a & b & c builds one And with three children, not nested pairs."""
    return signal.items if isinstance(signal, cls) else (signal,)


@dataclass(eq=False)
class And(Signal):
    """Rows passing every child."""

    items: tuple[Signal, ...]
    op: ClassVar[str] = "and"

    def __post_init__(self) -> None:
        self.items = _check_children(self.items, "and")

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "children": [c.to_dict() for c in self.items]}

    def describe(self) -> str:
        return "ALL of"

    def children(self) -> tuple[Signal, ...]:
        return self.items

    def combine(self, masks: list[np.ndarray]) -> np.ndarray:
        return np.logical_and.reduce(masks)


@dataclass(eq=False)
class Or(Signal):
    """Rows passing at least one child."""

    items: tuple[Signal, ...]
    op: ClassVar[str] = "or"

    def __post_init__(self) -> None:
        self.items = _check_children(self.items, "or")

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "children": [c.to_dict() for c in self.items]}

    def describe(self) -> str:
        return "ANY of"

    def children(self) -> tuple[Signal, ...]:
        return self.items

    def combine(self, masks: list[np.ndarray]) -> np.ndarray:
        return np.logical_or.reduce(masks)


@dataclass(eq=False)
class Not(Signal):
    """Rows failing the child."""

    child: Signal
    op: ClassVar[str] = "not"

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "child": self.child.to_dict()}

    def describe(self) -> str:
        return "NOT"

    def children(self) -> tuple[Signal, ...]:
        return (self.child,)

    def combine(self, masks: list[np.ndarray]) -> np.ndarray:
        return ~masks[0]


@dataclass(eq=False)
class Keywords(Signal):
    """Text contains any (or all) of the words; case-insensitive and word-boundary aware by default."""

    words: tuple[str, ...]
    mode: str = "any"
    case_sensitive: bool = False
    whole_word: bool = True
    kind: ClassVar[str] = "keywords"

    def __post_init__(self) -> None:
        self.words = tuple(self.words)
        if self.mode not in ("any", "all"):
            raise ConfigError(f"Keywords mode is {self.mode!r}; use 'any' or 'all'.", field="data.curation.signal")
        self._patterns = [
            _word_regex([w], whole_word=self.whole_word, case_sensitive=self.case_sensitive) for w in self.words
        ] if self.mode == "all" else [
            _word_regex(self.words, whole_word=self.whole_word, case_sensitive=self.case_sensitive)
        ]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "words": list(self.words), "mode": self.mode}
        if self.case_sensitive:
            out["case_sensitive"] = True
        if not self.whole_word:
            out["whole_word"] = False
        return out

    def describe(self) -> str:
        return f"text has {self.mode} of: {', '.join(self.words)}"

    def evaluate(self, batch: Batch) -> np.ndarray:
        return np.logical_and.reduce([_contains(batch.texts, p) for p in self._patterns])


@dataclass(eq=False)
class WordList(Signal):
    """Text mentions an item of a named word list (e.g. "brand_products:Nike") or of explicit words."""

    list: str | None = None
    words: tuple[str, ...] | None = None
    kind: ClassVar[str] = "word_list"

    def __post_init__(self) -> None:
        if (self.list is None) == (self.words is None):
            raise ConfigError(
                "A word_list signal needs either 'list' (a named list) or 'words' (your own words), not both.",
                field="data.curation.signal",
            )
        if self.words is not None:
            self.words = tuple(self.words)
            items = self.words
        else:
            lists = word_lists()
            if self.list not in lists:
                raise ConfigError(
                    f"There is no word list named {self.list!r}; choose one of: {', '.join(lists)}, "
                    "or give your own 'words'.",
                    field="data.curation.signal",
                )
            items = lists[self.list]
        self._pattern = _word_regex(items)

    def to_dict(self) -> dict[str, Any]:
        if self.list is not None:
            return {"kind": self.kind, "list": self.list}
        return {"kind": self.kind, "words": list(self.words or ())}

    def describe(self) -> str:
        return f"mentions {self.list}" if self.list else f"mentions one of: {', '.join(self.words or ())}"

    def evaluate(self, batch: Batch) -> np.ndarray:
        return _contains(batch.texts, self._pattern)


@dataclass(eq=False)
class Regex(Signal):
    """Text matches a regular expression (searched anywhere; case-insensitive by default)."""

    pattern: str
    case_sensitive: bool = False
    kind: ClassVar[str] = "regex"

    def __post_init__(self) -> None:
        try:
            re.compile(self.pattern)
        except re.error as err:
            raise ConfigError(
                f"The regex {self.pattern!r} is invalid: {err}. Fix the pattern (escape special characters with \\).",
                field="data.curation.signal",
            ) from None
        self._pattern = self.pattern if self.case_sensitive else f"(?i){self.pattern}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "pattern": self.pattern}
        if self.case_sensitive:
            out["case_sensitive"] = True
        return out

    def describe(self) -> str:
        return f"matches /{self.pattern}/"

    def evaluate(self, batch: Batch) -> np.ndarray:
        return _contains(batch.texts, self._pattern)


@dataclass(eq=False)
class Length(Signal):
    """Text length within [min, max] in words, characters or tokens (tokens need the model's tokenizer)."""

    min: int | None = None
    max: int | None = None
    unit: str = "words"
    kind: ClassVar[str] = "length"

    def __post_init__(self) -> None:
        if self.unit not in ("words", "tokens", "chars"):
            raise ConfigError(f"Length unit is {self.unit!r}; use words, tokens or chars.", field="data.curation.signal")
        for name in ("min", "max"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ConfigError(f"Length {name} must be a whole number ≥ 0, not {value!r}.", field="data.curation.signal")
        if self.min is None and self.max is None:
            raise ConfigError("A length signal needs a min, a max or both.", field="data.curation.signal")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ConfigError(f"Length min ({self.min}) is above max ({self.max}).", field="data.curation.signal")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "unit": self.unit}
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        return out

    def describe(self) -> str:
        low = "" if self.min is None else f"≥ {self.min}"
        high = "" if self.max is None else f"≤ {self.max}"
        return f"length {' and '.join(x for x in (low, high) if x)} {self.unit}"

    def evaluate(self, batch: Batch) -> np.ndarray:
        if self.unit == "words":
            lengths = batch.texts.str.count(_NON_WS).to_numpy(dtype=np.int64)
        elif self.unit == "chars":
            lengths = batch.texts.str.len().to_numpy(dtype=np.int64)
        else:
            if batch.tokenizer is None:
                raise DataError(
                    "A length-in-tokens signal needs the model's tokenizer: choose a model first, or use words.",
                    field="data.curation.signal",
                )
            lengths = token_lengths(batch.tokenizer, batch.texts.tolist())
        ok = np.ones(len(lengths), dtype=bool)
        if self.min is not None:
            ok &= lengths >= self.min
        if self.max is not None:
            ok &= lengths <= self.max
        return ok


@dataclass(eq=False)
class Label(Signal):
    """The label (or another column) equals one of the values; 1, "1" and 1.0 are the same value."""

    values: tuple[Any, ...]
    column: str | None = None
    kind: ClassVar[str] = "label"

    def __post_init__(self) -> None:
        self.values = tuple(self.values)
        if not self.values:
            raise ConfigError("A label signal needs at least one value.", field="data.curation.signal")
        self._wanted = set(canonical_labels(pd.Series(list(self.values), dtype=object)))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "values": list(self.values)}
        if self.column:
            out["column"] = self.column
        return out

    def columns(self) -> set[str]:
        return {self.column} if self.column else set()

    def describe(self) -> str:
        return f"{self.column or 'label'} in {{{', '.join(map(str, self.values))}}}"

    def evaluate(self, batch: Batch) -> np.ndarray:
        return batch.labels(self.column).isin(self._wanted).to_numpy(dtype=bool)


@dataclass(eq=False)
class Sentiment(Signal):
    """Text is positive / negative: by the project's word lexicon (default) or by a classifier model."""

    polarity: str = "positive"
    method: str = "lexicon"
    model: str | None = None
    kind: ClassVar[str] = "sentiment"

    def __post_init__(self) -> None:
        if self.polarity not in ("positive", "negative"):
            raise ConfigError(f"Sentiment polarity is {self.polarity!r}; use positive or negative.", field="data.curation.signal")
        if self.method not in ("lexicon", "model"):
            raise ConfigError(f"Sentiment method is {self.method!r}; use lexicon or model.", field="data.curation.signal")
        if self.method == "model" and not self.model:
            raise ConfigError(
                "Sentiment by model needs 'model': a classifier folder or the id of a classification run.",
                field="data.curation.signal",
            )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "polarity": self.polarity}
        if self.method != "lexicon":
            out["method"] = self.method
        if self.model:
            out["model"] = self.model
        return out

    def describe(self) -> str:
        how = "lexicon" if self.method == "lexicon" else f"model {Path(str(self.model)).name}"
        return f"sentiment is {self.polarity} ({how})"

    def evaluate(self, batch: Batch) -> np.ndarray:
        if self.method == "lexicon":
            if "lexicon" not in batch.cache:
                batch.cache["lexicon"] = lexicon_scores(batch.texts)
            scores = batch.cache["lexicon"]
            return scores > 0 if self.polarity == "positive" else scores < 0
        loaded = _load_model(str(self.model), "classifier")
        positive, negative = _polarity_indices(loaded.model.config, str(self.model))
        probs = _classifier_probs(loaded, batch.texts.tolist())
        wanted = positive if self.polarity == "positive" else negative
        empty = batch.texts.str.strip().eq("").to_numpy(dtype=bool)
        return (probs.argmax(axis=1) == wanted) & ~empty


@dataclass(eq=False)
class Confidence(Signal):
    """The model's top prediction is below a probability: the edge cases it is unsure about.

    For a classifier: the highest label probability. For a masked or causal LM: the mean, over the
    text's tokens, of the highest token probability at each position (one forward pass, no masking).
    """

    model: str
    below: float = 0.6
    kind: ClassVar[str] = "confidence"

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError("A confidence signal needs 'model': a model folder or a run id.", field="data.curation.signal")
        if isinstance(self.below, bool) or not isinstance(self.below, (int, float)) or not 0 < self.below <= 1:
            raise ConfigError(f"Confidence 'below' must be a probability in (0, 1], not {self.below!r}.", field="data.curation.signal")
        self.below = float(self.below)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.model, "below": self.below}

    def describe(self) -> str:
        return f"{Path(self.model).name} confidence < {self.below:g}"

    def evaluate(self, batch: Batch) -> np.ndarray:
        loaded = _load_model(self.model, "auto")
        texts = batch.texts.tolist()
        if loaded.head == "classifier":
            confidence = _classifier_probs(loaded, texts).max(axis=1)
        else:
            confidence = _lm_confidence(loaded, texts)
        empty = batch.texts.str.strip().eq("").to_numpy(dtype=bool)
        return (confidence < self.below) & ~empty


_LEAVES: dict[str, type[Signal]] = {
    cls.kind: cls for cls in (Keywords, WordList, Regex, Length, Label, Sentiment, Confidence)
}
#: The settings each signal kind takes and their types (for forms that build signals).
SIGNAL_FIELDS = {
    "keywords": {"words": list, "mode": str, "case_sensitive": bool, "whole_word": bool},
    "word_list": {"list": str, "words": list},
    "regex": {"pattern": str, "case_sensitive": bool},
    "length": {"min": int, "max": int, "unit": str},
    "label": {"values": list, "column": str},
    "sentiment": {"polarity": str, "method": str, "model": str},
    "confidence": {"model": str, "below": float},
}
_REQUIRED_KEYS = {"keywords": ("words",), "regex": ("pattern",), "label": ("values",), "confidence": ("model",)}


def signal_from_dict(data: Any, _path: str = "0") -> Signal:
    """Build a Signal tree from plain data; malformed input raises ConfigError naming the node."""
    if isinstance(data, Signal):
        return data
    where = f"Signal node {_path}"
    if not isinstance(data, dict):
        raise ConfigError(
            f"{where} must be a mapping like {{kind: keywords, words: [...]}} or {{op: and, children: [...]}}, "
            f"not {data!r}.",
            field="data.curation.signal",
        )
    data = {k: v for k, v in data.items() if k != "name"}  # a display name is allowed and ignored
    if "op" in data:
        op = data["op"]
        if op not in SIGNAL_OPS:
            raise ConfigError(f"{where}: op is {op!r}; use and, or or not.", field="data.curation.signal")
        if op == "not":
            extra = set(data) - {"op", "child"}
            if "child" not in data or extra:
                raise ConfigError(f"{where}: a 'not' node takes exactly one 'child' (got keys: {', '.join(data)}).", field="data.curation.signal")
            return Not(signal_from_dict(data["child"], f"{_path}.0"))
        extra = set(data) - {"op", "children"}
        children = data.get("children")
        if extra or not isinstance(children, list) or not children:
            raise ConfigError(f"{where}: an '{op}' node takes a non-empty list 'children'.", field="data.curation.signal")
        built = tuple(signal_from_dict(c, f"{_path}.{i}") for i, c in enumerate(children))
        return And(built) if op == "and" else Or(built)
    kind = data.get("kind")
    if kind not in _LEAVES:
        raise ConfigError(
            f"{where}: kind is {kind!r}; choose one of {', '.join(SIGNAL_KINDS)} (or op: and/or/not).",
            field="data.curation.signal",
        )
    allowed = SIGNAL_FIELDS[kind]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key == "kind":
            continue
        if key not in allowed:
            raise ConfigError(
                f"{where}: a {kind} signal has no setting {key!r}; it takes: {', '.join(allowed)}.",
                field="data.curation.signal",
            )
        expected = allowed[key]
        if value is not None and not _has_type(value, expected):
            raise ConfigError(
                f"{where}: {kind} setting {key!r} must be {_type_name(expected)}, not {value!r}.",
                field="data.curation.signal",
            )
        kwargs[key] = value
    missing = [k for k in _REQUIRED_KEYS.get(kind, ()) if kwargs.get(k) in (None, [], "")]
    if missing:
        raise ConfigError(f"{where}: a {kind} signal needs {', '.join(missing)}.", field="data.curation.signal")
    if kind == "keywords" and not all(isinstance(w, str) for w in kwargs["words"]):
        raise ConfigError(f"{where}: keywords must be a list of words (text).", field="data.curation.signal")
    try:
        return _LEAVES[kind](**kwargs)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}", field="data.curation.signal") from None


def _has_type(value: Any, expected: type) -> bool:
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _type_name(expected: type) -> str:
    return {str: "text", int: "a whole number", float: "a number", bool: "true or false", list: "a list"}[expected]


def signal_from_yaml(text: str) -> Signal:
    """Parse a signal tree written in YAML."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"The signal is not valid YAML{where}.", field="data.curation.signal") from None
    return signal_from_dict(data)


def iter_nodes(signal: Signal, path: str = "0") -> list[tuple[str, Signal]]:
    """Every node with its path ("0" the root, "0.1" its second child, ...), parents first."""
    nodes = [(path, signal)]
    for i, child in enumerate(signal.children()):
        nodes += iter_nodes(child, f"{path}.{i}")
    return nodes


# ---- batched evaluation ---------------------------------------------------------------------

def _node_masks(signal: Signal, batch: Batch, path: str, out: dict[str, np.ndarray]) -> np.ndarray:
    """Evaluate a node bottom-up, recording every node's mask under its path."""
    if signal.children():
        masks = [_node_masks(c, batch, f"{path}.{i}", out) for i, c in enumerate(signal.children())]
        mask = signal.combine(masks)
    else:
        mask = np.asarray(signal.evaluate(batch), dtype=bool)
    out[path] = mask
    return mask


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
    if text_column not in frame.columns:
        raise DataError(f"The data has no text column '{text_column}'.", field="data.text_column")
    needed = set().union(*(node.columns() for _, node in nodes))
    if label_column and label_column in frame.columns:
        needed.add(label_column)
    missing = sorted(c for c in needed if c not in frame.columns)
    if missing:
        raise DataError(
            f"The signal reads column(s) {', '.join(missing)}, which the data does not have; its columns are: "
            f"{', '.join(map(str, frame.columns))}.",
            field="data.curation.signal",
        )
    if len(frame) == 0:
        return {path: np.zeros(0, dtype=bool) for path, _ in nodes}
    # Every column goes in as text: a label column mixing 1 and "pos" would not fit one Arrow type.
    table = {"__text__": _arrow_text(frame[text_column]).to_numpy(dtype=object)}
    extra = sorted(needed)
    for i, name in enumerate(extra):
        table[f"__c{i}__"] = _arrow_text(frame[name]).to_numpy(dtype=object)
    dataset = datasets.Dataset.from_dict(table).with_format("arrow")
    keys = {path: f"n{i}" for i, (path, _) in enumerate(nodes)}

    def run(arrow_batch: Any) -> dict[str, np.ndarray]:
        texts = _arrow_text(arrow_batch.column("__text__").to_pandas())
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


# ---- model-based signals --------------------------------------------------------------------

@dataclass
class _Loaded:
    model: Any
    tokenizer: Any
    head: str  # "classifier" | "masked" | "causal"


_MODELS: dict[tuple[str, str], _Loaded] = {}
_MODELS_LOCK = threading.Lock()


def resolve_model_folder(value: str) -> Path:
    """A model folder from a path, a run folder (its final/ model) or a run id under the runs root."""
    candidates = [Path(value).expanduser()]
    runs_root = Path(os.environ.get("TUNEBOARD_RUNS", "runs"))
    candidates += [candidates[0] / "final", runs_root / value / "final"]
    for folder in candidates:
        if (folder / "config.json").is_file():
            return folder.resolve()
    if any((c / "adapter_config.json").is_file() for c in candidates):
        raise DataError(
            f"{value} holds a LoRA adapter only: export the run with 'merge' to get a full model for curation.",
            field="data.curation.signal",
        )
    raise DataError(
        f"No model found at {value!r}: give a model folder (with config.json), a run folder or a run id.",
        field="data.curation.signal",
    )


def _load_model(value: str, head: str) -> _Loaded:
    """Load (once per folder) a tokenizer and model; transformers is imported only when needed."""
    folder = resolve_model_folder(value)
    key = (str(folder), head)
    with _MODELS_LOCK:
        if key in _MODELS:
            return _MODELS[key]
        from transformers import (
            AutoConfig,
            AutoModelForCausalLM,
            AutoModelForMaskedLM,
            AutoModelForSequenceClassification,
            AutoTokenizer,
        )

        try:
            config = AutoConfig.from_pretrained(folder)
            archs = " ".join(config.architectures or [])
            kind = head
            if head == "auto":
                kind = "masked" if "MaskedLM" in archs else "causal" if ("CausalLM" in archs or "LMHead" in archs) else "classifier"
            cls = {
                "classifier": AutoModelForSequenceClassification,
                "masked": AutoModelForMaskedLM,
                "causal": AutoModelForCausalLM,
            }[kind]
            tokenizer = AutoTokenizer.from_pretrained(folder)
            model = cls.from_pretrained(folder, use_safetensors=True)
        except (OSError, ValueError, KeyError) as err:
            raise DataError(f"The model at {folder} could not be loaded for curation: {err}", field="data.curation.signal") from None
        if tokenizer.pad_token is None and tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token  # GPT-2 style tokenizers have no pad token
        model.eval()
        if len(_MODELS) >= 2:  # keep memory bounded: at most two curation models at a time
            _MODELS.pop(next(iter(_MODELS)))
        _MODELS[key] = _Loaded(model=model, tokenizer=tokenizer, head=kind)
        return _MODELS[key]


def _polarity_indices(config: Any, where: str) -> tuple[int, int]:
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


def _classifier_probs(loaded: _Loaded, texts: list[str], batch_size: int = 32) -> np.ndarray:
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


def _lm_confidence(loaded: _Loaded, texts: list[str], batch_size: int = 8) -> np.ndarray:
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


# ---- integrity checks and curate() ----------------------------------------------------------

def token_lengths(tokenizer: Any, texts: list[str], chunk: int = 4096) -> np.ndarray:
    """Token count of each text with special tokens (what the model sees), in chunks."""
    lengths = []
    for start in range(0, len(texts), chunk):
        enc = tokenizer(texts[start : start + chunk], add_special_tokens=True, truncation=False, verbose=False)
        lengths += [len(ids) for ids in enc["input_ids"]]
    return np.asarray(lengths, dtype=np.int64)


def _truncate(tokenizer: Any, texts: list[str], max_length: int) -> list[str]:
    """Cut texts where the tokenizer's truncation ends, keeping the original characters."""
    if not getattr(tokenizer, "is_fast", False):
        return texts  # slow tokenizers have no offsets: the engine truncates at tokenisation instead
    enc = tokenizer(texts, truncation=True, max_length=max_length, return_offsets_mapping=True, verbose=False)
    cut = []
    for text, offsets in zip(texts, enc["offset_mapping"], strict=True):
        end = max((e for _, e in offsets), default=len(text))
        cut.append(text[:end])
    return cut


def _jsonable(value: Any) -> Any:
    """Plain JSON types for report examples (NaN -> None, numpy scalars -> Python)."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


@dataclass
class CurationResult:
    """Rows kept, rows removed (with a `reason` column) and a JSON-serialisable lineage report."""

    kept: pd.DataFrame
    removed: pd.DataFrame
    report: dict[str, Any]

    def summary(self) -> str:
        """One line: rows in, rows out and the main reasons for removal."""
        r = self.report
        reasons = ", ".join(f"{n} {k}" for k, n in r["removed"].items() if n)
        return f"{r['rows_in']} rows in, {r['rows_out']} kept" + (f" ({reasons} removed)" if reasons else "")


class _Checks:
    """Bookkeeping for curate(): which rows are alive, why others went, flags and examples."""

    def __init__(self, frame: pd.DataFrame, text_column: str, label_column: str | None, flag: bool):
        self.frame = frame
        self.text_column = text_column
        self.label_column = label_column if label_column in frame.columns else None
        self.flag = flag
        n = len(frame)
        self.alive = np.ones(n, dtype=bool)
        self.reason = np.full(n, None, dtype=object)
        self.flags = np.full(n, None, dtype=object)
        self.entries: list[dict[str, Any]] = []

    def examples(self, mask: np.ndarray, texts: pd.Series | None = None) -> list[dict[str, Any]]:
        rows = np.flatnonzero(mask)[:_EXAMPLES]
        out = []
        for row in rows:
            example = {"row": int(row), "text": _jsonable(self.frame[self.text_column].iloc[row])}
            if texts is not None:
                example["text"] = _jsonable(texts.iloc[row])
            if self.label_column:
                example["label"] = _jsonable(self.frame[self.label_column].iloc[row])
            out.append(example)
        return out

    def apply(self, name: str, failed: np.ndarray, detail: str, *, always_remove: bool = False) -> None:
        failed = failed & self.alive
        count = int(failed.sum())
        remove = always_remove or not self.flag
        if count:
            if remove:
                self.alive &= ~failed
                self.reason[failed] = name
            else:
                for row in np.flatnonzero(failed):
                    self.flags[row] = name if self.flags[row] is None else f"{self.flags[row]}; {name}"
        self.entries.append(
            {
                "check": name,
                "failed": count,
                "action": "removed" if remove else "flagged",
                "detail": detail,
                "examples": self.examples(failed),
            }
        )


def curate(
    frame: pd.DataFrame,
    data_cfg: DataConfig,
    task: str,
    tokenizer: Any = None,
    *,
    max_length: int | None = None,
    expected_labels: Iterable[Any] | None = None,
    apply_signal: bool = True,
) -> CurationResult:
    """Run the integrity checks and the configured signal; return kept rows, removed rows and lineage.

    Checks, in order: null-like text; for classification missing / unparseable / unexpected labels
    (unexpected = not among `expected_labels`, e.g. an eval file's labels the training data lacks); duplicates (exact, or case/whitespace-normalised);
    texts longer than `max_length` tokens (default: the tokenizer's limit; skipped without a
    tokenizer), truncated or dropped as configured. Then rows failing the signal are removed.
    """
    check_columns(frame, data_cfg, task)
    cur = data_cfg.curation
    text_column, label_column = data_cfg.text_column, data_cfg.label_column
    flag = cur.check_action == "flag"
    signal = signal_from_dict(cur.signal) if (cur.signal and apply_signal) else None
    work = frame.copy()
    checks = _Checks(work, text_column, label_column, flag)

    raw_text = work[text_column]
    null = null_text_mask(raw_text)
    checks.apply("null_text", null, "text is missing, empty, whitespace or a null word (nan, None, null)")

    if task == "classification":
        _, kind, missing, unparseable = parse_labels(work[label_column])
        checks.apply("missing_label", missing, "the label is empty")
        expected = "integers" if kind == "int" else "names (text)"
        checks.apply("unparseable_label", unparseable, f"most labels are {expected}; these are not")
        if expected_labels is not None:
            wanted = sorted(set(canonical_labels(pd.Series(list(expected_labels), dtype=object))))
            canon = canonical_labels(work[label_column])
            unexpected = ~canon.isin(wanted).to_numpy(dtype=bool) & ~missing & ~unparseable
            checks.apply("unexpected_label", unexpected, f"the label is not one of: {', '.join(wanted)}")

    texts = _arrow_text(raw_text)
    if cur.drop_duplicates:
        key = texts.str.lower().str.replace(_WS, " ", regex=True).str.strip() if cur.normalise_duplicates else texts
        eligible = checks.alive & ~null
        dup = np.zeros(len(work), dtype=bool)
        dup[eligible] = key[eligible].duplicated(keep="first").to_numpy(dtype=bool)
        how = "case- and whitespace-normalised" if cur.normalise_duplicates else "exact"
        checks.apply("duplicate", dup, f"the text repeats an earlier row ({how}); the first one is kept")

    limit = max_length
    if limit is None and tokenizer is not None:
        model_max = getattr(tokenizer, "model_max_length", None)
        limit = model_max if isinstance(model_max, int) and model_max < 100_000 else None
    long_report: dict[str, Any] = {"check": "too_long", "failed": 0, "action": "skipped", "detail": "no tokenizer given"}
    if tokenizer is not None and limit:
        eligible = np.flatnonzero(checks.alive & ~null)
        lengths = np.zeros(len(work), dtype=np.int64)
        lengths[eligible] = token_lengths(tokenizer, texts.iloc[eligible].tolist())
        too_long = lengths > limit
        if cur.too_long == "drop":
            checks.apply("too_long", too_long, f"longer than {limit} tokens")
            long_report = {}
        else:
            rows = np.flatnonzero(too_long)
            examples = checks.examples(too_long)
            if len(rows):
                position = work.columns.get_loc(text_column)
                cut = _truncate(tokenizer, texts.iloc[rows].tolist(), limit)
                if work[text_column].dtype != object:
                    work[text_column] = work[text_column].astype(object)
                work.iloc[rows, position] = cut
            long_report = {
                "check": "too_long",
                "failed": int(len(rows)),
                "action": "truncated",
                "detail": f"longer than {limit} tokens: cut to {limit}",
                "examples": examples,
            }
    if long_report:
        checks.entries.append(long_report)

    signal_rows = int(checks.alive.sum())
    node_report: list[dict[str, Any]] = []
    if signal is not None:
        alive_idx = np.flatnonzero(checks.alive)
        masks = evaluate_signal(
            work.iloc[alive_idx], signal, text_column=text_column, label_column=label_column, tokenizer=tokenizer
        )
        for path, node in iter_nodes(signal):
            node_report.append({"path": path, "node": node.describe(), "passed": int(masks[path].sum())})
        failed = np.zeros(len(work), dtype=bool)
        failed[alive_idx] = ~masks["0"]
        checks.apply("signal", failed, "the row does not pass the signal tree", always_remove=True)

    kept = work[checks.alive].copy()
    if flag:
        kept["flag_reason"] = pd.Series(checks.flags[checks.alive], index=kept.index, dtype=object)
    removed = work[~checks.alive].copy()
    removed["reason"] = checks.reason[~checks.alive]
    for out in (kept, removed):
        out.attrs = {}  # lineage lives in the report, not in pandas attrs that copy on every operation
    removed_counts = {r: int((checks.reason == r).sum()) for r in REMOVAL_REASONS}
    report = {
        "version": 1,
        "task": task,
        "source": _jsonable_dict(frame.attrs.get("source") or {"source": data_cfg.source, "path": data_cfg.path}),
        "read": _jsonable_dict(frame.attrs.get("read_report") or {}),
        "text_column": text_column,
        "label_column": label_column if label_column in frame.columns else None,
        "settings": {
            "drop_duplicates": cur.drop_duplicates,
            "normalise_duplicates": cur.normalise_duplicates,
            "too_long": cur.too_long,
            "max_length": limit,
            "check_action": cur.check_action,
        },
        "rows_in": int(len(frame)),
        "checks": checks.entries,
        "signal": signal.to_dict() if signal is not None else None,
        "signal_rows_in": signal_rows if signal is not None else None,
        "signal_counts": node_report,
        "removed": {k: v for k, v in removed_counts.items() if v},
        "flagged": int(sum(f is not None for f in checks.flags)) if flag else 0,
        "rows_out": int(len(kept)),
    }
    if frame.attrs.get("label_names"):
        report["label_names"] = list(frame.attrs["label_names"])
    return CurationResult(kept=kept, removed=removed, report=report)


def _jsonable_dict(data: dict[str, Any]) -> dict[str, Any]:
    """A shallow copy whose values are JSON types (lists and nested dicts kept)."""
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out[str(key)] = _jsonable_dict(value)
        elif isinstance(value, (list, tuple)):
            out[str(key)] = [_jsonable(v) for v in value]
        else:
            out[str(key)] = _jsonable(value)
    return out


# ---- saved curated datasets -----------------------------------------------------------------

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def curated_root(root: str | Path | None = None) -> Path:
    """Where curated datasets live: the given root, $TUNEBOARD_DATA or ./datasets."""
    return Path(root) if root is not None else Path(os.environ.get("TUNEBOARD_DATA", "datasets"))


def _parquet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns mixing types (1 and "pos") become text so Arrow can store them."""
    out = frame.reset_index(drop=True)
    for column in out.columns:
        if out[column].dtype == object:
            kinds = {type(v) for v in out[column] if v is not None and not (isinstance(v, float) and np.isnan(v))}
            if len(kinds) > 1 or (kinds and not kinds <= {str}):
                out[column] = out[column].map(lambda v: v if v is None or isinstance(v, str) else str(v))
    return out


def save_curated(result: CurationResult, name: str, root: str | Path | None = None) -> Path:
    """Save kept rows (data.parquet) and lineage (lineage.json) under <root>/<name>/; returns the folder."""
    from core.runs import atomic_write_json, now_iso

    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise DataError(
            f"{name!r} is not a valid dataset name: use letters, digits, '-', '_' and '.' (no slashes).",
            field="dataset_name",
        )
    folder = curated_root(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".data.parquet.{uuid.uuid4().hex}"
    try:
        _parquet_safe(result.kept).to_parquet(tmp, index=False)
        os.replace(tmp, folder / "data.parquet")
    except OSError as err:
        raise DataError(f"Could not save the curated dataset to {folder}: {err.strerror or err}.") from None
    finally:
        tmp.unlink(missing_ok=True)
    lineage = {"name": name, "saved_at": now_iso(), "rows": int(len(result.kept)), **result.report}
    atomic_write_json(folder / "lineage.json", lineage)
    return folder


def _curated_folder(name_or_path: str, root: str | Path | None = None) -> Path:
    given = Path(name_or_path).expanduser()
    for folder in (given, curated_root(root) / name_or_path):
        if (folder / "data.parquet").is_file():
            return folder
    available = ", ".join(d["name"] for d in list_curated(root)) or "none yet"
    raise DataError(
        f"No curated dataset {name_or_path!r}: save one from the Data page first (available: {available}).",
        field="data.path",
    )


def load_curated(name_or_path: str, root: str | Path | None = None) -> pd.DataFrame:
    """Rows of a saved curated dataset (by name under the data root, or by folder)."""
    folder = _curated_folder(name_or_path, root)
    frame = read_table(folder / "data.parquet")
    if "flag_reason" in frame.columns and frame["flag_reason"].isna().all():
        frame = frame.drop(columns="flag_reason")
    try:
        lineage = json.loads((folder / "lineage.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        lineage = {}
    if lineage.get("label_names"):
        frame.attrs["label_names"] = lineage["label_names"]
    frame.attrs["read_report"] = {"path": str(folder), "format": "curated", "repairs": [], "warnings": []}
    return frame


def list_curated(root: str | Path | None = None) -> list[dict[str, Any]]:
    """Saved curated datasets, newest first: name, path, rows, saved_at, source, task, signal."""
    base = curated_root(root)
    if not base.is_dir():
        return []
    items = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if not (folder / "data.parquet").is_file():
            continue
        entry: dict[str, Any] = {"name": folder.name, "path": str(folder)}
        try:
            lineage = json.loads((folder / "lineage.json").read_text(encoding="utf-8"))
            entry.update(
                rows=lineage.get("rows"),
                saved_at=lineage.get("saved_at"),
                source=lineage.get("source"),
                task=lineage.get("task"),
                signal=lineage.get("signal"),
            )
        except (OSError, ValueError):
            entry["error"] = "lineage.json is missing or unreadable"
        items.append(entry)
    return sorted(items, key=lambda e: e.get("saved_at") or "", reverse=True)
