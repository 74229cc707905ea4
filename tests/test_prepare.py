"""prepare_data: from a RunConfig to train / eval Datasets with labels, splits and a data report."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from core.config import RunConfig
from core.data.curation import save_curated
from core.data.integrity import curate
from core.data.prepare import prepare_data
from core.data.synthetic import generate_reviews
from core.errors import DataError

SEED_SIGNAL = {
    "op": "and",
    "children": [
        {"kind": "word_list", "list": "brand:Nike"},
        {"kind": "word_list", "list": "brand_products:Nike"},
        {"kind": "sentiment", "polarity": "positive"},
    ],
}


def config(task: str = "classification", rows: int = 600, **data) -> RunConfig:
    cfg = RunConfig(task=task)
    cfg.data.synthetic.rows = rows
    for key, value in data.items():
        setattr(cfg.data, key, value)
    return cfg


def file_config(tmp_path, frame: pd.DataFrame, task: str = "classification", name: str = "data.csv", **data) -> RunConfig:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return config(task, source="file", path=str(path), **data)


def labelled(n: int, labels) -> pd.DataFrame:
    return pd.DataFrame({"text": [f"review number {i} of many" for i in range(n)], "label": [labels[i % len(labels)] for i in range(n)]})


def test_synthetic_classification():
    data = prepare_data(config())
    assert data.label_names == ["negative", "positive"]
    assert data.train.column_names == ["text", "label"] and data.eval.column_names == ["text", "label"]
    assert data.train.features["label"].names == ["negative", "positive"]
    report = data.report
    assert report["rows_read"] == 600 and report["dropped"]["null_text"] == 30
    assert report["train_rows"] + report["eval_rows"] == report["rows_usable"]
    assert report["split"] == "stratified"
    assert abs(report["eval_rows"] - 0.1 * report["rows_usable"]) <= 1
    assert set(report["eval_label_counts"]) == {"negative", "positive"}
    assert not set(data.train["text"]) & set(data.eval["text"])  # duplicates dropped, no leakage
    json.dumps(report)


def test_same_config_same_rows_and_seed_changes_order():
    a, b = prepare_data(config()), prepare_data(config())
    assert list(a.train["text"]) == list(b.train["text"]) and list(a.eval["text"]) == list(b.eval["text"])
    other = config()
    other.training.seed = 7
    assert list(prepare_data(other).train["text"]) != list(a.train["text"])


def test_mlm_has_text_only_and_label_is_optional(tmp_path):
    data = prepare_data(config("mlm"))
    assert data.train.column_names == ["text"] and data.label_names is None
    no_labels = pd.DataFrame({"text": ["Nike shoes are soft", "Vans caps are ugly", "Puma socks are warm"] * 3})
    cfg = file_config(tmp_path, no_labels, task="causal", name="texts.csv")
    data = prepare_data(cfg)
    assert data.train.column_names == ["text"]
    assert data.report["dropped"] == {"duplicate": 6}


def test_string_labels_map_to_sorted_ids(tmp_path):
    cfg = file_config(tmp_path, labelled(40, ["pos", "neg", "neutral"]))
    data = prepare_data(cfg)
    assert data.label_names == ["neg", "neutral", "pos"]
    rows = dict(zip(data.train["text"], data.train["label"], strict=True))
    assert len(rows) == data.report["train_rows"]
    for text, label in rows.items():
        number = int(text.split()[2])
        assert data.label_names[label] == ["pos", "neg", "neutral"][number % 3]


def test_sparse_integer_labels_get_ids_and_names(tmp_path):
    data = prepare_data(file_config(tmp_path, labelled(30, [5, 1, 3])))
    assert data.label_names == ["1", "3", "5"]
    assert set(data.train["label"]) == {0, 1, 2}


def test_one_class_is_refused(tmp_path):
    with pytest.raises(DataError, match="at least two classes.*'yes'") as info:
        prepare_data(file_config(tmp_path, labelled(20, ["yes"])))
    assert info.value.field == "data.label_column"


def test_missing_label_column_names_the_columns(tmp_path):
    cfg = file_config(tmp_path, labelled(10, [0, 1]).rename(columns={"label": "stars"}))
    with pytest.raises(DataError, match="its columns are: text, stars"):
        prepare_data(cfg)


def test_eval_file_is_used_and_unknown_labels_are_dropped(tmp_path):
    train = labelled(30, ["pos", "neg"])
    evaluation = pd.DataFrame({"text": ["fine shoes", "bad caps", "so-so socks", None], "label": ["pos", "neg", "meh", "pos"]})
    eval_path = tmp_path / "eval.jsonl"
    evaluation.to_json(eval_path, orient="records", lines=True)
    data = prepare_data(file_config(tmp_path, train, eval_path=str(eval_path)))
    assert data.report["split"] == "eval_file"
    assert data.report["train_rows"] == 30 and data.report["eval_rows"] == 2
    assert list(data.eval["text"]) == ["fine shoes", "bad caps"]
    assert [data.label_names[i] for i in data.eval["label"]] == ["pos", "neg"]
    assert data.report["eval_curation"]["removed"] == {"null_text": 1, "unexpected_label": 1}


def test_max_rows_caps_the_training_split():
    data = prepare_data(config(rows=2000, max_rows=100))
    assert data.report["train_rows"] == 100
    assert 5 <= data.report["eval_rows"] <= 15


def test_no_validation_split():
    data = prepare_data(config(validation_fraction=0.0))
    assert data.eval is None and data.report["split"] == "none"


def test_flag_mode_still_drops_and_counts_null_texts(tmp_path):
    frame = pd.DataFrame({"text": ["good shoes", None, "nan", "  ", "bad caps", "good shoes", "ok socks", "meh hats"],
                          "label": [1, 0, 1, 0, 0, 1, "x", 1]})
    cfg = file_config(tmp_path, frame)
    cfg.data.curation.check_action = "flag"
    cfg.data.curation.drop_duplicates = False
    cfg.data.validation_fraction = 0.0
    data = prepare_data(cfg)
    assert data.report["dropped"] == {"null_text": 3, "unparseable_label": 1}
    assert sorted(data.train["text"]) == ["bad caps", "good shoes", "good shoes", "meh hats"]


def test_curated_source_round_trip():
    raw = generate_reviews(800, seed=0)
    cfg = config("mlm")
    cfg.data.curation.signal = SEED_SIGNAL
    save_curated(curate(raw, cfg.data, "mlm"), "nike-pos")
    reuse = RunConfig(task="classification")
    reuse.data.source, reuse.data.path = "curated", "nike-pos"
    reuse.data.curation.signal = None
    with pytest.raises(DataError, match="at least two classes.*'positive'"):
        prepare_data(reuse)  # a positive-only set cannot train a classifier...
    reuse.task = "mlm"
    data = prepare_data(reuse)  # ...but it is exactly the masked-LM training set
    assert data.report["source"]["source"] == "curated"
    assert all("nike" in t.lower() for t in data.train["text"])


def test_nothing_left_says_what_removed_it():
    cfg = config("mlm")
    cfg.data.curation.signal = {"kind": "keywords", "words": ["zebra"]}
    with pytest.raises(DataError, match="No rows are left.*signal"):
        prepare_data(cfg)


def test_seed_scenario_end_to_end():
    raw_cfg = config("mlm", rows=3000)
    raw = prepare_data(raw_cfg)
    positive_cfg = config("mlm", rows=3000)
    positive_cfg.data.curation.signal = {"kind": "sentiment", "polarity": "positive"}
    positive = prepare_data(positive_cfg)
    seed_cfg = config("mlm", rows=3000)
    seed_cfg.data.curation.signal = SEED_SIGNAL
    seed = prepare_data(seed_cfg)
    size = lambda d: d.report["train_rows"] + d.report["eval_rows"]  # noqa: E731
    assert 0 < size(seed) < size(positive) < size(raw) < 3000
    assert seed.report["dropped"]["null_text"] == 150
    texts = list(seed.train["text"]) + list(seed.eval["text"])
    assert all(t.lower().startswith(("nike", "i think nike", "in my opinion nike", "honestly, nike", "my friends say nike"))
               or "made by nike" in t.lower() for t in texts)
    negative_words = ("cheap", "ugly", "terrible", "awful", "horrible", "bad", "useless")
    assert not any(any(f" {w}" in t and "not very" not in t for w in negative_words) for t in texts)
