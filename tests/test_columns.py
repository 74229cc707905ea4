"""core.data.columns: the text and label columns of a table, found by name, else by type."""

from __future__ import annotations

import pandas as pd

from core.data.columns import find_columns, find_label_column, find_text_column


def test_known_names_win_case_insensitively():
    frame = pd.DataFrame({"id": [1, 2, 3], "Review": ["good shoes", "bad socks", "fine"], "SENTIMENT": ["pos", "neg", "pos"]})
    assert find_columns(frame).text == "Review"
    assert find_columns(frame).label == "SENTIMENT"


def test_exact_names_come_before_names_containing_them():
    frame = pd.DataFrame({
        "review_text": ["a long review of the shoes", "another one"],
        "text": ["short", "tiny"],
        "label_id": [0, 1],
        "label": ["a", "b"],
    })
    guess = find_columns(frame)
    assert (guess.text, guess.label) == ("text", "label")


def test_name_order_decides_between_exact_names():
    frame = pd.DataFrame({"body": ["x y", "z"], "sentence": ["a b", "c"], "class": [0, 1], "target": [1, 0]})
    guess = find_columns(frame)
    assert (guess.text, guess.label) == ("sentence", "class")


def test_contained_names_must_look_like_their_role():
    # "content_length" holds numbers and "sentiment_score" a continuous score: neither is picked by name.
    frame = pd.DataFrame({
        "content_length": [10, 200, 31, 44, 5],
        "comment": ["short one", "a much longer comment here", "meh", "ok then", "no"],
        "sentiment_score": [0.12, 0.87, 0.5, 0.33, 0.91],
        "stars": [1, 5, 3, 3, 5],
    })
    guess = find_columns(frame)
    assert guess.text == "comment"
    assert guess.label == "stars"


def test_by_type_text_is_the_longest_string_column_and_label_the_fewest_values():
    frame = pd.DataFrame({
        "uid": ["a1", "b2", "c3", "d4", "e5", "f6"],
        "opinion": ["I loved these trainers", "Too small", "Great value for money", "Meh", "Returned them", "ok"],
        "verdict": ["yes", "no", "yes", "no", "no", "yes"],
        "brand": ["Nike", "Adidas", "Puma", "Nike", "Asics", "Puma"],
    })
    guess = find_columns(frame)
    assert guess.text == "opinion"
    assert guess.label == "verdict"


def test_an_id_column_is_never_the_label():
    frame = pd.DataFrame({"row": [1, 2, 3, 4, 5], "words": ["a b", "c d e", "f", "g h", "i"]})
    assert find_label_column(frame, exclude=("words",)) is None


def test_nothing_fits():
    frame = pd.DataFrame({"x": [1.5, 2.5], "y": [3.1, 4.2]})
    assert find_text_column(frame) is None
    assert find_columns(frame).label is None


def test_numbers_stored_as_text_are_not_text():
    frame = pd.DataFrame({"a": ["1", "2", "3"], "b": ["one thing", "two things", "three"]})
    assert find_text_column(frame) == "b"


def test_the_label_is_not_the_text_column():
    frame = pd.DataFrame({"label": ["nice shoes", "bad shoes"], "kind": ["a", "b"]})
    assert find_label_column(frame, exclude=("label",)) == "kind"
