"""core.models: resolving sources (bundled / Hub cache / local), loading per task, the load report."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import torch

from core.config import ModelConfig
from core.errors import ModelError
from core.models import (
    POPULAR_MODELS,
    bundled_model_path,
    effective_max_length,
    is_cached,
    load_for_task,
    resolve_model,
    supported_tasks,
)
from tests.tiny_models import tiny_bert_dir, tiny_gpt2_dir

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-models")
    return {
        "bert": tiny_bert_dir(root),
        "gpt2": tiny_gpt2_dir(root),
        "nomask": tiny_bert_dir(root, mask_token=False),
        "pickle": tiny_bert_dir(root, safetensors=False),
    }


@pytest.fixture(scope="module")
def bundled_mlm():
    return load_for_task(ModelConfig(), "mlm")


# ---- the bundled model ---------------------------------------------------------------------

def test_bundled_path_holds_a_bert_checkpoint():
    path = bundled_model_path()
    config = json.loads((path / "config.json").read_text())
    assert config["model_type"] == "bert" and config["hidden_size"] == 384
    assert (path / "model.safetensors").is_file()
    resolved = resolve_model("bundled")
    assert resolved.kind == "bundled" and Path(resolved.location) == path
    assert resolve_model("  Bundled ").kind == "bundled"


def test_bundled_mlm_report_says_the_head_is_untrained(bundled_mlm):
    report = bundled_mlm.report
    assert report["architecture"] == "BertForMaskedLM"
    assert report["head_is_untrained"] is True
    assert "cls.predictions.transform.dense.weight" in report["newly_initialized"]
    assert all(k.startswith("cls.") for k in report["newly_initialized"])
    assert "pooler.dense.weight" in report["unused"]
    assert "no pretrained masked-LM head" in report["warnings"][0]
    assert "randomly initialised head" in report["warnings"][0]
    assert report["kind"] == "bundled" and report["source"] == "bundled"
    json.dumps(report)  # stored as load_report.json
    assert bundled_mlm.tokenizer.mask_token == "[MASK]"
    assert bundled_mlm.model.config.vocab_size == 30522


def test_bundled_classification_uses_label_names():
    loaded = load_for_task(ModelConfig(), "classification", label_names=["negative", "positive"])
    model, report = loaded.model, loaded.report
    assert report["architecture"] == "BertForSequenceClassification"
    assert model.config.num_labels == 2
    assert model.config.id2label == {0: "negative", 1: "positive"}
    assert model.config.label2id == {"negative": 0, "positive": 1}
    assert sorted(report["newly_initialized"]) == ["classifier.bias", "classifier.weight"]
    assert report["head_is_untrained"] is True
    assert "classification head is newly initialised" in report["warnings"][0]


def test_tiny_bert_loads_for_mlm_with_a_trained_head(tiny):
    report = load_for_task(ModelConfig(source=str(tiny["bert"])), "mlm").report
    assert report["kind"] == "local"
    assert report["newly_initialized"] == [] and report["head_is_untrained"] is False
    assert report["warnings"] == []


# ---- resolving sources ---------------------------------------------------------------------

def test_local_folder_resolves(tiny):
    resolved = resolve_model(str(tiny["bert"]))
    assert resolved.kind == "local" and Path(resolved.location) == tiny["bert"].resolve()


def test_folder_without_config_is_refused(tmp_path):
    (tmp_path / "weights").mkdir()
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model(str(tmp_path / "weights"))


def test_file_instead_of_folder_is_refused(tiny):
    with pytest.raises(ModelError, match="is a file"):
        resolve_model(str(tiny["bert"] / "config.json"))


@pytest.mark.parametrize("source", ["./no/such/model", "/definitely/not/here", "not a hub id!"])
def test_missing_path_is_refused(source):
    with pytest.raises(ModelError, match="does not exist"):
        resolve_model(source)


def test_uncached_hub_id_fails_fast_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(ModelError) as info:
        resolve_model("distilbert-base-uncased-not-cached")
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert "not in the local Hugging Face cache" in message
    assert "'bundled'" in message and "local model folder" in message
    assert info.value.field == "model.source"
    with pytest.raises(ModelError, match="offline"):
        load_for_task(ModelConfig(source="someone/uncached-model"), "mlm")


def test_uncached_hub_id_fails_fast_when_unreachable(monkeypatch):
    from core.models import hub

    monkeypatch.setattr(hub, "hub_offline", lambda: False)
    monkeypatch.setattr(hub, "hub_reachable", lambda timeout=3.0: False)
    start = time.monotonic()
    with pytest.raises(ModelError, match="cannot be reached") as info:
        resolve_model("gpt2-uncached-here")
    assert time.monotonic() - start < 10
    assert "'bundled'" in str(info.value)


def test_hub_reachability_probe_is_bounded(monkeypatch):
    from core.models import hub

    monkeypatch.setitem(hub._REACHABLE, "value", None)
    start = time.monotonic()
    result = hub.hub_reachable(timeout=1.0)
    assert isinstance(result, bool)
    assert time.monotonic() - start < 5


def _fake_hub_cache(cache: Path, repo_id: str, model_dir: Path) -> None:
    """The layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<commit>/...}."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(model_dir, repo / "snapshots" / commit)


