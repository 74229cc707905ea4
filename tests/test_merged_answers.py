"""A run's LoRA adapter is merged into its base for answering: the same next-token scores as the adapter applied."""

from __future__ import annotations

import os

import torch

from core.config import ModelConfig, StrategyConfig
from core.models import load_for_task, load_saved
from core.models.export import load_saved_model_cached
from core.models.saving import is_peft_model
from core.training.strategies import apply_strategy
from tests.tiny_models import tiny_chat_llama_dir


def test_an_adapter_loads_merged_for_answers_with_the_same_scores(tmp_path):
    base_dir, adapter = _trained_adapter(tmp_path)
    applied, tokenizer = load_saved(adapter, "sft")
    merged, _ = load_saved_model_cached(str(adapter), "sft", os.stat(adapter).st_mtime_ns)
    assert is_peft_model(applied) and not is_peft_model(merged)
    ids = tokenizer("Classify the text into one of: negative, positive.", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        plain = applied.get_base_model().__class__.from_pretrained(base_dir).eval()(ids).logits
        expected, got = applied(ids).logits, merged(ids).logits
    assert not torch.allclose(expected, plain, atol=1e-3)  # the adapter changes the scores
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def _trained_adapter(tmp_path):
    """(base folder, adapter folder) of a tiny chat Llama with a LoRA adapter whose B matrices are not zero
    (peft starts them at zero, which would merge to the base itself)."""
    base_dir = tiny_chat_llama_dir(tmp_path)
    loaded = load_for_task(ModelConfig(source=str(base_dir)), "sft")
    model = apply_strategy(loaded.model, StrategyConfig(name="lora"), "sft")[0]
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    adapter = tmp_path / "final"
    model.save_pretrained(adapter)
    loaded.tokenizer.save_pretrained(adapter)
    return base_dir, adapter


def test_the_fine_tuned_side_is_merged_into_a_copy_of_the_base_in_memory(tmp_path, monkeypatch):
    from core.config import RunConfig
    from core.insight import probes
    from core.models import export

    base_dir, adapter = _trained_adapter(tmp_path)
    cfg = RunConfig(task="sft")
    cfg.model.source = str(base_dir)
    base_model, _ = probes.base_model_for(cfg)
    before = {name: p.detach().clone() for name, p in base_model.named_parameters()}

    def no_second_load(*_args, **_kwargs):
        raise AssertionError("the base weights were read from disk again")

    monkeypatch.setattr(export, "load_saved_model_cached", no_second_load)
    merged, tokenizer = probes.tuned_model_for(cfg, adapter)
    assert merged is not base_model and not is_peft_model(merged)
    assert probes.tuned_model_for(cfg, adapter)[0] is merged  # cached
    # The base the 'before' side shows is untouched: same parameters, same values, no LoRA layers.
    after = dict(base_model.named_parameters())
    assert after.keys() == before.keys()
    assert all(torch.equal(after[name], value) for name, value in before.items())

    applied, _ = load_saved(adapter, "sft")
    ids = tokenizer("Classify the text into one of: negative, positive.", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        torch.testing.assert_close(merged(ids).logits, applied(ids).logits, rtol=1e-4, atol=1e-4)


def test_an_adapter_trained_on_another_base_loads_from_its_own_folder(tmp_path):
    from core.config import RunConfig
    from core.insight import probes

    _, adapter = _trained_adapter(tmp_path / "trained")
    other = tiny_chat_llama_dir(tmp_path / "other")
    cfg = RunConfig(task="sft")
    cfg.model.source = str(other)  # the 'before' side shows another model than the adapter's base
    merged, tokenizer = probes.tuned_model_for(cfg, adapter)
    applied, _ = load_saved(adapter, "sft")
    ids = tokenizer("Classify the text.", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        torch.testing.assert_close(merged(ids).logits, applied(ids).logits, rtol=1e-4, atol=1e-4)
