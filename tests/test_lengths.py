"""A max length that follows the data (core.data.lengths): fitted, counted, logged, and reachable from the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.__main__ import _config_from_args, _parser
from core.config import AUTO_MAX_LENGTH_CAP, RunConfig
from core.data.lengths import fitted_length, measure


def test_the_fitted_length_covers_99_percent_rounded_up_to_8_within_bounds():
    lengths = np.array([10] * 99 + [300])
    assert fitted_length(lengths, 512) == 16  # the one outlier is cut; 10 rounds up to the floor of 16
    assert fitted_length(np.array([41] * 100), 512) == 48
    assert fitted_length(np.array([900] * 100), 512) == 512  # capped by the model / memory ceiling
    assert fitted_length(np.array([], dtype=int), 512) == 16
    assert fitted_length(np.array([5]), 8) == 8  # a ceiling below the floor wins


def test_measure_fits_plain_texts_and_counts_what_is_cut(tiny_bert):
    import datasets

    from core.config import ModelConfig
    from core.models import load_tokenizer

    tokenizer, ceiling = load_tokenizer(ModelConfig(source=tiny_bert))
    texts = ["short review"] * 198 + ["a much longer review " * 20] * 2
    fit = measure(datasets.Dataset.from_dict({"text": texts}), tokenizer, "classification", None, ceiling)
    assert fit.max_length < 40 and fit.rows_cut == 2 and fit.rows_measured == 200 and not fit.sampled
    line = fit.log_line(fitted=True)
    assert line.startswith(f"Max length {fit.max_length} tokens, follows the data") and "2 of 200" in line
    configured = measure(datasets.Dataset.from_dict({"text": texts}), tokenizer, "classification", 400, ceiling)
    assert configured.max_length == 400 and configured.rows_cut == 0
    assert "as configured" in configured.log_line(fitted=False) and "no training row is cut" in configured.log_line(fitted=False)


def test_measure_counts_whole_chats_for_instruction_tuning(tmp_path):
    import datasets

    from core.config import ModelConfig
    from core.models import load_tokenizer
    from tests.test_sft import _build_tiny_llama

    tokenizer, ceiling = load_tokenizer(ModelConfig(source=str(_build_tiny_llama(tmp_path / "llama"))))
    chat = [{"role": "user", "content": "Which team? My parcel is late."}, {"role": "assistant", "content": "Shipping"}]
    rows = datasets.Dataset.from_dict({"text": [json.dumps(chat)] * 10})
    fit = measure(rows, tokenizer, "sft", None, ceiling)
    rendered = len(tokenizer.apply_chat_template(chat, tokenize=True))
    assert fit.longest >= rendered - 1 and fit.max_length >= fit.longest and fit.rows_cut == 0


def test_an_empty_max_length_is_the_default_and_round_trips():
    cfg = RunConfig()
    assert cfg.model.max_length is None
    assert RunConfig.from_yaml(cfg.to_yaml()).model.max_length is None
    cfg.model.max_length = 0
    with pytest.raises(Exception, match="model.max_length"):
        cfg.validate()


@pytest.mark.parametrize(("flag", "expected"), [("96", 96), ("auto", None), ("AUTO", None)])
def test_the_cli_sets_or_clears_the_max_length(flag, expected):
    cfg = _config_from_args(_parser().parse_args(["train", "--preset", "nike", "--max-length", flag]))
    assert cfg.model.max_length == expected


def test_the_cli_keeps_the_configs_max_length_without_the_flag():
    assert _config_from_args(_parser().parse_args(["train", "--preset", "nike"])).model.max_length == 32


@pytest.mark.parametrize("flag", ["0", "-3", "long"])
def test_the_cli_refuses_a_bad_max_length(flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parser().parse_args(["train", "--max-length", flag])
    assert exit_info.value.code == 2 and "max-length" in capsys.readouterr().err


def test_the_auto_cap_bounds_memory():
    assert AUTO_MAX_LENGTH_CAP == 512