def test_cached_hub_id_loads_offline(tiny, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    _fake_hub_cache(tmp_path / "hub", "tuneboard/tiny-bert", tiny["bert"])
    assert is_cached("tuneboard/tiny-bert")
    assert not is_cached("tuneboard/other")
    assert not is_cached("./not-an-id")
    resolved = resolve_model("tuneboard/tiny-bert")
    assert resolved.kind == "hub" and Path(resolved.location).is_dir()
    assert "cached" in resolved.display
    loaded = load_for_task(ModelConfig(source="tuneboard/tiny-bert"), "mlm")
    assert loaded.report["kind"] == "hub" and loaded.report["architecture"] == "BertForMaskedLM"


# ---- task fitness and tokenizer repairs ----------------------------------------------------

def test_model_type_unfit_for_task_names_the_tasks_it_supports(tiny):
    with pytest.raises(ModelError) as info:
        load_for_task(ModelConfig(source=str(tiny["gpt2"])), "mlm")
    message = str(info.value)
    assert "gpt2" in message and "masked-LM" in message
    assert "classification" in message and "causal LM" in message


def test_supported_tasks_per_type():
    assert supported_tasks("gpt2") == ["classification", "causal", "sft"]  # sft wherever causal
    assert "mlm" in supported_tasks("bert") and "mlm" in supported_tasks("distilbert")
    assert supported_tasks("weirdo") == []
    assert supported_tasks("weirdo", {"AutoModelForCausalLM": "x.Y"}) == ["causal", "sft"]


def test_tokenizer_without_mask_token_is_refused_for_mlm(tiny):
    with pytest.raises(ModelError, match="no mask token"):
        load_for_task(ModelConfig(source=str(tiny["nomask"])), "mlm")
    # ...but is fine for classification.
    assert load_for_task(ModelConfig(source=str(tiny["nomask"])), "classification").model is not None


def test_missing_pad_token_is_repaired_with_eos(tiny):
    loaded = load_for_task(ModelConfig(source=str(tiny["gpt2"])), "causal")
    tok = loaded.tokenizer
    assert tok.pad_token == tok.eos_token == "<|endoftext|>"
    assert any("no pad token" in w for w in loaded.report["warnings"])
    batch = tok(["Nike shoes", "Nike shoes are very comfortable"], padding=True, return_tensors="pt")
    assert batch["input_ids"].shape[0] == 2


def test_gpt2_classification_gets_a_pad_token_id(tiny):
    loaded = load_for_task(ModelConfig(source=str(tiny["gpt2"])), "classification", label_names=["neg", "pos"])
    model, tok = loaded.model, loaded.tokenizer
    assert model.config.pad_token_id == tok.pad_token_id
    assert loaded.report["newly_initialized"] == ["score.weight"]
    batch = tok(["good", "Nike shoes are very comfortable"], padding=True, return_tensors="pt")
    with torch.no_grad():
        assert model(**batch).logits.shape == (2, 2)  # fails without pad_token_id


def test_encoder_as_causal_lm_is_made_a_decoder(tiny):
    loaded = load_for_task(ModelConfig(source=str(tiny["bert"])), "causal")
    assert loaded.model.config.is_decoder is True
    assert any("GPT-2 style model suits" in w for w in loaded.report["warnings"])


# ---- weights and code safety ---------------------------------------------------------------

def test_pickled_weights_refused_unless_allowed(tiny):
    with pytest.raises(ModelError) as info:
        load_for_task(ModelConfig(source=str(tiny["pickle"])), "mlm")
    assert "allow_pickle_weights" in str(info.value) and "run code" in str(info.value)
    assert info.value.field == "model.allow_pickle_weights"
    loaded = load_for_task(ModelConfig(source=str(tiny["pickle"]), allow_pickle_weights=True), "mlm")
    assert loaded.report["weights_format"] == "pickle"
    assert any("pickled" in w for w in loaded.report["warnings"])


def test_folder_without_weights_is_refused(tiny, tmp_path):
    folder = tmp_path / "no-weights"
    shutil.copytree(tiny["bert"], folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="no weights"):
        load_for_task(ModelConfig(source=str(folder)), "mlm")


def test_remote_code_needs_the_switch(tmp_path):
    folder = tmp_path / "custom"
    folder.mkdir()
    (folder / "config.json").write_text(
        json.dumps({"model_type": "weirdo", "auto_map": {"AutoConfig": "conf.WeirdConfig"}})
    )
    with pytest.raises(ModelError) as info:
        load_for_task(ModelConfig(source=str(folder)), "mlm")
    assert "trust_remote_code" in str(info.value)


def test_unknown_model_type_is_refused(tmp_path):
    folder = tmp_path / "unknown"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "weirdo"}))
    with pytest.raises(ModelError, match="does not know this model type"):
        load_for_task(ModelConfig(source=str(folder)), "classification")


def test_classifier_of_another_label_count_starts_fresh(tiny, tmp_path):
    three = load_for_task(ModelConfig(source=str(tiny["bert"])), "classification", label_names=["a", "b", "c"])
    three.model.save_pretrained(tmp_path / "three")
    three.tokenizer.save_pretrained(tmp_path / "three")
    two = load_for_task(ModelConfig(source=str(tmp_path / "three")), "classification", label_names=["x", "y"])
    assert two.model.config.num_labels == 2
    assert "classifier.weight" in two.report["newly_initialized"]


def test_unknown_task_is_refused():
    with pytest.raises(ModelError, match="Unknown task"):
        load_for_task(ModelConfig(), "translation")


def test_max_length_capped_to_the_model(tiny):
    loaded = load_for_task(ModelConfig(source=str(tiny["gpt2"]), max_length=4096), "causal")
    assert loaded.report["max_length"] == 128
    assert any("positions" in w for w in loaded.report["warnings"])
    assert effective_max_length(ModelConfig(max_length=32), loaded.model, loaded.tokenizer) == 32


def test_popular_models_are_well_formed():
    assert POPULAR_MODELS[0]["id"] == "bundled"
    for entry in POPULAR_MODELS:
        assert set(entry) == {"id", "tasks", "params", "note"}
        assert entry["tasks"] and set(entry["tasks"]) <= {"mlm", "classification", "causal", "sft"}
