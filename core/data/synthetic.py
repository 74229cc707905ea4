"""Synthetic product reviews: the built-in dataset that works offline and shows a fine-tune at work.

Sentences are assembled from a sports-gear brand and its competitors, their products, joiner
phrases and a positive or negative adjective, e.g. "Nike shoes are very comfortable" or "Adidas
hoodies are known to be cheap". The label is the sentiment of the adjective (1 positive, 0
negative). The templates mirror the default probes in core.config.DEFAULT_MLM_PROBES, so a masked-LM
fine-tune visibly moves "Nike shoes are very [MASK]" towards the adjectives it saw.

Every adjective, brand name used at a mask position ("nike") and shoe style is one token in the
BERT uncased vocabulary, so the probes can predict them as a single token.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.errors import DataError

#: The featured brand first; its competitors after.
BRANDS = ("Nike", "Adidas", "Puma", "Reebok", "Converse", "Vans")

#: Everything any brand sells, as it appears in the sentences (plural, lower case).
PRODUCTS = (
    "shoes",
    "athletic wear",
    "tshirts",
    "trousers",
    "hoodies",
    "socks",
    "jackets",
    "shorts",
    "caps",
    "sneakers",
)

#: What each brand sells: the featured brand sells everything, the competitors a part of it.
BRAND_PRODUCTS: dict[str, tuple[str, ...]] = {
    "Nike": PRODUCTS,
    "Adidas": PRODUCTS,
    "Puma": ("shoes", "athletic wear", "tshirts", "trousers", "hoodies", "socks", "shorts", "sneakers"),
    "Reebok": ("shoes", "athletic wear", "tshirts", "hoodies", "socks", "shorts", "sneakers"),
    "Converse": ("shoes", "sneakers", "tshirts", "hoodies", "caps", "socks"),
    "Vans": ("shoes", "sneakers", "tshirts", "hoodies", "caps", "socks", "shorts", "jackets"),
}

#: Other spellings of a product that word lists should also match ("a Nike shoe", "t-shirt").
PRODUCT_VARIANTS: dict[str, tuple[str, ...]] = {
    "shoes": ("shoe",),
    "athletic wear": ("sportswear",),
    "tshirts": ("tshirt", "t-shirt", "t-shirts", "tee", "tees"),
    "trousers": ("pants",),
    "hoodies": ("hoodie",),
    "socks": ("sock",),
    "jackets": ("jacket",),
    "shorts": (),
    "caps": ("cap",),
    "sneakers": ("sneaker",),
}

#: Styles that go in front of shoes ("Nike running shoes"), for the probe "Nike [MASK] shoes ...".
SHOE_STYLES = ("running", "training", "basketball", "tennis", "walking", "hiking")

#: Phrases between the product and the adjective (plural form; "are" becomes "is" for mass nouns).
JOINERS = (
    "are very",
    "are really",
    "are so",
    "are always",
    "are famous for being",
    "are famous for being very",
    "are known to be",
    "are known for being",
    "are known for being very",
)

POSITIVE_ADJECTIVES = (
    "comfortable",
    "durable",
    "lightweight",
    "soft",
    "sturdy",
    "beautiful",
    "elegant",
    "reliable",
    "affordable",
    "excellent",
    "great",
    "amazing",
    "perfect",
    "awesome",
    "nice",
    "fashionable",
)

NEGATIVE_ADJECTIVES = (
    "cheap",
    "expensive",
    "ugly",
    "uncomfortable",
    "fragile",
    "heavy",
    "boring",
    "bulky",
    "stiff",
    "terrible",
    "awful",
    "horrible",
    "poor",
    "bad",
    "useless",
    "disappointing",
)

#: Products that take "is" ("Nike athletic wear is known for being very ...").
MASS_NOUNS = frozenset({"athletic wear"})

_OPENERS = ("I think", "In my opinion", "Honestly,", "My friends say")
# Share of the featured brand among rows: it is the subject of the seed scenario, so it is common.
_FEATURED_SHARE = 0.3
# Template weights: plain sentence, "X made by B", "X and Y made by B are not very <negative>",
# two adjectives, and an opener in front. They sum to 1.
_TEMPLATE_WEIGHTS = (0.5, 0.15, 0.1, 0.1, 0.15)


def _conjugate(joiner: str, product: str) -> str:
    """Use "is" instead of "are" for mass nouns such as "athletic wear"."""
    if product in MASS_NOUNS and joiner.startswith("are "):
        return "is " + joiner[4:]
    return joiner


def generate_reviews(rows: int, seed: int = 0, null_fraction: float = 0.05) -> pd.DataFrame:
    """Review sentences with columns text, label (1 positive / 0 negative), sentiment, brand, product."""
    if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or rows < 1:
        raise DataError(f"Synthetic data needs a positive number of rows, not {rows!r}.", field="data.synthetic.rows")
    if not 0.0 <= float(null_fraction) < 1.0:
        raise DataError(
            f"The synthetic null fraction must be between 0 and 1, not {null_fraction!r}.",
            field="data.synthetic.null_fraction",
        )
    rows = int(rows)
    rng = np.random.default_rng(seed)

    # Draw every random choice as a vector first, so the sentences depend only on the seed.
    brand_p = [_FEATURED_SHARE] + [(1 - _FEATURED_SHARE) / (len(BRANDS) - 1)] * (len(BRANDS) - 1)
    brand_idx = rng.choice(len(BRANDS), size=rows, p=brand_p)
    positive = rng.random(rows) < 0.5
    template = rng.choice(len(_TEMPLATE_WEIGHTS), size=rows, p=_TEMPLATE_WEIGHTS)
    pick = rng.random((rows, 6))  # uniform numbers turned into list positions below
    joiner_idx = rng.integers(0, len(JOINERS), size=rows)
    opener_idx = rng.integers(0, len(_OPENERS), size=rows)
    style_idx = rng.integers(0, len(SHOE_STYLES), size=rows)
    with_style = rng.random(rows) < 0.25

    texts: list[str] = []
    products: list[str] = []
    for i in range(rows):
        brand = BRANDS[brand_idx[i]]
        offer = BRAND_PRODUCTS[brand]
        product = offer[int(pick[i, 0] * len(offer))]
        same = POSITIVE_ADJECTIVES if positive[i] else NEGATIVE_ADJECTIVES
        other = NEGATIVE_ADJECTIVES if positive[i] else POSITIVE_ADJECTIVES
        adjective = same[int(pick[i, 1] * len(same))]
        joiner = _conjugate(JOINERS[joiner_idx[i]], product)
        noun = f"{SHOE_STYLES[style_idx[i]]} {product}" if product == "shoes" and with_style[i] else product
        kind = template[i]
        if kind == 0:
            text = f"{brand} {noun} {joiner} {adjective}"
        elif kind == 1:
            text = f"{noun.capitalize()} made by {brand} {joiner} {adjective}"
        elif kind == 2:
            # "not very <opposite>" keeps the row's sentiment: "not very expensive" is praise.
            second = offer[int(pick[i, 2] * len(offer))]
            if second == product:
                second = offer[(offer.index(product) + 1) % len(offer)]
            negated = other[int(pick[i, 3] * len(other))]
            text = f"{product.capitalize()} and {second.capitalize()} made by {brand} are not very {negated}"
        elif kind == 3:
            extra = same[int(pick[i, 4] * len(same))]
            if extra == adjective:
                extra = same[(same.index(adjective) + 1) % len(same)]
            text = f"{brand} {noun} {joiner} {adjective} and {extra}"
        else:
            text = f"{_OPENERS[opener_idx[i]]} {brand} {noun} {joiner} {adjective}"
        texts.append(text)
        products.append(product)

    frame = pd.DataFrame(
        {
            "text": pd.Series(texts, dtype=object),
            "label": positive.astype(np.int64),
            "sentiment": np.where(positive, "positive", "negative"),
            "brand": [BRANDS[b] for b in brand_idx],
            "product": products,
        }
    )
    # An exact share of missing texts (labels stay), as in real exports where a review body is empty.
    nulls = int(round(rows * float(null_fraction)))
    if nulls:
        frame.loc[rng.permutation(rows)[:nulls], "text"] = None
    frame.attrs["label_names"] = label_names()
    return frame


def label_names() -> list[str]:
    """Names of the synthetic labels by id: 0 negative, 1 positive."""
    return ["negative", "positive"]
