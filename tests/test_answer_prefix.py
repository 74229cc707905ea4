"""Answering many prompts that share their opening: the shared tokens run once, and nothing else changes."""

from __future__ import annotations

import pytest

from core.insight.answers import MIN_SHARED_PREFIX, SharedPrefix, answer_batches, render_prompts
from tests.tiny_models import tiny_chat_llama_dir

INSTRUCTION = "Classify the text into one of: negative, positive.\n\nText: {}\n\nAnswer with the category name only."
TEXTS = ["great shoes", "the laces broke after a week", "comfortable and light", "too small", "love them",
         "arrived late and dirty", "good value"]


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = tiny_chat_llama_dir(tmp_path_factory.mktemp("prefix"))
    return AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)


def _chats() -> list[list[dict[str, str]]]:
    return [[{"role": "system", "content": "You sort reviews."}, {"role": "user", "content": INSTRUCTION.format(t)}]
            for t in TEXTS]


def _alone(model, tokenizer, chat, new_tokens: int) -> str:
    """The reply generate() gives one prompt on its own: no padding, no shared cache."""
    import torch

    ids = tokenizer(render_prompts(tokenizer, [chat])[0], add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()


def test_the_shared_opening_is_found_and_leaves_every_row_a_token_of_its_own(chat_model):
    import torch

    model, tokenizer = chat_model
    rows = [tokenizer(p, add_special_tokens=False).input_ids for p in render_prompts(tokenizer, _chats())]
    prefix = SharedPrefix.of(model, rows, torch.device("cpu"))
    assert len(prefix.ids) >= MIN_SHARED_PREFIX
    assert all(row[:len(prefix.ids)] == prefix.ids and len(row) > len(prefix.ids) for row in rows)
    assert SharedPrefix.of(model, rows[:1], torch.device("cpu")).cache is None  # one prompt shares with nothing
    ids, mask = prefix.batch_inputs(rows[:3], pad_id=tokenizer.pad_token_id)
    assert ids.shape == mask.shape and mask.sum(dim=1).tolist() == [len(r) for r in rows[:3]]


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_batched_replies_from_the_shared_cache_equal_each_prompt_answered_alone(chat_model, batch_size):
    model, tokenizer = chat_model
    chats = _chats()
    replies: dict[int, str] = {}
    for batch in answer_batches(model, tokenizer, chats, max_new_tokens=6, batch_size=batch_size):
        replies.update(zip(batch.positions, batch.replies, strict=True))
        assert all(0.0 <= p <= 1.0 for p in batch.probabilities)
    assert [replies[i] for i in range(len(chats))] == [_alone(model, tokenizer, chat, 6) for chat in chats]


def test_prompts_without_a_common_opening_are_answered_as_before(chat_model):
    model, tokenizer = chat_model
    chats = [[{"role": "user", "content": t}] for t in TEXTS[:4]]  # they share only "<|im_start|>user\n"
    replies: dict[int, str] = {}
    for batch in answer_batches(model, tokenizer, chats, max_new_tokens=5, batch_size=4, with_probabilities=False):
        replies.update(zip(batch.positions, batch.replies, strict=True))
    assert [replies[i] for i in range(4)] == [_alone(model, tokenizer, chat, 5) for chat in chats]
