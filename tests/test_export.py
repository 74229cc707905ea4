"""Exports that a stakeholder can use: named labels, and a model card that says what the model is."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from core.models.export import export_run
from tests.test_engine import run, tiny_config


def _sentiment_file(tmp_path):
    rows = [(f"Nike shoes number {i} are very comfortable", "positive") for i in range(40)]
    rows += [(f"Nike socks number {i} are very flimsy", "negative") for i in range(40)]
    rows += [(f"Nike caps number {i} are sold in shops", "neutral") for i in range(40)]  # three classes: a LoRA head must be rebuilt to size
    path = tmp_path / "reviews.csv"
    pd.DataFrame(rows, columns=["review", "sentiment"]).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("strategy", ["full", "lora"])
def test_a_classification_export_keeps_its_label_names_and_has_a_model_card(tiny_bert, tmp_path, strategy):
    cfg = tiny_config(tiny_bert, "classification", strategy)
    cfg.data.source, cfg.data.path = "file", str(_sentiment_file(tmp_path))
    cfg.data.text_column, cfg.data.label_column = "review", "sentiment"
    status, folder = run(cfg, tmp_path / "runs")
    assert status == "completed"
    target = export_run(folder.path)
    config = json.loads((target / "config.json").read_text())
    assert sorted(config["id2label"].values()) == ["negative", "neutral", "positive"]
    assert set(config["label2id"]) == {"negative", "neutral", "positive"}
    card = (target / "README.md").read_text()
    for expected in (tiny_bert, "classification", strategy, "reviews.csv", 'pipeline("text-classification"',
                     "| f1 |", "`negative`", "Learning rate"):
        assert expected in card, expected
    assert (target / "config.yaml").exists()


def test_an_adapter_export_card_loads_it_through_peft(tiny_gpt2, tmp_path):
    status, folder = run(tiny_config(tiny_gpt2, "causal", "lora"), tmp_path / "runs")
    assert status == "completed"
    target = export_run(folder.path, merge=False)
    card = (target / "README.md").read_text()
    assert "AutoPeftModelForCausalLM.from_pretrained" in card
    assert "perplexity" in card
