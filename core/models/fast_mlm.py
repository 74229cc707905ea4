"""Masked-LM loss computed only where tokens are masked.

The vocabulary projection (hidden x 30k for BERT) is about half of MiniLM's FLOPs per token, yet the
loss needs it only at the ~15% of positions the collator masked. We run the encoder, gather the
masked rows of its output ([B, T, H] -> [M, H]) and apply the MLM head to those alone ([M, V]).
Same loss, same gradients as the model's own forward; supported where the head is one module
(BERT's `cls`, RoBERTa's `lm_head`); other architectures use their normal forward.

Instruction tuning has the same shape: the loss is on the answer tokens only (a few of a chat's ~100),
while SmolLM2's head projects every position onto a 49k vocabulary, a fifth of the model's FLOPs per
token and most of its activation memory. answer_only_loss runs the decoder, keeps the positions whose
next token is an answer token and projects those alone.

Instruction rows also start alike: the system turn, the instruction and the label list are the same
tokens in every row of a templated set (63 of a news-preset chat's ~96). answer_only_loss runs those once
per batch, at batch size one, and the rest of every row continues from their keys and values repeated
across the batch; gradients flow back through the repeat, so loss and gradients are the ones of the
full rows, for a fraction of the work.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn import functional as F

HEAD_ATTRIBUTES = ("cls", "lm_head")
IGNORE_INDEX = -100


def unwrap_model(model: Any) -> Any:
    """The transformers model inside a peft / DDP / compiled wrapper."""
    while True:
        if hasattr(model, "get_base_model"):
            model = model.get_base_model()
        elif hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
            model = model.module
        else:
            return model


def masked_only_parts(model: Any) -> tuple[Any, Any] | None:
    """(encoder, head) when this MLM can be run masked-only, else None."""
    inner = unwrap_model(model)
    encoder = getattr(inner, "base_model", None)
    if encoder is None or encoder is inner:
        return None
    for name in HEAD_ATTRIBUTES:
        head = getattr(inner, name, None)
        if isinstance(head, torch.nn.Module):
            return encoder, head
    return None


def masked_only_loss(
    parts: tuple[Any, Any], inputs: dict[str, torch.Tensor], num_items_in_batch: Any = None
) -> torch.Tensor:
    """Cross-entropy over masked positions only: mean, or sum / num_items_in_batch when given."""
    encoder, head = parts
    labels = inputs["labels"]
    model_inputs = {k: v for k, v in inputs.items() if k not in ("labels", "special_tokens_mask", "length")}
    hidden = encoder(**model_inputs, return_dict=True).last_hidden_state  # [B, T, H]
    selected = labels != IGNORE_INDEX  # [B, T]
    logits = head(hidden[selected])  # [M, V]
    targets = labels[selected]  # [M]
    if num_items_in_batch is not None:
        total = F.cross_entropy(logits.float(), targets, reduction="sum")
        return total / num_items_in_batch
    if targets.numel() == 0:
        return hidden.sum() * 0.0  # keeps the graph (and DDP's gradient sync) intact
    return F.cross_entropy(logits.float(), targets)


def answer_only_loss(
    parts: tuple[Any, Any], inputs: dict[str, torch.Tensor], num_items_in_batch: Any = None
) -> torch.Tensor:
    """Next-token cross-entropy where the next token is trained (label not -100), the head run there only.

    The same value as a causal LM's own loss: position t predicts label t+1; mean over the trained
    tokens, or their sum / num_items_in_batch when given.
    """
    decoder, head = parts
    labels = inputs["labels"]
    model_inputs = {k: v for k, v in inputs.items() if k not in ("labels", "special_tokens_mask", "length")}
    hidden, labels = answer_hidden(decoder, model_inputs, labels)  # [B, T', H], [B, T']
    next_labels = labels[:, 1:]
    selected = next_labels != IGNORE_INDEX  # [B, T-1]
    logits = head(hidden[:, :-1][selected])  # [M, V]
    targets = next_labels[selected]  # [M]
    if num_items_in_batch is not None:
        total = F.cross_entropy(logits.float(), targets, reduction="sum")
        return total / num_items_in_batch
    if targets.numel() == 0:
        return hidden.sum() * 0.0  # keeps the graph (and DDP's gradient sync) intact
    return F.cross_entropy(logits.float(), targets)


MIN_SHARED_PREFIX = 8  # a second decoder call for fewer shared tokens is not worth it (63 gave a 1.79x step)


def shared_prefix_length(model_inputs: dict[str, torch.Tensor], labels: torch.Tensor) -> int:
    """How many leading tokens every row of the batch shares, attended to and not trained; 0 when too few.

    The prefix stops one token before the first trained label, since the position before an answer
    token is where its prediction is made, and it leaves at least one token of every row.
    """
    input_ids = model_inputs["input_ids"]
    rows, width = input_ids.shape
    if rows < 2 or width < 2:
        return 0
    same = (input_ids == input_ids[:1]).all(dim=0)
    mask = model_inputs.get("attention_mask")
    if mask is not None:
        same &= mask.bool().all(dim=0)
    same &= ~(labels != IGNORE_INDEX).any(dim=0).roll(-1)  # position t is shared only if label t+1 is not trained
    same[-1] = False
    length = int(torch.cumprod(same.to(torch.int32), dim=0).sum())
    return length if length >= MIN_SHARED_PREFIX else 0


def answer_hidden(decoder: Any, model_inputs: dict[str, torch.Tensor],
                  labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The decoder's hidden states and the labels they line up with, the batch's shared opening run once.

    Without a long enough shared opening (or with inputs other than ids and mask), the whole rows as usual.
    """
    shared = shared_prefix_length(model_inputs, labels) if set(model_inputs) <= {"input_ids", "attention_mask"} else 0
    if shared:
        return hidden_after_shared_prefix(decoder, model_inputs, shared), labels[:, shared:]
    return decoder(**model_inputs, return_dict=True).last_hidden_state, labels


def hidden_after_shared_prefix(decoder: Any, model_inputs: dict[str, torch.Tensor], shared: int) -> torch.Tensor:
    """The decoder's hidden states after the first `shared` positions, with those positions run once."""
    input_ids = model_inputs["input_ids"]
    rows, width = input_ids.shape
    prefix = decoder(input_ids=input_ids[:1, :shared], use_cache=True, return_dict=True)
    cache = prefix.past_key_values
    cache.batch_repeat_interleave(rows)
    positions = torch.arange(shared, width, device=input_ids.device).unsqueeze(0).expand(rows, -1)
    mask = model_inputs.get("attention_mask")
    rest = decoder(input_ids=input_ids[:, shared:], attention_mask=mask, position_ids=positions,
                   past_key_values=cache, use_cache=True, return_dict=True)
    return rest.last_hidden_state
