"""core.training.strategies: which parameters train per strategy, gradual unfreezing, LoRA, export, estimates."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from core.config import ModelConfig, RunConfig, StrategyConfig
from core.errors import ConfigError, ModelError
from core.models import load_for_task
from core.models.saving import export_model, is_peft_model
from core.training.strategies import (
    GradualUnfreezer,
    apply_strategy,
    count_params,
    estimate_params,
    human_count,
    model_parts,
)
from tests.tiny_models import tiny_bert_dir, tiny_gpt2_dir

torch.set_num_threads(1)

STRATEGIES = ("full", "feature-extraction", "freeze-layers", "gradual-unfreeze", "lora")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-models")
    return {"bert": tiny_bert_dir(root), "gpt2": tiny_gpt2_dir(root)}


def _load(tiny, kind: str, task: str):
    return load_for_task(ModelConfig(source=str(tiny[kind])), task, label_names=["negative", "positive"])


def _apply(tiny, kind: str, task: str, **strategy):
    loaded = _load(tiny, kind, task)
    model, plan = apply_strategy(loaded.model, StrategyConfig(**strategy), task)
    return loaded, model, plan


def _trainable_names(model) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


def _cfg(source: str, task: str, **strategy) -> RunConfig:
    cfg = RunConfig(task=task)
    cfg.model.source = source
    cfg.strategy = StrategyConfig(**strategy)
    return cfg


# ---- parts and counts ----------------------------------------------------------------------

def test_model_parts_bert_and_gpt2(tiny):
    bert = model_parts(_load(tiny, "bert", "mlm").model)
    assert len(bert.blocks) == 2 and bert.block_kind == "encoder"
    assert all(n.startswith("bert.encoder.layer.1.") for n in bert.blocks[1])
    assert "bert.embeddings.word_embeddings.weight" in bert.embeddings
    assert all(n.startswith("cls.") for n in bert.head)
    gpt2 = model_parts(_load(tiny, "gpt2", "causal").model)
    assert len(gpt2.blocks) == 2 and gpt2.block_kind == "decoder"
    assert set(gpt2.embeddings) == {"transformer.wte.weight", "transformer.wpe.weight"}
    assert set(gpt2.top) == {"transformer.ln_f.weight", "transformer.ln_f.bias"}
    assert gpt2.head == []  # lm_head is tied to wte


def test_trainable_counts_are_ordered_on_the_bundled_model():
    counts = {name: estimate_params(_cfg("bundled", "mlm", name=name, freeze_layers=3)) for name in STRATEGIES}
    total = counts["full"][1]
    assert counts["full"][0] == total > 20_000_000
    assert counts["feature-extraction"][0] < counts["freeze-layers"][0] < counts["full"][0]
    assert counts["gradual-unfreeze"][0] == counts["feature-extraction"][0]
    lora_trainable, lora_total = counts["lora"]
    assert lora_trainable < 0.02 * lora_total  # LoRA trains a tiny share


@pytest.mark.parametrize("kind,task", [("bert", "mlm"), ("bert", "classification"), ("gpt2", "causal")])
def test_trainable_counts_are_ordered_on_tiny_models(tiny, kind, task):
    trainable = {}
    for name in STRATEGIES:
        _, model, plan = _apply(tiny, kind, task, name=name, freeze_layers=1)
        assert (plan.trainable_params, plan.total_params) == count_params(model)
        assert plan.name == name and human_count(plan.trainable_params) in plan.description
        trainable[name] = plan.trainable_params
    assert 0 < trainable["feature-extraction"] < trainable["freeze-layers"] < trainable["full"]


def test_feature_extraction_mlm_keeps_the_tied_decoder_frozen(tiny):
    loaded, model, plan = _apply(tiny, "bert", "mlm", name="feature-extraction")
    names = _trainable_names(model)
    assert names and all(n.startswith("cls.") for n in names)
    assert "cls.predictions.transform.dense.weight" in names
    decoder = model.cls.predictions.decoder.weight
    assert decoder is model.bert.embeddings.word_embeddings.weight  # still tied
    assert not decoder.requires_grad
    assert "tied to the word embeddings" in plan.description


def test_feature_extraction_classification_trains_pooler_and_classifier(tiny):
    _, model, _ = _apply(tiny, "bert", "classification", name="feature-extraction")
    assert _trainable_names(model) == {
        "bert.pooler.dense.weight", "bert.pooler.dense.bias", "classifier.weight", "classifier.bias"
    }


def test_feature_extraction_causal_trains_the_final_norm(tiny):
    _, model, _ = _apply(tiny, "gpt2", "causal", name="feature-extraction")
    assert _trainable_names(model) == {"transformer.ln_f.weight", "transformer.ln_f.bias"}


def test_freeze_layers(tiny):
    _, model, _ = _apply(tiny, "bert", "classification", name="freeze-layers", freeze_layers=1)
    names = _trainable_names(model)
    assert not any(n.startswith(("bert.embeddings.", "bert.encoder.layer.0.")) for n in names)
    assert any(n.startswith("bert.encoder.layer.1.") for n in names) and "classifier.weight" in names
    _, model, _ = _apply(tiny, "bert", "classification", name="freeze-layers", freeze_layers=0)
    names = _trainable_names(model)
    assert not any(n.startswith("bert.embeddings.") for n in names)
    assert any(n.startswith("bert.encoder.layer.0.") for n in names)


def test_freeze_more_layers_than_exist_names_the_count(tiny):
    with pytest.raises(ConfigError) as info:
        _apply(tiny, "gpt2", "causal", name="freeze-layers", freeze_layers=3)
    assert "only 2 decoder blocks" in str(info.value)
    assert info.value.field == "strategy.freeze_layers"


def test_unknown_strategy(tiny):
    with pytest.raises(ConfigError):
        _apply(tiny, "bert", "mlm", name="magic")


# ---- gradual unfreezing --------------------------------------------------------------------

def test_gradual_unfreeze_sequence(tiny):
    _, model, plan = _apply(tiny, "bert", "mlm", name="gradual-unfreeze")
    assert [g.label for g in plan.unfreeze_groups] == ["encoder block 1", "encoder block 0", "embeddings"]
    unfreezer = GradualUnfreezer(model, plan)
    counts = [count_params(model)[0]]
    messages = []
    while (message := unfreezer.unfreeze_next()) is not None:
        messages.append(message)
        counts.append(count_params(model)[0])
    assert [m.split(" (")[0] for m in messages] == [
        "Unfroze encoder block 1", "Unfroze encoder block 0", "Unfroze embeddings"
    ]
    total = human_count(plan.total_params)
    assert messages[0].endswith(f"/ {total})") and "(trainable " in messages[0]
    assert counts == sorted(counts) and len(set(counts)) == 4
    assert counts[-1] == plan.total_params
    assert unfreezer.done and unfreezer.unfreeze_next() is None


# ---- LoRA ----------------------------------------------------------------------------------

def test_lora_mlm_adapts_query_value_and_trains_the_untied_head(tiny):
    loaded, model, plan = _apply(tiny, "bert", "mlm", name="lora", lora_r=4, lora_alpha=8)
    assert is_peft_model(model)
    names = _trainable_names(model)
    assert any("query.lora_A" in n for n in names) and any("value.lora_B" in n for n in names)
    assert not any("key.lora" in n for n in names)
    assert any("transform" in n and "modules_to_save" in n for n in names)
    assert not any("word_embeddings" in n for n in names)
    assert "rank 4" in plan.description
    batch = loaded.tokenizer(["Nike shoes are very [MASK]"], return_tensors="pt")
    out = model(**batch, labels=batch["input_ids"])
    assert torch.isfinite(out.loss)


def test_lora_classification_keeps_the_classifier_trainable(tiny):
    _, model, _ = _apply(tiny, "bert", "classification", name="lora")
    assert any("classifier" in n and "modules_to_save" in n for n in _trainable_names(model))


def test_lora_gpt2_targets_c_attn(tiny):
    _, model, plan = _apply(tiny, "gpt2", "causal", name="lora")
    names = _trainable_names(model)
    assert names and all("lora_" in n for n in names)
    assert "c_attn" in plan.description


def test_lora_custom_and_unknown_targets(tiny):
    _, model, _ = _apply(tiny, "bert", "mlm", name="lora", lora_targets=["key"])
    assert any("key.lora_A" in n for n in _trainable_names(model))
    with pytest.raises(ConfigError) as info:
        _apply(tiny, "bert", "mlm", name="lora", lora_targets=["no_such_layer"])
    assert "no_such_layer" in str(info.value) and "query" in str(info.value)


# ---- export --------------------------------------------------------------------------------

def _nudge_trainable(model) -> None:
    """Move the trainable weights so LoRA B is non-zero and the merge is not trivially equal."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen) * 0.2)


