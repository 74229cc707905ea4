"""answer_only_loss runs the tokens every row of a batch starts with once: same loss, same gradients.

Instruction rows from one template share their system turn, instruction and label list; the batch's
shared opening is run at batch size one and the rest of each row continues from its keys and values.
"""

from __future__ import annotations

import pytest
import torch

from core.config import ModelConfig, StrategyConfig
from core.models import fast_mlm, load_for_task
from core.models.fast_mlm import answer_only_loss, masked_only_parts, shared_prefix_length
from core.training.strategies import apply_strategy
from tests.tiny_models import tiny_chat_llama_dir

torch.set_num_threads(1)

INSTRUCTION = "Classify the text into one of: negative, positive.\n\nText: "
REVIEWS = [("Nike shoes are very comfortable", "positive"),
           ("Puma socks are cheap and flimsy, they tore in a week", "negative"),
           ("Adidas hoodies are stylish", "positive")]


@pytest.fixture(scope="module")
def chat_model_dir(tmp_path_factory):
    return tiny_chat_llama_dir(tmp_path_factory.mktemp("shared-prefix"))


def _batch(tokenizer, *, padding_side: str = "right") -> dict[str, torch.Tensor]:
    """Templated chats, labels on the assistant's answer only, padded as the SFT collator pads."""
    rows = []
    for text, answer in REVIEWS:
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": INSTRUCTION + text}],
                                               tokenize=False, add_generation_prompt=True)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(answer + "<|im_end|>", add_special_tokens=False)["input_ids"]
        rows.append((prompt_ids + answer_ids, [-100] * len(prompt_ids) + answer_ids))
    width = max(len(ids) for ids, _ in rows)
    pad = tokenizer.pad_token_id
    input_ids, mask, labels = [], [], []
    for ids, row_labels in rows:
        fill = width - len(ids)
        if padding_side == "right":
            input_ids.append(ids + [pad] * fill)
            mask.append([1] * len(ids) + [0] * fill)
            labels.append(row_labels + [-100] * fill)
        else:
            input_ids.append([pad] * fill + ids)
            mask.append([0] * fill + [1] * len(ids))
            labels.append([-100] * fill + row_labels)
    return {"input_ids": torch.tensor(input_ids), "attention_mask": torch.tensor(mask), "labels": torch.tensor(labels)}


def _loss_and_grads(model, batch, *, share: bool, monkeypatch) -> tuple[float, dict[str, torch.Tensor]]:
    monkeypatch.setattr(fast_mlm, "MIN_SHARED_PREFIX", fast_mlm.MIN_SHARED_PREFIX if share else 10**9)
    model.zero_grad(set_to_none=True)
    loss = answer_only_loss(masked_only_parts(model), batch)
    loss.backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return loss.item(), grads


@pytest.mark.parametrize("strategy", ["lora", "full"])
def test_the_shared_opening_run_once_gives_the_same_loss_and_gradients(chat_model_dir, strategy, monkeypatch):
    loaded = load_for_task(ModelConfig(source=str(chat_model_dir)), "sft")
    model = apply_strategy(loaded.model, StrategyConfig(name=strategy), "sft")[0]
    model.eval()  # no dropout: both passes must see the same network
    batch = _batch(loaded.tokenizer)
    shared = shared_prefix_length({k: batch[k] for k in ("input_ids", "attention_mask")}, batch["labels"])
    assert shared >= 20, "the chat header and instruction are shared by every row"

    own_loss = model(**batch).loss.item()
    plain_loss, plain_grads = _loss_and_grads(model, batch, share=False, monkeypatch=monkeypatch)
    shared_loss, shared_grads = _loss_and_grads(model, batch, share=True, monkeypatch=monkeypatch)

    assert plain_loss == pytest.approx(own_loss, rel=1e-5)
    assert shared_loss == pytest.approx(plain_loss, rel=1e-5)
    assert set(shared_grads) == set(plain_grads) and plain_grads
    for name, grad in plain_grads.items():
        torch.testing.assert_close(shared_grads[name], grad, rtol=1e-4, atol=1e-6, msg=f"gradient of {name}")
    assert any(g.abs().sum() > 0 for g in shared_grads.values())


