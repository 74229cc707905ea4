"""core.models.fast_mlm: the masked-only MLM and answer-only SFT losses equal the model's own loss, and so do their gradients."""

from __future__ import annotations

import pytest
import torch

from core.config import ModelConfig
from core.models import load_for_task
from core.models.fast_mlm import masked_only_loss, masked_only_parts

torch.set_num_threads(1)

TEXTS = [
    "Nike shoes are very comfortable",
    "Adidas hoodies are known to be stylish and durable",
    "Puma socks are cheap",
    "Nike tshirts are famous for being cheap and flimsy",
]


@pytest.fixture(scope="module")
def mlm(tiny_bert):
    loaded = load_for_task(ModelConfig(source=tiny_bert), "mlm")
    loaded.model.eval()  # no dropout: both losses must see the same network
    return loaded


def _masked_batch(tokenizer, seed: int = 0) -> dict[str, torch.Tensor]:
    from transformers import DataCollatorForLanguageModeling

    collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=0.3)
    rows = [tokenizer(text, return_special_tokens_mask=True) for text in TEXTS]
    torch.manual_seed(seed)
    batch = dict(collator(rows))
    assert (batch["labels"] != -100).sum() > 0
    return batch


def _grads(model) -> dict[str, torch.Tensor]:
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


def _standard_and_fast(model, batch, num_items=None):
    model.zero_grad(set_to_none=True)
    standard = model(**batch).loss
    if num_items is not None:
        # What Trainer does with a model that averages its own loss: mean x masked / num_items.
        standard = standard * (batch["labels"] != -100).sum() / num_items
    standard.backward()
    standard_grads = _grads(model)
    parts = masked_only_parts(model)
    assert parts is not None, "a BERT masked-LM head should be supported"
    fast = masked_only_loss(parts, batch, num_items)
    fast.backward()
    return standard, standard_grads, fast, _grads(model)


@pytest.mark.parametrize("num_items", [None, 37])
def test_masked_only_loss_and_gradients_match_the_standard_loss(mlm, num_items):
    batch = _masked_batch(mlm.tokenizer)
    standard, standard_grads, fast, fast_grads = _standard_and_fast(mlm.model, batch, num_items)
    assert fast.item() == pytest.approx(standard.item(), rel=1e-5, abs=1e-6)
    assert set(fast_grads) == set(standard_grads)
    for name, grad in standard_grads.items():
        torch.testing.assert_close(fast_grads[name], grad, rtol=1e-4, atol=1e-6, msg=f"gradient of {name}")
    assert any(g.abs().sum() > 0 for g in fast_grads.values())


def test_a_batch_without_masked_tokens_gives_zero_and_keeps_the_graph(mlm):
    batch = _masked_batch(mlm.tokenizer, seed=1)
    batch["labels"] = torch.full_like(batch["labels"], -100)
    loss = masked_only_loss(masked_only_parts(mlm.model), batch)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    mlm.model.zero_grad(set_to_none=True)


def test_other_heads_fall_back_to_the_normal_forward(tiny_gpt2):
    loaded = load_for_task(ModelConfig(source=tiny_gpt2), "classification")
    assert masked_only_parts(loaded.model) is None  # a classifier has no vocabulary head to skip


@pytest.fixture(scope="module")
def causal(tiny_gpt2):
    loaded = load_for_task(ModelConfig(source=tiny_gpt2), "sft")
    loaded.model.eval()
    return loaded


def _answer_batch(tokenizer) -> dict[str, torch.Tensor]:
    rows = tokenizer(TEXTS, return_tensors="pt", padding=True)
    labels = rows["input_ids"].clone()
    labels[:, :3] = -100  # the "prompt": not trained
    labels[rows["attention_mask"] == 0] = -100
    return {"input_ids": rows["input_ids"], "attention_mask": rows["attention_mask"], "labels": labels}


@pytest.mark.parametrize("num_items", [None, 11])
def test_answer_only_loss_and_gradients_match_the_causal_lm_loss(causal, num_items):
    from core.models.fast_mlm import answer_only_loss

    model, batch = causal.model, _answer_batch(causal.tokenizer)
    model.zero_grad(set_to_none=True)
    standard = model(**batch).loss
    if num_items is not None:
        standard = standard * (batch["labels"][:, 1:] != -100).sum() / num_items
    standard.backward()
    standard_grads = _grads(model)
    fast = answer_only_loss(masked_only_parts(model), batch, num_items)
    fast.backward()
    fast_grads = _grads(model)
    assert fast.item() == pytest.approx(standard.item(), rel=1e-5, abs=1e-6)
    assert set(fast_grads) == set(standard_grads)
    for name, grad in standard_grads.items():
        torch.testing.assert_close(fast_grads[name], grad, rtol=1e-4, atol=1e-6, msg=f"gradient of {name}")
