"""Signals: serialisable predicates on rows that carve a focused training set out of raw data.

A signal is stored as plain data (a dict, so it lives in the RunConfig's YAML):

    {"op": "and", "children": [
        {"kind": "word_list", "list": "brand:Nike"},
        {"kind": "word_list", "list": "brand_products:Nike"},
        {"kind": "sentiment", "polarity": "positive"}]}

The same tree in Python: `WordList("brand:Nike") & WordList("brand_products:Nike") & Sentiment()`.
`~signal` negates, `|` is OR. Signals are evaluated in batches through `datasets.Dataset.map` on
Arrow-backed string columns, so regexes run in RE2 (pyarrow compute) and 100k rows take well under a
second; patterns RE2 cannot run (look-behind, back-references) fall back to Python's `re`.

This module also holds the text and label helpers the integrity checks share (null-like texts,
label parsing, token lengths). Signals that ask a model (sentiment by model, confidence) load it
through core.data.model_signals.
"""

from __future__ import annotations

import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import yaml

from core.data import model_signals
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
WHITESPACE = r"[ \t\r\n\f\v]+"
_NON_WS = r"[^ \t\r\n\f\v]+"


def _alternation(words: Iterable[str]) -> str:
    """One regex alternative per word; phrases match across any whitespace; longest first."""
    parts = []
    for word in sorted({w.strip() for w in words if w and w.strip()}, key=lambda w: (-len(w), w)):
        parts.append(WHITESPACE.join(re.escape(p) for p in word.split()))
    return "|".join(parts)


def _word_regex(words: Iterable[str], *, whole_word: bool = True, case_sensitive: bool = False) -> str:
    """A regex matching any of the words; boundaries only where a word starts/ends with a word char."""
    alternatives = []
    for word in sorted({w.strip() for w in words if w and w.strip()}, key=lambda w: (-len(w), w)):
        body = WHITESPACE.join(re.escape(p) for p in word.split())
        if whole_word:
            # \b only means something next to a word character ("c++" has none at its end).
            body = (r"\b" if re.match(r"\w", word[0]) else "") + body + (r"\b" if re.match(r"\w", word[-1]) else "")
        alternatives.append(body)
    if not alternatives:
        raise ConfigError("A keyword or word-list signal needs at least one word.", field="data.curation.signal")
    flags = "" if case_sensitive else "(?i)"
    return f"{flags}(?:{'|'.join(alternatives)})"


_NEGATION = r"\b(?:" + "|".join(re.escape(n) for n in NEGATORS).replace("'", "['’]") + ")" + WHITESPACE + "(?:(?:very|really|so|too|that|particularly|overly)" + WHITESPACE + ")?"
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
    s = arrow_text(texts)
    pos = s.str.count(_POS).to_numpy(dtype=np.int64)
    neg = s.str.count(_NEG).to_numpy(dtype=np.int64)
    not_pos = s.str.count(_NOT_POS).to_numpy(dtype=np.int64)
    not_neg = s.str.count(_NOT_NEG).to_numpy(dtype=np.int64)
    # "not very expensive" counted +1 negative above; flipping it is worth +2.
    return pos - neg + 2 * (not_neg - not_pos)


# ---- text helpers ---------------------------------------------------------------------------

def arrow_text(values: pd.Series | Iterable[Any]) -> pd.Series:
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
    stripped = arrow_text(values).str.strip()
    return missing | stripped.eq("").to_numpy(dtype=bool) | stripped.str.lower().isin(NULL_STRINGS).to_numpy(dtype=bool)


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
    int_like = canon.str.match(_INT_LIKE).fillna(False).to_numpy(dtype=bool) & ~missing
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
class _Group(Signal):
    """A combinator over one or more children; subclasses name the operator and how masks join."""

    items: tuple[Signal, ...]
    op: ClassVar[str]
    label: ClassVar[str]
    join: ClassVar[np.ufunc]  # reduced over the children's masks

    def __post_init__(self) -> None:
        self.items = _check_children(self.items, self.op)

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "children": [c.to_dict() for c in self.items]}

    def describe(self) -> str:
        return self.label

    def children(self) -> tuple[Signal, ...]:
        return self.items

    def combine(self, masks: list[np.ndarray]) -> np.ndarray:
        return self.join.reduce(masks)


@dataclass(eq=False)
class And(_Group):
    """Rows passing every child."""

    op: ClassVar[str] = "and"
    label: ClassVar[str] = "ALL of"
    join: ClassVar[np.ufunc] = np.logical_and


@dataclass(eq=False)
class Or(_Group):
    """Rows passing at least one child."""

    op: ClassVar[str] = "or"
    label: ClassVar[str] = "ANY of"
    join: ClassVar[np.ufunc] = np.logical_or


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
        loaded = model_signals.load_signal_model(str(self.model), "classifier")
        positive, negative = model_signals.polarity_indices(loaded.model.config, str(self.model))
        probs = model_signals.classifier_probs(loaded, batch.texts.tolist())
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
        loaded = model_signals.load_signal_model(self.model, "auto")
        texts = batch.texts.tolist()
        if loaded.head == "classifier":
            confidence = model_signals.classifier_probs(loaded, texts).max(axis=1)
        else:
            confidence = model_signals.lm_confidence(loaded, texts)
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


def signal_place(path: str) -> str:
    """A node's place in words from its path ("0" the root, "0.1.0" its 2nd child's 1st child): "Signal 2 › 1"."""
    below = [int(part) + 1 for part in path.split(".")[1:] if part.isdigit()]
    return "The top signal" if not below else "Signal " + " › ".join(str(n) for n in below)


def signal_from_dict(data: Any, _path: str = "0") -> Signal:
    """Build a Signal tree from plain data; malformed input raises ConfigError naming the node by its place.

    `_path` is where `data` sits in a larger tree ("0" for the root), for the error messages.
    """
    if isinstance(data, Signal):
        return data
    where = signal_place(_path)
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
