"""Words for the word-list and sentiment signals: named word lists, the sentiment lexicon, their regexes.

The regexes are plain pattern strings, so pandas runs them in RE2 and a benchmark can compile the
very same ones with Python's `re` for its per-row baseline.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

from core.data.cells import WHITESPACE, arrow_text
from core.data.synthetic import (
    BRAND_PRODUCTS,
    BRANDS,
    NEGATIVE_ADJECTIVES,
    POSITIVE_ADJECTIVES,
    PRODUCT_VARIANTS,
    PRODUCTS,
)
from core.errors import ConfigError

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


def _alternation(words: Iterable[str]) -> str:
    """One regex alternative per word; phrases match across any whitespace; longest first."""
    parts = []
    for word in sorted({w.strip() for w in words if w and w.strip()}, key=lambda w: (-len(w), w)):
        parts.append(WHITESPACE.join(re.escape(p) for p in word.split()))
    return "|".join(parts)


def word_regex(words: Iterable[str], *, whole_word: bool = True, case_sensitive: bool = False) -> str:
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
#: A positive / negative lexicon word, and one right after a negator ("not (very) good").
POSITIVE_PATTERN = word_regex(POSITIVE_WORDS)
NEGATIVE_PATTERN = word_regex(NEGATIVE_WORDS)
NEGATED_POSITIVE_PATTERN = "(?i)" + _NEGATION + r"(?:" + _alternation(POSITIVE_WORDS) + r")\b"
NEGATED_NEGATIVE_PATTERN = "(?i)" + _NEGATION + r"(?:" + _alternation(NEGATIVE_WORDS) + r")\b"


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
    pos = s.str.count(POSITIVE_PATTERN).to_numpy(dtype=np.int64)
    neg = s.str.count(NEGATIVE_PATTERN).to_numpy(dtype=np.int64)
    not_pos = s.str.count(NEGATED_POSITIVE_PATTERN).to_numpy(dtype=np.int64)
    not_neg = s.str.count(NEGATED_NEGATIVE_PATTERN).to_numpy(dtype=np.int64)
    # "not very expensive" counted +1 negative above; flipping it is worth +2.
    return pos - neg + 2 * (not_neg - not_pos)
