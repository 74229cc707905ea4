"""core.insight.probes: top-k masked / next tokens and label probabilities, batched, without side effects."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from core.config import DEFAULT_MLM_PROBES, ModelConfig, StrategyConfig
from core.errors import ModelError
from core.insight.probes import adapt_mask_token, score_probes
from core.models import load_for_task
from core.training.strategies import apply_strategy
from tests.tiny_models import tiny_bert_dir, tiny_gpt2_dir

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny-models")
    return {"bert": tiny_bert_dir(root), "gpt2": tiny_gpt2_dir(root)}


@pytest.fixture(scope="module")
def bert_mlm(tiny):
    return load_for_task(ModelConfig(source=str(tiny["bert"])), "mlm")


@pytest.fixture(scope="module")
def gpt2_causal(tiny):
    return load_for_task(ModelConfig(source=str(tiny["gpt2"])), "causal")


def _check_distribution(predictions, key: str, top_k: int) -> None:
    assert len(predictions) == top_k
    scores = [p["score"] for p in predictions]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores == sorted(scores, reverse=True)
    assert sum(scores) <= 1.0 + 1e-6
    assert all(isinstance(p[key], str) and p[key] and p[key] == p[key].strip() for p in predictions)


def test_adapt_mask_token():
    bert = SimpleNamespace(mask_token="[MASK]")
    roberta = SimpleNamespace(mask_token="<mask>")
    assert adapt_mask_token("Nike shoes are very [MASK]", roberta) == "Nike shoes are very <mask>"
    assert adapt_mask_token("Nike shoes are very <mask>", bert) == "Nike shoes are very [MASK]"
    assert adapt_mask_token("Nike [MASK] and [MASK]", bert) == "Nike [MASK] and [MASK]"
    assert adapt_mask_token("no mask", SimpleNamespace(mask_token=None)) == "no mask"


def test_mlm_probes_on_the_bundled_model():
    loaded = load_for_task(ModelConfig(), "mlm")
    results = score_probes(loaded.model, loaded.tokenizer, "mlm", list(DEFAULT_MLM_PROBES), 5)
    assert [r["text"] for r in results] == list(DEFAULT_MLM_PROBES)
    for result in results:
        _check_distribution(result["predictions"], "token", 5)


def test_mlm_probes_shape_and_side_effects(bert_mlm):
    model, tok = bert_mlm.model, bert_mlm.tokenizer
    model.train()
    texts = ["Nike shoes are very [MASK]", "Adidas <mask> are known to be cheap", "Nike [MASK]"]
    results = score_probes(model, tok, "mlm", texts, 3)
    assert len(results) == 3
    assert results[1]["text"] == "Adidas [MASK] are known to be cheap"  # adapted to this tokenizer
    for result in results:
        _check_distribution(result["predictions"], "token", 3)
    assert model.training  # mode restored
    assert all(p.grad is None for p in model.parameters())
    model.eval()
    score_probes(model, tok, "mlm", texts[:1], 3)
    assert not model.training


def test_mlm_probe_matches_a_direct_forward(bert_mlm):
    model, tok = bert_mlm.model, bert_mlm.tokenizer
    text = "Nike shoes are very [MASK]"
    [result] = score_probes(model, tok, "mlm", [text], 4)
    batch = tok([text], return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits[0]
    position = int((batch["input_ids"][0] == tok.mask_token_id).nonzero()[0])
    probs = torch.softmax(logits[position], dim=-1)
    top = probs.topk(4)
    assert [p["score"] for p in result["predictions"]] == pytest.approx(top.values.tolist(), abs=1e-6)


def test_mlm_probe_without_a_mask_gives_no_predictions(bert_mlm):
    [result] = score_probes(bert_mlm.model, bert_mlm.tokenizer, "mlm", ["Nike shoes are great"], 5)
    assert result["predictions"] == []


def test_causal_probes_batch_equals_single(gpt2_causal):
    model, tok = gpt2_causal.model, gpt2_causal.tokenizer
    texts = ["Nike", "Nike shoes are very", "Trousers and Hoodies made by Nike are"]
    batched = score_probes(model, tok, "causal", texts, 5)
    for text, result in zip(texts, batched, strict=True):
        _check_distribution(result["predictions"], "token", 5)
        [single] = score_probes(model, tok, "causal", [text], 5)
        assert [p["token"] for p in single["predictions"]] == [p["token"] for p in result["predictions"]]
        assert [p["score"] for p in single["predictions"]] == pytest.approx(
            [p["score"] for p in result["predictions"]], abs=1e-5
        )
    assert not any(p["token"].startswith("Ġ") for r in batched for p in r["predictions"])


def test_causal_probes_without_a_pad_token(tiny):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.models import load_saved

    tok = AutoTokenizer.from_pretrained(tiny["gpt2"])
    model = AutoModelForCausalLM.from_pretrained(tiny["gpt2"])
    assert tok.pad_token is None
    [single] = score_probes(model, tok, "causal", ["Nike shoes are very"], 2)  # one text needs no padding
    assert len(single["predictions"]) == 2
    with pytest.raises(ModelError, match="no pad token"):
        score_probes(model, tok, "causal", ["Nike shoes", "Nike shoes are very"], 2)
    assert tok.pad_token is None  # probes never change the tokenizer
    model, tok = load_saved(tiny["gpt2"], "causal")  # the one loader gives it a pad token
    assert len(score_probes(model, tok, "causal", ["Nike shoes", "Nike shoes are very"], 2)) == 2


def test_classification_probes_use_label_names(tiny):
    loaded = load_for_task(ModelConfig(source=str(tiny["bert"])), "classification", label_names=["neg", "pos"])
    results = score_probes(
        loaded.model, loaded.tokenizer, "classification", ["Nike shoes are very comfortable", "ugly"], 5
    )
    for result in results:
        predictions = result["predictions"]
        assert {p["label"] for p in predictions} == {"neg", "pos"}
        assert sum(p["score"] for p in predictions) == pytest.approx(1.0, abs=1e-5)
        assert predictions[0]["score"] >= predictions[1]["score"]
    renamed = score_probes(loaded.model, loaded.tokenizer, "classification", ["ugly"], 1, label_names=["bad", "good"])
    assert len(renamed[0]["predictions"]) == 1 and renamed[0]["predictions"][0]["label"] in {"bad", "good"}


def test_probes_on_a_peft_model(tiny):
    loaded = load_for_task(ModelConfig(source=str(tiny["bert"])), "mlm")
    model, _ = apply_strategy(loaded.model, StrategyConfig(name="lora"), "mlm")
    [result] = score_probes(model, loaded.tokenizer, "mlm", ["Nike shoes are very [MASK]"], 3)
    _check_distribution(result["predictions"], "token", 3)


def test_empty_and_bad_inputs(bert_mlm):
    assert score_probes(bert_mlm.model, bert_mlm.tokenizer, "mlm", [], 5) == []
    with pytest.raises(ModelError):
        score_probes(bert_mlm.model, bert_mlm.tokenizer, "translation", ["x"], 5)


def test_probe_text_scores_base_and_tuned_models(tiny, tmp_path):
    from core.config import RunConfig
    from core.insight.probes import probe_text
    from core.models.saving import export_model
    from core.run.folder import RunFolder

    cfg = RunConfig(task="mlm")
    cfg.model.source = str(tiny["bert"])
    folder = RunFolder.create(tmp_path, "probe-run", cfg)
    before = probe_text(folder.path, "Nike shoes are very [MASK]", 3)
    assert before["tuned"] == [] and before["tuned_from"] is None
    assert len(before["base"]) == 3

    loaded = load_for_task(cfg.model, "mlm")
    with torch.no_grad():
        loaded.model.cls.predictions.bias.add_(torch.linspace(0, 5, loaded.model.config.vocab_size))
    export_model(loaded.model, loaded.tokenizer, folder.final_path, merge=True)
    after = probe_text(folder.path, "Nike shoes are very <mask>", 3)
    assert after["tuned_from"] == "final"
    assert after["base"] == before["base"]
    assert after["tuned"] != after["base"] and len(after["tuned"]) == 3
    with pytest.raises(ModelError, match="MASK"):
        probe_text(folder.path, "no mask here", 3)
