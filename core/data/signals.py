"""Signals: serialisable predicates on rows that carve a focused training set out of raw data.

Longer than 500 lines on purpose: the nodes, their combinators and `signal_from_dict` refer to one
another (`a & b` builds an And, an And parses dict children, signal_from_dict builds every node).

A signal is stored as plain data (a dict, so it lives in the RunConfig's YAML):

    {"op": "and", "children": [
        {"kind": "word_list", "list": "brand:Nike"},
        {"kind": "word_list", "list": "brand_products:Nike"},
        {"kind": "sentiment", "polarity": "positive"}]}

The same tree in Python: `WordList("brand:Nike") & WordList("brand_products:Nike") & Sentiment()`.
`~signal` negates, `|` is OR. Nearby: core.data.signal_schema (the settings each kind takes),
core.data.signal_eval (running a tree over a table in batches), core.data.lexicon (word lists and
the sentiment lexicon) and core.data.model_signals (the models that model-based signals ask).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import yaml

from core.data import model_signals
from core.data.cells import NON_WHITESPACE, canonical_labels, text_matches, token_lengths
from core.data.lexicon import lexicon_scores, word_lists, word_regex
from core.data.signal_schema import SIGNAL_KINDS, SIGNAL_OPS, leaf_settings, signal_place
from core.errors import ConfigError, DataError


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
            word_regex([w], whole_word=self.whole_word, case_sensitive=self.case_sensitive) for w in self.words
        ] if self.mode == "all" else [
            word_regex(self.words, whole_word=self.whole_word, case_sensitive=self.case_sensitive)
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
        return np.logical_and.reduce([text_matches(batch.texts, p) for p in self._patterns])


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
        self._pattern = word_regex(items)

    def to_dict(self) -> dict[str, Any]:
        if self.list is not None:
            return {"kind": self.kind, "list": self.list}
        return {"kind": self.kind, "words": list(self.words or ())}

    def describe(self) -> str:
        return f"mentions {self.list}" if self.list else f"mentions one of: {', '.join(self.words or ())}"

    def evaluate(self, batch: Batch) -> np.ndarray:
        return text_matches(batch.texts, self._pattern)


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
        return text_matches(batch.texts, self._pattern)


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
            lengths = batch.texts.str.count(NON_WHITESPACE).to_numpy(dtype=np.int64)
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
    kwargs = leaf_settings(kind, data, where)
    try:
        return _LEAVES[kind](**kwargs)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}", field="data.curation.signal") from None


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


def needs_model(signal: Signal) -> bool:
    """Whether evaluating the tree loads a model or its tokenizer (sentiment by model, confidence, tokens)."""
    return any(
        isinstance(node, Confidence)
        or (isinstance(node, Sentiment) and node.method == "model")
        or (isinstance(node, Length) and node.unit == "tokens")
        for _, node in iter_nodes(signal)
    )