def test_the_prefix_stops_before_the_first_trained_answer_and_needs_every_row_alike():
    ids = torch.tensor([[5] * 12 + [7, 8], [5] * 12 + [9, 8]])
    mask = torch.ones_like(ids)
    untrained = torch.full_like(ids, -100)
    assert shared_prefix_length({"input_ids": ids, "attention_mask": mask}, untrained) == 12

    answer_from_10 = untrained.clone()
    answer_from_10[:, 10:] = 3
    # position 9 predicts the first answer token, so its hidden state is computed with the rest of the row
    assert shared_prefix_length({"input_ids": ids, "attention_mask": mask}, answer_from_10) == 9

    left_padded = mask.clone()
    left_padded[1, 0] = 0
    assert shared_prefix_length({"input_ids": ids, "attention_mask": left_padded}, untrained) == 0
    assert shared_prefix_length({"input_ids": ids[:1], "attention_mask": mask[:1]}, untrained) == 0  # one row
    short = torch.tensor([[5] * 4 + [7], [5] * 4 + [9]])
    assert shared_prefix_length({"input_ids": short}, torch.full_like(short, -100)) == 0  # too few to pay


def test_left_padded_rows_train_as_before(chat_model_dir, monkeypatch):
    loaded = load_for_task(ModelConfig(source=str(chat_model_dir)), "sft")
    loaded.model.eval()
    batch = _batch(loaded.tokenizer, padding_side="left")
    assert shared_prefix_length({k: batch[k] for k in ("input_ids", "attention_mask")}, batch["labels"]) == 0
    loss, _ = _loss_and_grads(loaded.model, batch, share=True, monkeypatch=monkeypatch)
    assert loss == pytest.approx(loaded.model(**batch).loss.item(), rel=1e-5)


def test_the_per_example_answer_losses_equal_each_chat_scored_alone(chat_model_dir):
    import datasets
    import numpy as np

    from core.insight import example_pass

    loaded = load_for_task(ModelConfig(source=str(chat_model_dir)), "sft")
    model, tokenizer = loaded.model, loaded.tokenizer
    batch = _batch(tokenizer)
    rows = {"input_ids": [], "attention_mask": [], "labels": []}
    alone = []
    model.eval()
    for ids, mask, labels in zip(batch["input_ids"], batch["attention_mask"], batch["labels"], strict=True):
        n = int(mask.sum())
        rows["input_ids"].append(ids[:n].tolist())
        rows["attention_mask"].append([1] * n)
        rows["labels"].append(labels[:n].tolist())
        with torch.inference_mode():
            alone.append(model(input_ids=ids[None, :n], labels=labels[None, :n]).loss.item())
    got = example_pass.example_loss_pass(model, datasets.Dataset.from_dict(rows), tokenizer, "sft", seed=0)
    np.testing.assert_allclose(got, alone, rtol=1e-5, atol=1e-6)


def test_a_gpt2_style_model_gets_the_same_loss_and_gradients(tiny_gpt2, monkeypatch):
    loaded = load_for_task(ModelConfig(source=tiny_gpt2), "sft")
    model, tokenizer = loaded.model, loaded.tokenizer
    model.eval()
    rows = []
    for text, answer in REVIEWS:
        prompt = tokenizer(f"Classify the review as negative or positive. Review: {text} Answer:")["input_ids"]
        reply = tokenizer(f" {answer}")["input_ids"] + [tokenizer.eos_token_id]
        rows.append((prompt + reply, [-100] * len(prompt) + reply))
    width = max(len(ids) for ids, _ in rows)
    batch = {"input_ids": torch.tensor([ids + [tokenizer.pad_token_id] * (width - len(ids)) for ids, _ in rows]),
             "attention_mask": torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in rows]),
             "labels": torch.tensor([labels + [-100] * (width - len(labels)) for _, labels in rows])}
    assert shared_prefix_length({k: batch[k] for k in ("input_ids", "attention_mask")}, batch["labels"]) >= 8
    plain_loss, plain_grads = _loss_and_grads(model, batch, share=False, monkeypatch=monkeypatch)
    shared_loss, shared_grads = _loss_and_grads(model, batch, share=True, monkeypatch=monkeypatch)
    assert shared_loss == pytest.approx(plain_loss, rel=1e-5)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(shared_grads[name], grad, rtol=1e-4, atol=1e-6, msg=f"gradient of {name}")
