"""The synthetic news headlines: deterministic, balanced, varied, with a second annotator and a few duplicates."""

from __future__ import annotations

import math
import re
from collections import Counter

import pandas as pd
import pytest

from core.data.news import CONFUSIONS, NEWS_CATEGORIES, generate_headlines
from core.errors import DataError


@pytest.fixture(scope="module")
def news() -> pd.DataFrame:
    return generate_headlines(20_000, seed=3)


def test_same_seed_same_rows_and_other_seed_differs():
    a = generate_headlines(800, seed=7)
    pd.testing.assert_frame_equal(a, generate_headlines(800, seed=7))
    assert not a["text"].equals(generate_headlines(800, seed=8)["text"])


def test_columns_and_the_eight_categories(news):
    assert list(news.columns) == ["text", "label", "human"]
    assert len(news) == 20_000
    assert len(NEWS_CATEGORIES) == 8 and set(news["label"]) == set(NEWS_CATEGORIES)
    assert set(news["human"]) <= set(NEWS_CATEGORIES)
    assert news.attrs["label_names"] == list(NEWS_CATEGORIES)
    assert set(CONFUSIONS) == set(NEWS_CATEGORIES)


def test_categories_are_balanced(news):
    counts = news["label"].value_counts()
    # Drawn exactly balanced; the 1% of duplicated rows copy their source's label.
    assert (counts - len(news) / 8).abs().max() <= 0.01 * len(news)


@pytest.mark.parametrize("share", [0.04, 0.06, 0.0])
def test_the_second_annotator_disagrees_on_a_few_percent_with_plausible_confusions(share):
    frame = generate_headlines(5_000, seed=1, disagreement=share)
    differ = frame["label"] != frame["human"]
    assert differ.sum() == round(5_000 * share)
    for label, human in frame.loc[differ, ["label", "human"]].itertuples(index=False):
        assert human in CONFUSIONS[label]


def test_varied_headlines_several_hundred_per_category(news):
    distinct = news.groupby("label")["text"].nunique()
    assert distinct.min() >= 500, distinct
    small = generate_headlines(2_000, seed=5)
    assert small["text"].nunique() >= 0.95 * len(small)


def test_a_few_exact_duplicates_like_scraped_data(news):
    small = generate_headlines(2_000, seed=5)
    repeated = small["text"].duplicated().sum()
    assert 20 <= repeated <= 0.05 * len(small)  # 1% copied on purpose, plus the odd chance repeat
    # A copied headline keeps its label; chance repeats share the category's templates anyway.
    assert (small.groupby("text")["label"].nunique() == 1).all()


def test_headlines_read_as_english(news):
    texts = news["text"].drop_duplicates()
    assert texts.map(lambda t: t[0].isupper() and "{" not in t and "  " not in t and t == t.strip()).all()
    words = texts.str.split().str.len()
    assert words.between(4, 20).all()
    assert not texts.map(lambda t: re.search(r"\b(\w+) beat \1\b", t)).any()  # "United beat United"
    assert texts.str.fullmatch(r"[A-Z][a-z ]+ holds rates at [\d.]+% as inflation \w+( \w+)*").any()
    assert texts.str.fullmatch(r"\w[\w -]+ (scores twice|nets late winner) as \w+ beat \w+").any()


def test_the_category_is_in_the_words_not_in_memorised_strings(news):
    """Naive Bayes on word counts, trained on one seed, labels another seed's unseen headlines well."""
    train = news.iloc[:6_000]
    test = generate_headlines(2_000, seed=99)
    test = test[~test["text"].isin(set(train["text"]))]
    counts = {label: Counter() for label in NEWS_CATEGORIES}
    for text, label in train[["text", "label"]].itertuples(index=False):
        counts[label].update(text.lower().split())
    vocabulary = set().union(*counts.values())
    log_p = {label: {w: math.log((c[w] + 1) / (c.total() + len(vocabulary))) for w in vocabulary}
             for label, c in counts.items()}

    def predict(text: str) -> str:
        words = [w for w in text.lower().split() if w in vocabulary]
        return max(NEWS_CATEGORIES, key=lambda label: sum(log_p[label][w] for w in words))

    accuracy = (test["text"].map(predict) == test["label"]).mean()
    assert len(test) > 1_500 and accuracy > 0.9, accuracy


@pytest.mark.parametrize("rows", [0, -3, 2.5, True])
def test_bad_sizes_are_data_errors(rows):
    with pytest.raises(DataError, match="positive number of rows"):
        generate_headlines(rows)


def test_bad_disagreement_is_a_data_error():
    with pytest.raises(DataError, match=re.escape("between 0 and 1")):
        generate_headlines(10, disagreement=1.5)
