"""core.data.probe_texts: default probes follow the task and the data; the user's own always win."""

from __future__ import annotations

import pandas as pd

from core.config import (
    DEFAULT_CAUSAL_PROBES,
    DEFAULT_MLM_PROBES,
    DEFAULT_PROMPT_TEMPLATE,
    DataConfig,
    RunConfig,
)
from core.data.probe_texts import (
    CLASSIFICATION_PROBES,
    MAX_PROBE_CHARS,
    PROBE_SCAN_ROWS,
    choose_probes,
    follows_data,
    probes_as_text,
    probes_from_text,
    run_probe_texts,
)

NEWS = pd.DataFrame({
    "text": ["Stocks rally as the central bank holds rates", "Striker signs for a record fee",
             "Stocks rally as the central bank holds rates", None, "Parliament passes the budget bill",
             "Chipmaker unveils a faster processor", "Goalkeeper saves three penalties in the final",
             "Senate delays the vote on energy"],
    "label": ["business", "sports", "business", "sports", "politics", "tech", "sports", "politics"],
    "human": ["business", "sports", "business", "sports", "politics", "business", "sports", "politics"],
})


def file_config(task: str, path: str = "news.csv") -> RunConfig:
    cfg = RunConfig(task=task)
    cfg.data.source, cfg.data.path = "file", path
    return cfg


def test_classification_takes_one_text_per_class_in_order_of_first_appearance():
    probes = choose_probes("classification", NEWS, DataConfig(source="file"))
    assert probes == ["Stocks rally as the central bank holds rates", "Striker signs for a record fee",
                      "Parliament passes the budget bill", "Chipmaker unveils a faster processor"]


def test_two_classes_get_two_texts_each_and_many_classes_are_capped():
    two = pd.DataFrame({"text": [f"review number {i} here" for i in range(10)], "label": [i % 2 for i in range(10)]})
    assert choose_probes("classification", two, DataConfig()) == [f"review number {i} here" for i in range(4)]
    many = pd.DataFrame({"text": [f"headline {i} today" for i in range(20)], "label": [f"c{i}" for i in range(20)]})
    assert len(choose_probes("classification", many, DataConfig())) == CLASSIFICATION_PROBES


def test_classification_skips_missing_labels_and_prefers_short_texts():
    frame = pd.DataFrame({"text": ["x " * 200, "unlabelled but short", "a short positive one", "a negative one"],
                          "label": ["pos", None, "pos", "neg"]})
    assert choose_probes("classification", frame, DataConfig()) == ["a short positive one", "a negative one",
                                                                     ("x " * 200)[:MAX_PROBE_CHARS].rsplit(" ", 1)[0]]


def test_mlm_masks_a_late_word_and_causal_stops_before_it():
    data = DataConfig(source="file")
    mlm = choose_probes("mlm", NEWS, data)
    assert mlm[0] == "Stocks rally as the central bank holds [MASK]"
    assert len(mlm) == 3 and len(set(mlm)) == 3  # the repeated headline is probed once
    assert choose_probes("causal", NEWS, data)[0] == "Stocks rally as the central bank holds"


def test_sft_probes_are_the_prompts_the_run_trains_on():
    probes = choose_probes("sft", NEWS, DataConfig(source="file"))
    labels = "business, politics, sports, tech"  # every class of the data, though the first rows lack none here
    assert probes[0] == DEFAULT_PROMPT_TEMPLATE.format(text=NEWS.text[0], labels=labels)
    assert len(probes) == 3
    chats = pd.DataFrame({"messages": [[{"role": "user", "content": "What is 2+2?"},
                                        {"role": "assistant", "content": "4"}]]})
    assert choose_probes("sft", chats, DataConfig(source="file")) == ["What is 2+2?"]


def test_sft_lists_every_class_even_when_the_first_rows_lack_one():
    frame = pd.DataFrame({"text": [f"headline {i} today" for i in range(PROBE_SCAN_ROWS + 1)],
                          "label": ["a"] * PROBE_SCAN_ROWS + ["b"]})
    assert "one of: a, b." in choose_probes("sft", frame, DataConfig(source="file"))[0]


def test_the_users_probes_always_win(tmp_path):
    cfg = file_config("classification", str(tmp_path / "news.csv"))
    NEWS.to_csv(cfg.data.path, index=False)
    cfg.probes.texts = ["my own probe"]
    assert run_probe_texts(cfg) == ["my own probe"]
    cfg.probes.texts = None
    assert run_probe_texts(cfg)[0] == NEWS.text[0]


def test_the_synthetic_reviews_keep_their_language_model_probes_and_news_follows_its_data():
    assert run_probe_texts(RunConfig(task="mlm")) == list(DEFAULT_MLM_PROBES)
    assert run_probe_texts(RunConfig(task="causal")) == list(DEFAULT_CAUSAL_PROBES)
    assert not follows_data(RunConfig(task="causal")) and follows_data(RunConfig(task="classification"))
    news = RunConfig(task="causal")
    news.data.synthetic.kind = "news"
    assert follows_data(news) and not any("Nike" in p for p in run_probe_texts(news))
    reviews = run_probe_texts(RunConfig(task="classification"))
    assert len(reviews) == 4 and all(p for p in reviews)


def test_unreadable_or_unusable_data_falls_back_to_the_tasks_defaults(tmp_path):
    assert run_probe_texts(file_config("classification", str(tmp_path / "missing.csv"))) == \
        RunConfig(task="classification").probe_texts()
    cfg = file_config("mlm", str(tmp_path / "numbers.csv"))
    pd.DataFrame({"text": ["1 2 3", "ok"]}).to_csv(cfg.data.path, index=False)
    assert run_probe_texts(cfg) == list(DEFAULT_MLM_PROBES)


def test_editor_text_round_trips_probes_of_several_lines():
    single = ["Nike shoes are very", "Adidas socks are"]
    assert probes_as_text(single) == "Nike shoes are very\nAdidas socks are"
    assert probes_from_text(probes_as_text(single) + "\n\n") == single
    prompts = ["Classify:\n\nText: a\n\nAnswer.", "Classify:\n\nText: b\n\nAnswer."]
    assert probes_from_text(probes_as_text(prompts)) == prompts
    assert probes_from_text("one\n---\n\n---\ntwo\n") == ["one", "two"]


def test_the_engine_scores_the_probes_setup_shows(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import core.insight.probes as probes
    from core.training import engine

    scored = []
    monkeypatch.setattr(probes, "score_probes", lambda model, tokenizer, task, texts, top_k, **_: scored.append(texts) or [])
    cfg = file_config("classification", str(tmp_path / "news.csv"))
    NEWS.to_csv(cfg.data.path, index=False)
    engine.probe_scorer(cfg, SimpleNamespace(tokenizer=None, label_names=None, probe_texts=None))(None)
    assert scored == [run_probe_texts(cfg)] and scored[0][0] == NEWS.text[0]


def test_prepared_data_carries_the_probes_setup_shows_without_reading_the_file_again(tmp_path, monkeypatch):
    import core.data.rows as rows
    from core.data.prepare import prepare_data

    cfg = file_config("classification", str(tmp_path / "news.csv"))
    cfg.data.curation.drop_duplicates = False
    NEWS.to_csv(cfg.data.path, index=False)
    shown = run_probe_texts(cfg)
    reads = []
    real_read = rows.read_table
    monkeypatch.setattr(rows, "read_table", lambda path, **kw: reads.append(path) or real_read(path, **kw))
    prepared = prepare_data(cfg)
    assert prepared.probe_texts == shown and len(reads) == 1
