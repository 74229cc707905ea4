"""Presets: the Nike demos as whole configs, their YAML round trip, the CLI's --preset, the lean measure."""

from __future__ import annotations

import pytest

from core.__main__ import EXIT_USER_ERROR, _config_from_args, _parser, main
from core.config import BUNDLED_MODEL, RunConfig
from core.errors import ConfigError
from core.models.catalogue import BUNDLED_SMOLLM2
from core.plan.presets import (
    NIKE_SIGNAL,
    PRESETS,
    get_preset,
    preset_config,
    preset_names,
    probe_lean,
    sentiment_mass,
)


def test_presets_are_named_and_valid():
    assert preset_names() == ["nike", "nike-mlm", "news"]
    for name in preset_names():
        cfg = preset_config(name)
        assert cfg.validate() is cfg
        assert RunConfig.from_yaml(cfg.to_yaml()) == cfg  # round-trips through YAML
        assert PRESETS[name].description
    assert preset_config("nike") is not preset_config("nike")  # each call is a fresh config


def test_nike_is_the_seed_scenario_on_smollm2():
    cfg = preset_config("nike")
    assert cfg.task == "causal" and cfg.model.source == BUNDLED_SMOLLM2
    assert cfg.data.source == "synthetic" and cfg.data.curation.signal == NIKE_SIGNAL
    assert cfg.data.curation.check_action == "remove"
    assert cfg.probes.texts is None and cfg.probe_texts()[0] == "Nike shoes are very"
    assert cfg.training.save_steps > cfg.training.max_steps  # no mid-run checkpoint of a 135M model


def test_news_is_instruction_tuning_on_generated_headlines():
    from core.data.news import NEWS_CATEGORIES
    from core.data.rows import load_rows

    cfg = preset_config("news")
    assert cfg.task == "sft" and cfg.model.source == BUNDLED_SMOLLM2 and cfg.strategy.name == "lora"
    assert cfg.data.source == "synthetic" and cfg.data.synthetic.kind == "news"
    assert cfg.model.max_length is None  # follows the data
    frame = load_rows(cfg.data)
    assert list(frame.columns) == ["text", "label", "human"] and len(frame) == cfg.data.synthetic.rows
    assert set(frame["label"]) == set(NEWS_CATEGORIES)
    assert 0 < (frame["label"] != frame["human"]).mean() < 0.1  # a second annotator who disagrees a little
    for probe in cfg.probe_texts():  # each probe asks as the training prompts do
        assert all(name in probe for name in NEWS_CATEGORIES)


def test_news_preset_from_the_cli():
    cfg = _config_from_args(_parser().parse_args(["train", "--preset", "news", "--max-steps", "4"]))
    assert cfg.task == "sft" and cfg.training.max_steps == 4 and cfg.data.synthetic.kind == "news"
    cfg = _config_from_args(_parser().parse_args(["train", "--task", "sft", "--dataset", "news"]))
    assert cfg.data.source == "synthetic" and cfg.data.synthetic.kind == "news" and cfg.training.batch_size == 8


def test_nike_mlm_says_its_head_is_untrained():
    cfg = preset_config("nike-mlm")
    assert cfg.task == "mlm" and cfg.model.source == BUNDLED_MODEL
    assert cfg.data.curation.signal == NIKE_SIGNAL
    assert "untrained" in get_preset("nike-mlm").description
    assert all("[MASK]" in p for p in cfg.probe_texts())


def test_the_nike_signal_keeps_positive_reviews_of_nike_products():
    from core.data.integrity import curate
    from core.data.signals import signal_from_dict
    from core.data.synthetic import generate_reviews

    assert signal_from_dict(NIKE_SIGNAL).to_dict() == NIKE_SIGNAL
    cfg = preset_config("nike")
    frame = generate_reviews(600, seed=0, null_fraction=0.05)
    result = curate(frame, cfg.data, cfg.task)
    kept = result.kept
    assert 0 < len(kept) < len(frame)
    assert kept["text"].str.contains("Nike").all() and (kept["label"] == 1).all()
    assert result.report["removed"].get("null_text", 0) > 0  # the integrity check removed the empty rows


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ConfigError, match="nike, nike-mlm"):
        get_preset("adidas")


def test_cli_preset_and_flags_override_it():
    args = _parser().parse_args(["train", "--preset", "nike", "--max-steps", "3", "--batch-size", "4"])
    cfg = _config_from_args(args)
    assert cfg.task == "causal" and cfg.model.source == BUNDLED_SMOLLM2
    assert cfg.training.max_steps == 3 and cfg.training.batch_size == 4
    assert cfg.data.curation.signal == NIKE_SIGNAL


def test_cli_unknown_preset_is_one_error_line(capsys):
    code = main(["train", "--preset", "adidas"])
    err = capsys.readouterr().err
    assert code == EXIT_USER_ERROR
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "nike, nike-mlm" in lines[0] and "Traceback" not in err


def test_cli_preset_and_config_together_are_refused(capsys, tmp_path):
    path = tmp_path / "run.yaml"
    RunConfig().save(path)
    code = main(["train", "--preset", "nike", "--config", str(path)])
    assert code == EXIT_USER_ERROR and "not both" in capsys.readouterr().err


def test_sentiment_mass_sums_the_lexicon_words():
    predictions = [
        {"token": "comfortable", "score": 0.4}, {"token": " Great", "score": 0.1},
        {"token": "cheap", "score": 0.2}, {"token": "popular", "score": 0.3},
    ]
    mass = sentiment_mass(predictions)
    assert mass["positive"] == pytest.approx(0.5) and mass["negative"] == pytest.approx(0.2)
    records = [
        {"phase": "base", "text": "a", "predictions": predictions},
        {"phase": "final", "text": "a", "predictions": [{"token": "durable", "score": 0.9}]},
    ]
    assert probe_lean(records, "final") == {"positive": 0.9, "negative": 0.0, "probes": 1.0}


@pytest.mark.slow
def test_nike_preset_run_leans_positive(tmp_path, capsys):
    """The demo's promise: final probes lean positive, > 2x the negative and > 2x the base model's."""
    from core.run.folder import RunFolder

    code = main(["train", "--preset", "nike", "--output-dir", str(tmp_path / "nike")])
    assert code == 0, capsys.readouterr().err
    folder = RunFolder(tmp_path / "nike")
    assert folder.status()["status"] == "completed"
    records = folder.probes()
    base, final = probe_lean(records, "base"), probe_lean(records, "final")
    assert base["probes"] == final["probes"] == 3
    assert base["positive"] > 0.05  # the base column holds real words, some of them positive
    assert final["positive"] > 2 * final["negative"]
    assert final["positive"] > 2 * base["positive"]
