"""core.data.preflight: usable rows, classes and split sizes known before a run is queued."""

from __future__ import annotations

import pandas as pd
import pytest

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


# ---- after curation: the rows a run trains on, counted before Start ---------------------------

def _news_like(rows: int = 800, unique: int = 282) -> pd.DataFrame:
    """The issue's case: 800 headlines, 518 of them repeats of earlier ones, 8 classes."""
    headlines = [f"Headline number {i} about topic {i % 8}" for i in range(unique)]
    texts = headlines + [headlines[i % unique] for i in range(rows - unique)]
    return pd.DataFrame({"text": texts, "label": [f"class{int(t.rsplit(' ', 1)[1])}" for t in texts]})


def test_duplicates_are_counted_and_dropped_as_the_run_drops_them():
    cfg = cls_config()
    facts = data_facts(_news_like(), "text", "label", curation=cfg.data.curation)
    assert (facts.rows, facts.usable) == (800, 282)
    assert facts.dropped == {"duplicate": 518}
    assert sum(facts.labels.counts.values()) == 282 and facts.labels.classes == 8
    assert not facts.estimated
    # Without the curation settings only the rows that cannot train at all are left out.
    assert data_facts(_news_like(), "text", "label").usable == 800


def test_the_rows_line_says_what_was_dropped_and_why():
    from core.plan.data_plan import rows_line

    cfg = cls_config()
    facts = data_facts(_news_like(), "text", "label", curation=cfg.data.curation)
    line = rows_line(facts, cfg)
    assert line == "Data: 800 rows → 282 rows after curation (dropped: 518 duplicates) → 254 to train on, " \
                   "28 held out for evaluation."


def test_flagged_duplicates_are_kept_and_said_to_be():
    from core.plan.data_plan import rows_notes

    cfg = cls_config()
    cfg.data.curation.check_action = "flag"
    facts = data_facts(_news_like(), "text", "label", curation=cfg.data.curation)
    assert facts.usable == 800 and facts.flagged_duplicates == 518 and "duplicate" not in facts.dropped
    assert any("518 duplicates are kept" in note for note in rows_notes(facts))


def test_normalised_repeats_of_a_large_table_are_a_lower_bound(monkeypatch):
    from core.data import preflight

    frame = pd.DataFrame({"text": ["Nike shoes", "nike  SHOES", "Nike shoes", "Vans caps"]})
    cfg = cls_config()
    cfg.data.curation.normalise_duplicates = True
    assert data_facts(frame, "text", curation=cfg.data.curation).dropped == {"duplicate": 2}
    monkeypatch.setattr(preflight, "NORMALISED_REPEATS_ROWS", 3)  # this table is now "large"
    facts = data_facts(frame, "text", curation=cfg.data.curation)
    assert facts.dropped == {"duplicate": 1} and facts.duplicates_at_least and facts.estimated


@pytest.mark.parametrize("preset", ["nike", "news"])
def test_counts_after_curation_match_what_prepare_data_trains_on(preset):
    """The Nike demo's signal and repeats, and the news headlines as chats: Setup's numbers are the run's."""
    from core.data.preflight import check_data
    from core.data.prepare import prepare_data
    from core.plan.presets import preset_config

    cfg = preset_config(preset)
    facts = check_data(cfg)
    report = prepare_data(cfg).report
    assert facts.usable == report["rows_usable"] and facts.dropped == report["dropped"]
    assert split_sizes(facts.usable, cfg) == (report["train_rows"], report["eval_rows"])
    if preset == "nike":
        assert report["train_rows"] == 265 and facts.dropped["signal"] > 1000  # not the 1,710 rows before curation


def test_a_signal_over_many_rows_is_measured_on_a_sample_and_said_to_be(monkeypatch):
    from core.data import preflight
    from core.data.synthetic import generate_reviews
    from core.plan.data_plan import rows_line, rows_notes
    from core.plan.presets import NIKE_SIGNAL

    cfg = RunConfig(task="mlm")
    cfg.data.curation.signal = NIKE_SIGNAL
    frame = generate_reviews(6000, seed=0, null_fraction=0.0)
    exact = data_facts(frame, "text", curation=cfg.data.curation)
    assert exact.signal == preflight.SIGNAL_COUNTED and not exact.estimated
    monkeypatch.setattr(preflight, "SIGNAL_EXACT_ROWS", 2000)
    monkeypatch.setattr(preflight, "SIGNAL_SAMPLE_ROWS", 1500)
    sampled = data_facts(frame, "text", curation=cfg.data.curation)
    assert sampled.signal == preflight.SIGNAL_SAMPLED and sampled.estimated
    assert abs(sampled.usable - exact.usable) < 0.15 * exact.usable
    assert "~" in rows_line(sampled, cfg) and any("sample of 1,500 rows" in n for n in rows_notes(sampled))


