"""core.data.preflight: usable rows, classes and split sizes known before a run is queued."""

from __future__ import annotations

import pandas as pd

from core.config import RunConfig
from core.data.preflight import data_facts, data_problems, label_summary, split_sizes


def cls_config(**data) -> RunConfig:
    cfg = RunConfig(task="classification")
    for key, value in data.items():
        setattr(cfg.data, key, value)
    return cfg


def test_label_summary_counts_classes_balance_and_bad_rows():
    values = pd.Series(["pos", "neg", "pos", None, "pos", "", "neg", "pos"])
    summary = label_summary(values, "sentiment")
    assert summary.counts == {"pos": 4, "neg": 2}
    assert (summary.classes, summary.missing, summary.unparseable) == (2, 2, 0)
    assert summary.balance == 0.5 and not summary.imbalanced


def test_integer_labels_take_the_class_names_and_floats_fold():
    summary = label_summary(pd.Series([0, 1, 1.0, 1, "x"]), "label", ["negative", "positive"])
    assert summary.counts == {"positive": 3, "negative": 1}
    assert summary.unparseable == 1


def test_imbalance_is_flagged():
    summary = label_summary(pd.Series(["a"] * 20 + ["b"] * 2), "label")
    assert summary.imbalanced and round(summary.balance, 2) == 0.1


def test_facts_count_only_rows_that_can_train():
    frame = pd.DataFrame({"text": ["a", None, "c", "d", " "], "label": ["x", "y", None, "y", "x"]})
    facts = data_facts(frame, "text", "label")
    assert (facts.rows, facts.empty_text, facts.usable) == (5, 2, 2)
    assert facts.labels.counts == {"x": 1, "y": 1}
    assert data_facts(frame, "text").usable == 3


def test_one_class_label_column_is_an_error_on_the_label_widget():
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(40)], "label": ["positive"] * 40})
    problems = data_problems(data_facts(frame, "text", "label"), cls_config())
    assert [p.field for p in problems] == ["data.label_column"]
    assert "single class" in str(problems[0]) and "'positive', 40 rows" in str(problems[0])
    # The same data for masked-LM has no label to check.
    assert data_problems(data_facts(frame, "text"), RunConfig(task="mlm")) == []


def test_an_empty_text_column_is_an_error_on_the_text_widget():
    frame = pd.DataFrame({"text": [None, ""], "label": [0, 1]})
    problems = data_problems(data_facts(frame, "text", "label"), cls_config())
    assert [p.field for p in problems] == ["data.text_column"]


def test_fewer_training_rows_than_one_batch_names_the_numbers():
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(20)], "label": [0, 1] * 10})
    cfg = cls_config()
    cfg.training.batch_size = 32
    problems = data_problems(data_facts(frame, "text", "label"), cfg)
    assert [p.field for p in problems] == ["training.batch_size"]
    assert "Only 18 training rows (20 usable, 2 held out" in str(problems[0]) and "18 or less" in str(problems[0])
    cfg.training.batch_size = 16
    assert data_problems(data_facts(frame, "text", "label"), cfg) == []


def test_a_split_that_leaves_nothing_to_evaluate_is_an_error():
    facts = data_facts(pd.DataFrame({"text": ["only one"]}), "text")
    cfg = RunConfig(task="mlm")
    cfg.training.batch_size = 1
    problems = data_problems(facts, cfg)
    assert [p.field for p in problems] == ["data.validation_fraction"]
    assert "leaves 0 rows" in str(problems[0])
    cfg.data.validation_fraction = 0.0
    assert data_problems(facts, cfg) == []


def test_split_sizes_follow_prepare_data():
    cfg = RunConfig()
    assert split_sizes(100, cfg) == (90, 10)
    assert split_sizes(5, cfg) == (4, 1)  # round(0.5) = 0, but at least one row is held out
    cfg.data.max_rows = 50
    assert split_sizes(1000, cfg) == (50, 6)
    cfg.data.eval_path = "eval.csv"
    assert split_sizes(1000, cfg) == (50, None)
    cfg.data.eval_path, cfg.data.max_rows, cfg.data.validation_fraction = None, None, 0.0
    assert split_sizes(7, cfg) == (7, 0)


def test_split_sizes_match_prepare_data_on_real_rows():
    from core.data.prepare import prepare_data

    cfg = RunConfig(task="mlm")
    cfg.data.synthetic.rows = 137
    cfg.data.max_rows = 60
    prepared = prepare_data(cfg)
    from core.data.rows import load_rows

    facts = data_facts(load_rows(cfg.data), "text")
    assert split_sizes(facts.usable, cfg) == (prepared.report["train_rows"], prepared.report["eval_rows"])
