"""The bundled-model catalogue: plain data, the per-task defaults, and how sources resolve."""

from __future__ import annotations

from pathlib import Path

from core.config import BUNDLED_MODEL, DEFAULT_CAUSAL_PROBES, DEFAULT_MLM_PROBES, TASKS, RunConfig
from core.models import bundled_model_path, resolve_model
from core.models.catalogue import (
    BUNDLED_MINILM_ALIAS,
    BUNDLED_MODELS,
    BUNDLED_SMOLLM2,
    bundled_model,
    catalogue_rows,
    default_model,
)


def test_the_catalogue_holds_the_facts_setup_shows():
    by_name = {m.name: m for m in BUNDLED_MODELS}
    assert set(by_name) == {"MiniLM-L6", "SmolLM2-135M"}
    minilm, smol = by_name["MiniLM-L6"], by_name["SmolLM2-135M"]
    assert minilm.source == BUNDLED_MODEL and smol.source == BUNDLED_SMOLLM2
    for model in BUNDLED_MODELS:
        assert model.licence == "Apache-2.0" and model.offline
        assert model.params and model.disk and model.note
        assert set(model.tasks) <= set(TASKS) and set(model.pretrained_head) >= set(model.tasks)
    # MiniLM: no pretrained masked-LM or causal head. SmolLM2: a pretrained causal head, a new classifier.
    assert not minilm.head_is_pretrained("mlm") and not minilm.head_is_pretrained("causal")
    assert smol.head_is_pretrained("causal") and not smol.head_is_pretrained("classification")
    assert "mlm" not in smol.tasks


def test_each_task_defaults_to_its_best_offline_model():
    assert default_model("mlm") == BUNDLED_MODEL
    assert default_model("classification") == BUNDLED_MODEL
    assert default_model("causal") == BUNDLED_SMOLLM2
    for task in TASKS:
        assert task in bundled_model(default_model(task)).tasks


def test_catalogue_rows_mark_the_default_and_the_head_for_the_task():
    rows = {row["source"]: row for row in catalogue_rows("causal")}
    assert rows[BUNDLED_SMOLLM2]["default"] and rows[BUNDLED_SMOLLM2]["head_pretrained"] is True
    assert not rows[BUNDLED_MODEL]["default"] and rows[BUNDLED_MODEL]["head_pretrained"] is False
    mlm = {row["source"]: row for row in catalogue_rows("mlm")}
    assert mlm[BUNDLED_SMOLLM2]["serves_task"] is False and mlm[BUNDLED_SMOLLM2]["head_pretrained"] is None


def test_bundled_names_resolve_to_the_same_minilm():
    assert bundled_model(" Bundled ").source == BUNDLED_MODEL
    assert bundled_model(BUNDLED_MINILM_ALIAS).source == BUNDLED_MODEL
    assert bundled_model("distilbert-base-uncased") is None
    for source in (BUNDLED_MODEL, BUNDLED_MINILM_ALIAS):
        resolved = resolve_model(source)
        assert resolved.kind == "bundled" and Path(resolved.location) == bundled_model_path()
        assert resolved.display == "MiniLM-L6 (bundled)" and not resolved.gguf


def test_a_folder_named_like_bundled_is_still_a_folder(tmp_path, tiny_bert, monkeypatch):
    import shutil

    shutil.copytree(tiny_bert, tmp_path / "bundled-copy")
    monkeypatch.chdir(tmp_path)
    assert resolve_model("bundled-copy").kind == "local"


def test_causal_default_probes_are_the_seed_sentences_cut_at_the_mask():
    assert RunConfig(task="causal").probe_texts() == list(DEFAULT_CAUSAL_PROBES)
    assert DEFAULT_CAUSAL_PROBES == (
        "Nike shoes are very",
        "Nike athletic wear is known for being very",
        "Nike tshirts are famous for being",
    )
    seeds = [p.split(" [MASK]")[0] for p in DEFAULT_MLM_PROBES if p.endswith("[MASK]")]
    assert set(DEFAULT_CAUSAL_PROBES) <= set(seeds)