def test_a_signal_that_needs_a_model_is_left_to_the_run_and_said_to_be():
    from core.plan.data_plan import rows_notes

    cfg = RunConfig(task="mlm")
    cfg.data.curation.signal = {"kind": "confidence", "model": "/no/such/model", "below": 0.5}
    facts = data_facts(pd.DataFrame({"text": ["a b", "c d", "e f"]}), "text", curation=cfg.data.curation)
    assert facts.usable == 3 and facts.signal == "at_start" and "signal" not in facts.dropped
    assert any("counted at Start" in note for note in rows_notes(facts))


def test_a_million_rows_are_counted_in_seconds():
    """Exact repeats and the usable rows of a large table stay cheap (no normalised key, no signal)."""
    import time

    import numpy as np

    rng = np.random.default_rng(0)
    ids = pd.Series(rng.integers(0, 600_000, 1_000_000)).astype(str)
    frame = pd.DataFrame({"text": "A review of Nike running shoe number " + ids, "label": rng.integers(0, 2, 1_000_000)})
    started = time.perf_counter()
    facts = data_facts(frame, "text", "label", curation=cls_config().data.curation)
    assert time.perf_counter() - started < 15  # ~2 s on 2 busy cores
    assert facts.dropped["duplicate"] > 0 and not facts.estimated


def test_an_evaluation_file_without_the_label_column_is_refused_under_its_widget(tmp_path):
    from core.data.preflight import check_eval_file
    from core.errors import DataError

    path = tmp_path / "eval.csv"
    path.write_text("text,human\nNike is great,positive\n", encoding="utf-8")
    cfg = cls_config(eval_path=str(path))
    with pytest.raises(DataError, match="The evaluation file 'eval.csv' has no label column 'label'") as err:
        check_eval_file(cfg.data, "classification", name="eval.csv")
    assert err.value.field == "data.eval_path"
    assert check_eval_file(cfg.data, "mlm") == 1


def test_a_checked_file_is_handed_to_the_run_once_and_never_when_changed(tmp_path, monkeypatch):
    """The CLI checks a file and trains it a moment later in the same process: one read, not two."""
    import os

    from core.data import rows
    from core.data.preflight import check_data

    path = tmp_path / "texts.csv"
    pd.DataFrame({"text": [f"row {i} is here" for i in range(40)]}).to_csv(path, index=False)
    cfg = RunConfig(task="mlm")
    cfg.data.source, cfg.data.path = "file", str(path)
    reads = []
    real_read = rows.read_table
    monkeypatch.setattr(rows, "read_table", lambda p, **kw: reads.append(p) or real_read(p, **kw))
    check_data(cfg)
    assert len(reads) == 1
    handed = rows.load_rows(cfg.data)
    assert len(reads) == 1 and len(handed) == 40 and handed.attrs["source"]["path"] == str(path)
    rows.load_rows(cfg.data)  # one taker only
    assert len(reads) == 2

    cfg.training.batch_size = 16  # another config, so check_data reads again
    check_data(cfg)
    assert len(reads) == 3
    pd.DataFrame({"text": [f"row {i} changed" for i in range(40)]}).to_csv(path, index=False)
    os.utime(path, ns=(0, 10**18))  # a new modification time, whatever the clock's resolution
    assert "changed" in rows.load_rows(cfg.data).text[0] and len(reads) == 4

    monkeypatch.setattr(rows, "HANDOFF_S", 0.05)  # a process that checks but trains nothing lets it go
    cfg.training.batch_size = 8
    check_data(cfg)
    import time

    time.sleep(0.3)
    rows.load_rows(cfg.data)
    assert len(reads) == 6