def _logits(model, tokenizer, texts):
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    batch = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    model.eval()
    with torch.no_grad():
        return model(**batch).logits


@pytest.mark.parametrize("kind,task", [("bert", "mlm"), ("bert", "classification"), ("gpt2", "causal")])
def test_lora_merged_export_matches_the_peft_model(tiny, tmp_path, kind, task):
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSequenceClassification

    loaded, model, _ = _apply(tiny, kind, task, name="lora")
    _nudge_trainable(model)
    texts = ["Nike shoes are very comfortable", "Adidas hoodies"]
    expected = _logits(model, loaded.tokenizer, texts)
    out = export_model(model, loaded.tokenizer, tmp_path / "merged", merge=True)
    assert (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()
    auto = {"mlm": AutoModelForMaskedLM, "classification": AutoModelForSequenceClassification,
            "causal": AutoModelForCausalLM}[task]
    merged = auto.from_pretrained(out)
    torch.testing.assert_close(_logits(merged, loaded.tokenizer, texts), expected, atol=1e-4, rtol=0)
    # The caller's peft model is untouched by the export.
    torch.testing.assert_close(_logits(model, loaded.tokenizer, texts), expected, atol=0, rtol=0)
    # And the folder is a Tuneboard model source in its own right.
    again = load_for_task(ModelConfig(source=str(out)), task, label_names=["negative", "positive"])
    assert again.report["newly_initialized"] == []


def test_lora_adapter_only_export(tiny, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForMaskedLM

    loaded, model, _ = _apply(tiny, "bert", "mlm", name="lora")
    _nudge_trainable(model)
    texts = ["Nike shoes are very [MASK]"]
    expected = _logits(model, loaded.tokenizer, texts)
    out = export_model(model, loaded.tokenizer, tmp_path / "adapter", merge=False)
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    assert not (out / "model.safetensors").exists()
    base = AutoModelForMaskedLM.from_pretrained(tiny["bert"])
    restored = PeftModel.from_pretrained(base, out)
    torch.testing.assert_close(_logits(restored, loaded.tokenizer, texts), expected, atol=1e-5, rtol=0)


def test_plain_model_export_round_trips(tiny, tmp_path):
    loaded, model, _ = _apply(tiny, "gpt2", "classification", name="full")
    _nudge_trainable(model)
    out = export_model(model, loaded.tokenizer, tmp_path / "plain", merge=True)
    again = load_for_task(ModelConfig(source=str(out)), "classification", label_names=["negative", "positive"])
    texts = ["Nike shoes", "Nike shoes are very comfortable"]
    torch.testing.assert_close(_logits(again.model, again.tokenizer, texts), _logits(model, loaded.tokenizer, texts))


# ---- estimates -----------------------------------------------------------------------------

@pytest.mark.parametrize("kind,task", [("bert", "mlm"), ("bert", "classification"), ("gpt2", "causal")])
@pytest.mark.parametrize("name", STRATEGIES)
def test_estimate_matches_the_real_count(tiny, kind, task, name):
    _, _, plan = _apply(tiny, kind, task, name=name, freeze_layers=1)
    estimate = estimate_params(_cfg(str(tiny[kind]), task, name=name, freeze_layers=1))
    assert estimate == (plan.trainable_params, plan.total_params)


def test_estimate_is_quick_and_cached():
    cfg = _cfg("bundled", "classification", name="freeze-layers", freeze_layers=2)
    start = time.monotonic()
    first = estimate_params(cfg)
    assert time.monotonic() - start < 5
    start = time.monotonic()
    assert estimate_params(cfg) == first
    assert time.monotonic() - start < 0.01


def test_estimate_refuses_an_unfit_task(tiny):
    with pytest.raises(ModelError, match="does not support"):
        estimate_params(_cfg(str(tiny["gpt2"]), "mlm", name="full"))


# ---- other architectures, built from configs on the meta device ----------------------------

def _meta_model(model_type: str, task: str):
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForMaskedLM,
        AutoModelForSequenceClassification,
    )

    sizes = {
        "distilbert": dict(dim=32, n_layers=3, n_heads=2, hidden_dim=64),
        "roberta": dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64),
        "electra": dict(embedding_size=16, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
                        intermediate_size=64),
        "llama": dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, num_key_value_heads=2,
                      intermediate_size=64),
    }[model_type]
    config = AutoConfig.for_model(model_type, vocab_size=100, **sizes)
    auto = {"mlm": AutoModelForMaskedLM, "classification": AutoModelForSequenceClassification,
            "causal": AutoModelForCausalLM}[task]
    with torch.device("meta"):
        return auto.from_config(config)


@pytest.mark.parametrize("model_type,task", [
    ("distilbert", "mlm"), ("distilbert", "classification"), ("roberta", "mlm"),
    ("roberta", "classification"), ("electra", "mlm"), ("llama", "causal"), ("llama", "classification"),
])
def test_strategies_find_the_parts_of_other_architectures(model_type, task):
    parts = model_parts(_meta_model(model_type, task))
    assert len(parts.blocks) == 3 and all(parts.blocks)
    assert any("embed" in n for n in parts.embeddings)
    assert parts.head
    trainable = {}
    for name in STRATEGIES:
        model, plan = apply_strategy(_meta_model(model_type, task), StrategyConfig(name=name, freeze_layers=2), task)
        trainable[name] = plan.trainable_params
        if name == "gradual-unfreeze":
            assert [g.label for g in plan.unfreeze_groups][-1] == "embeddings"
            assert len(plan.unfreeze_groups) == 4
        if name == "lora":
            assert is_peft_model(model) and any("lora_A" in n for n in _trainable_names(model))
    assert 0 < trainable["feature-extraction"] < trainable["freeze-layers"] < trainable["full"]
    assert trainable["lora"] < trainable["full"]


@pytest.mark.parametrize("tied", [True, False])
def test_sft_lora_adapts_every_linear_layer_of_the_blocks_but_never_the_head(tmp_path, tied):
    from transformers import AutoModelForCausalLM

    from core.training.strategies import default_lora_targets
    from tests.tiny_models import tiny_chat_llama_dir

    model = AutoModelForCausalLM.from_pretrained(tiny_chat_llama_dir(tmp_path, tied=tied))
    assert default_lora_targets(model, "sft") == [
        "down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"]
    # Plain next-token fine-tuning keeps the architecture's query/value default.
    assert default_lora_targets(model, "causal") == ["q_proj", "v_proj"]
